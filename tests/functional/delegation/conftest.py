"""Fixtures of the shared-management tests: an app on each store (SQLite, PostgreSQL)."""

from __future__ import annotations

import pytest
from flask import Flask

from bridge.app import Services, create_app


@pytest.fixture
def store_app(services: Services) -> Flask:
    return create_app(services.settings, services)
