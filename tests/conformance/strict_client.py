"""A strict registry client, as the conformance suite's (reggie) behaves, and the suite's check report.

``ChallengeAuth`` sends every request without credentials first. On a 401 carrying a Bearer
challenge it asks the challenge's realm, with the user's Basic credentials, for a token of exactly
the challenged scope (nothing added, nothing guessed) and retries once with that token. A registry
whose challenge does not name what the request needs therefore fails here as it fails real clients.
"""

from __future__ import annotations

import base64
import contextlib
import urllib.request
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field

import httpx
import jwt


@dataclass(frozen=True)
class Challenge:
    realm: str
    service: str | None
    scope: str | None
    error: str | None


def parse_challenge(header: str) -> Challenge | None:
    """The parameters of a ``Bearer realm="…",service="…",scope="…"`` challenge; None for others."""
    scheme, _, parameters = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    values = urllib.request.parse_keqv_list(urllib.request.parse_http_list(parameters))
    if "realm" not in values:
        return None
    return Challenge(values["realm"], values.get("service"), values.get("scope"), values.get("error"))


@dataclass(frozen=True)
class TokenExchange:
    """One trip to the token endpoint: the challenge that caused it and the actions granted."""

    challenge: Challenge
    status_code: int
    granted: dict[str, list[str]]


def granted_actions(token: str) -> dict[str, list[str]]:
    """'<type>:<name>' -> actions of the token's access claims (read, not verified: a client's view)."""
    claims = jwt.decode(token, options={"verify_signature": False})
    return {f"{claim['type']}:{claim['name']}": claim["actions"] for claim in claims.get("access", [])}


@dataclass
class ChallengeAuth(httpx.Auth):
    username: str
    password: str
    exchanges: list[TokenExchange] = field(default_factory=list)

    requires_response_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        response = yield request
        challenge = parse_challenge(response.headers.get("www-authenticate", ""))
        if response.status_code != 401 or challenge is None:
            return
        token_response = yield self._token_request(challenge)
        if token_response.status_code != 200:
            self.exchanges.append(TokenExchange(challenge, token_response.status_code, {}))
            return
        token: str = token_response.json()["token"]
        self.exchanges.append(TokenExchange(challenge, 200, granted_actions(token)))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _token_request(self, challenge: Challenge) -> httpx.Request:
        params = {
            name: value
            for name, value in (("service", challenge.service), ("scope", challenge.scope))
            if value is not None
        }
        basic = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return httpx.Request(
            "GET", challenge.realm, params=params, headers={"Authorization": f"Basic {basic}"}
        )


@dataclass
class Checks:
    """The named checks of one workflow, run in order like the Go suite's specs: a failing check is
    recorded and the workflow goes on; ``assert_all_passed`` reports every failure at the end."""

    workflow: str
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[None]:
        try:
            yield
        except Exception as error:  # any failure of a check is that check's result, as in the suite
            self.failed.append(f"{name}: {type(error).__name__}: {error}")
        else:
            self.passed.append(name)

    def assert_all_passed(self, expected_count: int) -> None:
        report = "\n".join(self.failed)
        assert not self.failed, f"{self.workflow}: {len(self.failed)} checks failed:\n{report}"
        assert len(self.passed) == expected_count, self.passed
