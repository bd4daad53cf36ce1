"""The REST API's shapes and errors that need no Kafka: a worker built from a real deployment
but not started (its connectors' runtime endpoints are covered by
tests/integration/test_rest_api.py against the devstack)."""

from __future__ import annotations

import base64
import http.client
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from connector.config.validate import load_deployment
from connector.runtime.rest import RestServer
from connector.runtime.worker import Worker

SECRET = "s3cr3t-client-value"
PASSWORD = "rest-pass-9876"
USER = "e40f28ea-fa86-493f-a5b8-d559c8533c96"
DATAGEN_CLASS = "connector.plugins.datagen.connector.DatagenSourceConnector"


def _deployment(tmp_path: Path, **worker: Any) -> Path:
    document = {
        "worker": {"schema.registry.url": "mock://unit", **worker},
        "connectors": [
            {
                "name": "orders",
                "plugin": "datagen",
                "tasks.max": 2,
                "datagen.topic": "orders",
                "errors.tolerance": "all",
                "transforms": "route",
                "transforms.route.type": "org.apache.kafka.connect.transforms.RegexRouter",
                "transforms.route.regex": "orders",
                "transforms.route.replacement": "shop",
            },
            {
                "name": "genesys",
                "plugin": "genesys_notifications",
                "genesys.region": "mypurecloud.com",
                "genesys.client.id": "client-1",
                "genesys.client.secret": SECRET,
                "genesys.subscriptions": [{"template": "user.presence", "ids": [USER]}],
            },
        ],
    }
    path = tmp_path / "deployment.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _serve(path: Path) -> Iterator[str]:
    worker = Worker(load_deployment([path], environ={}))
    server = RestServer(worker, "127.0.0.1", 0)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield from _serve(_deployment(tmp_path))


def _assert_error(response: requests.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error_code"] == status and isinstance(body["message"], str), body
    return str(body["message"])


def test_every_error_is_connect_json_with_405_for_a_wrong_method(url: str) -> None:
    _assert_error(requests.get(f"{url}/no/such/path", timeout=5), 404)
    _assert_error(requests.get(f"{url}/connectors/nope/status", timeout=5), 404)
    _assert_error(requests.delete(f"{url}/connector-plugins", timeout=5), 405)
    _assert_error(requests.post(f"{url}/connectors/orders/status", timeout=5), 405)
    _assert_error(requests.get(f"{url}/connectors/orders/pause", timeout=5), 405)
    _assert_error(requests.get(f"{url}/connectors/orders/tasks/x/status", timeout=5), 400)


def test_health_says_starting_until_the_worker_has_started(url: str) -> None:
    response = requests.get(f"{url}/health", timeout=5)
    assert response.status_code == 503
    assert response.json() == {"status": "starting", "message": "Worker is still starting up."}


def test_writes_to_connector_configs_answer_that_the_deployment_is_file_based(url: str) -> None:
    body = {"name": "new", "config": {"connector.class": DATAGEN_CLASS}}
    message = _assert_error(requests.post(f"{url}/connectors", json=body, timeout=5), 400)
    assert "standalone mode" in message and "deployment.yaml" in message
    _assert_error(requests.post(f"{url}/connectors", json={"name": "orders"}, timeout=5), 409)
    _assert_error(requests.put(f"{url}/connectors/orders/config", json={}, timeout=5), 400)
    _assert_error(requests.patch(f"{url}/connectors/orders/config", json={}, timeout=5), 400)
    _assert_error(requests.delete(f"{url}/connectors/orders", timeout=5), 400)
    _assert_error(requests.delete(f"{url}/connectors/nope", timeout=5), 404)


def test_config_is_connects_flat_string_map_with_secrets_hidden(url: str) -> None:
    orders = requests.get(f"{url}/connectors/orders/config", timeout=5).json()
    assert all(isinstance(v, str) for v in orders.values()), orders
    assert orders["connector.class"] == DATAGEN_CLASS
    assert orders["name"] == "orders"
    assert orders["tasks.max"] == "2"
    assert orders["value.converter"] == "io.confluent.connect.avro.AvroConverter"
    assert orders["key.converter"] == "org.apache.kafka.connect.storage.StringConverter"
    assert orders["errors.tolerance"] == "all"
    assert orders["errors.log.enable"] == "false"
    assert orders["transforms"] == "route"
    assert orders["transforms.route.replacement"] == "shop"
    assert orders["datagen.topic"] == "orders"
    response = requests.get(f"{url}/connectors/genesys/config", timeout=5)
    genesys = response.json()
    assert genesys["genesys.client.secret"] == "[hidden]"
    assert json.loads(genesys["genesys.subscriptions"]) == [
        {"template": "user.presence", "ids": [USER]}
    ]
    for text in (response.text, requests.get(f"{url}/connectors?expand=info", timeout=5).text):
        assert SECRET not in text
        assert "None" not in text and "True" not in text


def test_connector_plugins_are_listed_by_class_and_each_class_is_accepted(url: str) -> None:
    plugins = requests.get(f"{url}/connector-plugins", timeout=5).json()
    classes = {p["class"]: p for p in plugins}
    assert classes[DATAGEN_CLASS] == {"class": DATAGEN_CLASS, "type": "source", "version": "0.1.0"}
    for plugin in plugins:
        keys = requests.get(f"{url}/connector-plugins/{plugin['class']}/config", timeout=5)
        assert keys.status_code == 200, keys.text
        for info in keys.json():
            assert set(info) == {
                "name",
                "type",
                "required",
                "default_value",
                "importance",
                "documentation",
                "group",
                "order",
                "width",
                "display_name",
                "dependents",
            }
    datagen = requests.get(f"{url}/connector-plugins/DatagenSource/config", timeout=5).json()
    topic = next(k for k in datagen if k["name"] == "datagen.topic")
    assert (topic["type"], topic["required"], topic["default_value"]) == ("STRING", True, None)
    count = next(k for k in datagen if k["name"] == "datagen.count")
    assert (count["type"], count["required"], count["default_value"]) == ("INT", False, "-1")


def test_validate_answers_config_infos_from_the_deployment_validation(url: str) -> None:
    body = {
        "connector.class": DATAGEN_CLASS,
        "name": "candidate",
        "tasks.max": "3",
        "datagen.count": "many",
        "datagen.colour": "blue",
        "errors.tolerance": "sometimes",
    }
    response = requests.put(
        f"{url}/connector-plugins/DatagenSourceConnector/config/validate", json=body, timeout=5
    )
    assert response.status_code == 200, response.text
    infos = response.json()
    assert infos["name"] == DATAGEN_CLASS
    assert {"Common", "Error Handling", "Transforms", "datagen"} <= set(infos["groups"])
    by_name = {c["value"]["name"]: c for c in infos["configs"]}
    assert by_name["datagen.count"]["value"]["errors"]
    assert by_name["datagen.count"]["value"]["value"] == "many"
    assert by_name["datagen.topic"]["value"]["errors"] == ["missing required setting"]
    assert by_name["errors.tolerance"]["definition"]["type"] == "STRING"
    assert by_name["errors.tolerance"]["value"]["recommended_values"] == ["none", "all"]
    assert by_name["errors.tolerance"]["value"]["errors"]
    assert by_name["datagen.colour"]["definition"] is None
    assert by_name["tasks.max"]["value"]["errors"] == []
    assert infos["error_count"] == sum(len(c["value"]["errors"]) for c in infos["configs"]) == 4

    valid = requests.put(
        f"{url}/connector-plugins/datagen/config/validate",
        json={"name": "ok", "datagen.topic": "t", "tasks.max": "1"},
        timeout=5,
    ).json()
    assert valid["error_count"] == 0
    mismatch = requests.put(
        f"{url}/connector-plugins/genesys_notifications/config/validate",
        json={"connector.class": DATAGEN_CLASS, "name": "x"},
        timeout=5,
    )
    _assert_error(mismatch, 400)


def test_validate_round_trips_the_config_endpoint_and_hides_passwords(url: str) -> None:
    config = requests.get(f"{url}/connectors/genesys/config", timeout=5).json()
    config["genesys.client.secret"] = SECRET
    response = requests.put(
        f"{url}/connector-plugins/{config['connector.class']}/config/validate",
        json=config,
        timeout=5,
    )
    infos = response.json()
    assert infos["error_count"] == 0, [c for c in infos["configs"] if c["value"]["errors"]]
    secret = next(c for c in infos["configs"] if c["value"]["name"] == "genesys.client.secret")
    assert secret["definition"]["type"] == "PASSWORD"
    assert secret["value"]["value"] == "[hidden]"
    assert SECRET not in response.text


def test_loggers_are_read_and_changed_at_run_time(url: str) -> None:
    logging.getLogger("connector.runtime.worker").setLevel(logging.INFO)
    loggers = requests.get(f"{url}/admin/loggers", timeout=5).json()
    assert "root" in loggers and loggers["connector.runtime.worker"]["level"] == "INFO"
    changed = requests.put(
        f"{url}/admin/loggers/connector.runtime", json={"level": "DEBUG"}, timeout=5
    )
    assert changed.status_code == 200
    assert {"connector.runtime", "connector.runtime.worker"} <= set(changed.json())
    assert logging.getLogger("connector.runtime.worker").getEffectiveLevel() == logging.DEBUG
    one = requests.get(f"{url}/admin/loggers/connector.runtime.worker", timeout=5).json()
    assert one["level"] == "DEBUG" and isinstance(one["last_modified"], int)
    warn = requests.put(f"{url}/admin/loggers/connector.runtime", json={"level": "WARN"}, timeout=5)
    assert warn.status_code == 200
    assert logging.getLogger("connector.runtime.worker").getEffectiveLevel() == logging.WARNING
    _assert_error(
        requests.put(f"{url}/admin/loggers/connector", json={"level": "LOUD"}, timeout=5), 400
    )
    _assert_error(requests.get(f"{url}/admin/loggers/no.such.logger.here", timeout=5), 404)
    logging.getLogger("connector.runtime").setLevel(logging.NOTSET)
    logging.getLogger("connector.runtime.worker").setLevel(logging.NOTSET)


def test_openapi_description_lists_connects_paths(url: str) -> None:
    paths = requests.get(f"{url}/openapi.json", timeout=5).json()["paths"]
    for path in (
        "/connectors/{name}/offsets",
        "/connectors/{name}/tasks/{task_id}/restart",
        "/connector-plugins/{name}/config/validate",
        "/admin/loggers/{name}",
        "/health",
    ):
        assert path in paths


def test_connections_are_kept_alive(url: str) -> None:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/connectors")
            response = connection.getresponse()
            assert (response.status, json.loads(response.read())) == (200, ["genesys", "orders"])
            assert response.getheader("connection") != "close"
        assert connection.sock is not None  # the same socket served all three
    finally:
        connection.close()


def test_basic_auth_guards_every_write_but_not_reads(tmp_path: Path) -> None:
    path = _deployment(
        tmp_path, **{"rest.basic.auth.user": "ops", "rest.basic.auth.password": PASSWORD}
    )
    for url in _serve(path):
        assert requests.get(f"{url}/connectors", timeout=5).status_code == 200
        denied = requests.put(f"{url}/connectors/orders/pause", timeout=5)
        _assert_error(denied, 401)
        assert denied.headers["www-authenticate"].startswith("Basic")
        wrong = requests.put(f"{url}/connectors/orders/pause", auth=("ops", "nope"), timeout=5)
        _assert_error(wrong, 401)
        token = base64.b64encode(f"ops:{PASSWORD}".encode()).decode()
        allowed = requests.post(
            f"{url}/connectors",
            json={"name": "x"},
            headers={"Authorization": f"Basic {token}"},
            timeout=5,
        )
        _assert_error(allowed, 400)  # authenticated: on to the standalone answer
        config = requests.get(f"{url}/connectors?expand=info", timeout=5).text
        assert PASSWORD not in config


def test_the_api_listens_where_listeners_says(tmp_path: Path) -> None:
    path = _deployment(tmp_path, listeners="http://127.0.0.1:0")
    worker = Worker(load_deployment([path], environ={}))
    address = worker.config.rest_address()
    assert address == ("127.0.0.1", 0)
    server = RestServer(worker, *address)
    server.start()
    try:
        assert server.url.startswith("http://127.0.0.1:")
        assert requests.get(f"{server.url}/connectors", timeout=5).json() == ["genesys", "orders"]
    finally:
        server.stop()


def test_health_is_unhealthy_while_kafka_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from confluent_kafka.admin import AdminClient

    worker = Worker(load_deployment([_deployment(tmp_path)], environ={}))
    monkeypatch.setattr(worker, "started", lambda: True)  # started, then Kafka went away
    monkeypatch.setattr(worker, "_admin", AdminClient({"bootstrap.servers": "127.0.0.1:1"}))
    server = RestServer(worker, "127.0.0.1", 0)
    server.start()
    try:
        response = requests.get(f"{server.url}/health", timeout=10)
        assert response.status_code == 500
        assert response.json() == {"status": "unhealthy", "message": "Kafka is unreachable"}
    finally:
        server.stop()
