"""Genesys Cloud regions and the hosts derived from them (NOTIFICATIONS_API.md §1.6).

Region domain ``<d>`` gives API ``https://api.<d>``, login ``https://login.<d>`` and WebSocket
``wss://streaming.<d>``; the connector always uses the ``connectUri`` the API returns, so only
the login and API hosts are derived here.
"""

from __future__ import annotations

from dataclasses import dataclass

REGIONS: dict[str, str] = {
    "us_east_1": "mypurecloud.com",
    "us_east_2": "use2.us-gov-pure.cloud",
    "us_west_2": "usw2.pure.cloud",
    "ca_central_1": "cac1.pure.cloud",
    "sa_east_1": "sae1.pure.cloud",
    "mx_central_1": "mxc1.pure.cloud",
    "eu_west_1": "mypurecloud.ie",
    "eu_west_2": "euw2.pure.cloud",
    "eu_central_1": "mypurecloud.de",
    "eu_central_2": "euc2.pure.cloud",
    "me_central_1": "mec1.pure.cloud",
    "ap_south_1": "aps1.pure.cloud",
    "ap_northeast_1": "mypurecloud.jp",
    "ap_northeast_2": "apne2.pure.cloud",
    "ap_northeast_3": "apne3.pure.cloud",
    "ap_southeast_1": "apse1.pure.cloud",
    "ap_southeast_2": "mypurecloud.com.au",
}
"""SDK region enum (AWS region) -> Genesys domain, every region listed in the spec."""

_DOMAINS = frozenset(REGIONS.values())


@dataclass(frozen=True, slots=True)
class Hosts:
    """Base URLs without a trailing slash: ``login`` serves ``/oauth/token``, ``api`` serves
    ``/api/v2/...``."""

    login: str
    api: str


def resolve_region(region: str) -> str:
    """Return the domain for a region given by domain (``mypurecloud.de``) or by AWS name
    (``eu-central-1`` / ``eu_central_1``); raise ``ValueError`` naming the accepted values."""
    name = region.strip().lower()
    if name in _DOMAINS:
        return name
    key = name.replace("-", "_")
    if key in REGIONS:
        return REGIONS[key]
    accepted = ", ".join(sorted(_DOMAINS))
    raise ValueError(
        f"Invalid value '{region}' for genesys.region: expected a Genesys domain ({accepted}) "
        "or an AWS region name such as us-east-1"
    )


def hosts_for(region: str | None, login_url: str | None, api_url: str | None) -> Hosts:
    """Hosts for a region, or the explicit URLs (how the simulator is reached)."""
    if region:
        domain = resolve_region(region)
        return Hosts(login=f"https://login.{domain}", api=f"https://api.{domain}")
    if not login_url or not api_url:
        raise ValueError("set genesys.region, or both genesys.login.url and genesys.api.url")
    return Hosts(login=login_url.rstrip("/"), api=api_url.rstrip("/"))
