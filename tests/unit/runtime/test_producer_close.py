"""Closing the data producer destroys its librdkafka client within the flush bound, even when
Kafka is unreachable, and reports what was never delivered."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from connector.runtime.producer import DataProducer


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_close_is_bounded_when_kafka_is_unreachable_and_destroys_the_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    producer = DataProducer(f"127.0.0.1:{_closed_port()}", {"log_level": 0})
    reports: list[Any] = []
    for n in range(10):
        producer.producer.produce("t", str(n).encode(), on_delivery=lambda e, m: reports.append(e))
    started = time.monotonic()
    producer.close(timeout_s=0.5)
    assert time.monotonic() - started < 3.0, "close() waited for Kafka beyond its bound"
    assert len(reports) == 10 and all(e is not None for e in reports), "every record reported"
    assert "10 records were still unacknowledged at shutdown" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        producer.producer.flush(0)  # the librdkafka handle is gone, not just idle
