"""A live bridge (werkzeug's threaded server on a free 127.0.0.1 port) for SCIM clients that
speak real HTTP: python-scim's conformance checker and the PostgreSQL replay."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from werkzeug.serving import BaseWSGIServer, make_server

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from bridge.engine.api_keys import ApiKeys
from tests.builders import enterprise
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import ScimClient, make_scim_client
from tests.servers.ports import LOOPBACK


@dataclass
class LiveScim:
    base_url: str
    key: str
    key_id: str
    account_id: str
    services: Services


def _serve(services: Services, admin: Actor) -> Iterator[LiveScim]:
    app = create_app(services.settings, services)
    account = enterprise(services.engine, admin, ["example.com"], name="Live Corp")
    keys: ApiKeys = app.extensions["bridge"].engine.api_keys
    created = keys.create(admin, account.id, connect=True)
    server: BaseWSGIServer = make_server(LOOPBACK, 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield LiveScim(f"http://{LOOPBACK}:{server.server_port}/scim/v2", created.key,
                       created.view.key_id, account.id, services)
    finally:
        server.shutdown()
        thread.join(timeout=5)
        services.db.dispose()


@pytest.fixture
def live_scim(sqlite_url: str, tmp_path: Path, admin: Actor) -> Iterator[LiveScim]:
    """A live server on SQLite with one enterprise account and its key."""
    services = build_services(make_settings(tmp_path, sqlite_url), clock=FakeClock())
    yield from _serve(services, admin)


@pytest.fixture
def live_scim_store(store_url: str, tmp_path: Path, admin: Actor) -> Iterator[LiveScim]:
    """A live server on each store backend (SQLite and PostgreSQL)."""
    services = build_services(make_settings(tmp_path, store_url))
    yield from _serve(services, admin)


@pytest.fixture
def scim_store(store_url: str, tmp_path: Path, admin: Actor,
               clock: FakeClock) -> Iterator[ScimClient]:
    """A Flask test client of the SCIM door on each store backend (one enterprise account
    and its key), with the test's clock."""
    services = build_services(make_settings(tmp_path, store_url), clock=clock)
    app = create_app(services.settings, services)
    yield make_scim_client(app, services, admin, "example.com", "Store Corp")
    services.db.dispose()
