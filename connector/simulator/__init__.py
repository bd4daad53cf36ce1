"""A local Genesys Cloud: OAuth, the notifications REST API and channel WebSockets.

Follows ``genesys/NOTIFICATIONS_API.md`` (section 10 is the checklist). Used by the demo, the
end-to-end tests and the benchmarks. One loopback port serves everything.

Python API (stable)::

    from connector.simulator import GenesysSimulator, SimulatorConfig, ClientConfig

    with GenesysSimulator(SimulatorConfig(port=0, rate=200, channel_ttl_s=5)) as sim:
        sim.base_url        # http://127.0.0.1:PORT  -> POST /oauth/token, /api/v2/...
        sim.ws_url          # ws://127.0.0.1:PORT    -> connectUri = {ws_url}/channels/{channelId}
        sim.control_url     # http://127.0.0.1:PORT/_sim
        sim.queue_ids, sim.user_ids, sim.entities()   # ids to subscribe to
        sim.set_rate(rate=1000, mode="model" | "flood")
        sim.faults.drop(channel_id)                   # see Faults (faults.py) for all of them
        sim.ledger.entries(start, limit), sim.ledger.summary(), len(sim.ledger)
        sim.channels(), sim.status(), sim.wait_connected(channel_id)

``SimulatorConfig`` fields: ``clients`` (``ClientConfig(client_id, client_secret,
permissions=("*",), token_ttl_s=None)``), ``host``, ``port`` (0 = ephemeral), ``seed``,
``queues``, ``agents``, ``mode`` ("model" | "flood"), ``rate`` (events/s; model: all events the
contact centre generates, 0 pauses; flood: total delivered cap, 0 = unlimited), ``start_time``
(model clock, epoch s; fixed => byte-identical bodies; None => live: event times are the
wall-clock time of sending, never ahead of it, in both modes, see ``hub``), ``time_scale``
(multiplies every time constant), ``heartbeat_interval_s`` (30), ``channel_ttl_s`` (86400),
``socket_closing_lead_s`` (60), ``token_ttl_s`` (86400), ``rate_limit_window_s`` (60),
``rate_limit_requests`` (300), ``max_channels_per_client`` (20), ``max_topics_per_channel``
(1000), ``close_channels_on_token_expiry`` (True), ``ledger_enabled`` (True), ``flood_batch``
(256).
``load_config(path, **overrides)`` reads the same fields from YAML (clients as
``{id, secret, permissions, token_ttl_s}``).

Ledger entries (``LedgerEntry``): ``channel_id``, ``topic``, ``correlation_id`` (UUID-shaped,
derived from the event id; ``CorrelationIds.event_id(cid)`` inverts it), ``event_id`` (int,
stable for a seed; the same event fanned out to two channels keeps its id; a duplicate fault
repeats it), ``sent_ns`` (``time.time_ns()`` when handed to the socket).

Control API (HTTP, no auth): ``GET /_sim``, ``GET /_sim/entities``, ``GET /_sim/channels``,
``GET /_sim/ledger?from=&limit=``, ``GET /_sim/ledger/summary``, ``DELETE /_sim/ledger``,
``POST /_sim/rate``, ``POST /_sim/faults/<name>`` (see ``control.py``).

CLI: ``connector simulate genesys [--port 8765] [--flood] [--rate N] ...`` (see ``cli.py``).

Modules: config, auth (tokens, rate limit), channels (limits, expiry, eviction), topics
(catalogue, permissions), model (contact centre), bodies (eventBody builders), frames (RFC 6455),
sockets (one channel socket), hub (routing, drivers), server (asyncio HTTP + WS), rest,
control, faults, ledger, app (``GenesysSimulator``), cli, bench (flood throughput).
"""

from connector.simulator.app import GenesysSimulator
from connector.simulator.config import ClientConfig, SimulatorConfig, load_config
from connector.simulator.faults import FaultError, Faults
from connector.simulator.ledger import CorrelationIds, Ledger, LedgerEntry

__all__ = [
    "ClientConfig",
    "CorrelationIds",
    "FaultError",
    "Faults",
    "GenesysSimulator",
    "Ledger",
    "LedgerEntry",
    "SimulatorConfig",
    "load_config",
]
