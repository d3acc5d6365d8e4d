"""SCIM 2.0 door (RFC 7643/7644): translates SCIM requests into engine calls."""
