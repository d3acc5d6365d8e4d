"""What a SCIM read costs the store, on both stores (SQLite and a real PostgreSQL): Okta's
``GET /Users?filter=userName eq "..."`` checks the API key and searches on ONE pooled
connection in ONE read transaction that commits (psycopg 3 drops a connection's prepared
statements on every rollback), and the engine refuses a change inside such a read block."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from sqlalchemy import event

from bridge.app import Services, build_services, create_app
from bridge.domain import Actor
from bridge.engine.api_keys import ApiKeys
from tests.conftest import FakeClock, make_settings
from tests.functional.scim.conftest import USER, ScimClient, make_scim_client


@pytest.fixture
def lookup_client(store_url: str, tmp_path: Path, admin: Actor,
                  clock: FakeClock) -> Iterator[ScimClient]:
    services = build_services(make_settings(tmp_path, store_url), clock=clock)
    app = create_app(services.settings, services)
    scim = make_scim_client(app, services, admin, "example.com", "Lookup Corp")
    resp = scim.post("/Users", {"schemas": [USER], "userName": "alice@example.com",
                                "emails": [{"value": "alice@example.com", "primary": True}]})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    yield scim
    services.db.dispose()


class StoreCalls:
    """Pool checkouts, transactions and SELECT statements seen by the services' engine;
    ``held`` is the most connections checked out at once."""

    def __init__(self, services: Services) -> None:
        self.counts: Counter[str] = Counter()
        self.held = 0
        self._out = 0
        db = services.db
        listeners: list[tuple[Any, str, Any]] = [
            (db.pool, "checkout", self._checkout),
            (db.pool, "checkin", self._checkin),
            (db, "begin", lambda *_: self.counts.update(["begin"])),
            (db, "commit", lambda *_: self.counts.update(["commit"])),
            (db, "rollback", lambda *_: self.counts.update(["rollback"])),
            (db, "before_cursor_execute", self._statement),
        ]
        self._listeners = listeners

    def _checkout(self, *_: Any) -> None:
        self.counts["checkout"] += 1
        self._out += 1
        self.held = max(self.held, self._out)

    def _checkin(self, *_: Any) -> None:
        self._out -= 1

    def _statement(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            self.counts["select"] += 1

    def __enter__(self) -> StoreCalls:
        for target, name, fn in self._listeners:
            event.listen(target, name, fn)
        return self

    def __exit__(self, *_: object) -> None:
        for target, name, fn in self._listeners:
            event.remove(target, name, fn)


def lookup(scim: ScimClient, user_name: str) -> list[dict[str, Any]]:
    flt = quote(f'userName eq "{user_name}"')
    resp = scim.get(f"/Users?filter={flt}&startIndex=1&count=100")
    assert resp.status_code == 200, resp.get_data(as_text=True)
    resources: list[dict[str, Any]] = resp.get_json()["Resources"]
    return resources


def test_a_lookup_is_one_checkout_one_committed_transaction(lookup_client: ScimClient,
                                                           clock: FakeClock) -> None:
    scim = lookup_client
    keys: ApiKeys = scim.http.application.extensions["bridge"].engine.api_keys
    clock.advance(minutes=5)
    with StoreCalls(scim.services) as first:
        lookup(scim, "alice@example.com")
    # The key's last-used time is due: written in a transaction of its own after the read
    # one, never holding two connections at once.
    assert keys.list(scim.account_id)[0].last_used_at == clock.now
    assert (first.counts["checkout"], first.held) == (2, 1)
    with StoreCalls(scim.services) as calls:
        found = lookup(scim, "alice@example.com")
    assert [u["userName"] for u in found] == ["alice@example.com"]
    # The key, the page of users, their groups: one connection, one transaction.
    assert calls.counts == {"checkout": 1, "begin": 1, "commit": 1, "select": 3}
    assert scim.services.db.pool.checkedout() == 0


def test_every_read_request_gives_its_connection_back(lookup_client: ScimClient) -> None:
    scim = lookup_client
    user_id = lookup(scim, "alice@example.com")[0]["id"]
    assert scim.get(f"/Users/{user_id}").status_code == 200
    assert scim.get("/Users/no-such-user").status_code == 404
    assert scim.get("/Users?filter=" + quote("nosuch eq 1")).status_code == 400
    assert scim.get("/Users", auth=None).status_code == 401
    assert scim.get("/Nothing/here").status_code == 404
    assert scim.get("/ServiceProviderConfig").status_code == 200
    assert scim.services.db.pool.checkedout() == 0
    # The writes that follow see a store with no read transaction left open.
    resp = scim.patch(f"/Users/{user_id}", [{"op": "replace", "path": "title",
                                             "value": "Engineer"}])
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert lookup(scim, "alice@example.com")[0]["title"] == "Engineer"


def test_the_engine_refuses_a_change_inside_a_read_block(lookup_client: ScimClient,
                                                        admin: Actor) -> None:
    engine = lookup_client.services.engine
    account_id = lookup_client.account_id
    with engine.reading() as outer, engine.reading() as inner:
        assert inner is outer  # a nested block joins the open one
        assert engine.get_account(account_id).name == "Lookup Corp"  # a read joins too
        with pytest.raises(RuntimeError):
            engine.rename_account(admin, account_id, "Renamed Corp")
        with pytest.raises(RuntimeError), engine.single_transaction():
            pass
    assert engine.get_account(account_id).name == "Lookup Corp"
    assert lookup_client.services.db.pool.checkedout() == 0
