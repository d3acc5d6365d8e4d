"""Fixtures of the hostile-input tests: a SCIM client and signing admin clients on one app
(SQLite, the Flask test client; the served tests start ``bridge serve`` themselves).

``fuzz_app`` is an app whose every outbound dependency is a closed port on loopback (DNS,
SMTP; generated URLs are pointed there too by :func:`loopback_only`), with no per-principal
rate limit, so generated requests reach the handlers and never leave the machine."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Engine, select

from bridge.app import Services, build_services, create_app
from bridge.store.models import Base
from tests.admin_client import full_admin, live_server  # noqa: F401
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import scim  # noqa: F401
from tests.servers.ports import LOOPBACK, free_port

# Rows that every call writes, refused ones included: not "a change".
BOOKKEEPING = {"audit_events", "admin_request_signatures", "alembic_version"}
# Columns every authenticated call updates (when a key was last used).
BOOKKEEPING_COLUMNS = {"last_used_at"}
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s\"]*")


@pytest.fixture
def fuzz_app(store_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    """On each store: PostgreSQL refuses some text SQLite takes (NUL)."""
    closed = f"{LOOPBACK}:{free_port()}"
    settings = make_settings(tmp_path, store_url, dns_nameservers=(closed,),
                             dns_timeout_seconds=0.2, smtp_url=f"smtp://{closed}",
                             smtp_timeout_seconds=0.2, admin_api_max_requests_per_minute=0)
    svc: Services = build_services(settings, clock=clock)
    yield create_app(settings, svc)
    svc.db.dispose()


def loopback_only(value: Any) -> Any:
    """``value`` with the host of every URL in its strings replaced by a closed loopback
    port (generated issuers and LDAP URLs must not reach the network)."""
    if isinstance(value, str):
        return _URL.sub(lambda m: f"{m.group(1)}127.0.0.1:9", value)
    if isinstance(value, list):
        return [loopback_only(v) for v in value]
    if isinstance(value, dict):
        return {loopback_only(k): loopback_only(v) for k, v in value.items()}
    return value


def snapshot(db: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table except the bookkeeping ones, in a stable order."""
    metadata = Base.metadata
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.connect() as conn:
        for name, table in metadata.tables.items():
            if name in BOOKKEEPING:
                continue
            columns = [c for c in table.columns if c.name not in BOOKKEEPING_COLUMNS]
            out[name] = sorted(map(tuple, conn.execute(select(*columns))), key=repr)
    return out
