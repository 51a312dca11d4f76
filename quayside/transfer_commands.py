"""`quayside export` and `quayside import`: air-gapped transfer through an archive file.

Both are clients of a running Quayside (its /v2 and /api/v1, with a user's or robot's credentials),
so the source and the target need not share anything but the archive. Expected failures (a corrupt
or incomplete archive, a refused request, a bad key) end with one `error:` line and exit status 1.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import httpx
import typer
from pydantic import ValidationError

from quayside.transfer import signing
from quayside.transfer.archive import ArchiveError
from quayside.transfer.client import RegistryClient, RegistryRequestError
from quayside.transfer.exporter import Selection, export_archive
from quayside.transfer.importer import import_archive, parse_mapping

app = typer.Typer()
export_app = typer.Typer(
    invoke_without_command=True,
    help="Export repositories into one archive for offline media (`export keygen` makes a signing key).",
)
app.add_typer(export_app, name="export")

_EXPECTED = (
    ArchiveError,
    RegistryRequestError,
    httpx.HTTPError,
    signing.KeyFileError,
    signing.SignatureError,
    ValidationError,
    ValueError,
    OSError,
)

RegistryOption = Annotated[
    str, typer.Option("--registry", envvar="QUAYSIDE_TRANSFER_REGISTRY", help="e.g. https://quay.example.com")
]
UsernameOption = Annotated[str, typer.Option("--username", "-u", envvar="QUAYSIDE_TRANSFER_USERNAME")]
PasswordOption = Annotated[
    str,
    typer.Option("--password", "-p", envvar="QUAYSIDE_TRANSFER_PASSWORD", help="Password or robot token."),
]
TlsVerifyOption = Annotated[
    bool, typer.Option("--tls-verify/--no-tls-verify", help="Check the registry's TLS certificate.")
]
CaCertOption = Annotated[
    Path | None,
    typer.Option("--ca-cert", help="CA certificate (PEM) the registry's certificate is issued by."),
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]


@contextmanager
def _reported() -> Iterator[None]:
    try:
        yield
    except _EXPECTED as error:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
        typer.echo(f"error: {text}", err=True)
        raise typer.Exit(1) from None


def _client(
    registry: str, username: str, password: str, tls_verify: bool, ca_cert: Path | None
) -> RegistryClient:
    verify: bool | str = str(ca_cert) if ca_cert is not None else tls_verify
    return RegistryClient(registry, username, password, verify=verify)


@export_app.callback()
def export(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="The archive to write (.tar).")
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option("--registry", envvar="QUAYSIDE_TRANSFER_REGISTRY", help="e.g. https://quay.example.com"),
    ] = None,
    username: Annotated[
        str | None, typer.Option("--username", "-u", envvar="QUAYSIDE_TRANSFER_USERNAME")
    ] = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", "-p", envvar="QUAYSIDE_TRANSFER_PASSWORD", help="Password or robot token."
        ),
    ] = None,
    repository: Annotated[
        list[str] | None,
        typer.Option("--repository", "-r", help="ns/repo[:tag-glob], repeatable; every tag without a glob."),
    ] = None,
    namespace: Annotated[
        list[str] | None,
        typer.Option("--namespace", "-n", help="Every repository of a namespace, repeatable."),
    ] = None,
    since: Annotated[
        Path | None, typer.Option("--since", help="An earlier archive: write only what it lacks.")
    ] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option("--sign-key", help="Ed25519 private key (PEM) that signs the checksum list."),
    ] = None,
    tls_verify: TlsVerifyOption = True,
    ca_cert: CaCertOption = None,
    quiet: QuietOption = False,
) -> None:
    """Write chosen repositories (tags, index children, referrers, labels, expirations) into one
    archive: an OCI image layout in a tar that `skopeo copy oci-archive:ARCHIVE:ns/repo:tag` reads."""
    if ctx.invoked_subcommand is not None:
        return
    with _reported():
        if output is None or registry is None or username is None or password is None:
            raise ValueError("--output, --registry, --username and --password are required")
        selections = [Selection.parse(text) for text in repository or []]
        key = signing.load_private_key(sign_key) if sign_key is not None else None

        async def run() -> None:
            async with _client(registry, username, password, tls_verify, ca_cert) as client:
                summary = await export_archive(
                    client,
                    output,
                    selections=selections,
                    namespaces=namespace or [],
                    since=since,
                    sign_key=key,
                    show_progress=not quiet,
                )
            typer.echo(
                f"exported {summary.repositories} repositories, {summary.tags} tags:"
                f" {summary.blobs_written} blobs ({summary.bytes_written} bytes) written,"
                f" {summary.omitted} left to the earlier archive; archive id {summary.archive_id}"
            )

        asyncio.run(run())


@export_app.command("keygen")
def keygen(
    key: Annotated[Path, typer.Argument(help="Private key file to create; the public key goes to KEY.pub.")],
) -> None:
    """Make an Ed25519 key pair for signing archives (--sign-key KEY, import --verify-key KEY.pub)."""
    with _reported():
        public = signing.generate(key)
    typer.echo(f"private key: {key}")
    typer.echo(f"public key: {public}")


@app.command("import")
def import_command(
    archive: Annotated[Path, typer.Argument(help="An archive written by `quayside export`.")],
    registry: RegistryOption,
    username: UsernameOption,
    password: PasswordOption,
    map_namespace: Annotated[
        list[str] | None, typer.Option("--map-namespace", help="OLD=NEW: import OLD's repositories into NEW.")
    ] = None,
    verify_key: Annotated[
        Path | None,
        typer.Option("--verify-key", help="Ed25519 public key (PEM): refuse unless signed by it."),
    ] = None,
    tls_verify: TlsVerifyOption = True,
    ca_cert: CaCertOption = None,
    quiet: QuietOption = False,
) -> None:
    """Load an archive into a registry: every digest (and the signature, with a key) is verified before
    anything becomes visible; tags come last. Re-running after an interruption finishes the job."""
    with _reported():
        mapping = parse_mapping(map_namespace or [])
        key = signing.load_public_key(verify_key) if verify_key is not None else None

        async def run() -> None:
            async with _client(registry, username, password, tls_verify, ca_cert) as client:
                summary = await import_archive(
                    client, archive, mapping=mapping, verify_key=key, show_progress=not quiet
                )
            typer.echo(
                f"imported: {summary.blobs_uploaded} blobs uploaded ({summary.bytes_uploaded} bytes),"
                f" {summary.blobs_mounted} mounted, {summary.blobs_present} already present;"
                f" {summary.manifests_pushed} manifests, {summary.labels_added} labels, {summary.tags_set} tags;"
                f" {summary.repositories_created} repositories created"
            )
            for tag in summary.tags_expired:
                typer.echo(f"skipped {tag}: its expiration has passed", err=True)

        asyncio.run(run())
