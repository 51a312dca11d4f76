"""The repository mirroring service: keeps MIRROR repositories in sync with external registries."""
