"""The full read's paged search at ldap3's message level: raw values, next page asked early.

Why not :func:`ad_sync.client.paged` (``Connection.search``): for every entry ldap3 builds
two dictionaries, the raw values and the values formatted by its per-attribute rules (with
configuration look-ups per value); the full read needs eight attributes it decodes itself
(:func:`ad_sync.vendor.ms_ad.user_from_raw`), so the formatted half was a third of the
reader's time (docs/performance.md, issue 17). And ``Connection.search`` decodes a page as
it arrives and only then returns the cookie for the next one, so the DC waited while the
page was decoded. Here the page's messages are received undecoded, the cookie is read from
its last message (``searchResDone``), the next page is asked for at once, and the page is
decoded while the DC prepares the next one.

What stays ldap3's: the connection (TLS, bind, timeouts), the request's encoding
(``search_operation``, the paged-results control), the socket reads
(``strategy.receiving``) and the BER decoding (``decode_message_fast``). These are ldap3
2.9's module-level functions (pinned ``<2.10`` in pyproject.toml); the integration test
``tests/integration/ad/test_raw_pages.py`` reads the same users both ways against Samba.

Contract of :func:`raw_pages`: as :func:`client.paged` (one page in memory, at most one
request outstanding, continuation references dropped, any failure a
:class:`~ad_sync.client.DirectoryError` after the pages before it), but entries are
``(dn, {attribute: [raw values]})``. While the caller holds a page the next page's request
is outstanding on ``conn``: nothing else may use ``conn`` until the iteration ends.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from ldap3 import DEREF_ALWAYS, SUBTREE, Connection
from ldap3.core.exceptions import LDAPException
from ldap3.operation.search import search_operation
from ldap3.protocol.rfc2696 import paged_search_control
from ldap3.utils.asn1 import compute_ber_size, decode_message_fast

from ad_sync.client import DirectoryError
from ad_sync.vendor import ms_ad

RawEntry = tuple[str, dict[str, list[bytes]]]

# protocolOp numbers of the messages a search answers with (RFC 4511 4.2).
_SEARCH_RES_ENTRY = 4
_SEARCH_RES_REF = 19
_INTERMEDIATE = 25
_OTHER_ANSWER = "the directory answered another request (message {})"


def raw_pages(conn: Connection, base: str, search_filter: str, attributes: Sequence[str], *,
              page_size: int = ms_ad.PAGE_SIZE) -> Iterator[list[RawEntry]]:
    """Yield the entries of a paged search (RFC 2696) one page at a time, raw; see the
    module's contract."""
    try:
        message_id = _ask(conn, base, search_filter, attributes, page_size, None)
        while True:
            messages = _receive_page(conn)
            last = decode_message_fast(messages[-1])
            if last["messageID"] != message_id:
                raise DirectoryError("search", _OTHER_ANSWER.format(last["messageID"]))
            done = conn.strategy.decode_response_fast(last)
            # Forget the request as get_response does (ldap3 keeps it until answered).
            conn.strategy._outstanding.pop(message_id, None)
            cookie = _cookie(done, base)
            asked = message_id
            if cookie:
                # The DC prepares the next page while this one is decoded below.
                message_id = _ask(conn, base, search_filter, attributes, page_size, cookie)
            yield _entries(messages[:-1], asked)
            if not cookie:
                return
    except LDAPException as exc:
        raise DirectoryError("search", f"search under {base!r} failed: "
                                       f"{str(exc).strip()[:300] or type(exc).__name__}") \
            from None


def _ask(conn: Connection, base: str, search_filter: str, attributes: Sequence[str],
         page_size: int, cookie: bytes | None) -> int:
    """Send one page's request (encoded as ``Connection.search`` encodes it)."""
    request = search_operation(base, search_filter, SUBTREE, DEREF_ALWAYS, list(attributes),
                               0, 0, False, conn.auto_escape, conn.auto_encode,
                               conn.server.schema if conn.server else None,
                               validator=conn.server.custom_validator,
                               check_names=conn.check_names)
    message_id: int = conn.send("searchRequest", request,
                                [paged_search_control(False, page_size, cookie)])
    return message_id


def _operation(message: bytes) -> int:
    """The protocolOp of an undecoded LDAPMessage: the tag after the messageID (lengths
    read with ldap3's own ``compute_ber_size``)."""
    _length, offset = compute_ber_size(message[:10])
    id_length, id_offset = compute_ber_size(message[offset:offset + 10])
    return int(message[offset + id_offset + id_length]) & 0x1F


def _receive_page(conn: Connection) -> list[bytes]:
    """The messages answering the outstanding request, up to and with the one that ends it
    (entries and references come before it: RFC 4511 4.5.2)."""
    messages: list[bytes] = []
    while True:
        batch = conn.strategy.receiving()
        if not batch:
            raise DirectoryError("search", "the directory closed the connection during the "
                                           "search")
        messages.extend(m for m in batch if m)
        if messages and _operation(messages[-1]) not in (_SEARCH_RES_ENTRY, _SEARCH_RES_REF,
                                                         _INTERMEDIATE):
            return messages


def _cookie(done: dict[str, Any], base: str) -> bytes | None:
    """The paged-results cookie of a page's ``searchResDone`` (None: last page); errors as
    :func:`client.paged` reports them."""
    if done.get("type") != "searchResDone":
        raise DirectoryError("search", f"search under {base!r} failed: unexpected "
                                       f"{done.get('type')} message")
    if done.get("description") == "noSuchObject":
        raise DirectoryError("search", f"the base {base!r} does not exist")
    if done.get("description") != "success":
        raise DirectoryError(
            "search", f"search under {base!r} failed: {done.get('description')} "
                      f"{done.get('message') or ''}".strip())
    control = ((done.get("controls") or {}).get(ms_ad.PAGED_RESULTS_OID) or {})
    cookie: bytes | None = (control.get("value") or {}).get("cookie")
    return cookie or None


def _entries(messages: Sequence[bytes], message_id: int) -> list[RawEntry]:
    """The page's entries (DN, raw values by attribute name); references dropped."""
    entries: list[RawEntry] = []
    for message in messages:
        decoded = decode_message_fast(message)
        if decoded["messageID"] != message_id:
            raise DirectoryError("search", _OTHER_ANSWER.format(decoded["messageID"]))
        if decoded["protocolOp"] != _SEARCH_RES_ENTRY:
            continue
        payload = decoded["payload"]
        # searchResEntry: objectName, then the attributes: SEQUENCE OF (type, SET OF value).
        entries.append((payload[0][3].decode("utf-8"), {
            attribute[3][0][3].decode("utf-8"): [v[3] for v in attribute[3][1][3]]
            for attribute in payload[1][3]}))
    return entries
