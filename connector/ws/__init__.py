"""A resilient WebSocket receiver feeding an EventBuffer."""

from connector.ws.receiver import ReceiverEvent, ReceiverEventKind, Sender, WebSocketReceiver
from connector.ws.urls import redact_url

__all__ = [
    "ReceiverEvent",
    "ReceiverEventKind",
    "Sender",
    "WebSocketReceiver",
    "redact_url",
]
