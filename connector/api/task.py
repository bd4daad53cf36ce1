"""The source task contract."""

from __future__ import annotations

from abc import ABC, abstractmethod

from connector.api.context import TaskContext
from connector.api.record import Polled


class SourceTask(ABC):
    """Reads from one share of a connector's source and returns records.

    The runtime creates one instance per task and drives it from the task's own thread
    (the *task thread*). Only :meth:`stop` is called from another thread.
    """

    @abstractmethod
    def start(self, ctx: TaskContext) -> None:
        """Prepare the task: read ``ctx.task_config``, look up committed offsets through
        ``ctx.offset_reader`` and open connections.

        Called once on the task thread before the first :meth:`poll`. May block (bounded).
        Raising :class:`~connector.api.errors.RetriableError` makes the runtime restart the task
        with backoff; any other exception fails it.
        """

    @abstractmethod
    def poll(self, timeout_s: float) -> list[Polled]:
        """Return the records available now, waiting up to ``timeout_s`` for the first one.

        Input that cannot become a record is returned as a
        :class:`~connector.api.record.MalformedInput` at its place in the list: records and
        malformed input leave the task through this one ordered channel, so that source offsets
        are committed in order.

        Called repeatedly on the task thread. Must return within ``timeout_s`` (an empty list
        when idle) so that the runtime can commit offsets and notice :meth:`stop`. After
        :meth:`stop`, the runtime keeps calling ``poll(0)`` until it returns an empty list, to
        deliver what the task had already received: return buffered records, never new ones. Raising
        :class:`~connector.api.errors.RetriableError` makes the runtime back off and poll again.
        """

    def commit(self) -> None:  # noqa: B027
        """Hook: the offsets returned so far are durable in the offsets topic.

        Called on the task thread after each successful offset commit. Default: nothing.
        """

    @abstractmethod
    def stop(self) -> None:
        """Ask the task to stop: close connections and make a pending :meth:`poll` return.

        Called from another thread (the worker's), possibly while :meth:`poll` runs, and possibly
        more than once. Must not block for long.
        """
