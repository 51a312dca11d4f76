"""Proxy cache configurations (table proxy_cache_config) and the per-process set of cache organizations.

An organization with a configuration is a cache of ``upstream_registry``: 'host[:port]', optionally
followed by a namespace path in the upstream. ``cache/postgres`` then names the upstream repository
'<path>/postgres' (Docker Hub's official images get its 'library/' prefix, as clients add it).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import asyncpg
from pydantic import BaseModel, ConfigDict

from shared.oci.upstream_client import ExternalReference

DEFAULT_EXPIRATION_S = 86_400
_HOST = (
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?"
)
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_UPSTREAM_REGISTRY = re.compile(rf"{_HOST}(?:/{_COMPONENT}(?:/{_COMPONENT})*)?")
_MAX_UPSTREAM_LENGTH = 255
# Without change notifications (the listener is down), the set is read again this often.
_UNNOTIFIED_TTL_S = 2.0


class InvalidUpstreamError(ValueError):
    """Not 'host[:port]' optionally followed by '/namespace/path'."""


def checked_upstream_registry(text: str) -> str:
    """The upstream registry as given when it is 'host[:port][/path]'; InvalidUpstreamError otherwise."""
    if len(text) > _MAX_UPSTREAM_LENGTH or _UPSTREAM_REGISTRY.fullmatch(text) is None:
        raise InvalidUpstreamError(
            f"invalid upstream_registry {text[:100]!r}: expected 'host[:port]' optionally followed by"
            " '/namespace'"
        )
    return text


class ProxyCacheConfig(BaseModel):
    """A stored configuration; credentials stay encrypted."""

    model_config = ConfigDict(frozen=True)

    namespace_id: int
    namespace: str
    upstream_registry: str
    username_encrypted: str | None
    password_encrypted: str | None
    expiration_s: int
    insecure: bool

    def upstream_reference(self, repository: str) -> ExternalReference:
        """Where the cache's repository (its name inside the organization) lives upstream."""
        return upstream_reference(self.upstream_registry, repository)


def upstream_reference(upstream_registry: str, repository: str) -> ExternalReference:
    """The upstream repository a cache of upstream_registry names repository."""
    return ExternalReference.parse(f"{upstream_registry}/{repository}")


_SELECT = (
    "SELECT c.namespace_id, n.name AS namespace, c.upstream_registry, c.username_encrypted,"
    " c.password_encrypted, c.expiration_s, c.insecure FROM proxy_cache_config c"
    " JOIN namespace n ON n.id = c.namespace_id"
)


async def find_config(conn: asyncpg.Connection | asyncpg.Pool, namespace: str) -> ProxyCacheConfig | None:
    row = await conn.fetchrow(f"{_SELECT} WHERE n.name = $1", namespace)
    return ProxyCacheConfig(**dict(row)) if row is not None else None


async def all_configs(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, ProxyCacheConfig]:
    rows = await conn.fetch(_SELECT)
    return {row["namespace"]: ProxyCacheConfig(**dict(row)) for row in rows}


async def create_config(
    conn: asyncpg.Connection,
    namespace_id: int,
    *,
    upstream_registry: str,
    username_encrypted: str | None,
    password_encrypted: str | None,
    expiration_s: int,
    insecure: bool,
) -> bool:
    """Store the configuration; False when the organization already has one."""
    created = await conn.fetchval(
        "INSERT INTO proxy_cache_config (namespace_id, upstream_registry, username_encrypted,"
        " password_encrypted, expiration_s, insecure) VALUES ($1, $2, $3, $4, $5, $6)"
        " ON CONFLICT (namespace_id) DO NOTHING RETURNING namespace_id",
        namespace_id,
        upstream_registry,
        username_encrypted,
        password_encrypted,
        expiration_s,
        insecure,
    )
    return created is not None


async def delete_config(conn: asyncpg.Connection, namespace_id: int) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM proxy_cache_config WHERE namespace_id = $1 RETURNING namespace_id", namespace_id
    )
    return deleted is not None


async def is_cache_namespace(conn: asyncpg.Connection, namespace_id: int) -> bool:
    found = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM proxy_cache_config WHERE namespace_id = $1)", namespace_id
    )
    return bool(found)


@dataclass
class CacheNamespaces:
    """namespace name -> its configuration, for every cache organization, read at once (the table is
    small) and kept while no change notification arrived (the manifest cache's generation)."""

    _configs: dict[str, ProxyCacheConfig] | None = None
    _generation: int = -1
    _read_at: float = 0.0

    async def config_for(
        self, pool: asyncpg.Pool, namespace: str, generation: int, listening: bool
    ) -> ProxyCacheConfig | None:
        """The namespace's configuration; ``generation`` and ``listening`` are the manifest cache's."""
        now = time.monotonic()
        fresh = generation == self._generation and (listening or now - self._read_at < _UNNOTIFIED_TTL_S)
        if self._configs is None or not fresh:
            self._configs = await all_configs(pool)
            self._generation, self._read_at = generation, now
        return self._configs.get(namespace)
