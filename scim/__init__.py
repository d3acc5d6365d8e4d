"""SCIM 2.0 door (RFC 7643/7644): translates SCIM requests into engine calls.

Mounted at ``/scim/v2`` by the composition root (``bridge.app.create_app``) through
:func:`register`; authenticated with the account's API keys (``bridge.engine.api_keys``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from bridge.services import Services


def register(app: Flask, services: Services) -> None:
    """Mount the SCIM endpoints and the API key service on ``app``."""
    from scim.views import register as _register

    _register(app, services)


__all__ = ["register"]
