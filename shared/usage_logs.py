"""Usage logs: who changed what, from where and when, written in the transaction of the change.

Kinds carry Quay's names so that Quay tooling reads them unchanged. Every service that changes
something a namespace owner should be able to audit (the registry, the mirror, ...) records here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel, ConfigDict

from shared.auth.identity import Identity

KINDS: frozenset[str] = frozenset(
    {
        # accounts
        "user_create",
        "user_delete",
        "user_change_email",
        "user_change_password",
        "user_change_tag_expiration",
        "user_enable",
        "user_disable",
        "login_success",
        "login_failure",
        "create_robot",
        "delete_robot",
        "regenerate_robot_token",
        "create_app_specific_token",
        "revoke_app_specific_token",
        # OAuth applications of organizations
        "create_application",
        "update_application",
        "delete_application",
        "reset_application_client_secret",
        # organizations and teams
        "org_create",
        "org_delete",
        "org_change_email",
        "org_change_tag_expiration",
        "org_create_team",
        "org_delete_team",
        "org_set_team_role",
        "org_set_team_description",
        "org_add_team_member",
        "org_remove_team_member",
        "create_prototype_permission",
        "modify_prototype_permission",
        "delete_prototype_permission",
        # repositories
        "create_repo",
        "delete_repo",
        "push_repo",
        "pull_repo",
        "change_repo_visibility",
        "set_repo_description",
        "change_repo_state",
        "add_repo_permission",
        "change_repo_permission",
        "delete_repo_permission",
        # tags and manifests
        "create_tag",
        "move_tag",
        "delete_tag",
        "revert_tag",
        "restore_tag",
        "change_tag_expiration",
        "permanently_delete_tag",
        "manifest_label_add",
        "manifest_label_delete",
        "create_immutability_policy",
        "update_immutability_policy",
        "delete_immutability_policy",
        "create_namespace_autoprune_policy",
        "update_namespace_autoprune_policy",
        "delete_namespace_autoprune_policy",
        "create_repository_autoprune_policy",
        "update_repository_autoprune_policy",
        "delete_repository_autoprune_policy",
        "autoprune_tag_delete",
        # mirroring
        "repo_mirror_enabled",
        "repo_mirror_disabled",
        "repo_mirror_config_changed",
        "repo_mirror_sync_started",
        "repo_mirror_sync_success",
        "repo_mirror_sync_failed",
        "repo_mirror_sync_tag_success",
        "repo_mirror_sync_tag_failed",
        "repo_mirror_sync_now_requested",
        # proxy cache and quota
        "create_proxy_cache_config",
        "delete_proxy_cache_config",
        "org_create_quota",
        "org_change_quota",
        "org_delete_quota",
        "org_create_quota_limit",
        "org_change_quota_limit",
        "org_delete_quota_limit",
        # global messages
        "create_global_message",
        "delete_global_message",
        # notifications and logs
        "add_repo_notification",
        "delete_repo_notification",
        "reset_repo_notification",
        "create_namespace_notification",
        "delete_namespace_notification",
        "reset_namespace_notification",
        "export_logs_success",
        "export_logs_failure",
        # Quayside extras: read-only mode switched at run time (services/registry/api/registry_state.py).
        "registry_read_only_enabled",
        "registry_read_only_disabled",
        # Quayside extras: per-namespace replication targets (services/registry/api/replication.py).
        "change_replication_targets",
        "delete_replication_targets",
    }
)


class Performer(BaseModel):
    """Who made a change: a user or a robot ('<namespace>+<shortname>'), by name."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["user", "robot"]
    name: str

    @classmethod
    def of(cls, identity: Identity | None) -> Performer | None:
        return None if identity is None else cls(kind=identity.kind, name=identity.name)


class UnknownLogKindError(ValueError):
    """The kind is not one of KINDS (a typo would otherwise hide entries from their readers)."""


async def record(
    conn: asyncpg.Connection,
    kind: str,
    *,
    performer: Performer | Identity | None,
    ip: str | None,
    namespace: str | None,
    repository: str | None = None,
    metadata: Mapping[str, Any] | None = None,
) -> None:
    """Write one log entry in the caller's transaction, so that it exists exactly when the change does.

    `namespace` None is a system-wide entry (only superusers read those). For repository entries,
    metadata gets Quay's `namespace` and `repo` keys unless the caller set them. Raises
    UnknownLogKindError for a kind outside KINDS and LookupError for an unknown namespace.
    """
    if kind not in KINDS:
        raise UnknownLogKindError(f"unknown usage log kind {kind!r}")
    who = Performer.of(performer) if isinstance(performer, Identity) else performer
    details = dict(metadata or {})
    if namespace is not None:
        details.setdefault("namespace", namespace)
    if repository is not None:
        details.setdefault("repo", repository)
    inserted = await conn.fetchval(
        "INSERT INTO log_entry (kind, namespace_id, repository, performer_kind, performer_name, ip, metadata)"
        " SELECT $1, n.id, $3, $4, $5, $6, $7"
        " FROM (SELECT id FROM namespace WHERE name = $2 UNION ALL SELECT NULL WHERE $2::text IS NULL) AS n"
        " RETURNING id",
        kind,
        namespace,
        repository,
        who.kind if who else None,
        who.name if who else None,
        ip,
        details,
    )
    if inserted is None:
        raise LookupError(f"no namespace {namespace!r}")
