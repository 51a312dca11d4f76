"""The operations the registry app serves, read from its routes, and requests built for them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts

from services.registry.app import create_app
from tests.fixtures.registry import registry_settings

_PARAMETER = re.compile(r"\{(\w+)(?::\w+)?\}")


def operations(app: FastAPI) -> list[str]:
    """Every "METHOD /path/template" of the app's API routes, in the app's order (FastAPI's own
    documentation pages excluded)."""
    found: dict[str, None] = {}
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path is not None:
            for method in sorted(context.methods or ()):
                found[f"{method} {context.path}"] = None
    return list(found)


def registry_operations() -> list[str]:
    """The registry app's operations; the app is only built (no database is needed for its routes)."""
    settings = registry_settings("postgresql://127.0.0.1/unused", Path("unused"))
    return operations(create_app(settings))


def filled(template: str, parameters: Mapping[str, str]) -> str:
    """The path template with its parameters ('{name}', '{name:path}') replaced by their values."""
    return _PARAMETER.sub(lambda match: parameters[match.group(1)], template)
