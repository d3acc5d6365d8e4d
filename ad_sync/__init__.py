"""Active Directory door: the ldap3 sync worker and sign-in with directory credentials.

The composition root installs the sign-in routes with :func:`ad_sync.signin.register` and
hands ConnectDirectory the "bind once" check :func:`ad_sync.client.verify_connection`. The
sync runs from the command line: ``bridge sync-ad`` (:mod:`ad_sync.cli`). This package
file imports none of its modules (no import cycle through the package).
"""
