"""Authorization-matrix entries for the proxy cache configuration API (merged by test_matrix.py).

Every probe acts on a fresh organization of the acme admin, so that acme never becomes a cache (its
pushes are probed too). Validation needs an upstream that answers as a registry: a loopback stub
answering GET /v2/ with Distribution's API version header, started once per event loop.
"""

from __future__ import annotations

import asyncio

from tests.authz.expectations import ORG_ADMIN, Expectation, Probe
from tests.authz.world import Role, World

_PATH = "/api/v1/organization/{orgname}/proxycache"
_STUB_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nDocker-Distribution-API-Version: registry/2.0\r\n"
    b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
)
_stubs: dict[asyncio.AbstractEventLoop, str] = {}


async def _answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(65536)  # a request, or a TLS hello (answered in plain HTTP all the same)
    writer.write(_STUB_RESPONSE)
    await writer.drain()
    writer.close()


async def _stub_registry() -> str:
    """host:port of the stub registry of the running loop."""
    loop = asyncio.get_running_loop()
    if loop not in _stubs:
        server = await asyncio.start_server(_answer, "127.0.0.1", 0)
        _stubs[loop] = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
    return _stubs[loop]


async def fresh_organization(world: World, _role: Role) -> Probe:
    return Probe({"orgname": await world.new_organization()})


async def new_config(world: World, _role: Role) -> Probe:
    body = {"upstream_registry": "registry.example.test/library", "expiration_s": 600}
    return Probe({"orgname": await world.new_organization()}, json=body)


async def configured_organization(world: World, _role: Role) -> Probe:
    organization = await world.new_organization()
    body = {"upstream_registry": "registry.example.test"}
    await world.as_admin("POST", _PATH.format(orgname=organization), json=body)
    return Probe({"orgname": organization})


async def validation(world: World, _role: Role) -> Probe:
    body = {"upstream_registry": await _stub_registry(), "insecure": True}
    return Probe({"orgname": await world.new_organization()}, json=body)


EXPECTATIONS: dict[str, Expectation] = {
    f"GET {_PATH}": Expectation(ORG_ADMIN, fresh_organization),
    f"POST {_PATH}": Expectation(ORG_ADMIN, new_config),
    f"DELETE {_PATH}": Expectation(ORG_ADMIN, configured_organization),
    f"POST {_PATH}/validate": Expectation(ORG_ADMIN, validation),
    "POST /api/v1/organization/{orgname}/validateproxycache": Expectation(ORG_ADMIN, validation),
}
