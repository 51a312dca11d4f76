"""`python -m services.gateway`: the gateway and its region health watcher in one process.

The gateway needs no database and no broker. Its settings are QUAYSIDE_GATEWAY_* variables
(services.gateway.settings.GatewaySettings):

- QUAYSIDE_GATEWAY_REGIONS (required): JSON object region -> registry base URL,
  e.g. ``{"us": "http://10.0.1.5:5000", "eu": "http://10.0.2.5:5000"}``.
- QUAYSIDE_GATEWAY_FAILOVER_ORDER: comma-separated (or JSON) region names; default: REGIONS' order.
- QUAYSIDE_GATEWAY_CLIENT_NETWORKS: JSON list ``[{"cidr": "10.0.1.0/24", "region": "us"}, ...]``;
  the most specific network holding the client's address wins.
- QUAYSIDE_GATEWAY_DEFAULT_REGION: region of clients no network holds; default: first of the order.
- QUAYSIDE_GATEWAY_REGION_HEADER (default ``X-Quayside-Region``): a request header choosing the
  region (tests, tooling); an unknown region gets 400 in the path's protocol format.
- QUAYSIDE_GATEWAY_HEALTH_INTERVAL_S (2), _HEALTH_TIMEOUT_S (3), _FAILURES_TO_MARK_DOWN (2),
  _SUCCESSES_TO_MARK_UP (1): the watcher of every region's /health/endtoend.
- QUAYSIDE_GATEWAY_CONNECT_TIMEOUT_S (5), _READ_TIMEOUT_S (300: the longest wait for the next
  piece of an answer), _MAX_CONNECTIONS_PER_REGION (256): upstream requests.
- QUAYSIDE_GATEWAY_PUBLIC_URL: the gateway's URL as clients reach it (Location and token realm
  rewriting); default: the scheme and Host of each request.
- QUAYSIDE_GATEWAY_SERVICES: JSON list ``[{"name": "mirror", "path": "<regex>", "url":
  "http://mirror:5001"}, ...]``; a request whose path fullmatches a route's regex (the first
  matching route wins) goes to that service instead of a region. A regex that does not compile,
  or a name used twice or also a region's, ends the start. Services' health is not watched.
- QUAYSIDE_GATEWAY_LISTEN (default ``0.0.0.0:5010``; QUAYSIDE_LISTEN is not read).

The gateway's own server takes QUAYSIDE_HTTP_* limits and QUAYSIDE_TLS_* (shared.config.Settings).
Settings that name an unknown region, a malformed CIDR, URL or path regex end the start with exit status 2 and
a message naming them. Stops on SIGINT or SIGTERM (shared.service_main).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Coroutine
from typing import Any

import uvloop
from pydantic import ValidationError

from services.gateway.app import GatewayApp, create_app
from services.gateway.routing import Regions
from services.gateway.settings import GatewaySettings
from services.gateway.worker import watch_regions
from shared.config import Settings
from shared.service_main import run_service


def read_settings() -> GatewaySettings:
    """The gateway's settings; exit status 2 with every problem named when they are invalid."""
    try:
        return GatewaySettings()  # type: ignore[call-arg]  # regions come from the environment
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'settings'}: {problem['msg']}"
            for problem in error.errors(include_url=False)
        )
        print(f"error: invalid gateway settings (QUAYSIDE_GATEWAY_*): {problems}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    settings = read_settings()
    # uvloop: forwarding is mostly event-loop work. (The registry runs the standard loop, which
    # answers connections more fairly when its process is saturated: services/registry/process.py.)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    # Not a line per health check.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    regions = Regions(settings)

    def parts(shared: Settings) -> tuple[GatewayApp, Coroutine[Any, Any, None]]:
        return create_app(settings, shared, regions), watch_regions(regions, settings)

    run_service(
        "services.gateway", settings.listen.authority, parts, listen=settings.listen, migrations=False
    )


if __name__ == "__main__":
    main()
