"""OpenID Connect door: the relying party for Okta and the service-wide default provider.

The composition root installs the routes with :func:`oidc.views.register`. This package
file imports none of its modules (no import cycle through the package).
"""
