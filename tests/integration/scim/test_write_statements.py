"""What a SCIM user write costs the store, on both stores (issue 12, part 3): a create is
written as plain INSERTs (user, address, link, its one audit event) in ONE transaction with
no read-back, and a profile PATCH does not read the unchanged addresses again — and what
they store is what the ORM path stored (the row is then changed through the ORM)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import event, select

from bridge.store.models import AuditEvent, EmailAddress, ExternalIdentity, User
from tests.conftest import FakeClock
from tests.functional.scim.conftest import USER, ScimClient


class Statements:
    """The statements the services' engine runs, by verb and table."""

    def __init__(self, scim: ScimClient) -> None:
        self.db = scim.services.db
        self.seen: Counter[str] = Counter()

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        words = statement.split()
        verb = words[0].upper()
        table = words[2] if verb in ("INSERT", "DELETE") else (
            words[1] if verb == "UPDATE" else "")
        self.seen[f"{verb} {table}".strip()] += 1

    def __enter__(self) -> Statements:
        event.listen(self.db, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.db, "before_cursor_execute", self._statement)


def test_a_create_is_four_inserts_and_stores_what_the_orm_stored(
        scim_store: ScimClient, clock: FakeClock) -> None:
    body = {"schemas": [USER], "userName": "Alice@Example.com", "externalId": "00u1",
            "displayName": "Alice", "active": True,
            "emails": [{"value": "alice@example.com", "primary": True, "type": "work"},
                       {"value": "a.l@example.com", "type": "other"}]}
    with Statements(scim_store) as stmts:
        resp = scim_store.post("/Users", body)
    assert resp.status_code == 201, resp.get_data(as_text=True)
    # (The key's last-used time is bookkeeping of its own, written at most once a minute.)
    assert {k: n for k, n in stmts.seen.items() if k.split()[0] in (
        "INSERT", "UPDATE", "DELETE") and k != "UPDATE api_keys"} == {
        "INSERT users": 1, "INSERT email_addresses": 1, "INSERT external_identities": 1,
        "INSERT audit_events": 1}
    # key, account, external id, userName, domains, one owner look-up per address, PIN;
    # nothing read back after the INSERTs (the ORM path read 9 here). SQLite: the key is
    # first read before the writers' lock (a bad key never takes it), then checked again.
    assert stmts.seen["SELECT"] <= 8 + scim_store.services.engine.writers_take_turns
    user_id = resp.get_json()["id"]
    assert resp.headers["ETag"] == 'W/"1"'
    with scim_store.services.sessions() as session:
        user = session.get(User, user_id)
        assert user is not None
        assert (user.account_id, user.user_name, user.user_name_lower, user.status,
                user.tier, user.version, user.in_directory, user.directory_enabled) == (
            scim_store.account_id, "Alice@Example.com", "alice@example.com", "registered",
            None, 1, True, True)
        assert user.created_at.replace(tzinfo=None) == clock.now.replace(tzinfo=None)
        assert user.personal_pin is not None and len(user.personal_pin) == 10
        assert user.source_addresses == ["alice@example.com", "a.l@example.com"]
        assert user.attributes["externalId"] == "00u1"
        addresses = session.execute(select(EmailAddress.address, EmailAddress.is_primary)
                                    .where(EmailAddress.user_id == user_id)).all()
        assert sorted(addresses) == [("a.l@example.com", False), ("alice@example.com", True)]
        assert session.scalars(select(ExternalIdentity.external_id).where(
            ExternalIdentity.user_id == user_id)).all() == ["00u1"]
        assert session.scalars(select(AuditEvent.event_name).where(
            AuditEvent.event_name == "ScimCreateUser")).all() == ["ScimCreateUser"]
    # The reply is the stored user, as a GET renders it.
    got = scim_store.get(f"/Users/{user_id}").get_json()
    assert {k: v for k, v in got.items() if k != "meta"} == \
        {k: v for k, v in resp.get_json().items() if k != "meta"}
    # The Core-inserted row is changed through the ORM (versioned UPDATE) like any other.
    patched = scim_store.patch(f"/Users/{user_id}", [
        {"op": "replace", "path": "title", "value": "Engineer"}])
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert patched.headers["ETag"] == 'W/"2"'
    assert patched.get_json()["emails"] == got["emails"]


def test_a_profile_patch_does_not_read_the_unchanged_addresses_again(
        scim_store: ScimClient) -> None:
    resp = scim_store.post("/Users", {"schemas": [USER], "userName": "bob@example.com",
                                      "emails": [{"value": "bob@example.com",
                                                  "primary": True}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    user_id = resp.get_json()["id"]
    with Statements(scim_store) as stmts:
        patched = scim_store.patch(f"/Users/{user_id}", [
            {"op": "replace", "path": "title", "value": "Engineer"}])
    assert patched.status_code == 200, patched.get_data(as_text=True)
    # key, user, account, links, domains, addresses, groups (the ORM path read the
    # addresses a second time, and the whole account row); SQLite: the key read first
    # before the writers' lock too.
    assert stmts.seen["SELECT"] <= 7 + scim_store.services.engine.writers_take_turns
    assert stmts.seen["UPDATE users"] == 1
    doc = patched.get_json()
    assert doc["title"] == "Engineer"
    assert doc["emails"] == [{"value": "bob@example.com", "primary": True}]
    # An address change still writes and reads the new addresses.
    changed = scim_store.patch(f"/Users/{user_id}", [
        {"op": "add", "path": "emails", "value": [{"value": "b2@example.com"}]}])
    assert changed.status_code == 200, changed.get_data(as_text=True)
    with scim_store.services.sessions() as session:
        assert sorted(session.scalars(select(EmailAddress.address).where(
            EmailAddress.user_id == user_id))) == ["b2@example.com", "bob@example.com"]


def test_a_patch_is_one_versioned_core_update_without_orm_objects(
        scim_store: ScimClient) -> None:
    """PATCH reads the user as a Core row and writes it with one ``UPDATE ... WHERE
    version = ?`` (no ORM load, no flush of a User); the folded search copy is written
    with it, so a filter sees the new value at once."""
    resp = scim_store.post("/Users", {"schemas": [USER], "userName": "carol@example.com",
                                      "displayName": "Carol"})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    user_id = resp.get_json()["id"]
    loaded: list[str] = []

    def on_load(target: User, _context: Any) -> None:
        loaded.append(target.id)

    event.listen(User, "load", on_load)
    try:
        with Statements(scim_store) as stmts:
            patched = scim_store.patch(f"/Users/{user_id}", [
                {"op": "replace", "path": "displayName", "value": "ÉCOLE Carol"}])
    finally:
        event.remove(User, "load", on_load)
    assert patched.status_code == 200, patched.get_data(as_text=True)
    assert loaded == []
    assert stmts.seen["UPDATE users"] == 1
    assert patched.headers["ETag"] == 'W/"2"'
    found = scim_store.get('/Users?filter=displayName eq "école carol"').get_json()
    assert [r["id"] for r in found["Resources"]] == [user_id]
    # A stale If-Match is refused inside the write (the guarded UPDATE's version).
    stale = scim_store.patch(f"/Users/{user_id}", [
        {"op": "replace", "path": "title", "value": "x"}], headers={"If-Match": 'W/"1"'})
    assert stale.status_code == 412, stale.get_data(as_text=True)
    with scim_store.services.sessions() as session:
        user = session.get(User, user_id)
        assert user is not None and user.version == 2 and "title" not in user.attributes
