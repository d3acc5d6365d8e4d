"""Fixtures and helpers of the operations tests (metrics, request ids, logs, readiness)."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.admin_client import full_admin, live_server  # noqa: F401
from tests.functional.admin_api.conftest import make_app  # noqa: F401
from tests.functional.scim.conftest import scim  # noqa: F401


def value(name: str, **labels: str) -> float:
    """A sample's value in this process's registry (0 when never recorded). Metrics are
    process-wide, so tests compare values before and after driving a door."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
