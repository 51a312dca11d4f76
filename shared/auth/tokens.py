"""Docker registry bearer tokens: signed JWTs carrying access claims.

See the Docker token authentication specification: a client asks the token endpoint for scopes
such as ``repository:ns/app:pull,push`` and presents the returned token on every /v2 request.
"""

from __future__ import annotations

import time
import uuid
from functools import lru_cache

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.auth.identity import Identity

ALGORITHM = "HS256"


class Access(BaseModel):
    """One access claim: resource type, name and the actions granted on it."""

    model_config = ConfigDict(frozen=True)

    type: str
    name: str
    actions: list[str]


class TokenClaims(BaseModel):
    model_config = ConfigDict(frozen=True)

    subject: str
    identity: Identity | None
    access: list[Access]
    expires_at: int

    def actions_for(self, resource_type: str, name: str) -> set[str]:
        return {
            action
            for claim in self.access
            if claim.type == resource_type and claim.name == name
            for action in claim.actions
        }


class InvalidTokenError(Exception):
    pass


def issue_token(
    *,
    secret: str,
    issuer: str,
    service: str,
    identity: Identity | None,
    access: list[Access],
    ttl_s: int,
) -> tuple[str, int, int]:
    """Return (token, issued_at, expires_in)."""
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": identity.name if identity else "",
        "aud": service,
        "iat": now,
        "nbf": now - 1,
        "exp": now + ttl_s,
        "jti": uuid.uuid4().hex,
        "access": [claim.model_dump() for claim in access],
        "identity": identity.model_dump() if identity else None,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), now, ttl_s


def decode_token(token: str, *, secret: str, issuer: str, service: str) -> TokenClaims:
    """Verify signature, issuer, audience and expiry; InvalidTokenError otherwise."""
    claims = _verified_claims(token, secret, issuer, service)
    if claims.expires_at <= time.time():
        raise InvalidTokenError("Signature has expired")
    return claims


# Clients present the same token on every request of a pull: verify each one once.
@lru_cache(maxsize=4096)
def _verified_claims(token: str, secret: str, issuer: str, service: str) -> TokenClaims:
    try:
        claims = jwt.decode(token, secret, algorithms=[ALGORITHM], audience=service, issuer=issuer)
        return TokenClaims(
            subject=claims.get("sub", ""),
            identity=Identity.model_validate(claims["identity"]) if claims.get("identity") else None,
            access=[Access.model_validate(item) for item in claims.get("access", [])],
            expires_at=claims["exp"],
        )
    except (jwt.PyJWTError, KeyError, ValidationError) as error:
        raise InvalidTokenError(str(error)) from error
