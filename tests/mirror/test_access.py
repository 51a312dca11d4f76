"""MIRROR repositories with a real client: only the mirror's robot pushes, readers pull as usual."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

from shared.auth.accounts import create_robot, create_user
from tests.fixtures.live_registry import LiveRegistry
from tests.fixtures.registry import Account
from tests.mirror.helpers import MirrorService, mirror_body
from tests.support.ocilayout import OciLayout
from tests.support.skopeo import run_skopeo


async def test_only_the_mirror_robot_pushes_to_a_mirror_and_readers_pull(
    mirror: MirrorService, live_registry: LiveRegistry, tmp_path: Path
) -> None:
    scenario = await mirror.scenario()
    layout = await asyncio.to_thread(OciLayout, tmp_path / "layout")
    image = await asyncio.to_thread(layout.add_image, [4096])
    await asyncio.to_thread(layout.tag, image, "v1")
    writer = Account(f"writer{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    reader = Account(f"reader{uuid.uuid4().hex[:8]}", uuid.uuid4().hex)
    async with mirror.pool.acquire() as conn:
        for account, role in ((writer, "write"), (reader, "read")):
            identity = await create_user(conn, account.username, account.password)
            await conn.execute(
                "INSERT INTO repository_permission (repository_id, user_id, role) VALUES ($1, $2, $3)",
                scenario.repository_id,
                identity.id,
                role,
            )
        other = await create_robot(conn, scenario.organization, "other")
        await conn.execute(
            "INSERT INTO repository_permission (repository_id, robot_id, role)"
            " SELECT $1, id, 'write' FROM robot WHERE shortname = 'other' AND namespace_id ="
            " (SELECT namespace_id FROM repository WHERE id = $1)",
            scenario.repository_id,
        )
    await mirror.create(scenario, mirror_body("registry.example.com/library/app", scenario.robot.username))

    async def push(account: Account, tag: str) -> tuple[bool, str]:
        result = await run_skopeo(
            "copy", "--dest-tls-verify=false", "--dest-creds", ":".join(account.auth),
            f"oci:{layout.root}:v1", live_registry.reference(scenario.repository, tag),
        )  # fmt: skip
        return result.ok, result.stderr

    for account in (scenario.owner, writer, Account(other.username, other.token)):
        pushed, stderr = await push(account, "refused")
        assert not pushed, account.username
        assert "only its mirror robot may push" in stderr, stderr
    pushed, stderr = await push(scenario.robot, "by-robot")
    assert pushed, stderr

    inspected = await run_skopeo(
        "inspect", "--raw", "--tls-verify=false", "--creds", ":".join(reader.auth),
        live_registry.reference(scenario.repository, "by-robot"),
    )  # fmt: skip
    inspected.check()
    deleted = await run_skopeo(
        "delete", "--tls-verify=false", "--creds", ":".join(writer.auth),
        live_registry.reference(scenario.repository, "by-robot"),
    )  # fmt: skip
    assert not deleted.ok
