"""Which region answers a request: the client's home region (header override, else the most
specific client network holding its address, else the default region), or, while that one is
down, the first healthy region of the failover order.

Region health has hysteresis: ``failures_to_mark_down`` failed health checks in a row mark a region
down, ``successes_to_mark_up`` good ones mark it up again; a request that cannot connect marks its
region down at once. Everything here is plain state on one event loop (no locks needed).

Paths of the service routes (settings.services) are not routed to a region: ``Services.match``
names the service that takes them, and keeps what was forwarded to each and its last failure.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.gateway import metrics
from services.gateway.settings import ClientNetwork, GatewaySettings, ServiceRoute


class UnknownRegionError(ValueError):
    """A request named a region the gateway does not know."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown region {name!r}; the regions are {', '.join(known)}")
        self.name = name


@dataclass
class RegionState:
    """One region's health as the gateway sees it, and what it routed there."""

    name: str
    url: str
    healthy: bool = True
    consecutive_failures: int = 0
    consecutive_successes: int = 0
    last_check_at: float | None = None
    last_error: str | None = None
    # Services a healthy region reported as failing in its last check (e.g. one storage location).
    degraded: list[str] = field(default_factory=list)
    routed: int = 0
    failovers_to: int = 0
    upstream_seconds_total: float = 0.0
    upstream_answers: int = 0
    last_upstream_s: float | None = None

    def mean_upstream_ms(self) -> float | None:
        if not self.upstream_answers:
            return None
        return round(1000 * self.upstream_seconds_total / self.upstream_answers, 3)


@dataclass(frozen=True)
class Route:
    """Where a request goes: ``region``, which differs from ``home`` after a failover."""

    region: str
    home: str

    @property
    def failed_over(self) -> bool:
        return self.region != self.home


@dataclass
class Regions:
    """The gateway's regions with their health, and the routing decision."""

    settings: GatewaySettings
    states: dict[str, RegionState] = field(init=False)
    _networks: list[ClientNetwork] = field(init=False)
    _preference: list[str] = field(init=False)
    _names_by_lowercase: dict[str, str] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {name: RegionState(name, url) for name, url in self.settings.regions.items()}
        # Most specific first; the first network holding the address wins.
        self._networks = sorted(self.settings.client_networks, key=lambda n: n.cidr.prefixlen, reverse=True)
        self._preference = self.settings.preference()
        self._names_by_lowercase = {name.lower(): name for name in self.states}
        for state in self.states.values():
            metrics.REGION_UP.labels(state.name).set(1)

    def home(self, client_host: str | None, requested: str | None) -> str:
        """The client's home region; UnknownRegionError when ``requested`` names no region."""
        if requested is not None:
            name = self._names_by_lowercase.get(requested.strip().lower())
            if name is None:
                raise UnknownRegionError(requested, self.states)
            return name
        if client_host is not None and self._networks:
            try:
                address = ipaddress.ip_address(client_host)
            except ValueError:
                return self.settings.home_of_unmapped_clients()
            for network in self._networks:
                if address.version == network.cidr.version and address in network.cidr:
                    return network.region
        return self.settings.home_of_unmapped_clients()

    def route(self, home: str, excluded: frozenset[str] = frozenset()) -> Route | None:
        """The home region when healthy, else the first healthy region of the failover order; the
        home region when every region is down (it may be back before the health checks tell).
        ``excluded`` regions (already tried by this request) are never chosen; None when all are."""
        if home not in excluded and self.states[home].healthy:
            return Route(home, home)
        for name in self._preference:
            if name not in excluded and self.states[name].healthy:
                return Route(name, home)
        if home not in excluded:
            return Route(home, home)
        return next((Route(name, home) for name in self._preference if name not in excluded), None)

    def note_routed(self, route: Route) -> None:
        state = self.states[route.region]
        state.routed += 1
        metrics.ROUTED.labels(route.region).inc()
        if route.failed_over:
            state.failovers_to += 1
            metrics.FAILOVERS.labels(route.home, route.region).inc()

    def note_upstream_time(self, region: str, seconds: float) -> None:
        state = self.states[region]
        state.upstream_seconds_total += seconds
        state.upstream_answers += 1
        state.last_upstream_s = seconds
        metrics.UPSTREAM_LATENCY.labels(region).observe(seconds)

    def check_passed(self, region: str, degraded: list[str] | None = None) -> None:
        state = self.states[region]
        state.last_check_at = time.time()
        state.last_error = None
        state.degraded = degraded or []
        state.consecutive_failures = 0
        state.consecutive_successes += 1
        if not state.healthy and state.consecutive_successes >= self.settings.successes_to_mark_up:
            self._set_health(state, healthy=True)

    def check_failed(self, region: str, reason: str) -> None:
        state = self.states[region]
        state.last_check_at = time.time()
        state.last_error = reason
        state.consecutive_successes = 0
        state.consecutive_failures += 1
        if state.healthy and state.consecutive_failures >= self.settings.failures_to_mark_down:
            self._set_health(state, healthy=False)

    def unreachable(self, region: str, reason: str) -> None:
        """A request could not connect to the region: down at once, until a health check passes."""
        state = self.states[region]
        state.last_error = reason
        state.consecutive_successes = 0
        state.consecutive_failures = max(state.consecutive_failures, self.settings.failures_to_mark_down)
        if state.healthy:
            self._set_health(state, healthy=False)

    def any_healthy(self) -> bool:
        return any(state.healthy for state in self.states.values())

    @staticmethod
    def _set_health(state: RegionState, *, healthy: bool) -> None:
        state.healthy = healthy
        metrics.REGION_UP.labels(state.name).set(1 if healthy else 0)


@dataclass
class ServiceState:
    """What the gateway forwarded to one service, and how the last failed forward failed."""

    route: ServiceRoute
    routed: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None


@dataclass
class Services:
    """The service routes, in their configured order (the first whose path matches wins)."""

    settings: GatewaySettings
    states: dict[str, ServiceState] = field(init=False)

    def __post_init__(self) -> None:
        self.states = {route.name: ServiceState(route) for route in self.settings.services}

    def match(self, path: str) -> ServiceRoute | None:
        """The service taking requests for ``path``; None: a region does."""
        return next((route for route in self.settings.services if route.serves(path)), None)

    def note_routed(self, name: str) -> None:
        self.states[name].routed += 1
        metrics.SERVICE_ROUTED.labels(name).inc()

    def note_failed(self, name: str, kind: str, reason: str) -> None:
        state = self.states[name]
        state.failures += 1
        state.last_error = f"{kind}: {reason}"
        state.last_error_at = time.time()
        metrics.SERVICE_FAILURES.labels(name, kind).inc()
