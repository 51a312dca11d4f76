"""The generated OpenAPI document describes the account endpoints and how to authenticate."""

from __future__ import annotations

from tests.fixtures.registry import Registry

ACCOUNT_OPERATIONS = {
    ("get", "/api/v1/user/"),
    ("get", "/api/v1/users/{username}"),
    ("get", "/api/v1/superuser/users/"),
    ("post", "/api/v1/superuser/users/"),
    ("get", "/api/v1/user/apitokens"),
    ("post", "/api/v1/user/apitokens"),
    ("delete", "/api/v1/user/apitokens/{token_uuid}"),
    ("post", "/api/v1/organization/"),
    ("get", "/api/v1/organization/{orgname}"),
    ("put", "/api/v1/organization/{orgname}"),
    ("delete", "/api/v1/organization/{orgname}"),
    ("get", "/api/v1/superuser/organizations/"),
    ("put", "/api/v1/organization/{orgname}/team/{teamname}"),
    ("delete", "/api/v1/organization/{orgname}/team/{teamname}"),
    ("get", "/api/v1/organization/{orgname}/team/{teamname}/members"),
    ("put", "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}"),
    ("delete", "/api/v1/organization/{orgname}/team/{teamname}/members/{membername}"),
    ("get", "/api/v1/organization/{orgname}/prototypes"),
    ("post", "/api/v1/organization/{orgname}/prototypes"),
    ("put", "/api/v1/organization/{orgname}/prototypes/{prototypeid}"),
    ("delete", "/api/v1/organization/{orgname}/prototypes/{prototypeid}"),
} | {
    operation
    for prefix in ("/api/v1/organization/{orgname}", "/api/v1/user")
    for operation in (
        ("get", f"{prefix}/robots"),
        ("get", f"{prefix}/robots/{{shortname}}"),
        ("put", f"{prefix}/robots/{{shortname}}"),
        ("delete", f"{prefix}/robots/{{shortname}}"),
        ("post", f"{prefix}/robots/{{shortname}}/regenerate"),
        ("get", f"{prefix}/robots/{{shortname}}/permissions"),
    )
}


async def test_openapi_lists_every_account_endpoint_and_the_credentials(registry: Registry) -> None:
    spec = registry.app.openapi()  # served at /openapi.json only when QUAYSIDE_HTTP_API_DOCS is set
    operations = {(method, path) for path, methods in spec["paths"].items() for method in methods}
    assert operations >= ACCOUNT_OPERATIONS
    assert {"HTTPBearer", "HTTPBasic"} <= set(spec["components"]["securitySchemes"])
    token_body = spec["paths"]["/api/v1/user/apitokens"]["post"]["requestBody"]
    assert token_body["required"] is True
