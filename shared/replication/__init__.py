"""Geo-replication's data, shared by the registry's API, the replication service and the CLI:
required locations (policy), queued copies (tasks), status, and removing a location (placements).
"""

from shared.replication.placements import (
    SoleCopies,
    SoleCopiesError,
    placement_count,
    remove_location,
    sole_copies,
)
from shared.replication.policy import (
    UnknownLocationError,
    check_location_names,
    namespace_targets,
    required_locations,
    set_namespace_targets,
)
from shared.replication.status import CopyError, LocationStatus, ReplicationStatus, replication_status
from shared.replication.tasks import (
    REPLICATION_CHANNEL,
    backfill,
    enqueue_for_namespace,
    enqueue_missing,
    notify_copiers,
)

__all__ = [
    "REPLICATION_CHANNEL",
    "CopyError",
    "LocationStatus",
    "ReplicationStatus",
    "SoleCopies",
    "SoleCopiesError",
    "UnknownLocationError",
    "backfill",
    "check_location_names",
    "enqueue_for_namespace",
    "enqueue_missing",
    "namespace_targets",
    "notify_copiers",
    "placement_count",
    "remove_location",
    "replication_status",
    "required_locations",
    "set_namespace_targets",
    "sole_copies",
]
