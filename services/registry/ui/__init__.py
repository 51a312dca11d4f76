"""The web UI: static ES modules and one stylesheet (no build step), served by the registry at ``/``.
The pages call only ``/api/v1`` with the session login, so permissions have one source of truth."""
