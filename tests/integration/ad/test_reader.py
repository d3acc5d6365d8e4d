"""The helper process that reads a directory's users (``ad_sync.reader``), against Samba."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest

from ad_sync import client
from ad_sync.client import DirectoryError
from ad_sync.reader import Search, Target, UserReader, _Ranges
from ad_sync.vendor import ms_ad
from tests.integration.ad.conftest import Bridge


def _search(bridge: Bridge, page_size: int) -> Search:
    return Search(bridge.seed.staff, ms_ad.DEFAULT_USER_FILTER, ms_ad.USER_ATTRIBUTES,
                  page_size)


def test_reads_every_user_page_by_page(bridge: Bridge) -> None:
    for i in range(5):
        bridge.dc.add_user(f"r{i}", ou_dn=bridge.seed.staff, mail=f"r{i}@example.com")
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    with UserReader(cfg, _search(bridge, 2), allow_insecure=False) as reader:
        pages = list(reader)
    assert [len(p) for p in pages] == [2, 2, 1]
    users = [u for page in pages for u in page]
    assert sorted(u.mail or "" for u in users) == [f"r{i}@example.com" for i in range(5)]
    assert all(len(u.guid) == 36 and u.enabled for u in users)
    # The helper tells its peak memory with its end.
    assert reader.peak_rss_mb is not None and 5 < reader.peak_rss_mb < 500


def test_a_refused_bind_is_a_directory_error_in_words(bridge: Bridge) -> None:
    cfg = dataclasses.replace(bridge.services.engine.ad_directories.connection(bridge.account_id),
                              bind_password="Not-The-Password-1")
    with pytest.raises(DirectoryError) as caught, \
            UserReader(cfg, _search(bridge, 100), allow_insecure=False) as reader:
        list(reader)
    assert caught.value.kind == "bind"
    assert "Not-The-Password-1" not in caught.value.message


def test_a_helper_that_dies_is_an_error_never_an_end(bridge: Bridge) -> None:
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    with pytest.raises(DirectoryError, match="stopped before the end"), \
            UserReader(cfg, _search(bridge, 100), allow_insecure=False) as reader:
        assert reader._proc is not None
        os.kill(reader._proc.pid, signal.SIGKILL)
        list(reader)


def test_leaving_early_stops_the_helper(bridge: Bridge) -> None:
    for i in range(4):
        bridge.dc.add_user(f"e{i}", ou_dn=bridge.seed.staff, mail=f"e{i}@example.com")
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    with UserReader(cfg, _search(bridge, 1), allow_insecure=False) as reader:
        for _page in reader:
            break
    assert reader._proc is not None and reader._proc.poll() is not None


def test_plain_ldap_is_refused_in_the_helper_too(bridge: Bridge) -> None:
    cfg = dataclasses.replace(bridge.services.engine.ad_directories.connection(bridge.account_id),
                              ldap_url=bridge.dc.ldap_url, start_tls=False)
    with pytest.raises(DirectoryError) as caught, \
            UserReader(cfg, _search(bridge, 100), allow_insecure=False) as reader:
        list(reader)
    assert caught.value.kind == "tls"


def test_values_past_the_dc_range_limit_are_read_on_a_side_connection(bridge: Bridge) -> None:
    # AD answers a user in more than MaxValRange (1500) groups with ``memberOf;range=0-1499``;
    # Samba never limits, so the first slice is taken here by hand and the rest is read
    # from the DC, range by range, as the reader does.
    dc, seed = bridge.dc, bridge.seed
    dn = dc.add_user("many", ou_dn=seed.staff, mail="many@example.com")
    for group in (seed.pro, seed.pro_nested, seed.basic):
        dc.add_member(group, dn)
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    conn = client.open_connection(cfg)
    try:
        whole = client.search_all(conn, dn, "(objectClass=user)", ["memberOf"], scope="BASE")
    finally:
        client.close(conn)
    values = whole[0]["raw_attributes"]["memberOf"]
    assert len(values) == 3
    ranges = _Ranges({"target": Target.of(cfg), "allow_insecure": False})
    try:
        raw = ranges.complete(dn, {"memberOf;range=0-0": values[:1], "mail": [b"m"]})
    finally:
        ranges.close()
    assert sorted(raw["memberOf"]) == sorted(values)
    assert set(raw) == {"memberOf", "mail"}


def test_page_ready_says_whether_the_next_page_has_begun_to_arrive(bridge: Bridge) -> None:
    for i in range(3):
        bridge.dc.add_user(f"p{i}", ou_dn=bridge.seed.staff, mail=f"p{i}@example.com")
    cfg = bridge.services.engine.ad_directories.connection(bridge.account_id)
    with UserReader(cfg, _search(bridge, 1), allow_insecure=False) as reader:
        assert reader._proc is not None
        # Stopped before it could bind (a directory that does not answer): nothing comes.
        os.kill(reader._proc.pid, signal.SIGSTOP)
        try:
            assert not reader.page_ready(0.2)
        finally:
            os.kill(reader._proc.pid, signal.SIGCONT)
        assert reader.page_ready(60)
        pages = list(reader)
    # (Samba may end a paged search with an empty page.)
    assert [len(p) for p in pages if p] == [1, 1, 1]
