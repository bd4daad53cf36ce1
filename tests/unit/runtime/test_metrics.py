"""Worker metrics: JMX-exporter names, every series present from the start at 0, task states
one gauge per state, windowed statistics, librdkafka statistics, rate-limited librdkafka logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from prometheus_client import generate_latest

from connector.runtime.kafka_logging import LibrdkafkaLogger
from connector.runtime.metrics import WindowedStat, WorkerMetrics


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _statuses() -> list[dict[str, Any]]:
    return [
        {
            "name": "orders",
            "connector": {"state": "RUNNING"},
            "tasks": [
                {"id": 0, "state": "RUNNING", "restarts": 0},
                {"id": 1, "state": "FAILED", "restarts": 2, "trace": "boom"},
            ],
        }
    ]


def test_every_task_series_exists_at_zero_before_anything_happened() -> None:
    metrics = WorkerMetrics(status=_statuses)
    get = metrics.registry.get_sample_value
    task = {"connector": "orders", "task": "1"}
    for name in (
        "kafka_connect_source_task_source_record_poll_total",
        "kafka_connect_source_task_source_record_write_total",
        "kafka_connect_source_task_source_record_poll_rate",
        "kafka_connect_source_task_source_record_active_count",
        "kafka_connect_source_task_poll_batch_avg_time_ms",
        "kafka_connect_connector_task_batch_size_max",
        "kafka_connect_connector_task_offset_commit_avg_time_ms",
        "kafka_connect_connector_task_offset_commit_failure_percentage",
        "kafka_connect_connector_task_offset_commit_failure_total",
        "kafka_connect_task_error_total_record_errors",
        "kafka_connect_task_error_total_records_skipped",
        "kafka_connect_task_error_total_retries",
        "kafka_connect_task_error_deadletterqueue_produce_requests",
        "kafka_connect_task_error_deadletterqueue_produce_failures",
        "kafka_connect_task_error_last_error_timestamp",
    ):
        assert get(name, task) == 0.0, name
    assert get("kafka_producer_queue_messages") == 0.0


def test_a_failed_task_is_visible_one_gauge_per_state() -> None:
    metrics = WorkerMetrics(status=_statuses)
    get = metrics.registry.get_sample_value
    failed = {"connector": "orders", "task": "1"}
    assert get("kafka_connect_connector_task_status", {**failed, "status": "failed"}) == 1.0
    assert get("kafka_connect_connector_task_status", {**failed, "status": "running"}) == 0.0
    assert get("kafka_connect_connector_task_restarts_total", failed) == 2.0
    assert get("kafka_connect_worker_connector_failed_task_count", {"connector": "orders"}) == 1
    assert get("kafka_connect_worker_connector_running_task_count", {"connector": "orders"}) == 1
    assert get("kafka_connect_worker_task_count") == 2.0
    assert (
        get("kafka_connect_connector_status", {"connector": "orders", "status": "running"}) == 1.0
    )
    assert get("kafka_connect_connector_status", {"connector": "orders", "status": "stopped"}) == 0


def test_runtime_observations_reach_their_connect_names() -> None:
    metrics = WorkerMetrics(status=_statuses)
    labels = {"connector": "orders", "task": "0"}
    metrics.records_polled.labels(**labels).inc(30)
    metrics.observe_poll("orders", 0, 0.004, 30)
    metrics.observe_poll("orders", 0, 0.002, 10)
    metrics.observe_commit("orders", 0, 0.010)
    metrics.observe_commit("orders", 0, None)
    metrics.observe_error("orders", 0)
    metrics.errors_tolerated.labels(**labels, stage="VALUE_CONVERTER").inc()
    get = metrics.registry.get_sample_value
    assert get("kafka_connect_source_task_source_record_poll_total", labels) == 30
    assert get("kafka_connect_source_task_poll_batch_max_time_ms", labels) == pytest.approx(4.0)
    assert get("kafka_connect_source_task_poll_batch_avg_time_ms", labels) == pytest.approx(3.0)
    assert get("kafka_connect_connector_task_batch_size_avg", labels) == 20
    assert get("kafka_connect_connector_task_offset_commit_max_time_ms", labels) == 10
    assert get("kafka_connect_connector_task_offset_commit_success_percentage", labels) == 0.5
    assert get("kafka_connect_task_error_total_record_errors", labels) == 1
    assert get("kafka_connect_task_error_last_error_timestamp", labels) > 1.6e12
    assert get("kafka_connect_task_error_total_records_skipped", labels) == 1
    assert (
        get(
            "kafka_connect_task_error_records_tolerated_total",
            {**labels, "stage": "VALUE_CONVERTER"},
        )
        == 1
    )
    text = generate_latest(metrics.registry).decode()
    assert "# TYPE kafka_connect_source_task_source_record_poll_total counter" in text


def test_windowed_stat_forgets_what_is_older_than_its_windows() -> None:
    clock = _Clock()
    stat = WindowedStat(window_s=30, samples=2, clock=clock)
    stat.record(100)
    clock.now += 31
    stat.record(10)
    assert (stat.max(), stat.avg()) == (100, 55)
    clock.now += 31
    stat.record(20)
    assert (stat.max(), stat.avg()) == (20, 15)
    clock.now += 200
    assert (stat.max(), stat.avg(), stat.rate()) == (0, 0, 0)


def test_librdkafka_statistics_become_queue_and_broker_gauges() -> None:
    metrics = WorkerMetrics()
    metrics.producer_statistics(
        json.dumps(
            {
                "msg_cnt": 42,
                "msg_size": 4200,
                "msg_max": 100000,
                "brokers": {
                    "127.0.0.1:9092/1": {
                        "nodeid": 1,
                        "nodename": "127.0.0.1:9092",
                        "state": "UP",
                        "rtt": {"avg": 2500},
                        "txretries": 3,
                        "txerrs": 1,
                        "req_timeouts": 1,
                    },
                    "GroupCoordinator": {"nodeid": -1, "nodename": "x", "state": "INIT"},
                },
            }
        )
    )
    get = metrics.registry.get_sample_value
    broker = {"broker": "127.0.0.1:9092"}
    assert get("kafka_producer_queue_messages") == 42
    assert get("kafka_producer_queue_max_messages") == 100000
    assert get("kafka_producer_broker_rtt_avg_ms", broker) == 2.5
    assert get("kafka_producer_broker_up", broker) == 1
    assert get("kafka_producer_broker_request_retries_total", broker) == 3
    assert get("kafka_producer_broker_request_errors_total", broker) == 2
    assert get("kafka_producer_broker_up", {"broker": "x"}) is None


def test_librdkafka_lines_go_through_logging_and_repeats_are_rate_limited(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = _Clock()
    sink = LibrdkafkaLogger("librdkafka.test", burst=2, interval_s=60, clock=clock)
    fmt = "%s [%s] %s"
    with caplog.at_level(logging.DEBUG, logger="librdkafka.test"):
        for _ in range(10):
            sink.log(3, fmt, "FAIL", "rdkafka#producer-1", "Connect to 127.0.0.1:1 failed")
        sink.log(7, fmt, "BROKER", "rdkafka#producer-1", "debug line")
        clock.now += 61
        sink.log(4, fmt, "FAIL", "rdkafka#producer-1", "Connect to 127.0.0.1:1 failed")
    fails = [r for r in caplog.records if "FAIL" in r.getMessage()]
    assert [r.levelno for r in fails] == [logging.ERROR, logging.ERROR, logging.WARNING]
    assert "8 similar lines suppressed" in fails[-1].getMessage()
    assert any(r.levelno == logging.DEBUG for r in caplog.records)


def test_retries_are_counted_in_total_and_by_cause() -> None:
    from connector.config.models import ConnectorConfig
    from connector.runtime.error_policy import ErrorPolicy

    metrics = WorkerMetrics(status=_statuses)
    config = ConnectorConfig.model_validate({"name": "orders", "plugin": "datagen"})
    policy = ErrorPolicy(config, task_id=0, metrics=metrics, clock=_Clock())
    registry = policy.retry_budget("registry")
    assert registry.failed() is not None
    assert registry.failed() is not None
    get = metrics.registry.get_sample_value
    labels = {"connector": "orders", "task": "0"}
    assert get("kafka_connect_task_error_total_retries", labels) == 2
    by_cause = "kafka_connect_task_error_retries_by_cause_total"
    assert get(by_cause, {**labels, "cause": "registry"}) == 2
    assert get(by_cause, {**labels, "cause": "poll"}) == 0  # present before any poll retry
    assert get(by_cause, {"connector": "orders", "task": "1", "cause": "registry"}) == 0
