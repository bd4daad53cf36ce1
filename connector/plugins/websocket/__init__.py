"""The generic ``websocket`` source connector: any JSON-over-WebSocket feed into Kafka."""

from connector.plugins.websocket.connector import WebSocketSourceConnector
from connector.plugins.websocket.spec import SPEC, WebSocketSourceConfig
from connector.plugins.websocket.task import ENVELOPE_SCHEMA, WebSocketSourceTask

__all__ = [
    "ENVELOPE_SCHEMA",
    "SPEC",
    "WebSocketSourceConfig",
    "WebSocketSourceConnector",
    "WebSocketSourceTask",
]
