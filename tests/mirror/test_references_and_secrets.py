"""External references as Quay writes them, and upstream credentials at rest."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from services.mirror.credentials import SecretBox, UnreadableSecretError
from shared.config import Settings
from shared.oci.upstream_client import ExternalReference, InvalidReferenceError


@pytest.mark.parametrize(
    ("text", "scheme", "registry", "repository"),
    [
        ("quay.io/coreos/etcd", None, "quay.io", "coreos/etcd"),
        ("registry.example.com:5000/team/app/sub", None, "registry.example.com:5000", "team/app/sub"),
        ("127.0.0.1:5000/ns/app", None, "127.0.0.1:5000", "ns/app"),
        ("http://localhost:5000/ns/app", "http", "localhost:5000", "ns/app"),
        ("docker.io/alpine", None, "registry-1.docker.io", "library/alpine"),
        ("docker.io/grafana/grafana", None, "registry-1.docker.io", "grafana/grafana"),
    ],
)
def test_references(text: str, scheme: str | None, registry: str, repository: str) -> None:
    reference = ExternalReference.parse(text)
    assert (reference.scheme, reference.registry, reference.repository) == (scheme, registry, repository)


@pytest.mark.parametrize(
    "text",
    ["", "quay.io", "quay.io/", "quay.io/UPPER", "ftp://quay.io/a", "quay.io/a:tag", "quay.io//a", "a b/c"],
)
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        ExternalReference.parse(text)


def test_secrets_round_trip_with_a_configured_or_derived_key() -> None:
    configured = SecretBox.from_settings(Settings(secrets_key=Fernet.generate_key().decode()))
    derived = SecretBox.from_settings(Settings(token_secret="one-secret"))
    for box in (configured, derived):
        token = box.encrypt("password")
        assert token is not None and "password" not in token
        assert box.decrypt(token) == "password"
    assert derived.encrypt(None) is None and derived.decrypt(None) is None


def test_a_changed_key_makes_stored_secrets_unreadable() -> None:
    token = SecretBox.from_settings(Settings(token_secret="one-secret")).encrypt("password")
    with pytest.raises(UnreadableSecretError):
        SecretBox.from_settings(Settings(token_secret="another-secret")).decrypt(token)
