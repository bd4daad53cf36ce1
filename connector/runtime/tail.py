"""Read a topic and render each record as one JSON line, decoding Confluent-framed Avro
through the registry with confluent-kafka's ``AvroDeserializer`` (schemas fetched by id once and
cached by its client)."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer


class AvroDecoder:
    """Decodes Confluent wire-format Avro; non-Avro bytes are returned as JSON or text."""

    def __init__(self, registry_url: str) -> None:
        self._deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))

    def close(self) -> None:
        self._client.close()

    def decode(self, data: bytes | None) -> Any:
        if data is None:
            return None
        if len(data) > 5 and data[0] == 0:
            # No serialization context: the writer schema is found by the id in the frame
            # alone, whatever subject name strategy the producer used.
            return self._deserialize(data, None)
        try:
            return json.loads(data)
        except ValueError:
            return data.decode("utf-8", errors="replace")


def tail_topic(
    topic: str,
    bootstrap_servers: str,
    registry_url: str,
    *,
    from_beginning: bool = False,
    max_records: int = 0,
    idle_timeout_s: float = 0,
    stop: threading.Event | None = None,
) -> Iterator[str]:
    decoder = AvroDecoder(registry_url)
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"connector-tail-{uuid.uuid4()}",
            "auto.offset.reset": "earliest" if from_beginning else "latest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    count = 0
    last = time.monotonic()
    try:
        while not (stop and stop.is_set()):
            message = consumer.poll(0.5)
            if message is None:
                if idle_timeout_s and time.monotonic() - last > idle_timeout_s:
                    return
                continue
            if message.error() is not None:
                continue
            last = time.monotonic()
            headers = {
                k: (v.decode("utf-8", "replace") if isinstance(v, bytes) else v)
                for k, v in message.headers() or []
            }
            key = message.key()
            yield json.dumps(
                {
                    "partition": message.partition(),
                    "offset": message.offset(),
                    "key": key.decode("utf-8", "replace") if key is not None else None,
                    "headers": headers,
                    "value": decoder.decode(message.value()),
                },
                default=str,
            )
            count += 1
            if max_records and count >= max_records:
                return
    finally:
        consumer.close()
        decoder.close()
