"""`quayside backup` and `quayside restore`: a consistent, restorable copy of a whole installation.

A backup folder holds backup.json (what it contains: consistency point, row counts, every blob with
its size), database.dump (pg_dump custom format), blobs/ (every blob the dump references, laid out as
in a filesystem location) and config.json (the secrets and storage settings to run again, mode 0600).

Consistency (docs/architecture.md, "Backup and restore"): the backup takes a lease (GC deletes no
blob while one is held, shared/backup_lease.py), then dumps the database in one REPEATABLE READ
snapshot exported to pg_dump, lists every placed blob in that same snapshot and copies them. Blobs
are content-addressed and immutable, so pushes continuing meanwhile cannot change what is copied.
"""
