"""The ``websocket`` source task: receivers -> buffer -> parsed, routed records.

Delivery guarantee: at least once *from the moment a frame is received*. A WebSocket feed
cannot be replayed, so frames the server sent while no task was connected (a restart, a
reconnect) are not recovered, and frames still in the in-memory buffer when the task stops are
lost. Receivers apply backpressure instead of dropping: when the buffer is full they stop
reading and TCP flow control slows the server down.

Source partition and offset (stored in the offsets topic forever, never rename the keys):

* partition ``{"url": <the URL with query values redacted>}``, one per configured URL;
* offset ``{"seq": <n>, "received_ms": <epoch ms>}``. ``seq`` numbers every frame taken from
  that URL, including dead-lettered and filtered ones (so a DLQ entry has a position of its
  own), starting at 1. After a restart it continues after the committed ``seq``. Records
  written but not yet committed when a task dies can therefore see their ``seq`` reused: it
  orders records within a run, it does not identify a message.

Values (``value.format``):

* ``envelope`` (default): a ``connector.websocket.Message`` Avro record, see
  :data:`ENVELOPE_SCHEMA`: ``payload`` is the message text verbatim, ``received_ms`` the receive
  time, ``source`` the redacted URL. Works with any message shape and never loses a field.
* ``json``: the parsed JSON object itself, without a schema, for the JSON converter.

Every record carries the header ``ws.source`` (the redacted URL). Frames that are not UTF-8,
not JSON (which includes lone surrogates and nesting beyond orjson's 1,024 levels), not a JSON
object, lack ``key.field``, route to an invalid topic, have a key or topic field that cannot be
rendered, or (``json`` values) nest deeper than the JSON converter writes are returned from
``poll`` as :class:`~connector.api.MalformedInput` with the reason, in their place; the task
never raises or blocks on bad input. A body timestamp outside 1970..9999 is ignored (the
receive time is used): Kafka would refuse it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from connector.api import AvroSchema, MalformedInput, Polled, SourceRecord, SourceTask, TaskContext
from connector.backoff import ExponentialBackoff
from connector.buffer import EventBuffer, Frame
from connector.plugins.websocket.messages import (
    MISSING,
    TopicTemplate,
    compile_path,
    parse_timestamp_ms,
    render_scalar,
)
from connector.plugins.websocket.spec import WebSocketSourceConfig
from connector.ws import (
    ReceiverEvent,
    ReceiverEventKind,
    Sender,
    WebSocketReceiver,
    redact_url,
)

logger = logging.getLogger(__name__)

ENVELOPE_SCHEMA = AvroSchema(
    name="connector.websocket.Message",
    definition={
        "type": "record",
        "name": "Message",
        "namespace": "connector.websocket",
        "doc": "One WebSocket message as received: its text verbatim, when and where.",
        "fields": [
            {"name": "payload", "type": "string", "doc": "The message text (JSON), verbatim."},
            {"name": "received_ms", "type": "long", "doc": "Receive time, epoch milliseconds."},
            {"name": "source", "type": "string", "doc": "The WebSocket URL, query redacted."},
        ],
    },
)
"""The Avro schema of ``value.format=envelope`` values."""

STATUS_INTERVAL_S = 1.0
"""How often poll() publishes the buffer and connection status details."""

_STOP_TIMEOUT_S = 5.0


@dataclass(slots=True)
class _Partition:
    """Per-URL state: the partition dict shared by its records, and the next seq."""

    url: str
    partition: dict[str, Any]
    headers: tuple[tuple[str, str], ...]
    next_seq: int


class WebSocketSourceTask(SourceTask):
    """Reads its share of the URLs, one :class:`WebSocketReceiver` thread each.

    ``poll`` runs on the task thread and only drains the shared :class:`EventBuffer`; the
    receivers do the network I/O. ``stop`` may be called from any thread: it closes the buffer,
    which makes a waiting ``poll`` return at once, and stops the receivers.
    """

    def __init__(self) -> None:
        self._ctx: TaskContext | None = None
        self._buffer: EventBuffer | None = None
        self._receivers: list[WebSocketReceiver] = []
        self._partitions: dict[str, _Partition] = {}
        self._next_status = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, ctx: TaskContext) -> None:
        config = ctx.config
        if not isinstance(config, WebSocketSourceConfig):
            raise TypeError(f"expected a WebSocketSourceConfig, got {type(config).__name__}")
        self._ctx = ctx
        self._config = config
        self._batch_max = config.batch_max_records
        self._topic = TopicTemplate(config.topic)
        self._get_key = compile_path(config.key_field) if config.key_field else None
        self._key_field = config.key_field
        self._get_timestamp = (
            compile_path(config.timestamp_field) if config.timestamp_field else None
        )
        self._get_filter = (
            compile_path(config.message_filter_field) if config.message_filter_field else None
        )
        self._filter_values = frozenset(config.message_filter_values)
        self._filter_drops_matches = config.message_filter_mode == "drop"
        self._envelope = config.value_format == "envelope"

        # The connector always hands out {"urls": [...]}; without it (a test, a single-task
        # deployment built by hand) the task reads every configured URL.
        task_urls = ctx.task_config.get("urls")
        urls = list(task_urls) if task_urls is not None else config.all_urls
        self._buffer = EventBuffer(config.buffer_capacity)
        for url in urls:
            source = redact_url(url)
            partition = {"url": source}
            committed = ctx.offset_reader.offset(partition)
            next_seq = _next_seq(committed)
            self._partitions[source] = _Partition(
                url, partition, (("ws.source", source),), next_seq
            )
            if committed is not None:
                ctx.logger.info("resuming %s after committed seq %d", source, next_seq - 1)

        headers = {name: value.get_secret_value() for name, value in config.headers.items()}
        subscribe = [
            m if isinstance(m, str) else orjson.dumps(m).decode() for m in config.subscribe_messages
        ]
        for index, url in enumerate(urls):
            receiver = WebSocketReceiver(
                url,
                self._buffer,
                source=redact_url(url),
                headers=(lambda: headers) if headers else None,
                on_open=_subscriber(subscribe) if subscribe else None,
                ping_interval_s=_seconds(config.ping_interval_ms),
                ping_message=config.ping_message,
                liveness_timeout_s=_seconds(config.liveness_timeout_ms),
                backoff=ExponentialBackoff(
                    config.reconnect_backoff_initial_ms / 1000.0,
                    config.reconnect_backoff_max_ms / 1000.0,
                ),
                on_state=self._on_receiver_state,
                connect_timeout_s=config.connect_timeout_ms / 1000.0,
                name=f"ws-{ctx.connector_name}-{ctx.task_id}-{index}",
            )
            self._receivers.append(receiver)
        for receiver in self._receivers:
            receiver.start()
        ctx.logger.info("started %d websocket receiver(s)", len(self._receivers))

    def stop(self) -> None:
        receivers = list(self._receivers)
        for receiver in receivers:
            receiver.stop(timeout_s=0)  # signal all first, then wait once for all of them
        if self._buffer is not None:
            self._buffer.close()
        for receiver in receivers:
            receiver.stop(timeout_s=_STOP_TIMEOUT_S / max(1, len(receivers)))

    # -- poll ------------------------------------------------------------------------------

    def poll(self, timeout_s: float) -> list[Polled]:
        buffer, ctx = self._buffer, self._ctx
        if buffer is None or ctx is None:
            raise RuntimeError("cannot poll the websocket task: start() was not called")
        frames = buffer.drain(self._batch_max, timeout_s)
        now = ctx.clock()
        if now >= self._next_status:
            self._next_status = now + STATUS_INTERVAL_S
            self._publish_status()
        if not frames:
            return []
        records: list[Polled] = []
        filtered = 0
        dead_lettered = 0
        for frame in frames:
            outcome = self._record(frame)
            if outcome is None:
                filtered += 1
                continue
            records.append(outcome)
            if type(outcome) is MalformedInput:
                dead_lettered += 1
        if filtered:
            ctx.count("messages_filtered", filtered)
        if dead_lettered:
            ctx.count("messages_dead_lettered", dead_lettered)
        return records

    def _record(self, frame: Frame) -> Polled | None:
        """One frame -> a record, malformed input, or ``None`` (filtered). Never raises."""
        state = self._partitions.get(frame.source) or self._unknown_source(frame.source)
        seq = state.next_seq
        state.next_seq = seq + 1
        received_ms = frame.received_ns // 1_000_000
        try:
            return self._parse(frame, state, seq, received_ms)
        except Exception as exc:  # a plugin bug must cost this frame only, not the stream
            assert self._ctx is not None
            self._ctx.logger.exception("cannot handle a frame from %s", frame.source)
            reason = f"cannot handle the frame: {type(exc).__name__}: {str(exc)[:500]}"
            return self._malformed(frame, state, seq, received_ms, reason, exc)

    def _parse(self, frame: Frame, state: _Partition, seq: int, received_ms: int) -> Polled | None:
        """What :meth:`_record` returns; every bad input is a :class:`MalformedInput`."""
        payload = frame.payload
        try:
            message = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            return self._malformed(frame, state, seq, received_ms, _parse_reason(payload, exc), exc)
        if type(message) is not dict:
            reason = f"expected a JSON object, got {type(message).__name__}"
            return self._malformed(frame, state, seq, received_ms, reason)
        if not self._envelope and _deeper_than_json_converter(payload, message):
            reason = (
                f"nested more than {JSON_MAX_DEPTH} levels deep: the JSON converter cannot "
                "write it (use value.format=envelope to keep such messages as text)"
            )
            return self._malformed(frame, state, seq, received_ms, reason)

        get_filter = self._get_filter
        if get_filter is not None:
            value = get_filter(message)
            try:
                selected = value is not MISSING and value in self._filter_values
            except TypeError:  # an object or array is never a filter value
                selected = False
            if selected == self._filter_drops_matches:
                return None

        try:
            topic = self._topic.render(message)
        except ValueError as exc:
            return self._malformed(frame, state, seq, received_ms, str(exc), exc)

        key: str | None = None
        if self._get_key is not None:
            try:
                key = render_scalar(self._get_key(message))
            except ValueError as exc:
                reason = f"key field '{self._key_field}': {exc}"
                return self._malformed(frame, state, seq, received_ms, reason, exc)
            if key is None:
                reason = f"key field '{self._key_field}' is missing or null"
                return self._malformed(frame, state, seq, received_ms, reason)

        timestamp_ms = received_ms
        if self._get_timestamp is not None:
            parsed = parse_timestamp_ms(self._get_timestamp(message))
            if parsed is not None:
                timestamp_ms = parsed

        if self._envelope:
            text = payload.decode() if type(payload) is bytes else payload  # UTF-8 checked above
            value = {"payload": text, "received_ms": received_ms, "source": state.partition["url"]}
            schema: AvroSchema | None = ENVELOPE_SCHEMA
        else:
            value, schema = message, None
        return SourceRecord(
            topic,
            value,
            key=key,
            source_partition=state.partition,
            source_offset={"seq": seq, "received_ms": received_ms},
            timestamp_ms=timestamp_ms,
            headers=state.headers,
            value_schema=schema,
        )

    def _malformed(
        self,
        frame: Frame,
        state: _Partition,
        seq: int,
        received_ms: int,
        reason: str,
        exception: BaseException | None = None,
    ) -> MalformedInput:
        payload = frame.payload
        if type(payload) is str:  # bytes, so that the runtime can always write it
            payload = payload.encode("utf-8", "surrogatepass")
        return MalformedInput(
            payload,
            reason,
            source_partition=state.partition,
            source_offset={"seq": seq, "received_ms": received_ms},
            exception=exception,
        )

    def _unknown_source(self, source: str) -> _Partition:
        """A frame from a source we did not configure (should not happen): track it anyway."""
        state = _Partition(source, {"url": source}, (("ws.source", source),), 1)
        self._partitions[source] = state
        return state

    # -- status ----------------------------------------------------------------------------

    def _publish_status(self) -> None:
        assert self._ctx is not None and self._buffer is not None
        ctx, buffer = self._ctx, self._buffer.stats()
        connections = {r.source: r.stats() for r in self._receivers}
        ctx.set_status_detail("buffer", buffer)
        ctx.set_status_detail("connections", connections)
        # the streaming gauges every WebSocket source shares (docs/OPERATIONS.md)
        ctx.gauge("buffer_depth", buffer["depth"])
        ctx.gauge("buffer_capacity", buffer["capacity"])
        ctx.gauge("sockets_connected", sum(1 for c in connections.values() if c["connected"]))

    def _on_receiver_state(self, event: ReceiverEvent) -> None:
        """Runs on a receiver thread: count what operators alert on, nothing slow."""
        ctx = self._ctx
        if ctx is None:
            return
        if event.kind is ReceiverEventKind.DISCONNECTED:
            ctx.count("websocket_disconnects")
        elif event.kind is ReceiverEventKind.CONNECT_FAILED:
            ctx.count("websocket_connect_failures")
        elif event.kind is ReceiverEventKind.LIVENESS_TIMEOUT:
            ctx.count("websocket_liveness_timeouts")


def _subscriber(messages: list[str]) -> Callable[[Sender], None]:
    """An ``on_open`` callback sending ``messages`` in order on every (re)connect."""

    def subscribe(sender: Sender) -> None:
        for message in messages:
            sender.send(message)

    return subscribe


def _next_seq(committed: Mapping[str, Any] | None) -> int:
    if committed is None:
        return 1
    seq = committed.get("seq")
    if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0:
        return seq + 1
    logger.warning("ignoring committed offset without a valid seq: %s", dict(committed))
    return 1


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000.0


JSON_MAX_DEPTH = 254
"""The deepest nesting orjson (the JSON converter) writes; it parses up to 1,024 levels."""


def _deeper_than_json_converter(payload: str | bytes, message: dict[str, Any]) -> bool:
    """Whether ``message`` nests deeper than :data:`JSON_MAX_DEPTH`, which the JSON converter
    (orjson) cannot write. A frame under ``2 * JSON_MAX_DEPTH`` bytes cannot; for the others,
    orjson's own attempt is the exact test, and cheaper than counting brackets (0.5 µs for a
    1.4 KB message)."""
    if len(payload) < 2 * JSON_MAX_DEPTH:
        return False
    try:
        orjson.dumps(message)
    except orjson.JSONEncodeError:
        return True
    return False


def _parse_reason(payload: str | bytes, exc: Exception) -> str:
    if isinstance(payload, bytes):
        try:
            payload.decode()
        except UnicodeDecodeError as decode_error:
            return f"frame is not valid UTF-8: {decode_error}"
    return f"frame is not valid JSON: {exc}"
