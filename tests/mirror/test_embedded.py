"""The mirroring API served by the registry's app, as the embedded suite runs it."""

from __future__ import annotations

from pathlib import Path

import httpx

from services.mirror.app import include_mirror_api
from services.registry.app import create_app
from tests.fixtures.registry import registry_settings
from tests.mirror.helpers import MirrorService, mirror_body


async def test_the_registry_app_serves_the_mirroring_api(mirror_api: MirrorService, tmp_path: Path) -> None:
    scenario = await mirror_api.scenario()
    settings = registry_settings(mirror_api.settings.database_url, tmp_path / "storage")
    app = create_app(settings)
    include_mirror_api(app, settings)
    path = f"/api/v1/repository/{scenario.repository}/mirror"
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://suite", auth=scenario.owner.auth
        ) as client:
            missing = await client.get(path)
            assert missing.status_code == 404
            assert "no mirror configuration" in missing.json()["detail"]
            body = mirror_body("quay.io/library/app", scenario.robot.username)
            assert (await client.post(path, json=body)).status_code == 201
            view = await client.get(path)
            repository = await client.get(f"/api/v1/repository/{scenario.repository}")
    assert view.json()["external_reference"] == "quay.io/library/app"
    assert repository.status_code == 200  # the registry's own routes still answer
