"""Server processes for end-to-end tests and the benchmark: start, wait until serving, stop."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import signal
import socket
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx

from tests.support.waiting import eventually

STOP_TIMEOUT_S = 10.0
_OUTPUT_LINES_KEPT = 200
_PENDING_BYTES_KEPT = 8192


class ServerStartError(RuntimeError):
    """The server exited or did not answer in time; the message ends with its last output lines."""


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class ServerProcess:
    """A child process whose merged stdout/stderr is drained continuously, the last lines kept."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._output: collections.deque[str] = collections.deque(maxlen=_OUTPUT_LINES_KEPT)
        self._drain = asyncio.create_task(self._drain_output())

    @classmethod
    async def start(
        cls, args: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> ServerProcess:
        process = await asyncio.create_subprocess_exec(
            *args,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def exited(self) -> bool:
        return self.process.returncode is not None

    def output_tail(self) -> str:
        return "\n".join(self._output)

    async def wait_until_serving(
        self, url: str, accepted: frozenset[int] = frozenset({200}), timeout_s: float = 30.0
    ) -> None:
        """Poll GET `url` until its status is in `accepted`; ServerStartError if the process exits
        or `timeout_s` passes first."""
        async with httpx.AsyncClient(timeout=2.0) as client:

            async def serving() -> bool:
                if self.exited:
                    raise ServerStartError(
                        f"exited with {self.process.returncode} while starting:\n{self.output_tail()}"
                    )
                with contextlib.suppress(httpx.TransportError):
                    return (await client.get(url)).status_code in accepted
                return False

            try:
                await eventually(serving, timeout_s, step_s=0.1)
            except TimeoutError:
                raise ServerStartError(
                    f"GET {url} not answered within {timeout_s}s:\n{self.output_tail()}"
                ) from None

    async def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM, then SIGKILL when the process has not exited within `timeout_s`."""
        if not self.exited:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), timeout_s)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    self.process.kill()
                await self.process.wait()
        await self._drain

    async def _drain_output(self) -> None:
        # Chunks rather than readline(): a line longer than the stream's limit must not stop the drain.
        assert self.process.stdout is not None
        pending = b""
        while chunk := await self.process.stdout.read(65536):
            *lines, pending = (pending + chunk).split(b"\n")
            self._output.extend(line.decode(errors="replace") for line in lines)
            pending = pending[-_PENDING_BYTES_KEPT:]
        if pending:
            self._output.append(pending.decode(errors="replace"))
