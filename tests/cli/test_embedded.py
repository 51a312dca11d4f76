"""`quayside up`: the one-command start, its restart on the same data folder, its account commands."""

from __future__ import annotations

import re
import socket
import stat

import httpx

from shared.oci.digest import digest_bytes
from tests.cli.conftest import EmbeddedInstall
from tests.cli.helpers import quayside
from tests.support.oci import push_image, random_image

ADMIN_PASSWORD = "admin-password-from-env"


def client(install: EmbeddedInstall, auth: tuple[str, str] | None = None) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=install.base_url, auth=auth, timeout=30)


async def status_of_version_check(install: EmbeddedInstall, auth: tuple[str, str]) -> int:
    async with client(install, auth) as http:
        return (await http.get("/v2/")).status_code


async def test_restart_keeps_content_accounts_and_tokens(install: EmbeddedInstall) -> None:
    admin = ("admin", ADMIN_PASSWORD)
    first = await install.start(QUAYSIDE_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert "Admin account created: admin, password from QUAYSIDE_ADMIN_PASSWORD" in first.output_tail()
    assert f"Quayside registry on {install.base_url}" in first.output_tail()
    assert await status_of_version_check(install, admin) == 200
    assert await status_of_version_check(install, ("admin", "wrong")) == 401

    image = random_image()
    async with client(install, admin) as http:
        await push_image(http, "admin/app", image, "v1")
        token_response = await http.get("/v2/auth", params={"scope": "repository:admin/app:pull"})
    assert token_response.status_code == 200
    token = token_response.json()["token"]

    # An account command joins the running install's database.
    added = await quayside("user", "create", "bob", "-p", "bob-password", env=install.env())
    assert added.returncode == 0, added.stderr
    assert await status_of_version_check(install, ("bob", "bob-password")) == 200

    assert await install.stop(first) == 0
    assert not (install.data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL still running"
    secret_mode = stat.S_IMODE((install.data_dir / "token-secret").stat().st_mode)
    assert secret_mode == 0o600

    # On a stopped install, an account command starts the embedded database by itself.
    robot = await quayside("robot", "create", "admin", "ci", env=install.env())
    assert robot.returncode == 0, robot.stderr
    robot_token = re.search(r"^token: (\S+)$", robot.stdout, re.MULTILINE)
    assert "username: admin+ci" in robot.stdout and robot_token

    second = await install.start(QUAYSIDE_ADMIN_PASSWORD="ignored-after-first-start")
    assert "Admin account created" not in second.output_tail()
    assert await status_of_version_check(install, admin) == 200
    assert await status_of_version_check(install, ("bob", "bob-password")) == 200
    assert await status_of_version_check(install, ("admin+ci", robot_token[1])) == 200
    async with client(install) as http:
        bearer = await http.get("/v2/", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 200, "a token signed before the restart must stay valid"
    async with client(install, admin) as http:
        manifest = await http.get("/v2/admin/app/manifests/v1", headers={"Accept": "*/*"})
        layer = await http.get(f"/v2/admin/app/blobs/{digest_bytes(image.layers[0])}")
    assert manifest.status_code == 200 and manifest.content == image.manifest
    assert layer.status_code == 200 and layer.content == image.layers[0]
    assert await install.stop(second) == 0


async def test_first_start_prints_a_generated_admin_password_once(install: EmbeddedInstall) -> None:
    first = await install.start(QUAYSIDE_ADMIN_USER="root")
    created = re.search(r"^Admin account created: root / (\S+)$", first.output_tail(), re.MULTILINE)
    assert created, first.output_tail()
    assert "shown once" in first.output_tail()
    assert await status_of_version_check(install, ("root", created[1])) == 200
    assert await install.stop(first) == 0

    second = await install.start(QUAYSIDE_ADMIN_USER="root")
    assert created[1] not in second.output_tail()
    assert await status_of_version_check(install, ("root", created[1])) == 200
    assert await install.stop(second) == 0


async def test_up_reports_a_taken_address_in_one_line(install: EmbeddedInstall) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", install.port))
        taken.listen()
        result = await quayside("up", env=install.env(QUAYSIDE_ADMIN_PASSWORD=ADMIN_PASSWORD))
    assert result.returncode == 1
    assert f"error: the server on {install.base_url} did not start" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (install.data_dir / "postgres" / "postmaster.pid").exists(), "PostgreSQL still running"


async def test_up_refuses_a_malformed_listen_address(install: EmbeddedInstall) -> None:
    result = await quayside("up", env=install.env(QUAYSIDE_LISTEN="no-port-here"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid setting listen:"), result.stderr
    assert "Traceback" not in result.stderr


async def test_account_commands_need_an_install_in_the_data_folder(install: EmbeddedInstall) -> None:
    result = await quayside("user", "create", "alice", env=install.env())
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: no Quayside install in {install.data_dir} (create one with `quayside up`)"
    )
