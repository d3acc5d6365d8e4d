"""The one typed settings entry point.

Precedence: defaults < the TOML file named by ``BRIDGE_CONFIG`` (keys are the field names) <
``BRIDGE_<FIELD>`` environment variables. Any string value may be ``file:/path`` to read the
value from a file (for secrets; the trailing newline is stripped). Settings are validated once
at start: a bad value raises :class:`SettingsError` whose message names the setting and what
was wrong, in one line.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "BRIDGE_"
SECRET_FIELDS = frozenset(
    {"secret_key", "default_oidc_client_secret", "smtp_url", "database_url"}
)


class SettingsError(Exception):
    """A setting is missing, malformed or out of range; the message names it."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the bridge, typed, with its default."""

    data_dir: Path = Path("./var")
    database_url: str = ""  # empty: SQLite file bridge.db in data_dir
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2
    log_level: str = "INFO"
    public_url: str = ""  # empty: http://host:port
    # Key for encrypting secrets at rest (Fernet, urlsafe base64 of 32 bytes). Empty: a key
    # file is created in data_dir on first start and used from then on, with the embedded
    # database only; required when database_url is set (bridge/crypto.py).
    secret_key: str = ""
    max_body_bytes: int = 1_048_576
    # Reverse proxies in front of the bridge that set X-Forwarded-For/-Proto (each appends
    # one hop). 0: the TCP peer is the client and forwarded headers are ignored (a client
    # could forge them). The client address feeds rate limits and the audit trail.
    trusted_proxy_count: int = 0
    # Domains
    dns_nameservers: tuple[str, ...] = ()  # host:port; empty: the system resolver
    dns_timeout_seconds: float = 3.0
    domain_verification_window_hours: int = 24
    domain_recheck_interval_seconds: int = 300
    # Mail
    smtp_url: str = ""  # smtp://[user:pass@]host:port[?starttls=true], or log: (development)
    smtp_from: str = "no-reply@bridge.invalid"
    smtp_timeout_seconds: float = 10.0
    smtp_ca_file: str = ""  # PEM CA bundle to verify the SMTP server; empty: system CAs
    support_email: str = ""
    # Sign-in and sessions
    post_login_url: str = "/"
    session_ttl_seconds: int = 8 * 3600
    default_oidc_issuer: str = ""
    default_oidc_client_id: str = ""
    default_oidc_client_secret: str = ""
    # SCIM
    scim_max_results: int = 1000
    # Active Directory
    allow_insecure_ldap: bool = False
    ad_sync_interval_seconds: int = 1800
    ad_full_sync_interval_seconds: int = 86400
    ad_mass_change_max_users: int = 500
    ad_mass_change_max_percent: float = 20.0
    ad_deletion_grace_days: int = 7
    # How long a SyncDirectory / Sync now request waits for its run before answering
    # "running" (the run goes on in the background either way).
    ad_sync_now_wait_seconds: float = 2.0
    # Runs on request (SyncDirectory) at a time in one serving process, all accounts.
    ad_sync_now_max_runs: int = 4
    # AD password sign-in: failed attempts allowed per user / per source address per window.
    ad_sign_in_max_failures_per_user: int = 5
    ad_sign_in_max_failures_per_address: int = 20
    ad_sign_in_failure_window_seconds: int = 900
    # Admin API
    signature_max_skew_seconds: int = 300
    # Calls one admin principal may make per minute (then 429 ThrottledClientException);
    # 0: no limit.
    admin_api_max_requests_per_minute: int = 1200
    # Refused unauthenticated admin API calls one source address may make per minute
    # (then 429 and one summary audit event for the rest of the minute); 0: no limit.
    admin_api_max_unauthenticated_per_minute: int = 60
    # The 12-digit id the admin API reports as AwsAccountId and uses in IAM-style ARNs.
    admin_aws_account_id: str = "000000000000"
    # Console (/console): a signed-in administrator's session ends after this much idle
    # time, and at the latest after the maximum; failed sign-ins allowed per admin user
    # name / per source address within the window (sliding), then refused until it passes.
    console_idle_timeout_seconds: int = 1800
    console_session_max_seconds: int = 12 * 3600
    console_sign_in_max_failures_per_user: int = 5
    console_sign_in_max_failures_per_address: int = 20
    console_sign_in_failure_window_seconds: int = 900
    # Operations (docs/monitoring.md): text or json log lines; /metrics on the main port
    # (0) or on a port of its own; where gunicorn workers keep their metric files (empty:
    # data_dir/metrics).
    log_format: str = "text"
    metrics_port: int = 0
    metrics_dir: str = ""
    # The HTTP server of `bridge serve`: waitress (default: one process whose threads only
    # ever see complete requests, safe without a proxy) or gunicorn (several processes; only
    # behind a proxy that buffers requests, e.g. nginx: its workers read from clients).
    server: str = "waitress"
    # Data exports (StartDataExport): where archives are stored (empty: data_dir/exports;
    # several hosts need a directory they all mount, see the README) and how often the
    # export job looks for requests (0: this process runs no export job).
    data_export_dir: str = ""
    data_export_interval_seconds: int = 15
    # Usage-based pricing (the published pricing by default): the charge of one Active Pro
    # day, the most one user is charged in a month, the currency (ISO 4217). Amounts are
    # decimal strings ("3.00"), never floats, so a bill is exact and reproducible.
    billing_daily_rate: str = "3.00"
    billing_monthly_cap: str = "15.00"
    billing_currency: str = "USD"
    # How often `bridge serve` rolls usage up for the reports (the named job usage-rollup,
    # one runner at a time across workers and hosts); 0: never (run `bridge usage rollup`).
    usage_rollup_interval_seconds: int = 3600

    @property
    def effective_database_url(self) -> str:
        """The SQLAlchemy URL: the configured one, or SQLite in the data directory."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'bridge.db').resolve()}"

    @property
    def effective_data_export_dir(self) -> Path:
        """Where data export archives are stored."""
        return Path(self.data_export_dir) if self.data_export_dir else self.data_dir / "exports"

    @property
    def effective_public_url(self) -> str:
        """The externally visible base URL, without a trailing slash."""
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def redacted(self) -> dict[str, Any]:
        """The settings as a dict with secret values replaced, for logs and diagnostics."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = "***" if f.name in SECRET_FIELDS and value else value
        return out


def _read_file_ref(name: str, value: str) -> str:
    if not value.startswith("file:"):
        return value
    path = Path(value[5:])
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise SettingsError(
            f"{_env_name(name)}: cannot read secret file {path}: {exc.strerror}"
        ) from None


def _env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _coerce(name: str, hint: Any, value: Any) -> Any:
    """Turn a TOML or environment value into the field's type, or raise SettingsError."""
    origin = typing.get_origin(hint)
    if isinstance(value, str):
        value = _read_file_ref(name, value)
    if hint is Path:
        if not isinstance(value, str | Path) or not str(value):
            raise SettingsError(f"{_env_name(name)}: must be a non-empty path")
        return Path(value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in {"1", "true", "yes", "on"}:
            return True
        if text in {"0", "false", "no", "off", ""}:
            return False
        raise SettingsError(f"{_env_name(name)}: must be true or false, got {value!r}")
    if hint is int:
        try:
            if isinstance(value, bool):
                raise ValueError
            return int(str(value).strip())
        except ValueError:
            raise SettingsError(f"{_env_name(name)}: must be an integer, got {value!r}") from None
    if hint is float:
        try:
            return float(str(value).strip())
        except ValueError:
            raise SettingsError(f"{_env_name(name)}: must be a number, got {value!r}") from None
    if origin is tuple:
        items = value if isinstance(value, list | tuple) else str(value).split(",")
        return tuple(str(i).strip() for i in items if str(i).strip())
    if hint is str:
        if not isinstance(value, str | int | float):
            raise SettingsError(f"{_env_name(name)}: must be a string")
        return str(value)
    return value


def _validate(s: Settings) -> None:
    def bad(name: str, why: str) -> SettingsError:
        return SettingsError(f"{_env_name(name)}: {why}")

    if not 1 <= s.port <= 65535:
        raise bad("port", f"must be between 1 and 65535, got {s.port}")
    if s.workers < 1:
        raise bad("workers", f"must be at least 1, got {s.workers}")
    for name in ("admin_api_max_requests_per_minute",
                 "admin_api_max_unauthenticated_per_minute"):
        if getattr(s, name) < 0:
            raise bad(name, "must be 0 (no limit) or more")
    if s.ad_sync_now_max_runs < 1:
        raise bad("ad_sync_now_max_runs", f"must be at least 1, got {s.ad_sync_now_max_runs}")
    if not 0 <= s.ad_sync_now_wait_seconds <= 600:
        raise bad("ad_sync_now_wait_seconds", "must be between 0 and 600 (a web request "
                                              f"never waits longer), got "
                                              f"{s.ad_sync_now_wait_seconds}")
    if not 0 <= s.trusted_proxy_count <= 10:
        raise bad("trusted_proxy_count", f"must be between 0 and 10, got "
                                         f"{s.trusted_proxy_count}")
    if s.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise bad("log_level", f"must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got "
                               f"{s.log_level!r}")
    if s.log_format not in {"text", "json"}:
        raise bad("log_format", f"must be text or json, got {s.log_format!r}")
    if s.server not in {"waitress", "gunicorn"}:
        raise bad("server", f"must be waitress or gunicorn, got {s.server!r}")
    if not 0 <= s.metrics_port <= 65535 or (s.metrics_port and s.metrics_port == s.port):
        raise bad("metrics_port", "must be 0 (the main port) or another port up to 65535")
    if s.database_url and not s.database_url.startswith(("sqlite:", "postgresql")):
        raise bad("database_url", "must be a sqlite:/// or postgresql+psycopg:// URL")
    for ns in s.dns_nameservers:
        host, _, port = ns.rpartition(":") if ns.count(":") == 1 else (ns, "", "53")
        if not host or not port.isdigit() or not 1 <= int(port) <= 65535:
            raise bad("dns_nameservers", f"each entry must be host:port, got {ns!r}")
    if s.smtp_url and s.smtp_url != "log:":
        parts = urlsplit(s.smtp_url)
        if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
            raise bad("smtp_url", "must look like smtp://[user:pass@]host:port[?starttls=true] "
                                 "(or log: to write mail to the log)")
    for name in ("max_body_bytes", "scim_max_results", "session_ttl_seconds",
                 "ad_sync_interval_seconds", "ad_full_sync_interval_seconds",
                 "console_idle_timeout_seconds", "console_session_max_seconds",
                 "console_sign_in_failure_window_seconds"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be positive")
    if s.data_export_interval_seconds < 0:
        raise bad("data_export_interval_seconds", "must be 0 (no export job) or more")
    if not 0 < s.ad_mass_change_max_percent <= 100:
        raise bad("ad_mass_change_max_percent", "must be in (0, 100]")
    if s.public_url and urlsplit(s.public_url).scheme not in {"http", "https"}:
        raise bad("public_url", "must be an http:// or https:// URL")
    for name in ("billing_daily_rate", "billing_monthly_cap"):
        try:
            amount = Decimal(getattr(s, name))
        except InvalidOperation:
            raise bad(name, f"must be a decimal amount, got {getattr(s, name)!r}") from None
        if not amount.is_finite() or amount < 0 or amount.as_tuple().exponent < -4:  # type: ignore[operator]
            raise bad(name, "must be a non-negative amount with at most 4 decimals")
    if not (len(s.billing_currency) == 3 and s.billing_currency.isascii()
            and s.billing_currency.isupper() and s.billing_currency.isalpha()):
        raise bad("billing_currency", f"must be an ISO 4217 code such as USD, got "
                                      f"{s.billing_currency!r}")
    if s.usage_rollup_interval_seconds < 0:
        raise bad("usage_rollup_interval_seconds", "must be 0 (never) or more")
    if s.default_oidc_issuer and urlsplit(s.default_oidc_issuer).scheme not in {"http", "https"}:
        raise bad("default_oidc_issuer", "must be an http:// or https:// URL")


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Build validated settings from defaults, the TOML file, the environment, then overrides.

    ``env`` defaults to ``os.environ``; ``overrides`` (used by tests and the CLI) win over all.
    Unknown ``BRIDGE_*`` variables are ignored except that a TOML key that is not a setting is
    an error (a typo in a file should not pass silently).
    """
    env = os.environ if env is None else env
    hints = typing.get_type_hints(Settings)
    fields = {f.name for f in dataclasses.fields(Settings)}
    values: dict[str, Any] = {}

    config_path = env.get(ENV_PREFIX + "CONFIG")
    if config_path:
        try:
            with open(config_path, "rb") as fh:
                data = tomllib.load(fh)
        except OSError as exc:
            raise SettingsError(
                f"BRIDGE_CONFIG: cannot read {config_path}: {exc.strerror}"
            ) from None
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"BRIDGE_CONFIG: {config_path} is not valid TOML: {exc}") from None
        for key, value in data.items():
            if key not in fields:
                raise SettingsError(f"BRIDGE_CONFIG: unknown setting {key!r} in {config_path}")
            values[key] = _coerce(key, hints[key], value)

    for name in fields:
        raw = env.get(_env_name(name))
        if raw is not None:
            values[name] = _coerce(name, hints[name], raw)

    for name, value in (overrides or {}).items():
        if name not in fields:
            raise SettingsError(f"unknown setting {name!r}")
        values[name] = _coerce(name, hints[name], value) if isinstance(value, str) else value

    settings = Settings(**values)
    _validate(settings)
    return settings

