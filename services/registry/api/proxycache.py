"""Proxy cache configuration, Quay's /api/v1/organization/{orgname}/proxycache (get, create, delete)
and its validation (POST …/proxycache/validate, and Quay's own path …/validateproxycache).

Managed by the organization's administrators ('org:admin'). The upstream credentials are stored
encrypted (shared/secret_box.py) and never answered. Creating and deleting are recorded in the
usage logs (create_, delete_proxy_cache_config). The pulls themselves: services/registry/proxy.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from services.registry.api.common import (
    NO_NUL,
    ApiModel,
    api_router,
    bad_request,
    db_connection,
    forbidden,
    not_found,
)
from services.registry.api.security import ApiCaller, administered_organization, org_admin_user
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from services.registry.proxy import config as proxy_config
from shared.auth.accounts import Namespace
from shared.oci.upstream_client import ProxyConfig, UpstreamError, UpstreamRegistry
from shared.secret_box import SecretBox
from shared.usage_logs import record

router = api_router(tags=["Proxy cache"])

_PATH = "/organization/{orgname}/proxycache"
_MAX_EXPIRATION_S = 10 * 365 * 86_400
# The repository named in the token scope of a validation (a registry's /v2/ check needs none).
_VALIDATION_REPOSITORY = "library/validation"
# A validation answers within seconds: an upstream slower than this to answer GET /v2/ fails it.
_VALIDATION_TIMEOUT_S = 10.0


async def refuse_content_writes(conn: asyncpg.Connection, namespace_id: int) -> None:
    """403 in a cache organization: its content comes only from the upstream, so creating a
    repository and creating or moving a tag are refused, as pushes are."""
    if await proxy_config.is_cache_namespace(conn, namespace_id):
        raise forbidden("the organization is a proxy cache: its content comes only from the upstream")


class ProxyCacheBody(ApiModel):
    """Quay's ProxyCacheConfig."""

    upstream_registry: str = Field(
        max_length=255, pattern=NO_NUL, description="host[:port], optionally followed by '/namespace'"
    )
    upstream_registry_username: str | None = Field(default=None, max_length=1024, pattern=NO_NUL)
    upstream_registry_password: str | None = Field(default=None, max_length=4096, pattern=NO_NUL)
    expiration_s: int = Field(
        default=proxy_config.DEFAULT_EXPIRATION_S,
        ge=1,
        le=_MAX_EXPIRATION_S,
        description="Seconds a cached tag is served without asking the upstream, and kept after its last pull",
    )
    insecure: bool = Field(default=False, description="Do not verify the upstream's TLS certificate")

    def checked_upstream(self) -> str:
        try:
            return proxy_config.checked_upstream_registry(self.upstream_registry)
        except proxy_config.InvalidUpstreamError as error:
            raise bad_request(str(error)) from error


def _view(config: proxy_config.ProxyCacheConfig | None) -> dict[str, Any]:
    """Quay's answer: empty strings when the organization is no cache."""
    if config is None:
        return {"upstream_registry": "", "expiration_s": "", "insecure": ""}
    return {
        "upstream_registry": config.upstream_registry,
        "expiration_s": config.expiration_s,
        "insecure": config.insecure,
    }


@router.get(_PATH)
async def get_proxy_cache_config(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
) -> dict[str, Any]:
    """The organization's proxy cache configuration, without credentials (Quay's getProxyCacheConfig)."""
    return _view(await proxy_config.find_config(conn, organization.name))


@router.post(_PATH, status_code=201)
async def create_proxy_cache_config(
    body: ProxyCacheBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """Make the organization a cache of the upstream (Quay's createProxyCacheConfig); 201 "Created"."""
    upstream = body.checked_upstream()
    secrets = SecretBox.from_settings(context.settings)
    async with conn.transaction():
        created = await proxy_config.create_config(
            conn,
            organization.id,
            upstream_registry=upstream,
            username_encrypted=secrets.encrypt(body.upstream_registry_username),
            password_encrypted=secrets.encrypt(body.upstream_registry_password),
            expiration_s=body.expiration_s,
            insecure=body.insecure,
        )
        if not created:
            raise bad_request("Proxy Cache Configuration already exists")
        await record(
            conn,
            "create_proxy_cache_config",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=organization.name,
            metadata={
                "upstream_registry": upstream,
                "expiration_s": body.expiration_s,
                "insecure": body.insecure,
            },
        )
    return JSONResponse("Created", status_code=201)


@router.delete(_PATH, status_code=204)
async def delete_proxy_cache_config(
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """The organization is no cache any more (its cached repositories stay, as ordinary ones); 204."""
    async with conn.transaction():
        if not await proxy_config.delete_config(conn, organization.id):
            raise not_found("Proxy Cache Configuration does not exist")
        await record(
            conn,
            "delete_proxy_cache_config",
            performer=caller.identity,
            ip=client_ip(request),
            namespace=organization.name,
        )
    return Response(status_code=204)


async def _validate(body: ProxyCacheBody, context: RegistryContext) -> Response:
    upstream = body.checked_upstream()
    reference = proxy_config.upstream_reference(upstream, _VALIDATION_REPOSITORY)
    client = UpstreamRegistry(
        reference,
        username=body.upstream_registry_username,
        password=body.upstream_registry_password,
        verify_tls=not body.insecure,
        proxy=ProxyConfig(),
        timeout_s=min(context.settings.proxy_cache_upstream_timeout_s, _VALIDATION_TIMEOUT_S),
    )
    try:
        async with client:
            await client.check_registry()
    except UpstreamError as error:
        raise bad_request(f"Failed to validate Proxy cache configuration: {error}") from error
    return JSONResponse("Valid", status_code=202)


@router.post(f"{_PATH}/validate", status_code=202)
async def validate_proxy_cache_config(
    body: ProxyCacheBody,
    _organization: Namespace = Depends(administered_organization),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """Check that the upstream answers as a registry and takes the credentials; 202 "Valid", else 400."""
    return await _validate(body, context)


@router.post("/organization/{orgname}/validateproxycache", status_code=202)
async def validate_proxy_cache_config_quay_path(
    body: ProxyCacheBody,
    _organization: Namespace = Depends(administered_organization),
    context: RegistryContext = Depends(get_context),
) -> Response:
    """The same check at Quay's path (validateProxyCacheConfig)."""
    return await _validate(body, context)
