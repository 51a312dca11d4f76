"""Storage quota accounting, shared by the registry (enforcement at push) and the quota service.

The usage rule (docs/architecture.md, "Storage quota"): a namespace's usage is the sum of the sizes
of the distinct blobs referenced (manifest_blob) by the manifest rows of its repositories that are
not marked for deletion; a repository's usage likewise over its own manifests. Manifests stay, and
stay charged, while any tag row reaches them; garbage collection deletes them, releasing their bytes.
"""

from shared.quota.accounting import (
    UsageChange,
    at_reject_limit,
    count_saved_manifest,
    lock_namespace,
    lock_namespace_if_limited,
    recheck_digests,
    recheck_namespace,
    recheck_repository,
    usage_bytes,
    usage_with_digests,
)
from shared.quota.crossings import QuotaThreshold, check_crossings, reject_limit_bytes, thresholds
from shared.quota.recount import RecountResult, RepositoryDrift, recount_namespace

__all__ = [
    "QuotaThreshold",
    "RecountResult",
    "RepositoryDrift",
    "UsageChange",
    "at_reject_limit",
    "check_crossings",
    "count_saved_manifest",
    "lock_namespace",
    "lock_namespace_if_limited",
    "recheck_digests",
    "recheck_namespace",
    "recheck_repository",
    "recount_namespace",
    "reject_limit_bytes",
    "thresholds",
    "usage_bytes",
    "usage_with_digests",
]
