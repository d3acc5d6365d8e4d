"""Active Directory door: the ldap3 sync worker and sign-in with directory credentials."""
