"""The proxy cache configuration API (Quay's shapes) and its refusals, on the in-process registry."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from tests.fixtures.registry import Account, Registry
from tests.support.oci import push_image, random_image
from tests.support.process import free_port


@contextlib.asynccontextmanager
async def web_server() -> AsyncIterator[str]:
    """A loopback HTTP server that is no registry (an HTML page for every path); its host:port."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(65536)  # a request, or a TLS hello (answered in plain HTTP all the same)
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 6\r\nConnection: close\r\n\r\n<html>"
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    try:
        yield f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def _organization(registry: Registry) -> tuple[Account, str]:
    owner = await registry.user()
    return owner, await registry.organization(owner)


async def test_create_get_delete_in_quay_shapes(registry: Registry) -> None:
    owner, org = await _organization(registry)
    path = f"/api/v1/organization/{org}/proxycache"
    async with registry.client(owner) as client:
        empty = await client.get(path)
        created = await client.post(
            path,
            json={
                "upstream_registry": "quay.example.test:8443/prometheus",
                "upstream_registry_username": "puller",
                "upstream_registry_password": "s3cret",
                "expiration_s": 3600,
                "unknown_field": "ignored",
            },
        )
        again = await client.post(path, json={"upstream_registry": "quay.example.test"})
        answered = await client.get(path)
        deleted = await client.delete(path)
        gone = await client.delete(path)
    assert empty.json() == {"upstream_registry": "", "expiration_s": "", "insecure": ""}
    assert created.status_code == 201 and created.json() == "Created"
    assert again.status_code == 400 and again.json()["detail"] == "Proxy Cache Configuration already exists"
    assert answered.json() == {
        "upstream_registry": "quay.example.test:8443/prometheus",
        "expiration_s": 3600,
        "insecure": False,
    }
    assert "s3cret" not in answered.text and "puller" not in answered.text
    assert deleted.status_code == 204 and gone.status_code == 404
    logged = await registry.context.pool.fetch(
        "SELECT l.kind FROM log_entry l JOIN namespace n ON n.id = l.namespace_id WHERE n.name = $1 ORDER BY l.id",
        org,
    )
    assert [row["kind"] for row in logged][-2:] == ["create_proxy_cache_config", "delete_proxy_cache_config"]


async def test_bad_configurations_are_refused_with_nothing_stored(registry: Registry) -> None:
    owner, org = await _organization(registry)
    path = f"/api/v1/organization/{org}/proxycache"
    bodies = [
        {"upstream_registry": "not a host/"},
        {"upstream_registry": "registry.test/UPPER"},
        {"upstream_registry": "registry.test\u0000"},
        {"upstream_registry": "registry.test", "expiration_s": 0},
        {"upstream_registry": "registry.test", "expiration_s": 10**30},
        {"upstream_registry": "registry.test", "insecure": "yes"},
        {"upstream_registry": 42},
        {},
    ]
    async with registry.client(owner) as client:
        answers = [await client.post(path, json=body) for body in bodies]
        answered = await client.get(path)
    assert [answer.status_code for answer in answers] == [400] * len(bodies)
    assert all(isinstance(answer.json()["detail"], str) for answer in answers)
    assert answered.json()["upstream_registry"] == ""


async def test_validate_refuses_unreachable_and_non_registry_upstreams(registry: Registry) -> None:
    owner, org = await _organization(registry)
    async with registry.client(owner) as client, web_server() as website:
        unreachable = await client.post(
            f"/api/v1/organization/{org}/proxycache/validate",
            json={"upstream_registry": f"127.0.0.1:{free_port()}", "insecure": True},
        )
        not_registry = await client.post(
            f"/api/v1/organization/{org}/validateproxycache",
            json={"upstream_registry": website, "insecure": True},
        )
    assert unreachable.status_code == 400 and "cannot reach" in unreachable.json()["detail"]
    assert (
        not_registry.status_code == 400
        and "does not answer as a container registry" in not_registry.json()["detail"]
    )


async def test_pushes_into_a_cache_organization_are_denied(registry: Registry) -> None:
    owner, org = await _organization(registry)
    async with registry.client(owner) as client:
        configured = await client.post(
            f"/api/v1/organization/{org}/proxycache", json={"upstream_registry": "registry.test"}
        )
        upload = await client.post(f"/v2/{org}/app/blobs/uploads/")
        manifest = await client.put(
            f"/v2/{org}/app/manifests/v1",
            content=b"{}",
            headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
        )
    assert configured.status_code == 201
    for refused in (upload, manifest):
        assert refused.status_code == 403, refused.text
        assert refused.json()["errors"][0]["code"] == "DENIED"
    repositories = await registry.context.pool.fetchval(
        "SELECT count(*) FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1", org
    )
    assert repositories == 0


async def test_api_writes_adding_content_to_a_cache_organization_are_refused(registry: Registry) -> None:
    owner, org = await _organization(registry)
    async with registry.client(owner) as client:
        digest = await push_image(client, f"{org}/app", random_image(), "v1")
        configured = await client.post(
            f"/api/v1/organization/{org}/proxycache", json={"upstream_registry": "registry.test"}
        )
        tag_path = f"/api/v1/repository/{org}/app/tag"
        refused = [
            await client.post(
                "/api/v1/repository",
                json={"namespace": org, "repository": "other", "visibility": "private", "description": ""},
            ),
            await client.put(f"{tag_path}/copy", json={"manifest_digest": digest}),
            await client.put(f"{tag_path}/v1", json={"manifest_digest": digest}),
            await client.post(f"{tag_path}/v1/restore", json={"manifest_digest": digest}),
        ]
        expiration_only = await client.put(f"{tag_path}/v1", json={"expiration": None})
        tags = (await client.get(f"/api/v1/repository/{org}/app/tag/")).json()["tags"]
    assert configured.status_code == 201
    for response in refused:
        assert response.status_code == 403, response.text
        assert "proxy cache" in response.json()["detail"]
    assert expiration_only.status_code == 201, expiration_only.text
    assert [tag["name"] for tag in tags] == ["v1"]
    repositories = await registry.context.pool.fetchval(
        "SELECT count(*) FROM repository r JOIN namespace n ON n.id = r.namespace_id WHERE n.name = $1", org
    )
    assert repositories == 1
