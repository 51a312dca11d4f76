"""Proxy pull-through cache: organizations that cache an upstream registry (docs/architecture.md)."""
