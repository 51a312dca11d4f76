"""Settings shared by every service, read from QUAYSIDE_* environment variables."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, Field, IPvAnyNetwork, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class FilesystemLocation(BaseModel):
    driver: Literal["filesystem"] = "filesystem"
    root: str


class S3Location(BaseModel):
    driver: Literal["s3"] = "s3"
    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    prefix: str = ""
    redirect_downloads: bool = False
    presign_expiry_s: int = 600
    multipart_chunk_bytes: int = 16 * 1024 * 1024
    # https endpoints: verify the certificate (false: do not), against this CA bundle when set.
    verify_tls: bool = True
    ca_bundle: str | None = None
    # Attempts per request (botocore's "standard" retry mode: transient errors such as a 500
    # InternalError are retried after a random back-off of up to 1 s, then 2 s) and the connect time
    # limit: a location that is down fails within a few seconds instead of botocore's legacy ~7 s.
    max_attempts: int = Field(default=3, ge=1, le=10)
    connect_timeout_s: float = Field(default=5.0, gt=0)


StorageLocation = Annotated[FilesystemLocation | S3Location, Field(discriminator="driver")]

_COSIGN_SIGNATURE = "application/vnd.dev.cosign.simplesigning.v1+json"
_SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
_SBOM_AND_ATTESTATION_TYPES = (
    "text/spdx",
    "text/spdx+xml",
    "text/spdx+json",
    "application/spdx+json",
    "application/vnd.syft+json",
    "application/vnd.cyclonedx",
    "application/vnd.cyclonedx+xml",
    "application/vnd.cyclonedx+json",
    "application/vnd.in-toto+json",
)
# Quay's default ALLOWED_OCI_ARTIFACT_TYPES (cosign signatures and attestations and SBOMs as layers of
# image-config manifests, Helm charts, source images, OPA policies), plus application/spdx+json,
# Helm provenance files, and the OCI 1.1 artifacts of the same tools: an artifactType whose layers
# carry that same type, cosign signatures and Sigstore bundles.
DEFAULT_OCI_ARTIFACT_TYPES: dict[str, tuple[str, ...]] = {
    "application/vnd.oci.image.config.v1+json": (
        _COSIGN_SIGNATURE,
        "application/vnd.dsse.envelope.v1+json",
        *_SBOM_AND_ATTESTATION_TYPES,
    ),
    "application/vnd.cncf.helm.config.v1+json": (
        "application/tar+gzip",
        "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
        "application/vnd.cncf.helm.chart.provenance.v1.prov",
    ),
    "application/vnd.oci.source.image.config.v1+json": ("application/vnd.oci.image.layer.v1.tar+gzip",),
    "application/vnd.unknown.config.v1+json": (
        "application/vnd.cncf.openpolicyagent.policy.layer.v1+rego",
        "application/vnd.cncf.openpolicyagent.data.layer.v1+json",
    ),
    "application/vnd.dev.cosign.artifact.sig.v1+json": (_COSIGN_SIGNATURE,),
    _SIGSTORE_BUNDLE: (_SIGSTORE_BUNDLE,),
    **{kind: (kind,) for kind in _SBOM_AND_ATTESTATION_TYPES},
}


class Settings(BaseSettings):
    """One settings object for every service; each service reads the fields it needs."""

    model_config = SettingsConfigDict(env_prefix="QUAYSIDE_", extra="ignore")

    database_url: str = "postgresql://postgres@127.0.0.1:5432/quayside"
    database_pool_size: int = 10
    # None: events stay in the outbox and are delivered on the in-process bus (embedded mode).
    amqp_url: str | None = None
    events_exchange: str = "quayside.events"
    # The registry worker's durable queue of events that notifications watch (`<name>.dead`: dead letters).
    notifications_queue: str = "registry.notifications"

    storage_locations: dict[str, StorageLocation] = Field(
        default_factory=lambda: {"local": FilesystemLocation(root="./data/storage")}
    )
    # Ordered location names: pushes go to the first, pulls read from the first that holds the blob.
    storage_preference: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["local"])

    region: str = "local"
    public_url: str | None = None
    token_secret: str = "change-me"
    token_issuer: str = "quayside"
    token_service: str = "quayside"
    token_ttl_s: int = 300
    # Web sessions (POST /api/v1/signin): how long one lasts; signing in again starts a new one.
    session_ttl_s: int = Field(default=12 * 3600, gt=0, le=365 * 86_400)
    max_manifest_bytes: int = 4 * 1024 * 1024
    # Quay's APP_SPECIFIC_TOKEN_EXPIRATION: lifetime of new app-specific tokens; None: they never expire.
    app_token_expiration_s: int | None = Field(default=None, gt=0, le=100 * 365 * 86_400)
    # How often each registry process writes the pull counts it gathered (and at shutdown).
    pull_stats_flush_interval_s: float = Field(default=5.0, gt=0)

    # Outgoing e-mail (notifications, log exports): a plain SMTP relay, no authentication.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "quayside@localhost"
    # Where exported usage logs are written, each as one JSON file served at /exportedlogs/<name>.
    log_export_dir: str = "./data/log-exports"

    # Repository mirroring (services/mirror). The registry's /v2 API, where mirrors push as their robot.
    registry_url: str = "http://127.0.0.1:5000"
    # The CA that registry's HTTPS certificate chains to; unset: the system's trusted CAs.
    registry_ca_file: str | None = None
    # Quay's REPO_MIRROR_ROLLBACK: a failed sync puts every tag back as it was before the sync;
    # false: best effort, the tags synced stay and the failed ones are reported.
    repo_mirror_rollback: bool = False
    # Quay's REPO_MIRROR_INTERVAL: seconds between looks for due mirrors (sync-now wakes workers at once).
    repo_mirror_interval_s: float = Field(default=30.0, gt=0)
    # Syncs one mirror service process runs at once.
    mirror_workers: int = Field(default=2, ge=1)
    # How long a claimed mirror stays a worker's without renewal (renewed while it syncs): a worker
    # that dies loses its mirror to another once this runs out.
    mirror_lease_s: float = Field(default=60.0, gt=0)
    # A failed sync is retried this much later, 3 times, before it waits for its next interval.
    mirror_retry_delay_s: float = Field(default=300.0, ge=0)
    # Time limit of one request to an upstream registry (connecting, or between two reads).
    mirror_upstream_timeout_s: float = Field(default=60.0, gt=0)
    # Fernet key (url-safe base64 of 32 bytes) encrypting upstream credentials in the database;
    # unset: derived from token_secret, so changing that secret makes stored credentials unreadable.
    secrets_key: str | None = None

    # Proxy cache organizations (services/registry/proxy): the time limit of one request to their
    # upstream registry (connecting, or between two reads); how long a pull waits for another
    # request's fetch of the same manifest or blob (coalescing) before it fails.
    proxy_cache_upstream_timeout_s: float = Field(default=30.0, gt=0)
    proxy_cache_fill_wait_s: float = Field(default=300.0, gt=0)

    # Quay's REGISTRY_STATE: "readonly" serves pulls and reads and refuses every write, /v2 and /api/v1.
    registry_state: Literal["normal", "readonly"] = "normal"
    # Read-only mode switched at run time (shared/readonly_state.py): how long each process trusts
    # its last look at the registry_state row, so a switch reaches every process within this.
    registry_state_refresh_s: float = Field(default=1.0, ge=0, le=60)
    # `quayside backup|restore`: the folder of pg_dump and pg_restore; unset: those pgserver ships.
    pg_bin_dir: str | None = None
    # The OCI artifact policy, enforced on manifest push (services/registry/v2/artifact_policy.py). By
    # default any media type is accepted (OCI 1.1: artifacts of any type are first-class). Opt-in
    # restrictions: RESTRICT_OCI_ARTIFACT_TYPES true: images and ALLOWED_OCI_ARTIFACT_TYPES only, an
    # artifact's type (artifactType, else its config's media type) -> the layer media types it may hold
    # besides image layers (default: Quay's list). FEATURE_GENERAL_OCI_SUPPORT false: images only.
    # IGNORE_UNKNOWN_MEDIATYPES true: any media type, whatever the other two say.
    restrict_oci_artifact_types: bool = False
    feature_general_oci_support: bool = True
    allowed_oci_artifact_types: dict[str, list[str]] = Field(
        default_factory=lambda: {kind: list(layers) for kind, layers in DEFAULT_OCI_ARTIFACT_TYPES.items()}
    )
    ignore_unknown_mediatypes: bool = False

    # /health/*: the time limit of each check; /health/warning reports a local folder whose free
    # space is below this fraction of its disk (Quay's DISKSPACE_HEALTH_WARNING_THRESHOLD).
    health_check_timeout_s: float = Field(default=3.0, gt=0)
    disk_space_warning_threshold: float = Field(default=0.1, ge=0, le=1)

    # Failed-login lockouts (shared/auth/login_limits.py, docs/credentials.md): failures of one account
    # from one address, and from one address in all, before a lockout; the first lockout, doubled per
    # further failure up to the longest; how long a failure is remembered.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=30, ge=1)
    login_lockout_base_s: float = Field(default=1.0, gt=0)
    login_lockout_max_s: float = Field(default=900.0, gt=0)
    login_failure_memory_s: float = Field(default=3600.0, gt=0)

    # Connection limits of every HTTP server (shared/serving.py, shared/http_guard.py;
    # docs/tls-and-limits.md). A request's line and headers must arrive within header_timeout_s of
    # its first byte (or of the connection's opening); a body read waits at most body_timeout_s for
    # the next piece (and a sendfile download, shared/pathsend.py, at most that for the client to
    # take more); an idle keep-alive connection is closed after keep_alive_s. Per process, at
    # most max_connections connections and requests at once (beyond: 503), and at most
    # max_uploads_per_client blob upload requests at once from one client address (beyond: 429).
    http_header_timeout_s: float = Field(default=10.0, gt=0)
    http_body_timeout_s: float = Field(default=60.0, gt=0)
    http_keep_alive_s: float = Field(default=15.0, gt=0)
    http_max_connections: int = Field(default=1000, ge=1)
    http_max_uploads_per_client: int = Field(default=16, ge=1)
    # /docs, /redoc and /openapi.json; /metrics (its labels carry route templates and ids, never names).
    http_api_docs: bool = False
    http_metrics: bool = True
    # Proxies (the gateway, a load balancer) whose X-Forwarded-For and X-Forwarded-Proto every HTTP
    # server believes: networks in CIDR notation, comma-separated. A request from one of them counts
    # as coming from the address it forwards for (upload bounds, login lockouts, usage logs). Empty:
    # the connection's own address, whatever the headers say.
    http_trusted_proxies: Annotated[list[IPvAnyNetwork], NoDecode] = Field(default_factory=list)
    # TLS of the HTTP servers: certificate chain and key (PEM), reloaded on SIGHUP or when a file
    # changes (looked at every reload_interval_s); with client_ca_file, clients must present a
    # certificate issued by that CA (mutual TLS). Unset: plain HTTP.
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    tls_reload_interval_s: float = Field(default=5.0, gt=0)

    # GC janitors (services/gc/janitors.py): upload sessions untouched for upload_abandon_after_s
    # (Quay's 2 days) are removed with their chunks, and so are chunk folders without a session
    # that old; with clean_blob_upload_folder (Quay's CLEAN_BLOB_UPLOAD_FOLDER) also S3 multipart
    # uploads started that long ago. Published outbox rows and processed-event records are kept
    # event_retention_s.
    upload_abandon_after_s: float = Field(default=2 * 86_400.0, gt=0)
    clean_blob_upload_folder: bool = True
    event_retention_s: float = Field(default=7 * 86_400.0, gt=0)

    # Storage quota (shared/quota, services/quota). Quay's DEFAULT_SYSTEM_REJECT_QUOTA_BYTES: the limit
    # of every namespace without its own quota, rejecting at 100 %; unset: no default limit.
    default_system_reject_quota_bytes: int | None = Field(default=None, gt=0, le=2**62)
    # The quota service's durable queues: `<prefix>.manifest-pushed`, `.blobs-collected`, ….
    quota_queue_prefix: str = "quota"
    # How often the quota service recounts every namespace and reports drift (log and
    # quayside_quota_reconcile_drift_bytes) without repairing; 0: never.
    quota_reconcile_interval_s: float = Field(default=3600.0, ge=0)

    # Garbage collection (services/gc). Quay's FEATURE_GARBAGE_COLLECTION (tags, manifests and blobs),
    # FEATURE_NAMESPACE_GARBAGE_COLLECTION (deleted organizations and users),
    # FEATURE_REPOSITORY_GARBAGE_COLLECTION (deleted repositories), GARBAGE_COLLECTION_FREQUENCY
    # (seconds between passes) and PUSH_TEMP_TAG_EXPIRATION_SEC (how long a manifest or blob that
    # nothing references yet is kept after its push, upload or mount, for the push under way).
    feature_garbage_collection: bool = True
    feature_namespace_garbage_collection: bool = True
    feature_repository_garbage_collection: bool = True
    garbage_collection_frequency: float = Field(default=30.0, gt=0, le=86_400)
    push_temp_tag_expiration_sec: int = Field(default=3600, ge=0, le=365 * 86_400)
    # Share of a pass's wall time spent working: between batches it rests the rest (1: never rests).
    garbage_collection_duty: float = Field(default=0.5, gt=0, le=1)
    # CPU niceness of a process that only collects garbage (`python -m services.gc`, `quayside gc run`;
    # not the embedded start, where the registry shares the process): 0 leaves it as started.
    garbage_collection_niceness: int = Field(default=10, ge=0, le=19)

    # Geo-replication (services/replication; README "Geo-replication"). Quay's FEATURE_STORAGE_REPLICATION:
    # copy every pushed blob to the locations it must reach; DISTRIBUTED_STORAGE_DEFAULT_LOCATIONS:
    # those locations for a namespace without its own replication targets (set by superusers through
    # /api/v1/superuser/replication/...). Unknown names are refused at start-up.
    feature_storage_replication: bool = False
    distributed_storage_default_locations: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # The replication service's durable queue prefix (`<prefix>.blob-pushed`) and its concurrent copies.
    replication_queue_prefix: str = "replication"
    replication_concurrency: int = Field(default=8, ge=1, le=64)
    # A failed copy is retried after retry_base_s, doubled per further failure up to retry_max_s.
    replication_retry_base_s: float = Field(default=1.0, gt=0)
    replication_retry_max_s: float = Field(default=300.0, gt=0)
    # How long a claimed copy stays the claiming worker's without renewal (a killed worker's copies
    # are taken over once this runs out).
    replication_lease_s: float = Field(default=30.0, gt=0)

    # Storage health (shared/storage/health.py): a location whose reads or writes fail this many times
    # in a row is unhealthy (skipped for reads while another copy exists, passed over for pushes);
    # after probe_interval_s one probe decides whether it is healthy again.
    storage_health_failure_threshold: int = Field(default=3, ge=1)
    storage_health_probe_interval_s: float = Field(default=5.0, gt=0)

    @field_validator("storage_preference", "distributed_storage_default_locations", mode="before")
    @classmethod
    def _split_preference(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @model_validator(mode="after")
    def _known_location_names(self) -> Settings:
        """Refuse location names that storage_locations does not configure. The default preference
        (["local"]) is let through when only the locations were set: location_order skips it."""
        checked = {"distributed_storage_default_locations": self.distributed_storage_default_locations}
        if "storage_preference" in self.model_fields_set:
            checked["storage_preference"] = self.storage_preference
        for field, names in checked.items():
            unknown = [name for name in names if name not in self.storage_locations]
            if unknown:
                raise ValueError(
                    f"QUAYSIDE_{field.upper()} names unknown storage location(s) {', '.join(map(repr, unknown))};"
                    f" configured: {', '.join(map(repr, self.storage_locations)) or 'none'}"
                )
        return self

    @field_validator("http_trusted_proxies", mode="before")
    @classmethod
    def _split_networks(cls, value: object) -> object:
        if isinstance(value, str):
            return [network.strip() for network in value.split(",") if network.strip()]
        return value

    def location_order(self) -> list[str]:
        """Preferred locations first, then every other configured location."""
        ordered = [name for name in self.storage_preference if name in self.storage_locations]
        return ordered + [name for name in self.storage_locations if name not in ordered]


@lru_cache
def get_settings() -> Settings:
    return Settings()
