from __future__ import annotations

import threading
import time
from collections.abc import Callable

import orjson
import pytest

from connector.plugins.websocket import ENVELOPE_SCHEMA, WebSocketSourceTask
from connector.testing import FakeTaskContext, MemoryOffsetReader, poll_until, split_polled
from connector.ws.testing import LocalWebSocketServer, ServerConnection

pytestmark = pytest.mark.timeout(10)

StartTask = Callable[..., tuple[WebSocketSourceTask, FakeTaskContext]]  # the conftest fixture


def send_all(*messages: str | bytes):
    def on_connect(conn: ServerConnection) -> None:
        for message in messages:
            conn.send_text(message)

    return on_connect


def wait_until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.002)


def test_records_carry_topic_key_timestamp_partition_and_offset(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    first = '{"type":"trade","sym":"ABC","at":1700000000123,"px":1.5}'
    second = '{"type":"quote","sym":"XYZ","at":"2023-11-14T22:13:20.500Z"}'
    server.on_connect = send_all(first, second)
    url = server.url + "/feed?token=s3cret"
    task, _ = start_task(
        {
            "websocket.url": url,
            "topic": "ws.{type}",
            "key.field": "sym",
            "timestamp.field": "at",
        }
    )

    records = poll_until(task, 2)

    assert [r.topic for r in records] == ["ws.trade", "ws.quote"]
    assert [r.key for r in records] == ["ABC", "XYZ"]
    assert [r.timestamp_ms for r in records] == [1700000000123, 1700000000500]
    redacted = server.url + "/feed?token=***"
    assert records[0].source_partition == {"url": redacted}
    assert [r.source_offset["seq"] for r in records] == [1, 2]
    assert records[0].source_offset["received_ms"] == records[0].value["received_ms"]
    assert records[0].value == {
        "payload": first,
        "received_ms": records[0].source_offset["received_ms"],
        "source": redacted,
    }
    assert records[0].value_schema is ENVELOPE_SCHEMA
    assert list(records[0].headers) == [("ws.source", redacted)]
    assert "s3cret" not in repr(records)


def test_json_value_format_and_defaults(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all('{"a":{"b":[1,2]},"n":null}')
    task, _ = start_task({"websocket.url": server.url, "topic": "raw", "value.format": "json"})

    (record,) = poll_until(task, 1)

    assert record.value == {"a": {"b": [1, 2]}, "n": None}
    assert record.value_schema is None
    assert record.key is None
    assert record.timestamp_ms == record.source_offset["received_ms"]  # receive time


def test_subscribe_messages_are_sent_on_connect_and_reconnect(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    start_task(
        {
            "websocket.url": server.url,
            "topic": "t",
            "websocket.subscribe.messages": ['{"op":"hello"}', {"op": "subscribe", "ch": [1]}],
        }
    )
    expected = ['{"op":"hello"}', '{"op":"subscribe","ch":[1]}']

    first = server.wait_for_connection(0)
    assert first.wait_for_messages(2) == expected
    first.drop()
    assert server.wait_for_connection(1).wait_for_messages(2) == expected


def test_headers_are_sent_in_the_handshake(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    start_task(
        {
            "websocket.url": server.url,
            "topic": "t",
            "websocket.headers": {"Authorization": "Bearer abc", "X-Feed": "1"},
        }
    )
    connection = server.wait_for_connection(0)
    assert connection.headers["authorization"] == "Bearer abc"
    assert connection.headers["x-feed"] == "1"


def test_ping_settings_reach_the_receiver(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    start_task(
        {
            "websocket.url": server.url,
            "topic": "t",
            "websocket.ping.interval.ms": 30,
            "websocket.ping.message": "PING",
        }
    )
    assert server.wait_for_connection(0).wait_for_messages(2)[:2] == ["PING", "PING"]


def test_malformed_frames_go_to_the_dead_letter_queue_with_reasons(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all(
        '{"id":"a","type":"x"}',
        "{not json",
        b'{"id":"\xff\xfe"}',
        "[1,2,3]",
        '{"type":"x"}',
        '{"id":null,"type":"x"}',
        '{"id":"b"}',
        '{"id":"c","type":"bad topic!"}',
        '{"id":"d","type":"y"}',
    )
    task, ctx = start_task({"websocket.url": server.url, "topic": "ws.{type}", "key.field": "id"})

    records, dead_letters = split_polled(poll_until(task, 9))

    assert [(r.key, r.topic) for r in records] == [("a", "ws.x"), ("d", "ws.y")]
    assert [r.source_offset["seq"] for r in records] == [1, 9]
    reasons = [letter.reason for letter in dead_letters]
    assert reasons[0].startswith("frame is not valid JSON")
    assert reasons[1].startswith("frame is not valid UTF-8")
    assert reasons[2] == "expected a JSON object, got list"
    assert reasons[3] == "key field 'id' is missing or null"
    assert reasons[4] == "key field 'id' is missing or null"
    assert reasons[5] == "topic field 'type' is missing or null"
    assert "bad topic!" in reasons[6] and "[A-Za-z0-9._-]" in reasons[6]
    first = dead_letters[0]
    assert first.payload == b"{not json"
    assert first.source_partition == {"url": server.url}
    assert [letter.source_offset["seq"] for letter in dead_letters] == list(range(2, 9))
    assert ctx.counters[("messages_dead_lettered", ())] == 7


def test_filter_drops_control_messages_and_counts_them(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all(
        '{"op":"pong"}', '{"op":"data","v":1}', '{"op":"subscribed"}', '{"v":2}'
    )
    task, ctx = start_task(
        {
            "websocket.url": server.url,
            "topic": "t",
            "message.filter.field": "op",
            "message.filter.values": ["pong", "subscribed"],
        }
    )

    records, dead_letters = split_polled(poll_until(task, 2))
    wait_until(lambda: ctx.counters.get(("messages_filtered", ())) == 2)

    assert [orjson.loads(r.value["payload"]) for r in records] == [{"op": "data", "v": 1}, {"v": 2}]
    assert dead_letters == []


def test_filter_keep_mode_keeps_only_selected_messages(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all('{"kind":1}', '{"kind":2}', '{"kind":{"x":1}}', '{"kind":3}')
    task, _ = start_task(
        {
            "websocket.url": server.url,
            "topic": "t",
            "value.format": "json",
            "message.filter.field": "kind",
            "message.filter.values": [1, 3],
            "message.filter.mode": "keep",
        }
    )
    records = poll_until(task, 2)
    assert [r.value["kind"] for r in records] == [1, 3]


def test_seq_resumes_after_the_committed_offset(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    url = server.url + "/x?token=abc"
    offsets = MemoryOffsetReader("ws-test")
    offsets.set({"url": server.url + "/x?token=***"}, {"seq": 41, "received_ms": 1})
    server.on_connect = send_all('{"a":1}', '{"a":2}')
    task, _ = start_task({"websocket.url": url, "topic": "t"}, offsets=offsets)

    records = poll_until(task, 2)

    assert [r.source_offset["seq"] for r in records] == [42, 43]


def test_a_task_reads_only_the_urls_of_its_task_config(start_task: StartTask) -> None:
    with (
        LocalWebSocketServer(send_all('{"s":"a"}')) as a,
        LocalWebSocketServer(send_all('{"s":"b"}')) as b,
        LocalWebSocketServer(send_all('{"s":"c"}')) as c,
    ):
        urls = [a.url + "/a", b.url + "/b", c.url + "/c"]
        task, _ = start_task(
            {"websocket.urls": urls, "topic": "t", "value.format": "json"},
            task_config={"urls": urls[:2]},
        )
        records = poll_until(task, 2)
        assert sorted(r.value["s"] for r in records) == ["a", "b"]
        assert {r.source_partition["url"] for r in records} == set(urls[:2])
        assert all(r.source_offset["seq"] == 1 for r in records)  # a counter per partition
        assert c.connections == []


def test_stop_from_another_thread_makes_poll_return_promptly(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    task, _ = start_task({"websocket.url": server.url, "topic": "t"})
    server.wait_for_connection(0)
    result: list = []
    poller = threading.Thread(target=lambda: result.append(task.poll(30.0)), daemon=True)
    poller.start()

    started = time.monotonic()
    task.stop()
    poller.join(2)

    assert not poller.is_alive()
    assert result == [[]]
    assert time.monotonic() - started < 1.0
    assert task.poll(5.0) == []  # stays prompt after stop
    task.stop()  # idempotent


def test_status_details_report_the_buffer_and_connections(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all('{"a":1}')
    task, ctx = start_task({"websocket.url": server.url, "topic": "t", "buffer.capacity": 64})
    poll_until(task, 1)
    task.poll(0)

    assert ctx.status["buffer"]["capacity"] == 64
    assert set(ctx.status["buffer"]) >= {"depth", "high_watermark", "blocked_put_s"}
    assert server.url in ctx.status["connections"]


def test_disconnects_are_counted(server: LocalWebSocketServer, start_task: StartTask) -> None:
    _, ctx = start_task({"websocket.url": server.url, "topic": "t"})
    server.wait_for_connection(0).drop()
    server.wait_for_connection(1)
    wait_until(lambda: ctx.counters.get(("websocket_disconnects", ())) == 1)


def test_batches_are_capped_by_batch_max_records(
    server: LocalWebSocketServer, start_task: StartTask
) -> None:
    server.on_connect = send_all(*[f'{{"n":{n}}}' for n in range(10)])
    task, _ = start_task({"websocket.url": server.url, "topic": "t", "batch.max.records": 3})
    wait_until(lambda: task._buffer is not None and task._buffer.depth == 10)
    assert [len(task.poll(0)) for _ in range(4)] == [3, 3, 3, 1]
