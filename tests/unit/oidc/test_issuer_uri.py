"""IssuerUri validation (OpenID Connect Discovery 1.0 section 2): https, no query or
fragment; plain http only for a provider on loopback."""

from __future__ import annotations

import pytest

from bridge.engine.openid_configs import validate_issuer_uri
from bridge.errors import ValidationError


@pytest.mark.parametrize("value", [
    "https://example.okta.com",
    "https://example.okta.com/oauth2/default",
    "  https://example.okta.com/oauth2/aus1  ",
    "http://127.0.0.1:8080/oauth2/default",
    "http://[::1]:8080",
    "http://localhost:9000",
])
def test_accepted(value: str) -> None:
    assert validate_issuer_uri(value) == value.strip()


@pytest.mark.parametrize(("value", "match"), [
    ("", "required"),
    (None, "required"),
    (42, "required"),
    ("example.okta.com", "https://"),
    ("ftp://example.okta.com", "https://"),
    ("http://example.okta.com", "must use https"),
    ("http://10.0.0.5/oauth2/default", "must use https"),
    ("https://example.okta.com/oauth2/default?x=1", "query"),
    ("https://example.okta.com/#frag", "fragment"),
    ("https://example.okta.com/" + "a" * 600, "512"),
])
def test_refused(value: object, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        validate_issuer_uri(value)
