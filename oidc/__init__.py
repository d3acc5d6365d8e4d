"""OpenID Connect door: the relying party for Okta and the service-wide default provider.

``register(app, services)`` installs the routes (see :mod:`oidc.views`).
"""

from oidc.views import register

__all__ = ["register"]
