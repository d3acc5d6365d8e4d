"""Fixtures of the admin API tests: apps with chosen settings on a fresh SQLite store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from bridge.app import Services, build_services, create_app
from tests.admin_client import AdminClient, LiveServer, full_admin, live_server  # noqa: F401
from tests.conftest import FakeClock, make_settings

AppFactory = Callable[..., Flask]


@pytest.fixture
def make_app(sqlite_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[AppFactory]:
    """``make_app(**settings)``: an app on the test's SQLite store with those settings."""
    built: list[Services] = []

    def factory(**overrides: object) -> Flask:
        svc = build_services(make_settings(tmp_path, sqlite_url, **overrides), clock=clock)
        built.append(svc)
        return create_app(svc.settings, svc)

    yield factory
    for svc in built:
        svc.db.dispose()


@pytest.fixture
def store_app(services: Services) -> Flask:
    """An app on each store (SQLite and a real PostgreSQL), with the test's clock."""
    return create_app(services.settings, services)


@pytest.fixture
def make_store_app(store_url: str, tmp_path: Path,
                   clock: FakeClock) -> Iterator[AppFactory]:
    """``make_store_app(**settings)``: like ``make_app``, on each store."""
    built: list[Services] = []

    def factory(**overrides: object) -> Flask:
        svc = build_services(make_settings(tmp_path, store_url, **overrides), clock=clock)
        built.append(svc)
        return create_app(svc.settings, svc)

    yield factory
    for svc in built:
        svc.db.dispose()


@pytest.fixture
def chime(live_server: LiveServer, full_admin: AdminClient) -> Any:  # noqa: F811
    """boto3's chime client for the FullAccess admin, on the live server."""
    return live_server.boto3(full_admin)


@pytest.fixture
def chime_unvalidated(live_server: LiveServer, full_admin: AdminClient) -> Any:  # noqa: F811
    """boto3 with its client-side checks off, to see the server's own refusals."""
    return live_server.boto3(full_admin, parameter_validation=False)
