"""No message shows a secret, whichever check wrote it (issue 8, defect 10).

Each path runs the real CLI (``validate``, ``run``, ``validate --connect``) as a subprocess with
sentinel secrets, from ``${env:...}`` and from the YAML file itself, and greps everything it
printed. The expected messages are asserted too, so a test cannot pass by not reaching the check.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from connector.config.redaction import (
    HIDDEN,
    RedactingFilter,
    Redactor,
    scrub_url,
    scrub_urls,
    secret_fields,
)
from connector.config.validate import validate_paths
from connector.plugins.genesys.spec import GenesysNotificationsConfig
from connector.plugins.websocket.spec import WebSocketSourceConfig

SENTINEL = "S3NTINEL"
STATION = "v2.users.e40f28ea-fa86-493f-a5b8-d559c8533c96.station"

# Secret-bearing values; the env variant of the deployment reads each one from a variable.
SECRETS = {
    "GENESYS_SECRET": f"{SENTINEL}-client-secret",
    "LOGIN_URL": f"https://operator:{SENTINEL}-login-pw@login.example",
    "WS_HTTP_URL": f"http://feed.example/x?access_token={SENTINEL}-query-token",
    "WS_URL": f"wss://feed.example/x?token={SENTINEL}-ws-token",
    "WS_USERINFO_URL": f"wss://reader:{SENTINEL}-ws-pw@feed.example/y",
    "WS_AUTH": f"Bearer {SENTINEL}-header",
}

# What each failing check says: proves every path was reached.
EXPECTED = (
    "connectors[cross-field]: liveness.timeout.ms (1000) must be greater than ping.interval.ms",
    "connectors[login-url].genesys.login.url: Invalid value ",
    " for genesys.login.url: credentials in the URL are not allowed",
    "connectors[ws-scheme].websocket.url: Invalid value ",
    " for websocket.url: expected a ws:// or wss:// URL, got 'http://feed.example/x?access_token=***'",
    "connectors[ws-model]: websocket.ping.message needs websocket.ping.interval.ms",
    "connectors[ws-userinfo]: websocket.ping.message needs websocket.ping.interval.ms",
)


def deployment_text(from_env: bool) -> str:
    """Five connectors, each failing a different check while holding a secret."""

    def value(name: str) -> str:
        return f"${{env:{name}}}" if from_env else json.dumps(SECRETS[name])

    return textwrap.dedent(
        f"""
        worker:
          schema.registry.url: http://127.0.0.1:1/apis/ccompat/v7
        connectors:
          - name: cross-field
            plugin: genesys_notifications
            genesys.login.url: http://127.0.0.1:1
            genesys.api.url: http://127.0.0.1:1
            genesys.client.id: abc
            genesys.client.secret: {value("GENESYS_SECRET")}
            ping.interval.ms: 5000
            liveness.timeout.ms: 1000
            genesys.subscriptions: [{{topic: {STATION}}}]
          - name: login-url
            plugin: genesys_notifications
            genesys.login.url: {value("LOGIN_URL")}
            genesys.api.url: https://api.example
            genesys.client.id: abc
            genesys.client.secret: {value("GENESYS_SECRET")}
            genesys.subscriptions: [{{topic: {STATION}}}]
          - name: ws-scheme
            plugin: websocket
            value.converter: string
            websocket.url: {value("WS_HTTP_URL")}
            topic: t
          - name: ws-model
            plugin: websocket
            value.converter: string
            websocket.url: {value("WS_URL")}
            websocket.headers:
              Authorization: {value("WS_AUTH")}
            websocket.ping.message: ping
            topic: t
          - name: ws-userinfo
            plugin: websocket
            value.converter: string
            websocket.url: {value("WS_USERINFO_URL")}
            websocket.ping.message: ping
            topic: t
        """
    ).lstrip()


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> tuple[int, str]:
    """Run ``python -m connector ARGS``; return the exit code and stdout + stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "connector", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=timeout,
    )
    return done.returncode, done.stdout + done.stderr


def assert_clean(output: str) -> None:
    assert SENTINEL not in output, output
    assert "Traceback" not in output, output


@pytest.mark.parametrize("command", ["validate", "run"])
@pytest.mark.parametrize("from_env", [True, False], ids=["env", "file"])
def test_failing_checks_never_print_a_secret(tmp_path: Path, command: str, from_env: bool) -> None:
    path = tmp_path / "deployment.yaml"
    path.write_text(deployment_text(from_env))
    code, output = run_cli([command, str(path)], SECRETS if from_env else {})
    assert_clean(output)
    assert code == 2
    for fragment in EXPECTED:
        assert fragment in output, f"{fragment!r} not in:\n{output}"
    assert "invalid deployment: 5 problem(s)" in output
    # A value from ${env:...} is not shown at all; one written in the file is, redacted.
    shown = (
        ("[hidden]", "[hidden]")
        if from_env
        else (
            "'https://operator:***@login.example'",
            "'http://feed.example/x?access_token=***'",
        )
    )
    assert f"genesys.login.url: Invalid value {shown[0]} for" in output
    assert f"websocket.url: Invalid value {shown[1]} for" in output


class _FakeRegistry(BaseHTTPRequestHandler):
    """Lists no subjects; answers a compatibility check with an error quoting a credential URL
    (as a proxy's error page may) or, for subjects of topics ``c3.*``, with a malformed body."""

    quoted_url = ""

    def do_GET(self) -> None:
        self._answer(200, b"[]")

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if "c3." in self.path:
            self._answer(200, b"[]")  # not the {"is_compatible": ...} object the client expects
        else:
            body = {"error_code": 50001, "message": f"upstream {self.quoted_url} failed"}
            self._answer(500, json.dumps(body).encode())

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/vnd.schemaregistry.v1+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def fake_registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeRegistry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("from_env", [True, False], ids=["env", "file"])
def test_validate_connect_reports_registry_problems_without_secrets_or_tracebacks(
    tmp_path: Path, fake_registry: str, from_env: bool
) -> None:
    port = fake_registry.rsplit(":", 1)[1]
    secrets = {
        "GENESYS_SECRET": f"{SENTINEL}-client-secret",
        "DOWN_URL": f"http://user:{SENTINEL}-down-pw@127.0.0.1:1/apis/ccompat/v7",
        "FAKE_URL": f"http://user:{SENTINEL}-fake-pw@127.0.0.1:{port}",
    }
    _FakeRegistry.quoted_url = secrets["FAKE_URL"]

    def value(name: str) -> str:
        return f"${{env:{name}}}" if from_env else secrets[name]

    def genesys(name: str, **extra: str) -> dict[str, object]:
        return {
            "name": name,
            "plugin": "genesys_notifications",
            "genesys.login.url": "http://127.0.0.1:1",
            "genesys.api.url": "http://127.0.0.1:1",
            "genesys.client.id": "abc",
            "genesys.client.secret": value("GENESYS_SECRET"),
            "genesys.subscriptions": [{"topic": STATION}],
            **extra,
        }

    fake = value("FAKE_URL")
    deployment = {
        "worker": {"bootstrap.servers": "127.0.0.1:1", "schema.registry.url": value("DOWN_URL")},
        "connectors": [
            genesys("c1"),  # the worker's registry, which is down
            genesys("c2", **{"value.converter.schema.registry.url": fake}),
            genesys(
                "c3",
                **{
                    "value.converter.schema.registry.url": fake,
                    "topic.routing": "c3.{family}",
                    "gaps.topic": "c3.gaps",
                },
            ),
        ],
    }
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(deployment, sort_keys=False))
    code, output = run_cli(["validate", "--connect", str(path)], secrets if from_env else {})
    assert_clean(output)
    assert code == 2
    assert "worker.bootstrap.servers: cannot reach Kafka" in output
    assert "schema.registry.url: cannot reach http://user:***@127.0.0.1:1/apis/ccompat/v7" in output
    # the registry's own error text, which quotes a credential URL, is scrubbed
    scrubbed = f"upstream http://user:***@127.0.0.1:{port} failed"
    assert f"connectors[c2]: subject genesys.gaps-value: {scrubbed}" in output
    assert "connectors[c3]: cannot check schema compatibility: TypeError" in output
    assert "connectors[c1].genesys.login.url: cannot get a token" in output
    assert "connectors[c1]: subject" not in output  # its registry is down: reported once


def test_run_scrubs_log_records_of_a_valid_deployment() -> None:
    redactor = Redactor([f"{SENTINEL}-secret"])
    record = logging.LogRecord(
        "x", logging.ERROR, __file__, 1, "token %s for %s", (f"{SENTINEL}-secret", "u"), None
    )
    try:
        raise RuntimeError(f"failed at https://u:{SENTINEL}-pw@h/x")
    except RuntimeError:
        record.exc_info = sys.exc_info()
    assert RedactingFilter(redactor).filter(record)
    text = logging.Formatter("%(message)s").format(record)
    assert SENTINEL not in text
    assert f"token {HIDDEN} for u" in text
    assert "RuntimeError: failed at https://u:***@h/x" in text


def test_urls_in_text_lose_passwords_tokens_and_fragments() -> None:
    assert scrub_url("https://u:pw@h.example/x?access_token=abc&v=2#frag") == (
        "https://u:***@h.example/x?access_token=***&v=***#***"
    )
    assert scrub_url("https://ghp_0123456789@h.example/") == "https://***@h.example/"
    assert scrub_url("http://127.0.0.1:8081/apis") == "http://127.0.0.1:8081/apis"
    assert scrub_urls("cannot reach http://u:pw@h:1/x: refused; see http://docs/a.") == (
        "cannot reach http://u:***@h:1/x: refused; see http://docs/a."
    )
    assert scrub_urls("a,http://u:pw@a:1,http://u:pw@b:2") == "a,http://u:***@a:1,http://u:***@b:2"


def test_redactor_finds_secrets_in_any_form_they_are_quoted_in() -> None:
    redactor = Redactor()
    redactor.add_values(
        {
            "schema.registry.url": "http://u:p%40ss-word@h/x?api_key=k3y-value&v=2",
            "sasl.password": 'it\'s "quoted"',
            "plain": "harmless",
            "login": "user:s3cret-pw@host",
        }
    )
    text = redactor(
        'p@ss-word p%40ss-word k3y-value \'it\\\'s "quoted"\' {"a": "it\'s \\"quoted\\""} '
        "s3cret-pw harmless 2"
    )
    assert text == (
        f'{HIDDEN} {HIDDEN} {HIDDEN} \'{HIDDEN}\' {{"a": "{HIDDEN}"}} {HIDDEN} harmless 2'
    )


def test_secret_typed_fields_are_found_in_plugin_models() -> None:
    assert "genesys.client.secret" in secret_fields(GenesysNotificationsConfig)
    assert "websocket.headers" in secret_fields(WebSocketSourceConfig)
    assert "genesys.client.id" not in secret_fields(GenesysNotificationsConfig)


def test_a_model_level_error_does_not_quote_the_block(tmp_path: Path) -> None:
    path = tmp_path / "d.yaml"
    path.write_text(deployment_text(from_env=False))
    deployment, issues = validate_paths([path], environ={})
    assert deployment is None
    cross = [i for i in issues if i.path == "connectors[cross-field]"]
    assert [i.message for i in cross] == [
        "liveness.timeout.ms (1000) must be greater than ping.interval.ms (5000) or every "
        "socket looks dead"
    ]
    assert cross[0].line == 4  # "- name: cross-field"
    assert all(SENTINEL not in str(issue) for issue in issues)
