"""Fixtures of the hostile-input tests: a SCIM client and signing admin clients on one app
(SQLite, the Flask test client; the served tests start ``bridge serve`` themselves)."""

from __future__ import annotations

from tests.admin_client import full_admin, live_server  # noqa: F401
from tests.functional.scim.conftest import scim  # noqa: F401
