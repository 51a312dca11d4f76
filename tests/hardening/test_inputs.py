"""Issue 15: input that used to answer 500 or be stored as given. NUL characters (PostgreSQL takes
none in text), deeply nested JSON (RecursionError), numbers beyond Python's 4,300-digit limit or
int64, and names with a trailing newline. Each is refused in the protocol's own error format and
changes nothing; text the OCI spec allows (manifest annotations) is kept in the raw manifest."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.mirror.app import create_app as create_mirror_app
from shared.http_input import database_input_handler
from shared.oci.mediatypes import OCI_MANIFEST
from tests.fixtures.registry import Account, Registry, registry_settings
from tests.support.oci import Image, descriptor, push_image, random_image

NUL = "\x00"
HUGE = "9" * 5000  # beyond Python's int-string conversion limit (4,300 digits)
DEEP_ARRAY = "[" * 1024 + "]" * 1024  # 2 KB


@dataclass
class Pushed:
    """A user's repository holding one image under tag v1."""

    registry: Registry
    owner: Account
    name: str
    image: Image
    digest: str

    @property
    def api_path(self) -> str:
        return f"/api/v1/repository/{self.name}"

    def client(self) -> httpx.AsyncClient:
        return self.registry.client(self.owner)


@pytest.fixture
async def pushed(registry: Registry) -> Pushed:
    owner = await registry.user()
    name = f"{owner.username}/app"
    image = random_image(layer_count=1)
    async with registry.client(owner) as client:
        digest = await push_image(client, name, image, "v1")
    return Pushed(registry=registry, owner=owner, name=name, image=image, digest=digest)


def assert_oci_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    (error,) = response.json()["errors"]
    assert error["code"] == code
    assert isinstance(error["message"], str)


def assert_quay_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body["detail"], str)
    assert isinstance(body["error_message"], str)
    assert isinstance(body["error_type"], str)
    assert body["status"] == status


def basic(username: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


# NUL characters


@pytest.mark.parametrize("credentials", [("ad\x00min", "x"), ("admin", "x\x00"), ("ns+ro\x00bot", "x")])
@pytest.mark.parametrize("path", ["/v2/", "/v2/auth"])
async def test_nul_in_basic_credentials_is_an_oci_401_with_challenge(
    registry: Registry, path: str, credentials: tuple[str, str]
) -> None:
    async with registry.client() as client:
        response = await client.get(path, headers=basic(*credentials))
    assert_oci_error(response, 401, "UNAUTHORIZED")
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")


@pytest.mark.parametrize("credentials", [("ad\x00min", "x"), ("admin", "x\x00")])
async def test_nul_in_basic_credentials_is_a_quay_401_on_the_api(
    registry: Registry, credentials: tuple[str, str]
) -> None:
    await registry.user("admin")
    async with registry.client() as client:
        response = await client.get("/api/v1/user/", headers=basic(*credentials))
    assert_quay_error(response, 401)


@pytest.mark.parametrize("path", ["/v2/_catalog", "tags"])
@pytest.mark.parametrize("last", [NUL, "a\x00b"])
async def test_nul_in_last_of_listings_is_refused(pushed: Pushed, path: str, last: str) -> None:
    url = f"/v2/{pushed.name}/tags/list" if path == "tags" else path
    async with pushed.client() as client:
        response = await client.get(url, params={"last": last})
    assert_oci_error(response, 400, "UNSUPPORTED")


async def test_nul_in_a_v2_path_is_name_invalid(pushed: Pushed) -> None:
    async with pushed.client() as client:
        encoded = await client.get(f"/v2/{pushed.name}%00/tags/list")
        in_reference = await client.get(f"/v2/{pushed.name}/manifests/v1%00")
    assert_oci_error(encoded, 400, "NAME_INVALID")
    assert_oci_error(in_reference, 400, "NAME_INVALID")


async def test_nul_in_the_referrers_artifact_type_filter_is_refused(pushed: Pushed) -> None:
    async with pushed.client() as client:
        response = await client.get(
            f"/v2/{pushed.name}/referrers/{pushed.digest}", params={"artifactType": "a\x00"}
        )
    assert_oci_error(response, 400, "UNSUPPORTED")


@pytest.mark.parametrize(
    "query", ["filter_tag_name=like:%00", "specificTag=v%001", "filter_tag_name=eq:v%00"]
)
async def test_nul_in_api_tag_filters_is_a_quay_400(pushed: Pushed, query: str) -> None:
    async with pushed.client() as client:
        response = await client.get(f"{pushed.api_path}/tag/?{query}")
    assert_quay_error(response, 400)


async def test_nul_in_the_repository_list_namespace_filter_is_a_quay_400(pushed: Pushed) -> None:
    async with pushed.client() as client:
        response = await client.get("/api/v1/repository", params={"namespace": "a\x00"})
    assert_quay_error(response, 400)


async def test_nul_in_a_repository_description_changes_nothing(pushed: Pushed) -> None:
    async with pushed.client() as client:
        assert (await client.put(pushed.api_path, json={"description": "before"})).status_code == 200
        refused = await client.put(pushed.api_path, json={"description": "after\x00"})
        escaped = await client.put(
            pushed.api_path,
            content=b'{"description": "after\\u0000"}',
            headers={"Content-Type": "application/json"},
        )
        stored = (await client.get(pushed.api_path)).json()["description"]
    assert_quay_error(refused, 400)
    assert_quay_error(escaped, 400)
    assert stored == "before"


async def test_nul_in_a_label_value_or_key_adds_no_label(pushed: Pushed) -> None:
    labels = f"{pushed.api_path}/manifest/{pushed.digest}/labels"
    async with pushed.client() as client:
        before = (await client.get(labels)).json()["labels"]
        in_value = await client.post(
            labels, json={"key": "team", "value": "a\x00", "media_type": "text/plain"}
        )
        in_key = await client.post(labels, json={"key": "te\x00am", "value": "a", "media_type": "text/plain"})
        after = (await client.get(labels)).json()["labels"]
    assert_quay_error(in_value, 400)
    assert_quay_error(in_key, 400)
    assert after == before


async def test_nul_in_a_robot_description_creates_no_robot(pushed: Pushed) -> None:
    async with pushed.client() as client:
        refused = await client.put("/api/v1/user/robots/builder", json={"description": "ci\x00"})
        lookup = await client.get("/api/v1/user/robots/builder")
    assert_quay_error(refused, 400)
    assert lookup.status_code == 404


async def test_manifest_annotations_with_nul_are_kept_in_the_manifest_and_left_out_of_labels(
    pushed: Pushed,
) -> None:
    annotations = {"org.example.bad": "x\x00y", "org.example.good": "yes", "bad\x00key": "z"}
    referrer = random_image(layer_count=1, subject=descriptor(OCI_MANIFEST, pushed.image.manifest))
    referrer.extra["annotations"] = annotations
    async with pushed.client() as client:
        digest = await push_image(client, pushed.name, referrer, "annotated")
        raw = await client.get(f"/v2/{pushed.name}/manifests/{digest}", headers={"Accept": OCI_MANIFEST})
        labels = (await client.get(f"{pushed.api_path}/manifest/{digest}/labels")).json()["labels"]
        referrers = await client.get(f"/v2/{pushed.name}/referrers/{pushed.digest}")
    assert raw.content == referrer.manifest
    assert {(label["key"], label["value"]) for label in labels} == {("org.example.good", "yes")}
    (listed,) = referrers.json()["manifests"]
    assert listed["annotations"] == {"org.example.good": "yes"}


async def test_image_config_labels_with_nul_are_left_out(pushed: Pushed) -> None:
    config = json.dumps(
        {"architecture": "amd64", "os": "linux", "config": {"Labels": {"bad": "a\x00", "good": "b"}}}
    ).encode()
    image = Image(config=config, layers=[b"layer"])
    async with pushed.client() as client:
        digest = await push_image(client, pushed.name, image, "labelled")
        labels = (await client.get(f"{pushed.api_path}/manifest/{digest}/labels")).json()["labels"]
    assert {(label["key"], label["value"]) for label in labels} == {("good", "b")}


# Deeply nested JSON


@pytest.mark.parametrize("body", [DEEP_ARRAY, "[" * 2048, '{"schemaVersion": 2, "a": ' + DEEP_ARRAY + "}"])
async def test_deeply_nested_manifest_is_manifest_invalid_and_stores_nothing(
    pushed: Pushed, body: str
) -> None:
    async with pushed.client() as client:
        response = await client.put(
            f"/v2/{pushed.name}/manifests/deep", content=body.encode(), headers={"Content-Type": OCI_MANIFEST}
        )
        lookup = await client.head(f"/v2/{pushed.name}/manifests/deep")
    assert_oci_error(response, 400, "MANIFEST_INVALID")
    assert lookup.status_code == 404


@pytest.mark.parametrize("body", [DEEP_ARRAY, '{"description": ' + DEEP_ARRAY + "}", "{" * 2048])
async def test_deeply_nested_api_bodies_are_a_quay_400(pushed: Pushed, body: str) -> None:
    async with pushed.client() as client:
        response = await client.put(
            pushed.api_path, content=body.encode(), headers={"Content-Type": "application/json"}
        )
    assert_quay_error(response, 400)


async def test_deeply_nested_label_value_is_stored_as_text(pushed: Pushed) -> None:
    labels = f"{pushed.api_path}/manifest/{pushed.digest}/labels"
    async with pushed.client() as client:
        response = await client.post(labels, json={"key": "deep", "value": DEEP_ARRAY})
    assert response.status_code == 201, response.text
    assert response.json()["label"]["media_type"] == "text/plain"


@pytest.fixture
async def mirror_client(database_url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The mirror service's own app, on the test's database."""
    app = create_mirror_app(registry_settings(database_url, tmp_path / "storage"))
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://mirror.test") as client,
    ):
        yield client


@pytest.mark.parametrize(
    "body", [DEEP_ARRAY, '{"external_reference": "x", "sync_interval": ' + HUGE + "}", '{"a": "\\u0000"}']
)
async def test_mirror_service_refuses_bodies_beyond_the_bounds(
    mirror_client: httpx.AsyncClient, body: str
) -> None:
    response = await mirror_client.post(
        "/api/v1/repository/acme/app/mirror",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_quay_error(response, 400)


async def test_mirror_service_refuses_nul_in_the_path(mirror_client: httpx.AsyncClient) -> None:
    response = await mirror_client.get("/api/v1/repository/acme/a%00pp/mirror")
    assert_quay_error(response, 400)


# Oversized numbers


async def test_range_start_beyond_every_blob_is_416(pushed: Pushed) -> None:
    layer = pushed.image.layers[0]
    url = f"/v2/{pushed.name}/blobs/{descriptor('x', layer)['digest']}"
    async with pushed.client() as client:
        start = await client.get(url, headers={"Range": f"bytes={HUGE}-"})
        end = await client.get(url, headers={"Range": f"bytes=0-{HUGE}"})
        suffix = await client.get(url, headers={"Range": f"bytes=-{HUGE}"})
    assert_oci_error(start, 416, "SIZE_INVALID")
    assert start.headers["Content-Range"] == f"bytes */{len(layer)}"
    for whole in (end, suffix):
        assert whole.status_code == 206, whole.text
        assert whole.content == layer


async def test_content_range_beyond_int64_is_416(pushed: Pushed) -> None:
    async with pushed.client() as client:
        started = await client.post(f"/v2/{pushed.name}/blobs/uploads/")
        location = started.headers["Location"]
        response = await client.patch(location, content=b"abc", headers={"Content-Range": f"{HUGE}-{HUGE}"})
        status = await client.get(location)
    assert_oci_error(response, 416, "BLOB_UPLOAD_INVALID")
    assert status.headers["Range"] == "0-0"


@pytest.mark.parametrize("path", ["/v2/{name}/manifests/v2", "/api/v1/repository/{name}"])
async def test_content_length_beyond_int64_is_400(pushed: Pushed, path: str) -> None:
    url = path.format(name=pushed.name)
    async with pushed.client() as client:
        request = client.build_request("PUT", url, content=b"{}", headers={"Content-Type": OCI_MANIFEST})
        request.headers["Content-Length"] = HUGE
        response = await client.send(request)
    if url.startswith("/v2"):
        assert_oci_error(response, 400, "UNSUPPORTED")
    else:
        assert_quay_error(response, 400)


def _manifest(pushed: Pushed, schema_version: object = 2, config_size: object = None) -> bytes:
    config = descriptor("application/vnd.oci.image.config.v1+json", pushed.image.config)
    if config_size is not None:
        config["size"] = config_size
    body = {"schemaVersion": schema_version, "mediaType": OCI_MANIFEST, "config": config, "layers": []}
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("schema_version", "config_size"),
    [(2.0, None), (True, None), ("2", None), (2, 2**63), (2, -1), (2, 1.0), (2, int(HUGE[:30]))],
)
async def test_schema_version_and_sizes_must_be_json_integers_in_range(
    pushed: Pushed, schema_version: object, config_size: object
) -> None:
    async with pushed.client() as client:
        response = await client.put(
            f"/v2/{pushed.name}/manifests/strict",
            content=_manifest(pushed, schema_version, config_size),
            headers={"Content-Type": OCI_MANIFEST},
        )
    assert_oci_error(response, 400, "MANIFEST_INVALID")


async def test_manifest_integer_beyond_python_limit_is_manifest_invalid(pushed: Pushed) -> None:
    body = _manifest(pushed).replace(b'"schemaVersion": 2', b'"schemaVersion": ' + HUGE.encode())
    async with pushed.client() as client:
        response = await client.put(
            f"/v2/{pushed.name}/manifests/huge", content=body, headers={"Content-Type": OCI_MANIFEST}
        )
    assert_oci_error(response, 400, "MANIFEST_INVALID")


@pytest.mark.parametrize("number", [str(2**63), HUGE, "-" + HUGE])
async def test_api_integers_beyond_int64_are_a_quay_400(registry: Registry, number: str) -> None:
    owner = await registry.user()
    org = await registry.organization(owner)
    async with registry.client(owner) as client:
        response = await client.put(
            f"/api/v1/organization/{org}",
            content=f'{{"tag_expiration_s": {number}}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
    assert_quay_error(response, 400)


# Names: full-string matches


async def test_organization_named_like_admin_with_a_newline_is_refused(registry: Registry) -> None:
    user = await registry.user()
    async with registry.client(user) as client:
        response = await client.post("/api/v1/organization/", json={"name": "admin\n", "email": "a@b.c"})
    stored = await registry.context.pool.fetchval("SELECT count(*) FROM namespace WHERE name LIKE 'admin%'")
    assert_quay_error(response, 400)
    assert stored == 0


async def test_names_with_a_trailing_newline_are_refused_through_the_api(pushed: Pushed) -> None:
    superuser = await pushed.registry.user(superuser=True)
    async with pushed.client() as client:
        repository = await client.post(
            "/api/v1/repository", json={"repository": "app2\n", "visibility": "private", "description": ""}
        )
        label = await client.post(
            f"{pushed.api_path}/manifest/{pushed.digest}/labels", json={"key": "team\n", "value": "x"}
        )
        listed = (await client.get("/api/v1/repository", params={"namespace": pushed.owner.username})).json()
    async with pushed.registry.client(superuser) as client:
        user = await client.post("/api/v1/superuser/users/", json={"username": "bob\n", "email": "b@c.d"})
    for response in (repository, label, user):
        assert_quay_error(response, 400)
    assert [repository["name"] for repository in listed["repositories"]] == ["app"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/{name}/manifests/v2%0A",
        "/v2/{name}%0A/blobs/uploads/",
        "/v2/{name}/blobs/{digest}%0A",
        "/v2/_catalog%0A",
    ],
)
async def test_a_newline_in_a_v2_path_is_name_invalid(pushed: Pushed, path: str) -> None:
    async with pushed.client() as client:
        response = await client.put(
            path.format(name=pushed.name, digest=pushed.digest),
            content=pushed.image.manifest,
            headers={"Content-Type": OCI_MANIFEST},
        )
    assert_oci_error(response, 400, "NAME_INVALID")


@pytest.mark.parametrize(
    "path", ["/api/v1/user/robots/bot%0A", "/api/v1/repository/{name}/tag/v2%0A", "/api/v1/organization/a%0A"]
)
async def test_a_newline_in_an_api_path_is_a_quay_400(pushed: Pushed, path: str) -> None:
    async with pushed.client() as client:
        response = await client.put(path.format(name=pushed.name), json={"manifest_digest": pushed.digest})
        tags = (await client.get(f"{pushed.api_path}/tag/")).json()["tags"]
    assert_quay_error(response, 400)
    assert [tag["name"] for tag in tags] == ["v1"]


# The last line of defence


@pytest.mark.parametrize("path", ["/v2/probe", "/api/v1/probe"])
async def test_a_value_postgresql_refuses_is_a_400_in_the_protocol_format(
    database_url: str, path: str
) -> None:
    """Should a NUL slip past the boundary, PostgreSQL's refusal is a 400, not a 500."""
    app = FastAPI()
    app.add_exception_handler(asyncpg.DataError, database_input_handler)

    @app.get(path)
    async def probe() -> str:
        conn = await asyncpg.connect(database_url)
        try:
            return str(await conn.fetchval("SELECT $1::text", "a\x00b"))
        finally:
            await conn.close()

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://probe.test"
    ) as client:
        response = await client.get(path)
    if path.startswith("/v2"):
        assert_oci_error(response, 400, "UNSUPPORTED")
    else:
        assert_quay_error(response, 400)
