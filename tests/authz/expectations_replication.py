"""Authorization-matrix entries for the replication targets and status API (merged by test_matrix.py).

Superusers only. Each write probe acts on a fresh organization of the acme admin, so that acme's
own replication settings never change under other probes.
"""

from __future__ import annotations

from tests.authz.expectations import SUPERUSER, Expectation, Probe, nothing
from tests.authz.world import Role, World

_NAMESPACE = "/api/v1/superuser/replication/{namespace}"


async def _fresh_organization(world: World, _role: Role) -> Probe:
    return Probe({"namespace": await world.new_organization()}, json={"locations": ["local"]})


EXPECTATIONS: dict[str, Expectation] = {
    "GET /api/v1/superuser/replication/status": Expectation(SUPERUSER, nothing),
    f"GET {_NAMESPACE}": Expectation(SUPERUSER, _fresh_organization),
    f"PUT {_NAMESPACE}": Expectation(SUPERUSER, _fresh_organization),
    f"DELETE {_NAMESPACE}": Expectation(SUPERUSER, _fresh_organization),
}
