"""The one-command start: the registry, the mirror, quota and gc services, their workers and PostgreSQL in
one process on a data folder (the mirroring API is served beside the registry's), and the gateway in
front of the registry (one region, "local") on its own port.

The first start sets the data folder up (quayside.install) and creates the admin account; later
starts reuse everything.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

from quayside.install import (
    DEFAULT_DATA_DIR,
    DataDir,
    embedded_database,
    ensure_admin,
    load_or_create_token_secret,
)
from services.gateway.app import create_app as create_gateway_app
from services.gateway.routing import Regions
from services.gateway.settings import GatewaySettings
from services.gateway.worker import watch_regions
from services.gc.worker import run_gc_worker
from services.mirror.app import include_mirror_api
from services.mirror.worker import run_mirror_worker
from services.quota.worker import consuming_quota_events, report_drift
from services.registry.app import create_app
from services.registry.worker import run_worker
from services.replication.worker import replicating
from shared.config import FilesystemLocation, Settings
from shared.events.bus import InProcessBus
from shared.serving import (
    ListenAddress,
    ListenSetting,
    serve,
    settle_garbage_collector,
    stop_event_on_signals,
)
from shared.tls import LocalCertificates, ensure_local_certificates

STORAGE_LOCATION = "local"
GATEWAY_REGION = "local"
_WILDCARD_TO_LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}


class EmbeddedSettings(BaseSettings):
    """What the embedded start reads from QUAYSIDE_* variables."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    listen: ListenSetting = ListenAddress.parse("127.0.0.1:5000")
    # The gateway in front of the registry (QUAYSIDE_GATEWAY_LISTEN).
    gateway_listen: ListenSetting = ListenAddress.parse("127.0.0.1:5010")
    admin_user: str = "admin"
    # Serve HTTPS with a certificate from a local CA made in the data folder's tls/.
    tls: bool = False
    # Used when the admin account is created; None: a generated password is printed once.
    admin_password: str | None = None


def _local_host(listen: ListenAddress) -> str:
    """Where this machine reaches listen: a wildcard listen address on loopback."""
    return _WILDCARD_TO_LOOPBACK.get(listen.host, listen.host)


def certificate_hosts(listen: ListenAddress) -> list[str]:
    """The names a local server certificate is for: loopback, and the listen host (this machine's
    name too when listening on every interface)."""
    extra = [socket.gethostname()] if listen.host in _WILDCARD_TO_LOOPBACK else [listen.host]
    return list(dict.fromkeys(["127.0.0.1", "localhost", "::1", *extra]))


def registry_settings(
    data_dir: DataDir,
    dsn: str,
    token_secret: str,
    listen: ListenAddress | None = None,
    tls: LocalCertificates | None = None,
) -> Settings:
    """Settings for the embedded registry and mirror (which pushes to the registry on `listen`,
    over HTTPS with tls or QUAYSIDE_TLS_CERT_FILE); other QUAYSIDE_* variables still apply."""
    registry = listen or ListenAddress.parse("127.0.0.1:5000")
    local = ListenAddress(host=_local_host(registry), port=registry.port)
    settings = Settings(
        database_url=dsn,
        amqp_url=None,
        storage_locations={STORAGE_LOCATION: FilesystemLocation(root=str(data_dir.storage))},
        storage_preference=[STORAGE_LOCATION],
        token_secret=token_secret,
        log_export_dir=str(data_dir.log_exports),
    )
    if tls:
        local_ca = {
            "tls_cert_file": str(tls.server_cert),
            "tls_key_file": str(tls.server_key),
            "registry_ca_file": str(tls.ca_cert),
        }
        settings = settings.model_copy(update=local_ca)
    secure = settings.tls_cert_file is not None
    return settings.model_copy(update={"registry_url": local.https_url if secure else local.url})


def gateway_settings(config: Settings, listen: ListenAddress) -> GatewaySettings:
    """The embedded gateway: one region, the registry of config; other QUAYSIDE_GATEWAY_* variables
    (health checks, timeouts) still apply."""
    return GatewaySettings(
        regions={GATEWAY_REGION: config.registry_url},
        failover_order=[GATEWAY_REGION],
        client_networks=[],
        default_region=GATEWAY_REGION,
        ca_file=config.registry_ca_file,
        listen=listen,
    )


def trusting_loopback_proxies(config: Settings) -> Settings:
    """config whose servers believe the X-Forwarded-For of the gateway (on loopback), unless
    QUAYSIDE_HTTP_TRUSTED_PROXIES says otherwise."""
    if config.http_trusted_proxies:
        return config
    loopback = [ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("::1/128")]
    return config.model_copy(update={"http_trusted_proxies": loopback})


def _announce(
    say: Callable[[str], None],
    settings: EmbeddedSettings,
    data_dir: DataDir,
    created_password: str | None,
    tls: LocalCertificates | None,
    secure: bool,
) -> None:
    url = settings.listen.https_url if secure else settings.listen.url
    say(f"Quayside registry on {url} (data in {data_dir.root})")
    gateway = settings.gateway_listen.https_url if secure else settings.gateway_listen.url
    say(f"Quayside gateway on {gateway} (region {GATEWAY_REGION!r}: the registry above)")
    if created_password is not None and settings.admin_password is None:
        say(f"Admin account created: {settings.admin_user} / {created_password}")
        say("This password is shown once: keep it now.")
    elif created_password is not None:
        say(f"Admin account created: {settings.admin_user}, password from QUAYSIDE_ADMIN_PASSWORD")
    if tls:
        _announce_trust(say, settings.listen, tls)
    elif not secure:
        say(f"Log in: skopeo login --tls-verify=false -u {settings.admin_user} {settings.listen.authority}")


def _announce_trust(say: Callable[[str], None], listen: ListenAddress, tls: LocalCertificates) -> None:
    authority = ListenAddress(host=_local_host(listen), port=listen.port).authority
    say(f"TLS certificate issued by the local CA {tls.ca_cert}; trust it with:")
    say(f"  curl --cacert {tls.ca_cert} https://{authority}/v2/")
    say(f"  skopeo login --cert-dir {tls.ca_cert.parent} {authority}   (also skopeo copy/inspect --cert-dir)")
    say(
        f"  mkdir -p /etc/containers/certs.d/{authority} && cp {tls.ca_cert} /etc/containers/certs.d/{authority}/ca.crt"
    )
    say("  (podman, buildah and skopeo then trust it without flags)")


def _say(line: str) -> None:
    print(line, flush=True)


async def run(settings: EmbeddedSettings, say: Callable[[str], None] = _say) -> None:
    """Start (or restart) the embedded suite and serve until SIGINT or SIGTERM, then stop it all.

    Raises shared.serving.ServerStartError when the registry or the gateway cannot listen.
    """
    stop = stop_event_on_signals()
    data_dir = DataDir(settings.data_dir)
    await asyncio.to_thread(data_dir.storage.mkdir, parents=True, exist_ok=True)
    token_secret = await asyncio.to_thread(load_or_create_token_secret, data_dir.token_secret_file)
    tls = (
        await asyncio.to_thread(ensure_local_certificates, data_dir.tls, certificate_hosts(settings.listen))
        if settings.tls
        else None
    )
    async with embedded_database(data_dir) as dsn:
        created_password = await ensure_admin(dsn, settings.admin_user, settings.admin_password)
        config = trusting_loopback_proxies(
            registry_settings(data_dir, dsn, token_secret, settings.listen, tls)
        )
        _announce(say, settings, data_dir, created_password, tls, config.tls_cert_file is not None)
        app = create_app(config)
        include_mirror_api(app, config)
        gateway = gateway_settings(config, settings.gateway_listen)
        regions = Regions(gateway)
        gateway_app = create_gateway_app(gateway, config, regions)
        settle_garbage_collector()
        await _serve_side_by_side(
            [
                serve(app, settings.listen, _workers(config), stop, settings=config),
                serve(
                    gateway_app,
                    gateway.listen,
                    watch_regions(regions, gateway),
                    stop,
                    settings=config,
                ),
            ],
            stop,
        )


async def _serve_side_by_side(servers: list[Coroutine[Any, Any, None]], stop: asyncio.Event) -> None:
    """Run the servers until the first one ends (stopped, failed or its worker ended), then stop the
    others; raise the first failure."""
    tasks = [asyncio.create_task(server) for server in servers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.set()
        await asyncio.wait(tasks)
    for task in tasks:
        if not task.cancelled() and (error := task.exception()) is not None:
            raise error


async def _workers(config: Settings) -> None:
    """The registry's worker, the mirror workers, the quota consumers, the replication consumer and
    copier (a no-op with the one location) and the garbage collector, until cancelled or one of them
    fails. The consumers subscribe first: the bus drops events nobody subscribed to yet."""
    bus = InProcessBus()
    async with (
        consuming_quota_events(config, bus) as quota_pool,
        replicating(config, bus) as replication_copier,
        asyncio.TaskGroup() as workers,
    ):
        workers.create_task(run_worker(config, bus))
        workers.create_task(replication_copier.run())
        workers.create_task(run_mirror_worker(config))
        workers.create_task(run_gc_worker(config))
        workers.create_task(report_drift(config, quota_pool))
