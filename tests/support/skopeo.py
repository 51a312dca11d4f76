"""Running Debian's skopeo as an asyncio subprocess."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib

from pydantic import BaseModel, ConfigDict


class SkopeoError(Exception):
    """skopeo exited non-zero; the message holds its command line and stderr."""

    def __init__(self, result: SkopeoResult) -> None:
        super().__init__(f"skopeo {' '.join(result.args)} exited {result.returncode}: {result.stderr}")
        self.result = result


class SkopeoResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    args: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    def check(self) -> SkopeoResult:
        """This result; SkopeoError when skopeo failed."""
        if not self.ok:
            raise SkopeoError(self)
        return self


async def run_skopeo(*args: str, timeout_s: float = 300.0) -> SkopeoResult:
    """Run `skopeo --insecure-policy ARGS...`; killed, and TimeoutError raised, after `timeout_s`.

    `--insecure-policy` keeps the host's /etc/containers/policy.json out of the tests.
    """
    process = await asyncio.create_subprocess_exec(
        "skopeo",
        "--insecure-policy",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(timeout_s):
            stdout, stderr = await process.communicate()
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return SkopeoResult(
        args=args, returncode=process.returncode, stdout=stdout, stderr=stderr.decode(errors="replace")
    )


async def manifest_digest(reference: str, *auth: str) -> str:
    """sha256 digest of the raw manifest `skopeo inspect --raw` reads at the reference."""
    result = (await run_skopeo("inspect", "--raw", "--tls-verify=false", *auth, reference)).check()
    return f"sha256:{hashlib.sha256(result.stdout).hexdigest()}"
