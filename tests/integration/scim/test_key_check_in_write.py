"""The SCIM key check of a write runs inside the write's transaction (issue 12, part 3, fourth
round), on both stores: a write is ONE transaction (before: the key check's read
transaction, then the write's), a bad or revoked key is still a 401 before anything of the
request is looked at, and a refused change still commits its one refusal event."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, func, select

from bridge.domain import Actor
from bridge.errors import StaleVersion
from bridge.store.models import AuditEvent, DirectoryGroup, User
from tests.functional.scim.conftest import USER, ScimClient


class Transactions:
    """Counts the transactions begun on the services' engine, and those begun to write
    (``BEGIN IMMEDIATE``: SQLite's writers' lock; PostgreSQL marks none)."""

    def __init__(self, scim: ScimClient) -> None:
        self.db = scim.services.db
        self.begun = 0
        self.immediate = 0

    def _begin(self, _conn: Any) -> None:
        self.begun += 1

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.strip().upper() == "BEGIN IMMEDIATE":
            self.immediate += 1

    def __enter__(self) -> Transactions:
        event.listen(self.db, "begin", self._begin)
        event.listen(self.db, "before_cursor_execute", self._statement)
        return self

    def __exit__(self, *_: object) -> None:
        event.remove(self.db, "begin", self._begin)
        event.remove(self.db, "before_cursor_execute", self._statement)


def _user(name: str) -> dict[str, Any]:
    return {"schemas": [USER], "userName": name,
            "emails": [{"value": name, "primary": True}]}


def _count(scim: ScimClient, model: Any, *where: Any) -> int:
    with scim.services.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _target(scim: ScimClient, method: str) -> tuple[str, str]:
    """The address a write of ``method`` goes to (a user made for it), and the account's
    key with a wrong secret."""
    made = scim.post("/Users", _user("kept@example.com"))
    assert made.status_code == 201, made.get_data(as_text=True)
    path = "/Users" if method == "POST" else f"/Users/{made.get_json()['id']}"
    return path, scim.key[:-4] + ("aaaa" if not scim.key.endswith("aaaa") else "bbbb")


def test_each_write_is_one_transaction_with_its_key_check(scim_store: ScimClient) -> None:
    # The first request records the key's last use (bookkeeping once a minute, after the
    # write, in a transaction of its own); the clock does not move after it.
    first = scim_store.post("/Users", _user("first@example.com"))
    assert first.status_code == 201, first.get_data(as_text=True)
    user_id = first.get_json()["id"]
    writes = [("POST", "/Users", _user("second@example.com"), 201),
              ("PATCH", f"/Users/{user_id}", {"schemas": [
                  "urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [
                  {"op": "replace", "path": "title", "value": "Engineer"}]}, 200),
              ("PUT", f"/Users/{user_id}", {**_user("first@example.com"),
                                            "title": "Lead"}, 200),
              ("DELETE", f"/Users/{user_id}", None, 204)]
    sqlite = scim_store.services.engine.writers_take_turns
    for method, path, body, status in writes:
        with Transactions(scim_store) as transactions:
            resp = scim_store.request(method, path, body)
        assert resp.status_code == status, (method, resp.get_data(as_text=True))
        # SQLite: the key's plain read before the writers' lock, then the ONE write
        # transaction (the key checked again in it); PostgreSQL: the one transaction.
        assert transactions.begun == (2 if sqlite else 1), method
        assert transactions.immediate == (1 if sqlite else 0), method


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_a_bad_or_revoked_key_is_401_before_the_body_is_read(
        scim_store: ScimClient, admin: Actor, method: str) -> None:
    path, wrong_secret = _target(scim_store, method)
    events_before = _count(scim_store, AuditEvent)
    # OPTIONS of the same address is checked too (Flask answers it for the route).
    assert scim_store.request("OPTIONS", path, auth=None).status_code == 401
    for auth in (None, "Bearer nonsense", f"Bearer {wrong_secret}"):
        headers = {"Authorization": auth} if auth else {}
        # A body that would be a 400 to an authenticated client: still 401 here.
        resp = scim_store.request(method, path, raw=b"{not json", headers=headers,
                                  auth=None)
        assert resp.status_code == 401, (auth, resp.get_data(as_text=True))
        assert resp.get_json()["status"] == "401"
    keys = scim_store.services.engine.api_keys
    keys.create(admin, scim_store.account_id)  # keeps Okta connected
    keys.delete(admin, scim_store.account_id, scim_store.key_id)
    events_revoked = _count(scim_store, AuditEvent)
    resp = scim_store.request(method, path, _user("kept@example.com"))
    assert resp.status_code == 401, resp.get_data(as_text=True)
    # Nothing written, nothing audited for the refused requests.
    assert _count(scim_store, AuditEvent) == events_revoked == events_before + 2
    assert _count(scim_store, User, User.account_id == scim_store.account_id) == 1


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_an_unauthenticated_write_never_takes_the_writers_lock(
        scim_store: ScimClient, admin: Actor, method: str) -> None:
    # SQLite lets one writer in at a time: a request without a good key must be refused
    # without BEGIN IMMEDIATE (nor the writers' file lock taken with it), or a flood of them
    # queues with, and holds up, every real write of the store.
    path, wrong_secret = _target(scim_store, method)
    keys = scim_store.services.engine.api_keys
    other = keys.create(admin, scim_store.account_id)
    keys.delete(admin, scim_store.account_id, other.view.key_id)
    revoked = other.key
    for auth in (None, "Bearer nonsense", f"Bearer {wrong_secret}", f"Bearer {revoked}"):
        headers = {"Authorization": auth} if auth else {}
        with Transactions(scim_store) as transactions:
            resp = scim_store.request(method, path, _user("kept@example.com"),
                                      headers=headers, auth=None)
        assert resp.status_code == 401, (auth, resp.get_data(as_text=True))
        assert transactions.immediate == 0, auth
    # The good key is let through to the write (a POST of the same user: 409).
    assert scim_store.request(method, path, _user("kept@example.com")).status_code != 401


def test_a_refused_write_commits_its_one_refusal_event(scim_store: ScimClient) -> None:
    made = scim_store.post("/Users", _user("taken@example.com"))
    assert made.status_code == 201, made.get_data(as_text=True)
    with Transactions(scim_store) as transactions:
        clash = scim_store.post("/Users", _user("taken@example.com"))
    assert clash.status_code == 409, clash.get_data(as_text=True)
    # The change rolled back, its refusal event committed in the same block (a second
    # transaction of the same session, under the same writers' lock; on SQLite after the
    # key's plain read).
    sqlite = scim_store.services.engine.writers_take_turns
    assert transactions.begun == (3 if sqlite else 2)
    assert transactions.immediate == (2 if sqlite else 0)
    with scim_store.services.sessions() as session:
        refusals = session.execute(select(AuditEvent.event_name, AuditEvent.error_code)
                                   .where(AuditEvent.event_name == "ScimCreateUser")
                                   .order_by(AuditEvent.event_time)).all()
    assert sorted(r.error_code or "-" for r in refusals) == ["-", "Conflict"]
    assert _count(scim_store, User, User.account_id == scim_store.account_id) == 1


def test_a_writing_block_holds_one_change_and_is_not_nested(scim_store: ScimClient,
                                                            admin: Actor) -> None:
    engine = scim_store.services.engine
    account = scim_store.account_id
    with pytest.raises(RuntimeError, match="one change"), engine.writing():
        engine.create_group(admin, account, name="First")
        engine.create_group(admin, account, name="Second")
    # The block raised: the first change is not committed either.
    assert _count(scim_store, DirectoryGroup, DirectoryGroup.account_id == account) == 0
    with pytest.raises(RuntimeError, match="nested"), engine.reading(), engine.writing():
        pass
    with engine.writing():
        engine.create_group(admin, account, name="Only")
    assert _count(scim_store, DirectoryGroup, DirectoryGroup.account_id == account) == 1


class _Revoked(Exception):
    """The admission check of the test below, refusing."""


def test_a_retry_after_a_lost_race_is_admitted_again(scim_store: ScimClient,
                                                     admin: Actor) -> None:
    # A write without an expected version that lost a race is rolled back and tried again
    # in a new transaction of the block: the key (the block's admission) is checked again
    # in it, so a key revoked between the tries (PostgreSQL) changes and records nothing.
    uow = scim_store.services.engine.uow
    admitted: list[int] = []
    tries: list[int] = []

    def work(_repo: Any) -> tuple[None, dict[str, Any]]:
        tries.append(1)
        if len(tries) == 1:
            raise StaleVersion("lost the race")
        return None, {}

    def admit_once() -> None:
        admitted.append(1)
        if len(admitted) > 1:
            raise _Revoked

    with pytest.raises(_Revoked), uow.writing(admit_once):
        uow.run(admin, "RetriedChange", {}, work, attempts=3)
    assert tries == [1] and admitted == [1, 1]
    assert _count(scim_store, AuditEvent, AuditEvent.event_name == "RetriedChange") == 0

    # Admitted each time: the retry runs, one change and one event.
    admitted.clear()
    tries.clear()
    with uow.writing(lambda: admitted.append(1)):
        uow.run(admin, "RetriedChange", {}, work, attempts=3)
    assert tries == [1, 1] and admitted == [1, 1]
    assert _count(scim_store, AuditEvent, AuditEvent.event_name == "RetriedChange") == 1
