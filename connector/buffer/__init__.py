"""The bounded event buffer between WebSocket receivers and source tasks."""

from connector.buffer.event_buffer import EventBuffer, Frame

__all__ = ["EventBuffer", "Frame"]
