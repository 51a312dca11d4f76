"""Authorization-matrix entries for tag immutability policies (merged into the matrix by test_matrix.py):
organization policies are for the organization's administrators, repository policies for the
repository's."""

from __future__ import annotations

from tests.authz.policy_probes import policy_expectations
from tests.authz.world import unique


def _new_policy_body() -> dict[str, object]:
    # A pattern no tag of the scenario has: the policy protects nothing the other probes change.
    return {"tagPattern": f"{unique('frozen')}-.*", "tagPatternMatches": True}


EXPECTATIONS = policy_expectations("immutabilitypolicy", _new_policy_body)
