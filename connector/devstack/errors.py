"""The one exception the devstack raises.

Every failure here (no Maven, no suitable Java, a port taken, a service that never became ready)
is something the person at the terminal must fix, so one type with a message that names the fix
is enough; the CLI prints it and exits 1.
"""

from __future__ import annotations


class DevstackError(RuntimeError):
    """The local Kafka/registry stack could not be fetched, started, checked or stopped."""
