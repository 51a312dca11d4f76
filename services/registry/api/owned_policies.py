"""What the routes of immutability and auto-prune policies share (services.registry.api.immutability,
services.registry.api.autoprune): their errors as Quay's, and the usage log of a namespace's change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import asyncpg
from fastapi import Request

from services.registry.api.common import bad_request, not_found
from services.registry.api.security import ApiCaller
from services.registry.domain.audit import client_ip
from services.registry.domain.owned_policies import PolicyError, PolicyNotFoundError
from shared.auth.accounts import Namespace
from shared.usage_logs import record


@contextmanager
def policy_errors() -> Iterator[None]:
    """A policy the owner does not have answers 404, rules that cannot be stored 400."""
    try:
        yield
    except PolicyNotFoundError as error:
        raise not_found(str(error)) from error
    except PolicyError as error:
        raise bad_request(str(error)) from error


async def log_namespace_change(
    conn: asyncpg.Connection,
    request: Request,
    caller: ApiCaller,
    namespace: Namespace,
    kind: str,
    metadata: dict[str, Any],
) -> None:
    await record(
        conn,
        kind,
        performer=caller.identity,
        ip=client_ip(request),
        namespace=namespace.name,
        metadata=metadata,
    )
