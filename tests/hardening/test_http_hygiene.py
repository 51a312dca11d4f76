"""HTTP hygiene: security and protocol headers on every answer, a 405's full Allow, a 500 that
closes its connection, the per-client bound on concurrent uploads, and the settings that hide the
API docs and /metrics."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from fastapi.routing import iter_route_contexts

from services.registry.app import create_app
from shared.config import Settings
from shared.http_guard import install_http_guard
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account
from tests.support.served import served
from tests.support.waiting import eventually

MAX_UPLOADS = 2


@pytest.fixture
def live_registry_env() -> dict[str, str]:
    return {"QUAYSIDE_HTTP_MAX_UPLOADS_PER_CLIENT": str(MAX_UPLOADS), "QUAYSIDE_HTTP_BODY_TIMEOUT_S": "60"}


def client(registry: LiveRegistry, account: Account | None = None, **transport: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=registry.url,
        auth=account.auth if account else None,
        timeout=10,
        transport=httpx.AsyncHTTPTransport(**transport) if transport else None,  # type: ignore[arg-type]
    )


async def test_every_answer_has_nosniff_and_v2_answers_name_the_api_version(
    live_registry: LiveRegistry,
) -> None:
    owner = await live_registry.user()
    async with client(live_registry, owner) as http:
        answers = {
            "version": await http.get("/v2/"),
            "unknown manifest": await http.get(f"/v2/{owner.username}/none/manifests/latest"),
            "unknown route": await http.get("/v2/_nothing_here"),
            "api": await http.get("/api/v1/user/"),
            "health": await http.get("/health/instance"),
        }
    for name, answer in answers.items():
        assert answer.headers.get("X-Content-Type-Options") == "nosniff", name
    for name in ("version", "unknown manifest", "unknown route"):
        assert answers[name].headers.get("Docker-Distribution-API-Version") == "registry/2.0", name


async def test_token_and_api_answers_are_never_cached(live_registry: LiveRegistry) -> None:
    owner = await live_registry.user()
    async with client(live_registry, owner) as http:
        token = await http.get("/v2/auth", params={"scope": f"repository:{owner.username}/app:pull,push"})
        refused = await http.get("/v2/auth", auth=(owner.username, "wrong"))
        api = await http.get("/api/v1/user/")
    assert token.status_code == 200 and token.headers.get("Cache-Control") == "no-store"
    assert refused.status_code == 401 and refused.headers.get("Cache-Control") == "no-store"
    assert api.status_code == 200 and api.headers.get("Cache-Control") == "no-store"


def allow_of(answer: httpx.Response) -> set[str]:
    return {method.strip() for method in answer.headers.get("Allow", "").split(",") if method.strip()}


async def test_405_lists_every_method_of_the_path(live_registry: LiveRegistry) -> None:
    owner = await live_registry.user()
    async with client(live_registry, owner) as http:
        upload = await http.post(f"/v2/{owner.username}/app/blobs/uploads/some-id")
        manifest = await http.post(f"/v2/{owner.username}/app/manifests/latest")
    assert upload.status_code == 405 and upload.json()["errors"][0]["code"] == "UNSUPPORTED"
    assert {"GET", "PATCH", "PUT", "DELETE"} <= allow_of(upload)
    assert manifest.status_code == 405
    assert {"GET", "HEAD", "PUT", "DELETE"} <= allow_of(manifest)


async def test_concurrent_uploads_per_client_are_bounded_with_429(live_registry: LiveRegistry) -> None:
    owner = await live_registry.user()
    async with client(live_registry, owner) as http:
        locations = []
        for _ in range(MAX_UPLOADS + 1):
            started = await http.post(f"/v2/{owner.username}/app/blobs/uploads/")
            assert started.status_code == 202, started.text
            locations.append(started.headers["Location"])
        header = owner.basic_header["Authorization"]

        held = []
        for location in locations[:MAX_UPLOADS]:
            reader, writer = await asyncio.open_connection("127.0.0.1", live_registry.port)
            writer.write(
                f"PATCH {location} HTTP/1.1\r\nHost: {live_registry.host}\r\nAuthorization: {header}\r\n"
                "Content-Type: application/octet-stream\r\nContent-Length: 1000\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            # uvicorn answers 100 Continue once the app reads the body: the upload is under way.
            async with asyncio.timeout(10):
                assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 100 ")
            held.append((reader, writer))

        too_many = await http.patch(locations[-1], content=b"abc")
        async with client(live_registry, owner, local_address="127.0.0.2") as elsewhere:
            other_client = await elsewhere.patch(locations[-1], content=b"abc")
        for _, writer in held:
            writer.close()

        async def accepted_again() -> bool:
            return (await http.patch(locations[-1], content=b"abc")).status_code == 202

        await eventually(accepted_again, timeout_s=10)
    assert too_many.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    assert too_many.headers["Retry-After"] == "1"
    assert too_many.headers.get("Docker-Distribution-API-Version") == "registry/2.0"
    assert other_client.status_code == 202, "another client address has its own bound"


async def test_metrics_labels_are_route_templates_not_names(live_registry: LiveRegistry) -> None:
    owner = await live_registry.user()
    async with client(live_registry, owner) as http:
        await http.get(f"/v2/{owner.username}/secret-name/manifests/latest")
        metrics = await http.get("/metrics")
    assert metrics.status_code == 200
    assert "/v2/{name:path}/manifests/{reference}" in metrics.text
    assert "secret-name" not in metrics.text and owner.username not in metrics.text


@pytest.mark.parametrize("enabled", [False, True])
async def test_api_docs_and_metrics_follow_their_settings(enabled: bool) -> None:
    app = create_app(Settings(http_api_docs=enabled, http_metrics=enabled))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://registry.test"
    ) as http:
        docs = [(await http.get(path)).status_code for path in ("/docs", "/redoc", "/openapi.json")]
    assert docs == ([200] * 3 if enabled else [404] * 3)
    assert any(route.path == "/metrics" for route in iter_route_contexts(app.routes)) is enabled


def failing_app(settings: Settings) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.get("/v2/boom")
    @app.get("/api/v1/boom")
    async def boom() -> PlainTextResponse:
        raise RuntimeError("a bug")

    install_http_guard(app, settings)
    return app


@pytest.mark.parametrize(("path", "shape"), [("/v2/boom", "errors"), ("/api/v1/boom", "detail")])
async def test_a_500_says_connection_close_and_the_client_goes_on(path: str, shape: str) -> None:
    settings = Settings()
    async with served(failing_app(settings), settings) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await reader.read()
        writer.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            failed = await http.get(path)
            after = await http.get("/ok")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500 ")
    assert b"connection: close" in head.lower() and b"nosniff" in head.lower()
    assert f'"{shape}"'.encode() in body
    assert (b"docker-distribution-api-version: registry/2.0" in head.lower()) is (shape == "errors")
    assert failed.status_code == 500 and after.status_code == 200
