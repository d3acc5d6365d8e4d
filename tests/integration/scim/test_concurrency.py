"""Races real clients create over HTTP, on both stores: duplicate creates end in one 201 and
409s (never a 500 or two users); parallel membership PATCHes lose no member; If-Match is
atomic (of two writers holding the same ETag, one wins and one gets 412)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import requests

from tests.functional.scim.conftest import GROUP, PATCH, USER
from tests.integration.scim.conftest import LiveScim

THREADS = 8


def _session(live: LiveScim) -> requests.Session:
    session = requests.Session()
    session.headers.update({"Authorization": f"Bearer {live.key}",
                            "Content-Type": "application/scim+json"})
    return session


def _user(name: str) -> dict[str, Any]:
    return {"schemas": [USER], "userName": name,
            "emails": [{"value": name, "primary": True, "type": "work"}]}


def test_racing_duplicate_creates(live_scim_store: LiveScim) -> None:
    live = live_scim_store

    def create(i: int) -> int:
        with _session(live) as http:
            name = "Same.Person@example.com" if i % 2 else "same.person@EXAMPLE.com"
            return http.post(f"{live.base_url}/Users", json=_user(name), timeout=30).status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(create, range(THREADS * 2)))
    assert sorted(set(codes)) == [201, 409], codes
    assert codes.count(201) == 1
    with _session(live) as http:
        body = http.get(f"{live.base_url}/Users", params={
            "filter": 'userName eq "same.person@example.com"'}, timeout=30).json()
    assert body["totalResults"] == 1


def test_parallel_membership_patches_lose_no_member(live_scim_store: LiveScim) -> None:
    live = live_scim_store
    with _session(live) as http:
        ids = [http.post(f"{live.base_url}/Users", json=_user(f"m{i}@example.com"),
                         timeout=30).json()["id"] for i in range(THREADS * 3)]
        gid = http.post(f"{live.base_url}/Groups",
                        json={"schemas": [GROUP], "displayName": "Everyone"},
                        timeout=30).json()["id"]

    def add(uid: str) -> int:
        # Okta repeats the group's name in every membership PATCH; Entra does not.
        rename = [{"op": "replace", "value": {"id": gid, "displayName": "Everyone"}}] \
            if uid < "8" else []
        with _session(live) as session:
            return session.patch(f"{live.base_url}/Groups/{gid}", json={
                "schemas": [PATCH], "Operations": [*rename,
                    {"op": "add", "path": "members", "value": [{"value": uid}]}]},
                timeout=30).status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(add, ids))
    assert set(codes) == {204}, codes
    with _session(live) as http:
        members = http.get(f"{live.base_url}/Groups/{gid}", timeout=30).json()["members"]
    assert sorted(m["value"] for m in members) == sorted(ids)


def test_if_match_is_atomic(live_scim_store: LiveScim) -> None:
    live = live_scim_store
    with _session(live) as http:
        user = http.post(f"{live.base_url}/Users", json=_user("race@example.com"),
                         timeout=30).json()
    etag = user["meta"]["version"]

    def write(i: int) -> int:
        with _session(live) as session:
            return session.patch(f"{live.base_url}/Users/{user['id']}", headers={
                "If-Match": etag}, json={"schemas": [PATCH], "Operations": [
                    {"op": "replace", "path": "title", "value": f"t{i}"}]},
                timeout=30).status_code

    with ThreadPoolExecutor(THREADS) as pool:
        codes = list(pool.map(write, range(THREADS)))
    assert codes.count(200) == 1 and codes.count(412) == THREADS - 1, codes


def test_patches_without_if_match_of_one_user_all_succeed(live_scim_store: LiveScim) -> None:
    """Without If-Match a PATCH applies to the current state: clients racing on one user
    all get 200 and every change is one version (PostgreSQL answered 412 to about one in
    ten of these when the optimistic retries ran out)."""
    live = live_scim_store
    rounds = 12
    with _session(live) as http:
        user = http.post(f"{live.base_url}/Users", json=_user("busy@example.com"),
                         timeout=30).json()

    def write(i: int) -> list[int]:
        with _session(live) as session:
            return [session.patch(f"{live.base_url}/Users/{user['id']}", json={
                "schemas": [PATCH], "Operations": [
                    {"op": "replace", "path": "title", "value": f"t{i}-{n}"}]},
                timeout=30).status_code for n in range(rounds)]

    with ThreadPoolExecutor(THREADS) as pool:
        codes = [code for batch in pool.map(write, range(THREADS)) for code in batch]
    assert set(codes) == {200}, sorted(codes)
    with _session(live) as http:
        final = http.get(f"{live.base_url}/Users/{user['id']}", timeout=30)
    assert final.headers["ETag"] == f'W/"{1 + THREADS * rounds}"'
