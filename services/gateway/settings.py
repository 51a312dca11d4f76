"""The gateway's settings, read from QUAYSIDE_GATEWAY_* variables (the HTTP limits and TLS of its
own server come from shared.config.Settings, QUAYSIDE_HTTP_* and QUAYSIDE_TLS_*).

Every region name the settings mention must be one of ``regions``: a setting naming another is
refused when the settings are read, with the unknown names in the message. A service route whose
path is not a regular expression, or whose name is taken, is refused the same way.
"""

from __future__ import annotations

import ipaddress
import json
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.serving import ListenAddress, ListenSetting

REGION_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
# An HTTP header field name (RFC 9110 token).
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ClientNetwork(BaseModel):
    """Clients whose address is in ``cidr`` belong to ``region``."""

    model_config = ConfigDict(frozen=True)

    cidr: IpNetwork
    region: str

    @field_validator("cidr", mode="before")
    @classmethod
    def _network(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return ipaddress.ip_network(value.strip(), strict=True)
        except ValueError as error:
            raise ValueError(f"{value!r} is not a network in CIDR notation: {error}") from None


class ServiceRoute(BaseModel):
    """Requests whose path (percent-decoded, without the query) fullmatches ``path`` go to the
    service at ``url`` (one base URL: a service has no failover) instead of a region."""

    model_config = ConfigDict(frozen=True)

    name: str
    path: re.Pattern[str]
    url: str

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if REGION_NAME.fullmatch(value) is None:
            raise ValueError(f"service name {value!r} must match {REGION_NAME.pattern}")
        return value

    @field_validator("path", mode="before")
    @classmethod
    def _pattern(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        try:
            return re.compile(value)
        except re.error as error:
            raise ValueError(f"path {value!r} is not a regular expression: {error}") from None

    @field_validator("url")
    @classmethod
    def _base_url(cls, value: str) -> str:
        if re.fullmatch(r"https?://[^/?#\s]+/?", value) is None:
            raise ValueError(f"{value!r} is not an http(s)://host[:port] base URL")
        return value.rstrip("/")

    def serves(self, path: str) -> bool:
        return self.path.fullmatch(path) is not None


class GatewaySettings(BaseSettings):
    """Where the regions are, which clients belong to which, and how their health is watched."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_GATEWAY_", extra="ignore")

    # Region name -> base URL of that region's registry (JSON object), e.g. {"us": "http://10.0.1.5:5000"}.
    regions: dict[str, str] = Field(min_length=1)
    # Where a request goes when its region is unhealthy: the first healthy region of this list
    # (comma-separated or JSON). Unset: the order of `regions`.
    failover_order: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Client networks -> region (JSON list of {"cidr", "region"}); the most specific network
    # holding the client's address wins.
    client_networks: list[ClientNetwork] = Field(default_factory=list)
    # The region of clients no network holds. Unset: the first of the failover order.
    default_region: str | None = None
    # A request header naming the region to use, for tests and tooling; an unknown name gets 400.
    region_header: str = "X-Quayside-Region"
    # Every region's /health/endtoend is asked every health_interval_s, with this time limit; a
    # region is marked down after failures_to_mark_down failed checks in a row, and up after
    # successes_to_mark_up good ones. A request that cannot connect marks its region down at once.
    # The time limit must exceed the registries' own (QUAYSIDE_HEALTH_CHECK_TIMEOUT_S, 3 s): a
    # registry with one storage location hanging answers 200 only after that location's check gave up.
    health_interval_s: float = Field(default=2.0, gt=0)
    health_timeout_s: float = Field(default=6.0, gt=0)
    failures_to_mark_down: int = Field(default=2, ge=1)
    successes_to_mark_up: int = Field(default=1, ge=1)
    # Upstream requests: connecting, and the longest wait for the next piece of an answer (from the
    # end of the request body on, so that a long upload is not cut short).
    connect_timeout_s: float = Field(default=5.0, gt=0)
    read_timeout_s: float = Field(default=300.0, gt=0)
    # Connections the gateway keeps open to each region at most (beyond: requests wait for one).
    max_connections_per_region: int = Field(default=256, ge=1)
    # The CA bundle that https region URLs' certificates chain to; unset: the system's CAs.
    ca_file: str | None = None
    # The gateway's own URL as clients reach it (Location and token realms are rewritten to it).
    # Unset: the scheme and Host of each request.
    public_url: str | None = None
    listen: ListenSetting = ListenAddress.parse("0.0.0.0:5010")
    # Paths served by another service than the registries (JSON list of {"name", "path", "url"},
    # e.g. the mirroring API): the first route whose path regex fullmatches the request's path
    # takes it; every other path goes to a region. Their health is not watched (see proxying).
    services: list[ServiceRoute] = Field(default_factory=list)

    @field_validator("failover_order", mode="before")
    @classmethod
    def _split_names(cls, value: object) -> object:
        """Comma-separated names, or a JSON list."""
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [name.strip() for name in text.split(",") if name.strip()]

    @field_validator("regions")
    @classmethod
    def _region_urls(cls, regions: dict[str, str]) -> dict[str, str]:
        bad_names = [name for name in regions if REGION_NAME.fullmatch(name) is None]
        if bad_names:
            raise ValueError(f"region names must match {REGION_NAME.pattern}: {', '.join(bad_names)}")
        for name, url in regions.items():
            if re.fullmatch(r"https?://[^/?#\s]+/?", url) is None:
                raise ValueError(f"region {name}: {url!r} is not an http(s)://host[:port] base URL")
        return {name: url.rstrip("/") for name, url in regions.items()}

    @field_validator("region_header")
    @classmethod
    def _header_name(cls, value: str) -> str:
        if _HEADER_NAME.fullmatch(value) is None:
            raise ValueError(f"{value!r} is not an HTTP header name")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"https?://[^/?#\s]+/?", value) is None:
            raise ValueError(f"{value!r} is not an http(s)://host[:port] URL")
        return value.rstrip("/") if value else None

    @model_validator(mode="after")
    def _known_regions(self) -> GatewaySettings:
        referenced = [
            *self.failover_order,
            *(network.region for network in self.client_networks),
            *([self.default_region] if self.default_region else []),
        ]
        unknown = sorted({name for name in referenced if name not in self.regions})
        if unknown:
            raise ValueError(
                f"unknown region(s) {', '.join(unknown)}; the regions are {', '.join(self.regions)}"
            )
        names = [service.name for service in self.services]
        taken = sorted({name for name in names if names.count(name) > 1 or name in self.regions})
        if taken:
            raise ValueError(f"service name(s) {', '.join(taken)} used twice or also a region's name")
        return self

    def upstream_urls(self) -> dict[str, str]:
        """The base URL of every region and service, by name (the names never collide)."""
        return {**self.regions, **{service.name: service.url for service in self.services}}

    def preference(self) -> list[str]:
        """Every region, in failover order: the listed ones first, then the others as configured."""
        listed = list(dict.fromkeys(self.failover_order))
        return listed + [name for name in self.regions if name not in listed]

    def home_of_unmapped_clients(self) -> str:
        return self.default_region or self.preference()[0]
