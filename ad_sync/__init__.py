"""Active Directory door: the ldap3 sync worker and sign-in with directory credentials.

``register(app, services)`` installs the sign-in routes (:mod:`ad_sync.signin`) and the
"bind once" check that ConnectDirectory uses (:mod:`bridge.ad_directory`). The sync runs
from the command line: ``bridge sync-ad`` (:mod:`ad_sync.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from bridge.app import Services


def register(app: Flask, services: Services) -> None:
    from ad_sync import client, signin
    from bridge.ad_directory import VERIFIER_EXTENSION

    allow = services.settings.allow_insecure_ldap
    app.extensions[VERIFIER_EXTENSION] = (
        lambda cfg: client.verify_connection(cfg, allow_insecure=allow))
    signin.register(app, services)


__all__ = ["register"]
