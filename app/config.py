"""Configuration: defaults, then instance/config.py, then PROXBOARD_* environment variables."""
from __future__ import annotations

import os
import secrets
from pathlib import Path

from flask import Flask


class DefaultConfig:
    """Values used when neither instance/config.py nor the environment says otherwise."""

    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None
    # The server-side session enforces the idle and absolute lifetimes; re-signing the cookie on every answer
    # only cost each auto-refresh a Set-Cookie (and the time to sign it).
    SESSION_REFRESH_EACH_REQUEST = False
    # werkzeug's scrypt (N=2^15, r=8, p=1: ~0.1 s per hash here); only tests lower it, to save their CPU.
    PASSWORD_HASH_METHOD = "scrypt:32768:8:1"
    SESSION_IDLE_MINUTES = 120  # a sign-in session unused this long ends on the server
    SESSION_MAX_HOURS = 24 * 7  # and any session ends this long after sign-in, however active
    LOGIN_LIMIT_PER_ACCOUNT = "5 per minute; 20 per hour"  # failed sign-ins per account name, then 429
    LOGIN_LIMIT_PER_CLIENT = "30 per minute; 200 per hour"  # failed sign-ins per client address, then 429
    TWO_FACTOR_REQUIRED = "none"  # "admins" or "everyone": they set up TOTP or a passkey before their first session opens
    WEBAUTHN_RP_ID = None  # passkeys' relying party; None: the host name the browser used (set it to share sub-domains)
    WEBAUTHN_RP_NAME = "Proxboard"  # the name the browser's passkey prompt shows
    RATELIMIT_STORAGE_URI = None  # login counters; default REDIS_URL when set (shared), else this process's memory
    RATELIMIT_STRATEGY = "moving-window"  # Retry-After counts from the oldest failure still in the window
    RATELIMIT_KEY_PREFIX = "proxboard"
    AUDIT_RETENTION_DAYS = 365  # audit entries older than this are deleted by the worker's sweep; 0: kept forever
    LOGIN_ATTEMPTS_RETENTION_DAYS = 90  # login_attempts rows (the audit log keeps sign-ins longer); 0: kept forever
    LOCAL_LOGIN = True  # False: no password form nor password sign-in (`flask users ...` on the server still works)
    OIDC_ISSUER = None  # OpenID Connect provider URL (its /.well-known/openid-configuration); None: no single sign-on
    OIDC_CLIENT_ID = None
    OIDC_CLIENT_SECRET = None  # None: a public client (PKCE only); never logged nor shown
    OIDC_PROVIDER_NAME = "Single sign-on"  # the button says "Sign in with <this>"
    OIDC_SCOPES = "openid profile email groups"  # "groups": Authelia, Dex, Kanidm send the groups claim only when asked
    OIDC_ROLE_CLAIM = "groups"  # the claim (a list or one string) whose values OIDC_ROLE_MAP maps to roles
    OIDC_ROLE_MAP = None  # "proxboard-admins=admin,proxboard-ops=operator" or a dict; the highest role matched wins
    OIDC_DEFAULT_ROLE = None  # role of a person no group maps; None: they are refused
    OIDC_USERNAME_CLAIM = "preferred_username"  # the new user's name (made unique: never a local account's)
    OIDC_VERIFY_SSL = "true"  # "true", "false", or a CA bundle path (a provider behind an internal CA)
    OIDC_TIMEOUT = 10  # seconds per call to the provider (discovery, keys, token): a dead one must not hang sign-in
    PROXY_FIX = False
    PROXY_FIX_HOPS = 1
    HSTS_SECONDS = 0  # Strict-Transport-Security max-age on HTTPS responses; 0: not sent (opt in once TLS is for good)
    REFRESH_SECONDS = 30
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024  # bytes per request (uploads included); larger ones get a 413 page
    MAX_FORM_MEMORY_SIZE = 1024 * 1024  # bytes of form fields held in memory (werkzeug's own limit)
    DASHBOARD_PAGE_SIZE = 24
    WIZARD_DRAFT_HOURS = 24  # unfinished wizard runs (and their encrypted password) are deleted after this
    SNAPSHOT_SECONDS = 60
    BASE_URL = None  # Proxboard's address as people reach it (https://proxboard.example); alert messages link to it
    ALERT_INTERVAL_SECONDS = 60  # the worker evaluates the alert rules this often (0: alerts off)
    SHUTDOWN_TIMEOUT = 30
    SHUTDOWN_FORCE_AFTER_TIMEOUT = False
    ACTION_TIMEOUT = 120
    CONSOLE_IDLE_SECONDS = 900  # a web console session in which nothing was typed this long is closed
    TASK_GIVE_UP_HOURS = 12  # a snapshot, backup or restore whose task cannot be read this long is marked failed
    SERVICE_CHECK_SECONDS = 300
    SERVICE_CHECK_TIMEOUT = 30
    SERVICE_CHECK_CONCURRENCY = 4  # containers of one node checked at once, over one SSH connection
    SSH_HOSTS = None  # "pve1=10.0.0.11,pve2=10.0.0.12" or a dict; nodes not listed use PVE_HOST
    SSH_PORT = 22
    SSH_USER = "root"
    SSH_KEY_FILE = None  # preferred over SSH_PASSWORD
    SSH_KNOWN_HOSTS = None  # default instance/known_hosts; `flask ssh trust NODE` adds to it
    SSH_CONNECT_TIMEOUT = 10
    SSH_COMMAND_TIMEOUT = 120
    SSH_KEEPALIVE_SECONDS = 30
    SSH_REMOTE_TMP = "/tmp"
    CREDENTIALS_KEY = None  # else instance/credentials_key, generated once (0600)
    REDIS_URL = None  # set to use Redis for jobs instead of SQLite, and to share the Proxmox read cache
    HUEY_SQLITE_PATH = None  # default instance/jobs.db
    JOBS_IMMEDIATE = None  # None: inline when TESTING
    JOBS_WORKERS = 2
    JOBS_WEB_SWEEP_SECONDS = None  # the web process also runs the stale-job sweeps this often (None: 60, off in TESTING)
    JOBS_REQUEUE_SECONDS = 60  # a job queued this long with nothing in the queue for it is enqueued again
    JOBS_WORKER_MISSING_SECONDS = 300  # queued work older than this: every page says no job worker is running
    PVE_PORT = 8006
    PVE_VERIFY_SSL = "true"
    PVE_TIMEOUT = 10
    PVE_CACHE_SECONDS = 5
    PVE_REQUEST_DEADLINE = 6  # seconds all the Proxmox calls of one web request may take together (0: none)
    PVE_BACKUP_INDEX_SECONDS = 300  # the cluster-wide backup index (card ages, backup: search) is swept this often
    BACKUP_WARN_DAYS = 7  # a newest backup older than this shows as a warning (cards, the Backups page)
    PVE_CACHE_PREFIX = None  # Redis key prefix of the shared read cache (default: per Proxmox address)
    DEMO_MODE = False
    # Python's garbage collector in a web or worker process: the start-up heap frozen and young collections every
    # this many allocations (app/runtime.py; 0 leaves CPython's defaults). Not in TESTING (many apps, one process).
    GC_YOUNG_THRESHOLD = 10_000
    TEMPLATES_DIR = None


def load_config(app: Flask, test_config: dict | None) -> None:
    """Fill ``app.config`` in order: defaults, instance file, environment, test overrides."""
    app.config.from_object(DefaultConfig)
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("PROXBOARD")
    if os.environ.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = normalise_database_url(os.environ["DATABASE_URL"])
    if test_config:
        app.config.update(test_config)
    app.config.setdefault(
        "SQLALCHEMY_DATABASE_URI", f"sqlite:///{Path(app.instance_path) / 'proxboard.db'}"
    )
    sqlite_path = sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    if sqlite_path is not None:
        create_private_file(sqlite_path)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_secret(app, "secret_key")


def normalise_database_url(url: str) -> str:
    """Point bare ``postgres://`` and ``postgresql://`` URLs at the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (None for other databases and in-memory SQLite)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (SQLite keeps that mode, for its journals too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


def instance_secret(app: Flask, name: str, *, nbytes: int = 32, generator=None) -> str:
    """Read a secret from ``instance/<name>``, generating it once with mode 0600."""
    path = Path(app.instance_path) / name
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = generator() if generator else secrets.token_urlsafe(nbytes)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process (gunicorn worker, consumer) won the race
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value
