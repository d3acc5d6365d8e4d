"""Shared fixtures.

Stores: ``store_url`` is parametrised over the embedded SQLite default and a real PostgreSQL
server started on loopback for the test run. Each test gets a fresh, migrated database: the
migrations run once into a template (a file for SQLite, a template database for PostgreSQL)
that is copied per test, so every test sees exactly what ``bridge db upgrade`` produces.
"""

from __future__ import annotations

import itertools
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.store.db import upgrade
from config import Settings, load_settings
from tests.servers.postgres import PostgresServer

# The browser tests' fixtures (browser, page), wherever the test lives.
pytest_plugins = ["tests.browser.chromium"]
_counter = itertools.count()


class FakeClock:
    """A clock the test moves by hand (trials, grace periods, verification windows)."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> datetime:
        self.now += timedelta(**kwargs)
        return self.now


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_server: PostgresServer) -> str:
    url = postgres_server.create_database("bridge_template")
    upgrade(url)
    return "bridge_template"


def _fresh_postgres(server: PostgresServer, template: str) -> str:
    import psycopg
    from psycopg import sql

    name = f"bridge_test_{next(_counter)}"
    with psycopg.connect(server.conninfo("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
            sql.Identifier(name), sql.Identifier(template)))
    return server.url(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh migrated database on each store backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("_sqlite_template")
        target = tmp_path / "bridge.db"
        shutil.copyfile(template, target)
        return f"sqlite:///{target}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return _fresh_postgres(server, request.getfixturevalue("_postgres_template"))


@pytest.fixture
def sqlite_url(_sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh migrated SQLite database (for tests that are not about the store)."""
    target = tmp_path / "bridge.db"
    shutil.copyfile(_sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


# Tests always name their database, so the bridge needs an explicit key (crypto.py): a fixed
# one, for throw-away data only.
TEST_SECRET_KEY = "dGVzdC1vbmx5LWtleS1uZXZlci1hLXNlY3JldC0wMDA="


def make_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    return load_settings(env={}, overrides={"data_dir": tmp_path / "data",
                                            "database_url": database_url,
                                            "secret_key": TEST_SECRET_KEY, **overrides})


@pytest.fixture
def services(store_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    """Engine and store on each backend, with the test's clock."""
    built = build_services(make_settings(tmp_path, store_url), clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def engine(services: Services) -> ResolutionEngine:
    return services.engine


@pytest.fixture
def admin() -> Actor:
    return Actor(type="AdminUser", principal_id="AIDATESTADMIN", name="alice",
                 access_key_id="AKIATESTADMIN", source_ip="127.0.0.1", user_agent="pytest")


@pytest.fixture
def app_services(sqlite_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Services]:
    """Services on SQLite for HTTP-level (functional) tests."""
    built = build_services(make_settings(tmp_path, sqlite_url), clock=clock)
    yield built
    built.db.dispose()


@pytest.fixture
def app(app_services: Services) -> Flask:
    return create_app(app_services.settings, app_services)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
