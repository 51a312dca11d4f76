"""The gateway's own routes (everything else is forwarded to a region):

- ``GET /health/instance``: the regions as the health watcher last saw them, in Quay's health
  answer (``region:<name>`` per region, ``regions`` for "at least one is up"); 200 when at least
  one region is healthy, else 503.
- ``GET /health/endtoend``: the same, from a health check of every region made now.
- ``GET /gateway/status``: every region's URL, health, last check and error, requests routed to
  it, failovers to it and mean upstream latency; every service route's path, URL, requests
  forwarded and last failure (JSON). Not under /api/v1, which is forwarded.

Service routes do not count in the health answers: their health is not watched (a service has
no failover, and a mirror being down must not make the gateway look down).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from services.gateway.routing import Regions, Services
from services.gateway.settings import GatewaySettings
from services.gateway.worker import probe_region
from shared.health import UNHEALTHY_RESPONSES, HealthReport, ServiceStatuses, run_checks

router = APIRouter(tags=["gateway"])


@dataclass
class GatewayContext:
    """What the gateway's own routes need; kept on the app as ``state.gateway``."""

    settings: GatewaySettings
    regions: Regions
    services: Services
    health_client: httpx.AsyncClient


async def get_gateway_context(request: Request) -> GatewayContext:
    context: GatewayContext = request.app.state.gateway
    return context


class RegionStatus(BaseModel):
    name: str
    url: str
    healthy: bool
    consecutive_failures: int
    last_check_at: float | None
    last_error: str | None
    degraded: list[str]
    routed: int
    failovers_to: int
    mean_upstream_ms: float | None
    last_upstream_ms: float | None


class ServiceStatus(BaseModel):
    """A service route: ``routed`` requests forwarded, ``failures`` that got no answer, the last one's
    reason and time."""

    name: str
    path: str
    url: str
    routed: int
    failures: int
    last_error: str | None
    last_error_at: float | None


class GatewayStatus(BaseModel):
    healthy: bool
    routed: int
    failovers: int
    default_region: str
    failover_order: list[str]
    regions: list[RegionStatus]
    services: list[ServiceStatus]


def _health_answer(by_region: dict[str, bool]) -> JSONResponse:
    healthy = any(by_region.values())
    services = {"regions": healthy, **{f"region:{name}": ok for name, ok in by_region.items()}}
    status = 200 if healthy else 503
    report = HealthReport(data=ServiceStatuses(services=services), status_code=status)
    return JSONResponse(report.model_dump(), status_code=status)


@router.get("/health/instance", response_model=HealthReport, responses=UNHEALTHY_RESPONSES)
async def health_instance(context: GatewayContext = Depends(get_gateway_context)) -> JSONResponse:
    return _health_answer({name: state.healthy for name, state in context.regions.states.items()})


@router.get("/health/endtoend", response_model=HealthReport, responses=UNHEALTHY_RESPONSES)
async def health_endtoend(context: GatewayContext = Depends(get_gateway_context)) -> JSONResponse:
    settings = context.settings
    checks = {
        name: functools.partial(probe_region, context.health_client, url, settings.health_timeout_s)
        for name, url in settings.regions.items()
    }
    # The probe has its own time limit; run_checks' is a backstop a little beyond it.
    return _health_answer(await run_checks(checks, settings.health_timeout_s + 1))


@router.get("/gateway/status", response_model=GatewayStatus)
async def gateway_status(context: GatewayContext = Depends(get_gateway_context)) -> GatewayStatus:
    states = context.regions.states.values()
    return GatewayStatus(
        healthy=context.regions.any_healthy(),
        routed=sum(state.routed for state in states),
        failovers=sum(state.failovers_to for state in states),
        default_region=context.settings.home_of_unmapped_clients(),
        failover_order=context.settings.preference(),
        regions=[
            RegionStatus(
                name=state.name,
                url=state.url,
                healthy=state.healthy,
                consecutive_failures=state.consecutive_failures,
                last_check_at=state.last_check_at,
                last_error=state.last_error,
                degraded=state.degraded,
                routed=state.routed,
                failovers_to=state.failovers_to,
                mean_upstream_ms=state.mean_upstream_ms(),
                last_upstream_ms=round(1000 * state.last_upstream_s, 3)
                if state.last_upstream_s is not None
                else None,
            )
            for state in states
        ],
        services=[
            ServiceStatus(
                name=state.route.name,
                path=state.route.path.pattern,
                url=state.route.url,
                routed=state.routed,
                failures=state.failures,
                last_error=state.last_error,
                last_error_at=state.last_error_at,
            )
            for state in context.services.states.values()
        ],
    )
