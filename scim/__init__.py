"""SCIM 2.0 door (RFC 7643/7644): translates SCIM requests into engine calls.

Mounted at ``/scim/v2`` by the composition root (``bridge.app.create_app``) through
:func:`scim.views.register`; authenticated with the account's API keys
(``bridge.engine.api_keys``). This package file imports none of its modules, so importing
one of them never runs another first (no import cycle through the package).
"""
