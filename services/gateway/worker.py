"""The health watcher: asks every region's /health/endtoend every health_interval_s and feeds the
answers to the routing state (services.gateway.routing.Regions), which applies the hysteresis.

A region is healthy when it answers 200 within health_timeout_s. The registry answers 503 only when
it cannot serve at all (database, auth or broker down, or no storage location left); one storage
location down while another works is a 200 naming that location false, which the gateway keeps as
the region's ``degraded`` services. A 503, any other status, a timeout or a connection error counts
as a failed check, its reason (with the services the region reported as failing) kept for
/gateway/status.
"""

from __future__ import annotations

import asyncio
import logging
import ssl

import httpx

from services.gateway.routing import Regions
from services.gateway.settings import GatewaySettings
from shared.tls import client_verification

log = logging.getLogger(__name__)

HEALTH_PATH = "/health/endtoend"


class RegionUnhealthyError(Exception):
    """A region's health check did not pass; the message says why."""


def _failing_services(response: httpx.Response) -> list[str]:
    """The services a Quay-shaped health answer reports as failing (none when it is not one)."""
    try:
        services = response.json()["data"]["services"]
    except (ValueError, KeyError, TypeError):
        return []
    if not isinstance(services, dict):
        return []
    return [str(name) for name, ok in services.items() if ok is not True]


async def probe_region(client: httpx.AsyncClient, url: str, timeout_s: float) -> list[str]:
    """The services the region reports as failing while it answers its end-to-end health check
    with 200 (a storage location down, say); RegionUnhealthyError with the reason when it does not."""
    try:
        response = await client.get(f"{url}{HEALTH_PATH}", timeout=timeout_s)
    except httpx.TimeoutException:
        raise RegionUnhealthyError(f"no answer within {timeout_s:g} s") from None
    except httpx.TransportError as error:
        raise RegionUnhealthyError(f"unreachable: {error!r}") from None
    if response.status_code != 200:
        failing = _failing_services(response)
        detail = f" (failing: {', '.join(failing)})" if failing else ""
        raise RegionUnhealthyError(f"HTTP {response.status_code}{detail}")
    return _failing_services(response)


def health_client(verify: ssl.SSLContext | bool) -> httpx.AsyncClient:
    """The client of health checks: no proxies from the environment, no redirects followed."""
    return httpx.AsyncClient(trust_env=False, follow_redirects=False, verify=verify)


async def check_regions_once(regions: Regions, settings: GatewaySettings, client: httpx.AsyncClient) -> None:
    """One health check of every region, concurrently; the results recorded in regions."""

    async def check(name: str, url: str) -> None:
        try:
            degraded = await probe_region(client, url, settings.health_timeout_s)
        except RegionUnhealthyError as error:
            was_healthy = regions.states[name].healthy
            regions.check_failed(name, str(error))
            if was_healthy and not regions.states[name].healthy:
                log.warning("region %s is down: %s", name, error)
            return
        was_healthy = regions.states[name].healthy
        regions.check_passed(name, degraded)
        if not was_healthy and regions.states[name].healthy:
            log.info("region %s is up again", name)

    await asyncio.gather(*(check(name, url) for name, url in settings.regions.items()))


async def watch_regions(regions: Regions, settings: GatewaySettings) -> None:
    """Check every region now and then every health_interval_s, until cancelled."""
    verify = await asyncio.to_thread(client_verification, settings.ca_file)
    async with health_client(verify) as client:
        while True:
            await check_regions_once(regions, settings, client)
            await asyncio.sleep(settings.health_interval_s)
