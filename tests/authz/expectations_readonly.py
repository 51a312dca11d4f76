"""Authorization-matrix entries for read-only mode switched at run time (merged by test_matrix.py)."""

from __future__ import annotations

from tests.authz.expectations import SUPERUSER, Expectation, Probe, fixed, nothing

_STATE = "/api/v1/superuser/registrystate"

EXPECTATIONS: dict[str, Expectation] = {
    f"GET {_STATE}": Expectation(SUPERUSER, nothing),
    # Switching it off: the probe must not leave the shared registry read-only for other probes.
    f"PUT {_STATE}": Expectation(SUPERUSER, fixed(lambda _: Probe(json={"read_only": False}))),
}
