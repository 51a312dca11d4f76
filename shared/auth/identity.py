"""Who is making a request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class Identity(BaseModel):
    """An authenticated user or robot. Robots are named '<namespace>+<shortname>'."""

    model_config = ConfigDict(frozen=True)

    kind: Literal["user", "robot"]
    id: int
    name: str
    namespace_id: int
    is_superuser: bool = False
