"""OAuth applications of an organization: /api/v1/organization/{orgname}/applications (Quay's
getOrganizationApplications, createOrganizationApplication, getOrganizationApplication,
updateOrganizationApplication, deleteOrganizationApplication,
resetOrganizationApplicationClientSecret).

Only the organization's administrators (and superusers), with credentials holding 'org:admin',
reach them; they see the client secret, as in Quay. Users grant an application access tokens
through /oauth/authorizeapp (services.registry.api.oauth).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import asyncpg
from fastapi import Depends, Request, Response
from pydantic import Field, field_validator

from services.registry.api.common import (
    NO_NUL,
    ApiModel,
    api_router,
    bad_request,
    db_connection,
    not_found,
)
from services.registry.api.security import ApiCaller, administered_organization, org_admin_user
from services.registry.context import RegistryContext, get_context
from services.registry.domain.audit import client_ip
from shared.auth.accounts import Namespace
from shared.auth.oauth_apps import (
    ApplicationFields,
    OAuthApplication,
    TooManyApplicationsError,
    create_application,
    delete_application,
    find_application,
    list_applications,
    reset_client_secret,
    update_application,
)
from shared.secret_box import SecretBox
from shared.usage_logs import record

router = api_router(tags=["OAuth applications"])
_PATH = "/organization/{orgname}/applications"
_MAX_URI = 2048


class ApplicationBody(ApiModel):
    """Quay's UpdateApp: name, redirect_uri and application_uri are required."""

    name: str = Field(min_length=1, max_length=255, pattern=NO_NUL, description="The application's name")
    redirect_uri: str = Field(
        max_length=_MAX_URI, pattern=NO_NUL, description="Where access tokens are sent (http or https)"
    )
    application_uri: str = Field(
        max_length=_MAX_URI, pattern=NO_NUL, description="The application's homepage"
    )
    description: str = Field(default="", max_length=4096, pattern=NO_NUL)
    avatar_email: str | None = Field(default=None, max_length=255, pattern=NO_NUL)

    @field_validator("redirect_uri")
    @classmethod
    def _absolute_http_uri(cls, value: str) -> str:
        if not value:
            return value
        try:
            parts = urlsplit(value)
        except ValueError as error:
            raise ValueError("redirect_uri must be an http or https URI") from error
        if parts.scheme.lower() not in ("http", "https") or not parts.netloc or parts.fragment:
            raise ValueError("redirect_uri must be an http or https URI without a fragment")
        return value

    def fields(self) -> ApplicationFields:
        return ApplicationFields(**self.model_dump())


class NewApplication(ApplicationBody):
    """Quay's NewApp: only the name is required."""

    redirect_uri: str = Field(default="", max_length=_MAX_URI, pattern=NO_NUL)
    application_uri: str = Field(default="", max_length=_MAX_URI, pattern=NO_NUL)


def application_view(application: OAuthApplication) -> dict[str, Any]:
    return {
        "name": application.name,
        "description": application.description,
        "application_uri": application.application_uri,
        "client_id": application.client_id,
        "client_secret": application.client_secret,
        "redirect_uri": application.redirect_uri,
        "avatar_email": application.avatar_email,
    }


def _box(context: RegistryContext) -> SecretBox:
    return SecretBox.from_settings(context.settings)


def _found(application: OAuthApplication | None) -> OAuthApplication:
    if application is None:
        raise not_found("no such application")
    return application


async def _log(
    conn: asyncpg.Connection,
    request: Request,
    caller: ApiCaller,
    kind: str,
    organization: Namespace,
    metadata: dict[str, Any],
) -> None:
    await record(
        conn,
        kind,
        performer=caller.identity,
        ip=client_ip(request),
        namespace=organization.name,
        metadata=metadata,
    )


def _change_metadata(body: ApplicationBody, application: OAuthApplication) -> dict[str, Any]:
    """Quay's: the fields sent, the application's name and client id (never the secret)."""
    return body.model_dump() | {"application_name": application.name, "client_id": application.client_id}


@router.get(_PATH)
async def list_organization_applications(
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """The organization's applications (getOrganizationApplications)."""
    applications = await list_applications(conn, _box(context), organization.id)
    return {"applications": [application_view(application) for application in applications]}


@router.post(_PATH, status_code=201)
async def create_organization_application(
    body: NewApplication,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Create an application with a new client id and secret (createOrganizationApplication)."""
    async with conn.transaction():
        try:
            application = await create_application(conn, _box(context), organization.id, body.fields())
        except TooManyApplicationsError as error:
            raise bad_request(f"{error}: delete one first") from error
        await _log(
            conn, request, caller, "create_application", organization, _change_metadata(body, application)
        )
    return application_view(application)


@router.get(f"{_PATH}/{{client_id}}")
async def get_organization_application(
    client_id: str,
    organization: Namespace = Depends(administered_organization),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """One application of the organization (getOrganizationApplication)."""
    return application_view(_found(await find_application(conn, _box(context), organization.id, client_id)))


@router.put(f"{_PATH}/{{client_id}}")
async def update_organization_application(
    client_id: str,
    body: ApplicationBody,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Replace the application's settings (updateOrganizationApplication); its credentials stay."""
    async with conn.transaction():
        application = _found(
            await update_application(conn, _box(context), organization.id, client_id, body.fields())
        )
        await _log(
            conn, request, caller, "update_application", organization, _change_metadata(body, application)
        )
    return application_view(application)


@router.delete(f"{_PATH}/{{client_id}}", status_code=204)
async def delete_organization_application(
    client_id: str,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
) -> Response:
    """Delete the application; every access token granted to it stops working at once."""
    async with conn.transaction():
        name = await delete_application(conn, organization.id, client_id)
        if name is None:
            raise not_found("no such application")
        metadata = {"application_name": name, "client_id": client_id}
        await _log(conn, request, caller, "delete_application", organization, metadata)
    return Response(status_code=204)


@router.post(f"{_PATH}/{{client_id}}/resetclientsecret")
async def reset_organization_application_client_secret(
    client_id: str,
    request: Request,
    organization: Namespace = Depends(administered_organization),
    caller: ApiCaller = Depends(org_admin_user),
    conn: asyncpg.Connection = Depends(db_connection),
    context: RegistryContext = Depends(get_context),
) -> dict[str, Any]:
    """Give the application a new client secret (resetOrganizationApplicationClientSecret)."""
    async with conn.transaction():
        application = _found(await reset_client_secret(conn, _box(context), organization.id, client_id))
        metadata = {"application_name": application.name, "client_id": client_id}
        await _log(conn, request, caller, "reset_application_client_secret", organization, metadata)
    return application_view(application)
