"""Authorization-matrix entries for the web UI's own routes (merged by test_matrix.py): the page and
its static files are public; what the UI shows comes from /api/v1, whose entries decide access."""

from __future__ import annotations

from tests.authz.expectations import PUBLIC, Expectation, Probe, fixed, nothing

# Any well-formed version answers the current file (revalidated); the current one is cached for a year.
_STATIC = fixed(lambda _world: Probe({"version": "0" * 16, "path": "app.js"}))

EXPECTATIONS: dict[str, Expectation] = {
    "GET /": Expectation(PUBLIC, nothing),
    "GET /static/ui/{version}/{path:path}": Expectation(PUBLIC, _STATIC),
}
