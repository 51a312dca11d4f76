"""Authorization-matrix entries for an organization's members and outside collaborators and a team's
repository permissions (merged into the matrix by test_matrix.py): Quay lets only the
organization's admins see them."""

from __future__ import annotations

from tests.authz.expectations import ACME, ORG_ADMIN, Expectation, Probe, acme, fixed, on_acme
from tests.authz.world import READERS_TEAM, USERNAMES, Role

EXPECTATIONS: dict[str, Expectation] = {
    f"GET {ACME}/members": Expectation(ORG_ADMIN, on_acme),
    f"GET {ACME}/members/{{membername}}": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(membername=USERNAMES[Role.READER])))
    ),
    f"GET {ACME}/collaborators": Expectation(ORG_ADMIN, on_acme),
    f"GET {ACME}/team/{{teamname}}/permissions": Expectation(
        ORG_ADMIN, fixed(lambda _: Probe(acme(teamname=READERS_TEAM)))
    ),
}
