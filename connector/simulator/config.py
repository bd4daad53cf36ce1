"""Simulator configuration: clients, the contact-centre size, event rate and every time constant.

Every duration is stored in *real* seconds at Genesys' documented value and multiplied by
``time_scale`` when used, so ``time_scale=0.001`` turns a 24 h channel lifetime into 86.4 s.
Tests usually set individual constants instead (``channel_ttl_s=5``); both compose.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

# Documented values (genesys/NOTIFICATIONS_API.md section 0).
MAX_CHANNELS_PER_CLIENT = 20
MAX_TOPICS_PER_CHANNEL = 1000
RATE_LIMIT_REQUESTS = 300
DEFAULT_HEARTBEAT_S = 30.0
DEFAULT_CHANNEL_TTL_S = 24 * 3600.0
DEFAULT_SOCKET_CLOSING_LEAD_S = 60.0
DEFAULT_TOKEN_TTL_S = 24 * 3600.0
DEFAULT_RATE_LIMIT_WINDOW_S = 60.0

Mode = Literal["model", "flood"]


@dataclass(frozen=True)
class ClientConfig:
    """One OAuth client (client-credentials grant).

    ``permissions`` are Genesys permission strings (``domain:entity:action``); a ``*`` segment
    or the single string ``*`` grants everything it covers.
    """

    client_id: str
    client_secret: str
    permissions: tuple[str, ...] = ("*",)
    token_ttl_s: float | None = None  # None: SimulatorConfig.token_ttl_s


@dataclass
class SimulatorConfig:
    """Everything the simulator needs; all fields have demo-friendly defaults."""

    clients: list[ClientConfig] = field(
        default_factory=lambda: [ClientConfig("demo-client", "demo-secret")]
    )
    host: str = "127.0.0.1"
    port: int = 0  # 0: ephemeral
    seed: int = 1
    queues: int = 4
    agents: int = 20
    mode: Mode = "model"
    rate: float = 50.0  # events/s; 0 pauses; in flood mode 0 means "unlimited"
    start_time: float | None = None  # epoch s of the model clock; None: live (wall clock)
    time_scale: float = 1.0
    heartbeat_interval_s: float = DEFAULT_HEARTBEAT_S
    channel_ttl_s: float = DEFAULT_CHANNEL_TTL_S
    socket_closing_lead_s: float = DEFAULT_SOCKET_CLOSING_LEAD_S
    token_ttl_s: float = DEFAULT_TOKEN_TTL_S
    rate_limit_window_s: float = DEFAULT_RATE_LIMIT_WINDOW_S
    rate_limit_requests: int = RATE_LIMIT_REQUESTS
    max_channels_per_client: int = MAX_CHANNELS_PER_CLIENT
    max_topics_per_channel: int = MAX_TOPICS_PER_CHANNEL
    close_channels_on_token_expiry: bool = True
    ledger_enabled: bool = True
    flood_batch: int = 256  # frames per socket write in flood mode

    def scaled(self, seconds: float) -> float:
        """A documented duration in real seconds after ``time_scale``."""
        return seconds * self.time_scale

    @property
    def heartbeat_s(self) -> float:
        return self.scaled(self.heartbeat_interval_s)

    @property
    def channel_ttl(self) -> float:
        return self.scaled(self.channel_ttl_s)

    @property
    def closing_lead(self) -> float:
        return self.scaled(self.socket_closing_lead_s)

    @property
    def rate_window(self) -> float:
        return self.scaled(self.rate_limit_window_s)

    def token_ttl(self, client: ClientConfig) -> float:
        base = client.token_ttl_s if client.token_ttl_s is not None else self.token_ttl_s
        return self.scaled(base)

    def client(self, client_id: str) -> ClientConfig | None:
        for c in self.clients:
            if c.client_id == client_id:
                return c
        return None


def load_config(path: str | Path, **overrides: Any) -> SimulatorConfig:
    """Read a YAML file: top-level keys are ``SimulatorConfig`` fields, ``clients`` a list of
    ``{id, secret, permissions, token_ttl_s}`` maps. Keyword ``overrides`` win over the file."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(raw, dict):
        raise ValueError(f"simulator config {path}: expected a mapping at top level")
    clients_raw = raw.pop("clients", None)
    known = set(SimulatorConfig.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"simulator config {path}: unknown keys {sorted(unknown)}")
    raw.update({k: v for k, v in overrides.items() if v is not None})
    cfg = SimulatorConfig(**raw)
    if clients_raw is not None:
        cfg.clients = [
            ClientConfig(
                client_id=str(c["id"]),
                client_secret=str(c["secret"]),
                permissions=tuple(c.get("permissions", ["*"])),
                token_ttl_s=c.get("token_ttl_s"),
            )
            for c in clients_raw
        ]
    return cfg
