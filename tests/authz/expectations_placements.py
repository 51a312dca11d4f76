"""Authorization-matrix entries for the blob placements of a manifest (merged by test_matrix.py).

Placements are operational information: admins of the repository (its admins, acme's admins and
superusers) may read them; readers, writers and the robot may not.
"""

from __future__ import annotations

from tests.authz.expectations import REPO, REPO_ADMIN, Expectation, Probe, app, fixed

EXPECTATIONS: dict[str, Expectation] = {
    f"GET {REPO}/manifest/{{manifestref}}/placements": Expectation(
        REPO_ADMIN, fixed(lambda w: Probe(app(manifestref=w.image.digest)))
    ),
}
