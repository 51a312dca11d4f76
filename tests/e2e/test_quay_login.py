"""Logging in to a running registry as Quay's web clients and scripts do, over real HTTP:
GET /csrf_token, POST /api/v1/signin with X-CSRF-Token, then the session cookie on every call and
the CSRF token (X-Next-CSRF-Token) on writes; POST /api/v1/signout."""

from __future__ import annotations

import httpx
import pytest

from tests.fixtures.live_registry import LiveRegistry

pytestmark = pytest.mark.e2e

SESSION_COOKIE = "quayside_session"


async def test_a_quay_style_session_logs_in_writes_and_signs_out(live_registry: LiveRegistry) -> None:
    user = await live_registry.user()
    async with httpx.AsyncClient(
        base_url=live_registry.url, headers={"X-Requested-With": "XMLHttpRequest"}
    ) as web:
        token = (await web.get("/csrf_token")).json()["csrf_token"]
        signin = await web.post(
            "/api/v1/signin",
            json={"username": user.username, "password": user.password},
            headers={"X-CSRF-Token": token},
        )
        assert signin.status_code == 200 and signin.json() == {"success": True}, signin.text
        token = signin.headers["X-Next-CSRF-Token"]

        me = await web.get("/api/v1/user/")
        token = me.headers["X-Next-CSRF-Token"]
        created = await web.post(
            "/api/v1/organization/", json={"name": "sessionorg"}, headers={"X-CSRF-Token": token}
        )
        repository = await web.post(
            "/api/v1/repository",
            json={"namespace": "sessionorg", "repository": "app", "visibility": "private", "description": ""},
            headers={"X-CSRF-Token": created.headers["X-Next-CSRF-Token"]},
        )
        without_csrf = await web.post(
            "/api/v1/repository",
            json={
                "namespace": "sessionorg",
                "repository": "forged",
                "visibility": "private",
                "description": "",
            },
        )
        secret = web.cookies[SESSION_COOKIE]
        signout = await web.post("/api/v1/signout", headers={"X-CSRF-Token": token})

    assert me.status_code == 200 and me.json()["username"] == user.username
    assert created.status_code == 201, created.text
    assert repository.status_code == 201, repository.text
    assert without_csrf.status_code == 403
    assert without_csrf.json()["detail"] == "CSRF token was invalid or missing."
    assert without_csrf.json()["error_message"] == without_csrf.json()["detail"]
    assert signout.status_code == 200

    async with httpx.AsyncClient(base_url=live_registry.url, cookies={SESSION_COOKIE: secret}) as stale:
        after_signout = await stale.get("/api/v1/user/")
        stale_write = await stale.post(
            "/api/v1/organization/", json={"name": "afterorg"}, headers={"X-CSRF-Token": token}
        )
    async with httpx.AsyncClient(base_url=live_registry.url, auth=user.auth) as basic:
        listed = await basic.get("/api/v1/repository", params={"namespace": "sessionorg"})
        basic_write = await basic.post(
            "/api/v1/repository",
            json={
                "namespace": "sessionorg",
                "repository": "bybasic",
                "visibility": "private",
                "description": "",
            },
        )
    assert after_signout.status_code == 401 and stale_write.status_code == 401
    assert basic_write.status_code == 201, basic_write.text  # no CSRF token needed with Basic
    assert [entry["name"] for entry in listed.json()["repositories"]] == ["app"]
