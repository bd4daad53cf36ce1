"""A resilient WebSocket receiver feeding an EventBuffer, and its reconnect backoff."""

from connector.ws.backoff import FULL_JITTER, ExponentialBackoff
from connector.ws.receiver import ReceiverEvent, ReceiverEventKind, Sender, WebSocketReceiver
from connector.ws.urls import redact_url

__all__ = [
    "FULL_JITTER",
    "ExponentialBackoff",
    "ReceiverEvent",
    "ReceiverEventKind",
    "Sender",
    "WebSocketReceiver",
    "redact_url",
]
