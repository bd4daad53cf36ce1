"""``connector simulate genesys``: run the Genesys Cloud simulator until Ctrl-C / SIGTERM."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any

from connector.simulator.config import ClientConfig, SimulatorConfig, load_config

DEFAULT_PORT = 8765


def register(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    simulate = subparsers.add_parser("simulate", help="run a local simulator of an upstream system")
    systems = simulate.add_subparsers(dest="system", required=True, metavar="SYSTEM")
    p = systems.add_parser(
        "genesys",
        help="Genesys Cloud OAuth + notifications API + streaming WebSocket",
        description="Serve /oauth/token, /api/v2/notifications/... and channel WebSockets on one "
        "loopback port, with a seeded contact centre producing events and a control API "
        "under /_sim for fault injection and the delivery ledger.",
    )
    p.add_argument("--config", help="YAML file with SimulatorConfig fields and a clients list")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help=f"port (default {DEFAULT_PORT}; 0 = any)")
    p.add_argument("--client-id", default=None, help="OAuth client id (default demo-client)")
    p.add_argument("--client-secret", default=None, help="OAuth secret (default demo-secret)")
    p.add_argument("--seed", type=int, default=None, help="model seed (default 1)")
    p.add_argument("--queues", type=int, default=None, help="number of queues (default 4)")
    p.add_argument("--agents", type=int, default=None, help="number of agents (default 20)")
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="events/s: model events (all topics) in model mode, delivered cap in flood mode "
        "(0 = paused in model mode, unlimited in flood mode; default 50)",
    )
    p.add_argument("--mode", choices=("model", "flood"), default=None, help="event driver")
    p.add_argument("--flood", action="store_true", help="shortcut for --mode flood --rate 0")
    p.add_argument("--time-scale", type=float, default=None, help="multiply every time constant")
    p.add_argument("--heartbeat-s", type=float, default=None, help="heartbeat interval (30)")
    p.add_argument("--channel-ttl-s", type=float, default=None, help="channel lifetime (86400)")
    p.add_argument("--socket-closing-lead-s", type=float, default=None, help="warning lead (60)")
    p.add_argument("--token-ttl-s", type=float, default=None, help="token lifetime (86400)")
    p.add_argument("--rate-limit-window-s", type=float, default=None, help="rate window (60)")
    p.add_argument("--start-time", type=float, default=None, help="model clock start, epoch s")
    p.add_argument("--no-ledger", action="store_true", help="do not record deliveries")
    p.set_defaults(handler=run)


def build_config(args: argparse.Namespace) -> SimulatorConfig:
    overrides: dict[str, Any] = {
        "host": args.host,
        "port": args.port,
        "seed": args.seed,
        "queues": args.queues,
        "agents": args.agents,
        "rate": args.rate,
        "mode": args.mode,
        "time_scale": args.time_scale,
        "heartbeat_interval_s": args.heartbeat_s,
        "channel_ttl_s": args.channel_ttl_s,
        "socket_closing_lead_s": args.socket_closing_lead_s,
        "token_ttl_s": args.token_ttl_s,
        "rate_limit_window_s": args.rate_limit_window_s,
        "start_time": args.start_time,
    }
    if args.flood:
        overrides["mode"] = "flood"
        overrides.setdefault("rate", None)
        if args.rate is None:
            overrides["rate"] = 0.0
    if args.no_ledger:
        overrides["ledger_enabled"] = False
    if args.config:
        cfg = load_config(args.config, **overrides)
    else:
        cfg = SimulatorConfig(**{k: v for k, v in overrides.items() if v is not None})
    if args.port is None and not args.config:
        cfg.port = DEFAULT_PORT
    if args.client_id or args.client_secret or not cfg.clients:
        default = cfg.clients[0] if cfg.clients else ClientConfig("demo-client", "demo-secret")
        cfg.clients = [
            ClientConfig(
                args.client_id or default.client_id,
                args.client_secret or default.client_secret,
                default.permissions,
                default.token_ttl_s,
            ),
            *cfg.clients[1:],
        ]
    return cfg


def run(args: argparse.Namespace) -> int:
    from connector.simulator.app import GenesysSimulator

    cfg = build_config(args)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    sim = GenesysSimulator(cfg).start()
    client = cfg.clients[0]
    print(
        f"Genesys Cloud simulator on {sim.base_url}\n"
        f"  OAuth:     POST {sim.base_url}/oauth/token  (client id {client.client_id!r}, "
        f"secret {client.client_secret!r})\n"
        f"  API:       {sim.base_url}/api/v2/notifications/...\n"
        f"  WebSocket: {sim.ws_url}/channels/<channelId>  (the connectUri of a channel)\n"
        f"  Control:   {sim.control_url}  (GET /_sim, /_sim/entities, /_sim/ledger/summary; "
        f"POST /_sim/faults/<name>)\n"
        f"  Mode {cfg.mode}, rate {cfg.rate} events/s, seed {cfg.seed}. Ctrl-C to stop.",
        flush=True,
    )
    try:
        while not stop.wait(0.5):
            pass
    finally:
        sim.stop()
        print("simulator stopped", file=sys.stderr)
    return 0
