"""Fixtures shared by every test folder.

Integration fixtures talk to a real Kafka broker and a real Confluent-compatible schema registry:

* Bring your own: export ``KAFKA_BOOTSTRAP_SERVERS`` and/or ``SCHEMA_REGISTRY_URL``
  (as confluent-kafka-python's integration suite does) and they are used as they are.
* Otherwise the devstack (``connector.devstack``) provides them: a running stack is reused, else
  one is started on the default ports and stopped at session end, unless another test session on
  this machine still uses it (see ``Devstack.acquire``/``release``).

Everything is lazy: the stack starts only when a test requests one of these fixtures, so a run of
unit tests never starts Java. Markers (``integration``, ``e2e``) are declared in pyproject.toml.

Every session also checks, at its end, that no librdkafka client (``Producer``, ``Consumer``,
``AdminClient``) is left alive: each one owns threads and broker connections, and a leaked one
keeps reconnecting ("Connection refused" after the broker stops) for as long as it lives.
"""

from __future__ import annotations

import gc
import os
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from connector.devstack import Devstack, Endpoints

TOPIC_READY_TIMEOUT_S = 30.0
# AdminClient's C base: every librdkafka handle the Python client creates is one of these types
KAFKA_CLIENT_TYPES = (Producer, Consumer, AdminClient.__mro__[1])


def live_kafka_clients() -> list[object]:
    """Every librdkafka client object alive after a full collection.

    Objects moved out of the collector's reach by ``gc.freeze()`` are never collected, so they
    count as alive even when unreachable; they are also invisible to ``gc.get_objects()`` until
    the heap is unfrozen, which is done after the collection, not before.
    """
    gc.collect()
    gc.unfreeze()
    return [o for o in gc.get_objects() if isinstance(o, KAFKA_CLIENT_TYPES)]


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the session if a test, a fixture or the runtime left a librdkafka client alive.

    A hook rather than a session fixture: while session fixtures are torn down, pytest still
    holds the last test's fixture values (its ``funcargs``), so a fixture would see the
    session's own ``admin`` client. Here every test and fixture is finished.
    """
    leaked = live_kafka_clients()
    if not leaked:
        return
    kinds = Counter(type(o).__name__ for o in leaked)
    holders = Counter(
        type(r).__name__ for o in leaked for r in gc.get_referrers(o) if r is not leaked
    )
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    message = (
        f"librdkafka clients alive at session end: {dict(kinds)} (referenced by: "
        f"{dict(holders)}); close or drop every client a test creates"
    )
    if reporter is not None:
        reporter.write_sep("=", "leaked Kafka clients", red=True)
        reporter.write_line(message, red=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def devstack_endpoints() -> Iterator[Endpoints]:
    """The devstack's endpoints, started for (or shared with) this session on first use."""
    stack = Devstack()
    result = stack.acquire()
    try:
        yield result.endpoints
    finally:
        stack.release()


@pytest.fixture(scope="session")
def kafka_bootstrap(request: pytest.FixtureRequest) -> str:
    """``bootstrap.servers`` of the broker under test."""
    configured = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if configured:
        return configured
    endpoints: Endpoints = request.getfixturevalue("devstack_endpoints")
    return endpoints.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def schema_registry_url(request: pytest.FixtureRequest) -> str:
    """URL of the Confluent-compatible registry API (for ``SchemaRegistryClient({"url": ...})``)."""
    configured = os.environ.get("SCHEMA_REGISTRY_URL")
    if configured:
        return configured
    endpoints: Endpoints = request.getfixturevalue("devstack_endpoints")
    return endpoints.schema_registry_url


@pytest.fixture(scope="session")
def admin(kafka_bootstrap: str) -> Iterator[AdminClient]:
    """One AdminClient for the session (AdminClient has no close(): dropping it destroys it)."""
    yield AdminClient({"bootstrap.servers": kafka_bootstrap})


@pytest.fixture
def tmp_topic(admin: AdminClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A new single-partition topic named after the test; deleted afterwards.

    Returns only once the partition has a leader, so producing to it at once cannot fail with
    an unknown-topic or leader-not-available error.
    """
    slug = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name)[:80].strip("-")
    topic = f"test-{slug}-{uuid.uuid4().hex[:8]}"
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    futures[topic].result(timeout=TOPIC_READY_TIMEOUT_S)
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while True:
        metadata = admin.list_topics(topic=topic, timeout=5).topics.get(topic)
        partitions = metadata.partitions if metadata and metadata.error is None else {}
        if partitions and all(p.leader >= 0 for p in partitions.values()):
            break
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topic {topic} has no leader after {TOPIC_READY_TIMEOUT_S} s")
        time.sleep(0.1)
    yield topic
    admin.delete_topics([topic])  # best effort, not awaited: the broker is throwaway anyway
