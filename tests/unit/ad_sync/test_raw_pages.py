"""The page-ending message of ``ad_sync.raw_pages``: every page's LDAP result code is
checked, so a DC that stops a paged search early (size or time limit, busy, a referral)
is an error, never the directory's end (which would let the sync suspend every user it did
not see). The messages are BER-encoded by ldap3's own protocol classes and decoded by the
same ldap3 functions the reader uses."""

from __future__ import annotations

import pytest
from ldap3 import Connection, Server
from ldap3.protocol.rfc2696 import Cookie, Integer0ToMax, RealSearchControlValue
from ldap3.protocol.rfc4511 import (
    LDAPDN,
    LDAPOID,
    Control,
    Controls,
    Criticality,
    LDAPMessage,
    LDAPString,
    MessageID,
    ProtocolOp,
    ResultCode,
    SearchResultDone,
)
from ldap3.utils.asn1 import decode_message_fast
from pyasn1.codec.ber import encoder

from ad_sync.client import DirectoryError
from ad_sync.raw_pages import _cookie, _operation
from ad_sync.vendor import ms_ad

_SEARCH_RES_DONE = 5


def _done(code: int, cookie: bytes) -> bytes:
    """A searchResDone with ``code`` and the paged-results control carrying ``cookie``."""
    result = SearchResultDone()
    result["resultCode"] = ResultCode(code)
    result["matchedDN"] = LDAPDN("")
    result["diagnosticMessage"] = LDAPString("said the DC")
    op = ProtocolOp()
    op["searchResDone"] = result
    message = LDAPMessage()
    message["messageID"] = MessageID(3)
    message["protocolOp"] = op
    value = RealSearchControlValue()
    value["size"] = Integer0ToMax(0)
    value["cookie"] = Cookie(cookie)
    control = Control()
    control["controlType"] = LDAPOID(ms_ad.PAGED_RESULTS_OID)
    control["criticality"] = Criticality(False)
    control["controlValue"] = encoder.encode(value)
    controls = Controls()
    controls.setComponentByPosition(0, control)
    message["controls"] = controls
    return bytes(encoder.encode(message))


def _decoded(message: bytes) -> dict[str, object]:
    # An ldap3 connection that is never opened: only its response decoder is used.
    conn = Connection(Server("ldap://127.0.0.1"))
    decoded: dict[str, object] = conn.strategy.decode_response_fast(
        decode_message_fast(message))
    return decoded


def test_a_successful_page_gives_its_cookie_and_the_last_page_none() -> None:
    assert _operation(_done(0, b"next")) == _SEARCH_RES_DONE
    assert _cookie(_decoded(_done(0, b"next")), "DC=x") == b"next"
    assert _cookie(_decoded(_done(0, b"")), "DC=x") is None


@pytest.mark.parametrize(("code", "words"), [
    (4, "sizeLimitExceeded"), (3, "timeLimitExceeded"), (51, "busy"), (52, "unavailable"),
    (10, "referral"), (11, "adminLimitExceeded"), (80, "other"),
])
@pytest.mark.parametrize("cookie", [b"", b"next"])
def test_a_page_ended_by_an_error_code_is_an_error_not_the_end(code: int, words: str,
                                                              cookie: bytes) -> None:
    with pytest.raises(DirectoryError, match=words) as caught:
        _cookie(_decoded(_done(code, cookie)), "DC=x")
    assert caught.value.kind == "search"


def test_a_missing_base_is_named() -> None:
    with pytest.raises(DirectoryError, match="does not exist"):
        _cookie(_decoded(_done(32, b"")), "OU=Nowhere,DC=x")
