"""Authorization-matrix entries for the session endpoints (merged into the matrix by test_matrix.py)."""

from __future__ import annotations

from tests.authz.expectations import Expectation

EXPECTATIONS: dict[str, Expectation] = {}
