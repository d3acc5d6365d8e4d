"""Active Directory door: the ldap3 sync worker and sign-in with directory credentials.

``register(app, services)`` installs the sign-in routes (:mod:`ad_sync.signin`). The
"bind once" check ConnectDirectory uses is :func:`ad_sync.client.verify_connection`, handed
to the admin door by the composition root. The sync runs from the command line:
``bridge sync-ad`` (:mod:`ad_sync.cli`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from bridge.services import Services


def register(app: Flask, services: Services) -> None:
    """Install the AD sign-in routes with the services they use."""
    from ad_sync import signin

    signin.register(app, services)


__all__ = ["register"]
