"""Where the registry keeps things inside a storage location."""

from __future__ import annotations


def blob_path(digest: str) -> str:
    """blobs/<algorithm>/<first two hex>/<hex> for a validated digest."""
    algorithm, hex_part = digest.split(":", 1)
    return f"blobs/{algorithm}/{hex_part[:2]}/{hex_part}"


# Every upload session's chunks live in a folder of its own below this one.
UPLOADS_FOLDER = "uploads"


def upload_folder(upload_id: str) -> str:
    return f"{UPLOADS_FOLDER}/{upload_id}"


def upload_chunk_path(upload_id: str, index: int) -> str:
    return f"{UPLOADS_FOLDER}/{upload_id}/{index:08d}"
