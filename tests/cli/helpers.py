"""Running Quayside's commands as real processes in tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.waiting import wait_until

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND_TIMEOUT_S = 120.0
POSTGRES_STOP_TIMEOUT_S = 60.0


def clean_env(**overrides: str) -> dict[str, str]:
    """This process's environment without QUAYSIDE_* variables, plus overrides."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("QUAYSIDE_")}
    return {**env, "PYTHONUNBUFFERED": "1", **overrides}


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def quayside(*args: str, env: dict[str, str]) -> Finished:
    """Run the `quayside` command (as `python -m quayside`) from the repository root to completion."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "quayside",
        *args,
        cwd=REPO_ROOT,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(COMMAND_TIMEOUT_S):
            stdout, stderr = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


async def stop_leftover_postgres(pgdata: Path) -> None:
    """Fast-stop an embedded PostgreSQL still running on pgdata (a killed `quayside up` leaves it)."""
    pid_file = pgdata / "postmaster.pid"
    if not pid_file.exists():
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(pid_file.read_text().split()[0]), signal.SIGINT)
    # The server removes its pid file last thing; nothing else signals that it has stopped.
    await wait_until(lambda: not pid_file.exists(), POSTGRES_STOP_TIMEOUT_S)
