"""Property-based fuzzing (issue 15): the registry app through its own OpenAPI document with
schemathesis, and the raw parsers of client input with hypothesis.

Every operation gets a few derandomized examples (valid ones, with path parameters naming real
accounts, and invalid ones), sent in-process as a superuser. No answer may be a 5xx or take longer
than a request deadline, and every error must be in its protocol's format: OCI error JSON on /v2,
Quay's error JSON (``detail`` a string) on /api/v1.
"""

from __future__ import annotations

import base64
import json
import string
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.python import asgi

from services.registry.app import create_app
from services.registry.v2.blobs import requested_range
from services.registry.v2.errors import RegistryError
from services.registry.v2.uploads import parse_content_range
from shared.auth.accounts import create_organization, create_user
from shared.auth.names import InvalidNameError, check_namespace_name, check_robot_shortname
from shared.bounded_json import INT64_MAX, MAX_DEPTH, JsonBoundsError, loads_bounded
from shared.oci.manifest import InvalidManifestError, ParsedManifest, parse_manifest
from shared.oci.names import is_valid_label_key, is_valid_repository_name, is_valid_tag
from tests.fixtures.registry import registry_settings

# Examples per operation (134 operations: about 40 s on an idle 2-core machine), and the longest
# any answer may take: beyond it, the request counts as hanging.
EXAMPLES_PER_OPERATION = 3
REQUEST_DEADLINE_S = 30
FUZZER, FUZZER_SECRET, ORGANIZATION = "fuzzer", "fuzzer-secret-0123", "acme"
# Path parameters that name what exists, so that valid examples get past the lookups (not for
# DELETE: the organization must outlive the run).
REAL_PATH_PARAMETERS = {"orgname": ORGANIZATION, "namespace": ORGANIZATION, "prefix": "fu"}
# Health answers 503 when a dependency is down: that is its protocol, not a server error.
_EXEMPT_FROM_5XX = ("/health",)


@pytest.fixture
async def seeded_database(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        await create_user(conn, FUZZER, FUZZER_SECRET, superuser=True)
        await create_organization(conn, ORGANIZATION, FUZZER)
    finally:
        await conn.close()
    return database_url


@pytest.fixture
def fuzzed_schema(seeded_database: str, tmp_path: Path) -> Iterator[Any]:
    """The registry's OpenAPI document, loaded through the app (schemathesis runs the app and its
    lifespan on an event loop of its own, ended here)."""
    app = create_app(registry_settings(seeded_database, tmp_path / "storage", http_api_docs=True))
    try:
        yield schemathesis.openapi.from_asgi("/openapi.json", app)
    finally:
        asgi.shutdown_lifespans()


def protocol_format_problem(path: str, method: str, response: requests.Response) -> str | None:
    """What is wrong with an answer, if anything."""
    if response.status_code >= 500 and not path.startswith(_EXEMPT_FROM_5XX):
        return f"server error {response.status_code}: {response.text[:300]}"
    if response.status_code < 400 or method == "HEAD" or not path.startswith(("/v2", "/api/v1")):
        return None
    try:
        body = response.json()
    except ValueError:
        return f"{response.status_code} error is not JSON: {response.text[:300]!r}"
    if path.startswith("/v2"):
        errors = body.get("errors") if isinstance(body, dict) else None
        if not errors or not all(
            isinstance(e.get("code"), str) and isinstance(e.get("message"), str) for e in errors
        ):
            return f"{response.status_code} is not OCI error JSON: {body!r:.300}"
        return None
    quay_shape = isinstance(body, dict) and all(
        isinstance(body.get(field), kind)
        for field, kind in (("detail", str), ("error_message", str), ("error_type", str), ("status", int))
    )
    if not quay_shape or body["status"] != response.status_code:
        return f"{response.status_code} is not Quay error JSON: {body!r:.300}"
    return None


@pytest.mark.timeout(600)
def test_no_operation_answers_5xx_hangs_or_leaves_its_error_format(fuzzed_schema: Any) -> None:
    auth = {"Authorization": "Basic " + base64.b64encode(f"{FUZZER}:{FUZZER_SECRET}".encode()).decode()}
    problems: list[str] = []
    operations = [result.ok() for result in fuzzed_schema.get_all_operations()]
    assert len(operations) > 100  # the whole API is in the document
    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        real = {
            name: value
            for name, value in REAL_PATH_PARAMETERS.items()
            if name in names and operation.method.upper() != "DELETE"
        }
        cases = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=cases)
        def send(case: Any) -> None:
            try:
                response = case.call(headers=auth, timeout=REQUEST_DEADLINE_S)
            except requests.exceptions.ReadTimeout:
                problems.append(f"{case.method} {case.formatted_path}: no answer in {REQUEST_DEADLINE_S} s")
                return
            problem = protocol_format_problem(case.operation.path, case.method, response)
            if problem is not None:
                problems.append(f"{case.method} {case.formatted_path} {case.query or ''}: {problem}")

        send()
    assert problems == []


# The raw parsers


@given(
    header=st.text() | st.from_regex(r"bytes=[0-9]{0,25}-[0-9]{0,25}", fullmatch=True),
    size=st.integers(0, INT64_MAX),
)
@settings(derandomize=True, database=None, max_examples=300)
def test_range_parser_answers_a_range_within_the_blob_or_416(header: str, size: int) -> None:
    try:
        byte_range = requested_range(header, size)
    except RegistryError as error:
        assert error.status == 416
        return
    if byte_range is not None:
        assert 0 <= byte_range.first <= byte_range.last < size


@given(header=st.text() | st.from_regex(r"(bytes )?[0-9]{1,25}-[0-9]{1,25}", fullmatch=True))
@settings(derandomize=True, database=None, max_examples=300)
def test_content_range_parser_answers_int64_positions_or_nothing(header: str) -> None:
    positions = parse_content_range(header)
    if positions is not None:
        assert all(0 <= position < 10**19 for position in positions)
        assert all(character in string.digits + "bytes =-" for character in header.strip())


_JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text()
_JSON_DOCUMENTS = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=30,
)


def _depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max(map(_depth, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(_depth, value), default=0)
    return 0


@given(
    raw=st.binary()
    | _JSON_DOCUMENTS.map(lambda document: json.dumps(document).encode())
    | st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth)
)
@settings(derandomize=True, database=None, max_examples=300)
def test_bounded_json_decodes_within_bounds_or_refuses(raw: bytes) -> None:
    try:
        document = loads_bounded(raw)
    except JsonBoundsError:
        return
    except ValueError:  # not JSON at all
        return
    assert _depth(document) <= MAX_DEPTH


@given(
    body=st.binary()
    | _JSON_DOCUMENTS.map(lambda document: json.dumps({"schemaVersion": 2, "layers": [document]}).encode()),
    content_type=st.sampled_from([None, "application/vnd.oci.image.manifest.v1+json", "application/json"]),
)
@settings(derandomize=True, database=None, max_examples=300)
def test_manifest_parser_accepts_or_says_why(body: bytes, content_type: str | None) -> None:
    try:
        parsed = parse_manifest(body, content_type)
    except InvalidManifestError:
        return
    assert isinstance(parsed, ParsedManifest)
    assert parsed.size == len(body)


def _accepts(check: Any, name: str) -> bool:
    try:
        check(name)
    except InvalidNameError:
        return False
    return True


_VALIDATORS = {
    "namespace": lambda name: _accepts(check_namespace_name, name),
    "robot": lambda name: _accepts(check_robot_shortname, name),
    "repository": is_valid_repository_name,
    "tag": is_valid_tag,
    "label key": is_valid_label_key,
}


@pytest.mark.parametrize("kind", sorted(_VALIDATORS))
def test_valid_names_hold_no_whitespace_nor_control_characters(kind: str) -> None:
    is_valid = _VALIDATORS[kind]

    @given(name=st.text(min_size=1, max_size=40) | st.from_regex(r"[a-z0-9._/-]{1,40}", fullmatch=True))
    @settings(derandomize=True, database=None, max_examples=300)
    def check(name: str) -> None:
        if is_valid(name):
            assert name.isprintable() and not any(character.isspace() for character in name)
            assert not is_valid(name + "\n")

    check()
