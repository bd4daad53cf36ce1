"""The worker's shared data producer and the thread that serves its delivery callbacks.

librdkafka runs delivery callbacks inside ``poll()`` on the calling thread. One dedicated
poller thread calls it continuously, so acks arrive within milliseconds whatever the tasks are
doing, and task threads only ever ``produce``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, Producer

logger = logging.getLogger(__name__)

# Throughput-friendly defaults; every one can be overridden with worker ``producer.*`` keys.
# The queue caps bound memory when Kafka is slower than the source: then produce() raises
# BufferError, the task stops polling, its buffer fills and TCP backpressure reaches the source.
# 32 MB still holds more than half a second at 50,000 events/s of 1 KB; a larger queue only adds
# memory (it grew the process past 300 MB under a broker quota) and latency.
# linger.ms is the latency floor of a quiet stream (a record waits that long for company):
# 5 ms made p50 7 ms send -> log append at 2,000-5,000 events/s, 1 ms makes it 2-4 ms. Under
# load batches still fill: records arrive a poll's batch at a time, and accumulate while
# requests are in flight (CPU per event at 20,000/s measured the same with 1 and 5).
DEFAULT_PRODUCER_CONFIG: dict[str, Any] = {
    "linger.ms": 1,
    "batch.num.messages": 10000,
    "batch.size": 1_000_000,
    "queue.buffering.max.messages": 100_000,
    "queue.buffering.max.kbytes": 32_768,
    "compression.type": "lz4",
    # Java's default partitioner for keyed records (murmur2 of the key), so that a key lands on
    # the partition a Kafka Connect worker or any Java producer would choose.
    "partitioner": "murmur2_random",
}
# librdkafka's own default: records larger than this are refused by produce() itself.
DEFAULT_MESSAGE_MAX_BYTES = 1_000_000

DeliveryCallback = Callable[[Any, Any], None]


class RecordProducer(Protocol):
    """What the task loop needs of a producer: the plain shared one today, a transactional one
    per task later."""

    @property
    def max_message_bytes(self) -> int:
        """The largest record (key, value and headers) the producer accepts."""
        ...

    @property
    def fatal_error(self) -> KafkaError | None:
        """The producer's fatal error, once it has one: nothing more can be sent."""
        ...

    def produce(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        *,
        headers: Sequence[tuple[str, Any]] | None = None,
        timestamp: int = 0,
        on_delivery: DeliveryCallback | None = None,
    ) -> None:
        """Queue one record (confluent-kafka's ``Producer.produce`` signature, so the plain
        producer is called with no wrapper on the hot path); ``on_delivery(err, msg)`` runs on
        the poller thread. Raises ``BufferError`` while the queue is full (the caller keeps
        the record and retries) and ``KafkaException`` for a record it refuses at once."""
        ...


# Never overridable: the delivery guarantee rests on these.
REQUIRED_PRODUCER_CONFIG: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}


class DataProducer:
    """One idempotent ``acks=all`` producer per worker, plus its poller thread."""

    def __init__(self, bootstrap_servers: str, overrides: Mapping[str, Any] | None = None) -> None:
        self._fatal: KafkaError | None = None
        conf: dict[str, Any] = {
            **DEFAULT_PRODUCER_CONFIG,
            **dict(overrides or {}),
            **REQUIRED_PRODUCER_CONFIG,
            "bootstrap.servers": bootstrap_servers,
            "error_cb": self._on_error,
        }
        self.producer = Producer(conf)
        self.max_message_bytes = int(conf.get("message.max.bytes", DEFAULT_MESSAGE_MAX_BYTES))
        self.produce = self.producer.produce  # the C method itself: no Python frame per record
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll_loop, name="producer-poller", daemon=True)
        self._thread.start()

    def _on_error(self, err: KafkaError) -> None:
        if err.fatal():
            self._fatal = err
            logger.error("Kafka producer fatal error: %s", err)
        else:
            logger.warning("Kafka producer: %s", err)

    @property
    def fatal_error(self) -> KafkaError | None:
        return self._fatal

    def _poll_loop(self) -> None:
        poll = self.producer.poll
        while not self._stop.is_set():
            poll(0.05)

    def flush(self, timeout_s: float) -> int:
        return int(self.producer.flush(timeout_s))

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for at most ``timeout_s`` and destroy the client. The poller stops first:
        the client must not be destroyed while another thread is inside ``poll()``."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        remaining = close_producer(self.producer, timeout_s)
        if remaining:
            logger.error("%d records were still unacknowledged at shutdown", remaining)


def close_producer(producer: Producer, timeout_s: float) -> int:
    """Flush ``producer`` for at most ``timeout_s``, then destroy it (its threads and broker
    connections go at once, not whenever the garbage collector frees the object). Returns how
    many messages were not delivered.

    ``Producer.close()`` alone flushes without a bound, which would hang a shutdown while Kafka
    is unreachable, so what is still queued after ``timeout_s`` is purged first; the purged
    messages' delivery callbacks run (with ``_PURGE_QUEUE``/``_PURGE_INFLIGHT``) before it
    returns.
    """
    remaining = int(producer.flush(timeout_s))
    if remaining:
        producer.purge()
        producer.flush(0)  # serve the purged messages' delivery reports
    producer.close()
    return remaining
