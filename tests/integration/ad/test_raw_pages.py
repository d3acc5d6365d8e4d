"""The full read's message-level paged search (``ad_sync.raw_pages``) against Samba: the
same users as ldap3's ``Connection.search`` path, page by page, and the same errors."""

from __future__ import annotations

import pytest

from ad_sync import client
from ad_sync.client import DirectoryError
from ad_sync.raw_pages import raw_pages
from ad_sync.vendor import ms_ad
from tests.integration.ad.conftest import Bridge


def _users_both_ways(bridge: Bridge, page_size: int) -> tuple[list[list[ms_ad.DirectoryUser]],
                                                               list[list[ms_ad.DirectoryUser]]]:
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    conn = client.open_connection(cfg)
    try:
        formatted = [[u for u in map(ms_ad.user_from_entry, page) if u is not None]
                     for page in client.paged(conn, bridge.seed.staff, ms_ad.DEFAULT_USER_FILTER,
                                              ms_ad.USER_ATTRIBUTES, page_size=page_size)]
        raw = [[u for u in (ms_ad.user_from_raw(dn, values) for dn, values in page)
                if u is not None]
               for page in raw_pages(conn, bridge.seed.staff, ms_ad.DEFAULT_USER_FILTER,
                                     ms_ad.USER_ATTRIBUTES, page_size=page_size)]
    finally:
        client.close(conn)
    return formatted, raw


def test_reads_the_same_users_as_the_formatted_search(bridge: Bridge) -> None:
    dc, seed = bridge.dc, bridge.seed
    dc.add_user("plain", ou_dn=seed.staff, mail="Plain@Example.com", display_name="Plain")
    dc.add_user("accents", ou_dn=seed.staff, display_name="Zoë Ångström-Núñez 東京",
                proxy_addresses=["SMTP:zoe@example.com", "smtp:Z@Example.com",
                                 "X500:/o=x/cn=zoe", "sip:zoe@example.com", "smtp:not-mail"])
    off = dc.add_user("off", ou_dn=seed.staff, mail="off@example.com", disabled=True)
    bare = dc.add_user("bare", ou_dn=seed.staff)  # no mail, no name, no proxies
    dc.add_member(seed.pro_nested, off)
    dc.add_member(seed.basic, off)
    dc.add_member(seed.basic, bare)
    for i in range(4):
        dc.add_user(f"u{i}", ou_dn=seed.staff, mail=f"u{i}@example.com")
    formatted, raw = _users_both_ways(bridge, page_size=3)
    assert [len(p) for p in raw] == [3, 3, 2]
    assert raw == formatted
    users = {u.dn.split(",")[0]: u for page in raw for u in page}
    assert users["CN=accents"].display_name == "Zoë Ångström-Núñez 東京"
    assert users["CN=accents"].aliases == ("z@example.com",)
    assert not users["CN=off"].enabled and len(users["CN=off"].member_of) == 2
    assert users["CN=bare"].mail is None and users["CN=bare"].primary_group_id == 513


def test_a_missing_base_is_a_directory_error(bridge: Bridge) -> None:
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    conn = client.open_connection(cfg)
    try:
        with pytest.raises(DirectoryError, match="does not exist"):
            list(raw_pages(conn, "OU=Nowhere," + bridge.dc.base_dn, ms_ad.DEFAULT_USER_FILTER,
                           ms_ad.USER_ATTRIBUTES))
    finally:
        client.close(conn)


def test_a_connection_closed_mid_search_is_a_directory_error(bridge: Bridge) -> None:
    for i in range(3):
        bridge.dc.add_user(f"c{i}", ou_dn=bridge.seed.staff, mail=f"c{i}@example.com")
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    conn = client.open_connection(cfg)
    pages = raw_pages(conn, bridge.seed.staff, ms_ad.DEFAULT_USER_FILTER,
                      ms_ad.USER_ATTRIBUTES, page_size=1)
    assert len(next(pages)) == 1
    conn.socket.close()  # the next page's request is outstanding: its answer never comes
    with pytest.raises(DirectoryError) as caught:
        list(pages)
    assert caught.value.kind == "search"
    client.close(conn)
