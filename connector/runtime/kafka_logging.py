"""librdkafka's log lines through Python logging, rate-limited.

By default librdkafka writes its own lines to stderr: with Kafka unreachable every client
prints a connection failure per broker per retry. Given as the ``logger`` client setting, a
:class:`LibrdkafkaLogger` receives them instead (served by the client's ``poll``), so they get
the process's format (``--log-format json`` included), its redaction filter and its levels
(``librdkafka`` logger, changeable through ``/admin/loggers``), and a repeated line is shown a
few times per interval with a count of what was left out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

# syslog severities (librdkafka's levels) -> Python's
_LEVELS = {
    0: logging.CRITICAL,
    1: logging.CRITICAL,
    2: logging.CRITICAL,
    3: logging.ERROR,
    4: logging.WARNING,
    5: logging.INFO,
    6: logging.INFO,
    7: logging.DEBUG,
}


class LibrdkafkaLogger:
    """The object confluent-kafka calls as ``logger.log(level, fmt, *args)``.

    Lines are grouped by librdkafka facility (``FAIL``, ``REQTMOUT`` ...) and client: at most
    ``burst`` of a group per ``interval_s``; the next one shown after a quiet spell says how
    many were suppressed.
    """

    def __init__(
        self,
        name: str = "librdkafka",
        *,
        burst: int = 3,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logging.getLogger(name)
        self._burst = burst
        self._interval_s = interval_s
        self._clock = clock
        self._groups: dict[tuple[str, str], list[float]] = {}  # [window start, shown, dropped]
        self._lock = threading.Lock()

    def log(self, level: int, fmt: str, *args: Any) -> None:
        python_level = _LEVELS.get(level, logging.INFO)
        if not self.logger.isEnabledFor(python_level):
            return
        facility = str(args[0]) if args else ""
        client = str(args[1]) if len(args) > 1 else ""
        now = self._clock()
        with self._lock:
            group = self._groups.setdefault((facility, client), [now, 0.0, 0.0])
            if now - group[0] >= self._interval_s:
                dropped = int(group[2])
                group[:] = [now, 0.0, 0.0]
            else:
                dropped = 0
            if group[1] >= self._burst:
                group[2] += 1
                return
            group[1] += 1
        message = fmt % args if args else fmt
        if dropped:
            message += f" ({dropped} similar lines suppressed in the last {self._interval_s:.0f}s)"
        self.logger.log(python_level, "%s", message)

    def client_config(self) -> dict[str, Any]:
        """The settings that route a confluent-kafka client's logs here."""
        return {"logger": self}
