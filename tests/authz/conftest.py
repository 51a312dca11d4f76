"""One scenario (tests.authz.world) per test module: its own database, storage and receiver.

Building it takes a few seconds, so a module's tests share it; a test that changes something acts
on a target made for it, so no test depends on another's leftovers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.authz.world import World, build_world
from tests.fixtures.postgres import ADMIN_DSN, TemplateCopies
from tests.fixtures.registry import registry_settings
from tests.support.receivers import http_receiver
from tests.support.registry_app import running_registry


@pytest.fixture(scope="module")
async def module_database_url(template_copies: TemplateCopies) -> AsyncIterator[str]:
    """A migrated, empty database for the module's scenario."""
    name = await template_copies.take()
    yield f"{ADMIN_DSN.rpartition('/')[0]}/{name}"
    template_copies.release(name)


@pytest.fixture(scope="module")
async def world(module_database_url: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    root = tmp_path_factory.mktemp("authz")
    settings = registry_settings(
        module_database_url,
        root / "storage",
        log_export_dir=str(root / "exports"),
        public_url="http://registry.test",
    )
    async with http_receiver() as receiver, running_registry(settings) as registry:
        yield await build_world(registry, receiver)


_MATRIX_TESTS = {
    "test_authorization": "roles x operations, Basic credentials",
    "test_authorization_with_bearer_tokens": "roles x /v2 repository operations, /v2/auth tokens",
    "test_public_repository": "roles x operations on a public repository",
}
_MATRIX_SIZE = pytest.StashKey[dict[str, int]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    counts = dict.fromkeys(_MATRIX_TESTS, 0)
    for item in session.items:
        name = getattr(item, "originalname", "")
        if name in counts and item.nodeid.startswith("tests/authz/"):
            counts[name] += 1
    session.config.stash[_MATRIX_SIZE] = counts


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """The closing note: how many role x operation cases the authorization matrix ran."""
    counts = config.stash.get(_MATRIX_SIZE, {})
    if not any(counts.values()):
        return
    parts = ", ".join(f"{counts[name]} ({what})" for name, what in _MATRIX_TESTS.items())
    terminalreporter.write_line(f"authorization matrix: {sum(counts.values())} cases: {parts}")
