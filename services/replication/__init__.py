"""The replication service: copies blobs to every location they must reach, verified; status and metrics."""
