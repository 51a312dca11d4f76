"""What one garbage-collection pass deleted (or, dry, would delete): counts, rows per table, bytes
per storage location, and the items themselves for `quayside gc run` to print."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class DeletedManifest:
    repository_id: int
    digest: str


@dataclass(frozen=True, slots=True)
class DeletedBlob:
    digest: str
    size: int
    locations: tuple[str, ...]


@dataclass
class PassTally:
    tags_purged: int = 0
    repositories_purged: int = 0
    namespaces_purged: int = 0
    manifests: list[DeletedManifest] = field(default_factory=list)
    blobs: list[DeletedBlob] = field(default_factory=list)
    rows_by_table: Counter[str] = field(default_factory=Counter)
    bytes_by_location: Counter[str] = field(default_factory=Counter)

    def rows(self, table: str, count: int) -> None:
        if count:
            self.rows_by_table[table] += count

    @property
    def bytes_reclaimed(self) -> int:
        return sum(self.bytes_by_location.values())
