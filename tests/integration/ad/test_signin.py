"""Sign-in with directory credentials: POST /auth/ad/login against the real DC."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from bridge.app import create_app
from tests.conftest import FakeClock
from tests.integration.ad.conftest import PASSWORD, Bridge, Seed, make_bridge
from tests.servers.samba_dc import SambaDC


@pytest.fixture
def ad(tmp_path: Path, sqlite_url: str, clock: FakeClock, dc: SambaDC,
       seed: Seed) -> Iterator[tuple[Bridge, FlaskClient]]:
    for bridge in make_bridge(tmp_path, sqlite_url, clock, dc, seed,
                              ad_sign_in_max_failures_per_user=3,
                              ad_sign_in_max_failures_per_address=5):
        dn = dc.add_user("shirley", ou_dn=seed.staff, mail="shirley@example.com",
                         proxy_addresses=["SMTP:shirley@example.com",
                                          "smtp:srodriguez@example.com",
                                          "smtp:shirley@unclaimed.example"],
                         password=PASSWORD)
        dc.add_member(seed.pro_nested, dn)
        dc.add_user("nogroup", ou_dn=seed.staff, mail="nogroup@example.com", password=PASSWORD)
        off = dc.add_user("off", ou_dn=seed.staff, mail="off@example.com", password=PASSWORD)
        dc.add_member(seed.basic, off)
        assert bridge.sync().added == 3
        dc.disable_user(off)  # the sync has not seen it yet: the DC refuses the bind
        app = create_app(bridge.services.settings, bridge.services)
        yield bridge, app.test_client()


def _login(client: FlaskClient, email: str, password: str = PASSWORD,
           ip: str = "127.0.0.1") -> tuple[int, dict]:
    response = client.post("/auth/ad/login", json={"email": email, "password": password},
                           environ_base={"REMOTE_ADDR": ip})
    return response.status_code, response.get_json()


def test_right_password_issues_a_session(ad: tuple[Bridge, FlaskClient]) -> None:
    _, client = ad
    status, body = _login(client, "Shirley@Example.com")
    assert status == 200, body
    assert body["tier"] == "pro" and body["user"]["email"] == "shirley@example.com"
    assert body["account"]["type"] == "EnterpriseDirectory"
    session = client.get("/auth/session")
    assert session.status_code == 200 and session.get_json()["tier"] == "pro"
    # A claimed-domain alias reaches the same user; an unclaimed one does not.
    status, alias = _login(client, "srodriguez@example.com")
    assert status == 200 and alias["user"]["id"] == body["user"]["id"]
    assert _login(client, "shirley@unclaimed.example")[0] == 401


def test_wrong_password_and_unknown_address_answer_alike(
        ad: tuple[Bridge, FlaskClient]) -> None:
    _, client = ad
    wrong = _login(client, "shirley@example.com", "Wrong-Password-1")
    unknown = _login(client, "nobody@example.com", "Wrong-Password-1")
    assert wrong == unknown == (401, {"error": "invalid_credentials",
                                      "message": "The email or the password is wrong."})
    assert client.get("/auth/session").status_code == 401


def _directory_steps(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Record the directory operations of a sign-in (the real calls still run)."""
    from ad_sync import client

    steps: list[tuple[str, str]] = []
    real_open, real_search = client.open_connection, client.search_all

    def open_connection(cfg: object, *, user: str | None = None, password: str | None = None,
                        allow_insecure: bool = False) -> object:
        steps.append(("bind", "service" if user is None else f"user:{password}"))
        return real_open(cfg, user=user, password=password,  # type: ignore[arg-type]
                         allow_insecure=allow_insecure)

    def search_all(*args: object, **kwargs: object) -> object:
        steps.append(("search", str(kwargs.get("scope"))))
        return real_search(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "open_connection", open_connection)
    monkeypatch.setattr(client, "search_all", search_all)
    return steps


def test_an_unknown_address_costs_the_directory_work_of_a_wrong_password(
        ad: tuple[Bridge, FlaskClient], monkeypatch: pytest.MonkeyPatch) -> None:
    """Timing must not tell which addresses exist: an address no directory user has goes
    through the same binds and search as a wrong password, and gets the same answer."""
    bridge, client = ad
    steps = _directory_steps(monkeypatch)
    wrong = _login(client, "shirley@example.com", "Wrong-Password-1")
    wrong_steps = list(steps)
    steps.clear()
    unknown = _login(client, "nobody@example.com", "Wrong-Password-1", ip="127.0.0.2")
    assert wrong == unknown and wrong[0] == 401
    assert wrong_steps == steps == [("bind", "service"), ("search", "BASE"),
                                    ("bind", "user:Wrong-Password-1")]
    # A user the directory deleted (still known to the bridge) answers alike, too.
    steps.clear()
    bridge.dc.delete(f"CN=nogroup,{bridge.seed.staff}")
    assert _login(client, "nogroup@example.com", "Wrong-Password-1", ip="127.0.0.3") == wrong
    assert steps == wrong_steps


def test_disabled_and_no_mapped_group_are_refused(ad: tuple[Bridge, FlaskClient]) -> None:
    bridge, client = ad
    status, body = _login(client, "off@example.com")
    assert (status, body["error"]) == (401, "disabled_in_directory")
    status, body = _login(client, "nogroup@example.com")
    assert (status, body["error"]) == (403, "no_mapped_group")
    bridge.sync()  # now the bridge knows "off" is disabled too
    assert not bridge.user("off@example.com").directory_enabled


def test_failures_are_rate_limited_per_user_and_per_address(
        ad: tuple[Bridge, FlaskClient]) -> None:
    _, client = ad
    for _ in range(3):
        assert _login(client, "shirley@example.com", "Wrong-Password-1")[0] == 401
    status, body = _login(client, "shirley@example.com")  # even the right password
    assert (status, body["error"]) == (429, "rate_limited")
    # The alias is the same user: limited too. Another user from elsewhere is not.
    assert _login(client, "srodriguez@example.com", ip="127.0.0.2")[0] == 429
    assert _login(client, "nogroup@example.com", ip="127.0.0.2")[0] == 403
    # Per source address: 5 failures from one address, across users.
    for i in range(2):
        assert _login(client, f"ghost{i}@example.com", "x", ip="127.0.0.1")[0] in (401, 429)
    assert _login(client, "nogroup@example.com", ip="127.0.0.1")[0] == 429


def test_the_form_posts_and_redirects_with_a_cookie(ad: tuple[Bridge, FlaskClient]) -> None:
    _, client = ad
    page = client.get("/auth/ad/login")
    assert page.status_code == 200 and b'name="password"' in page.data
    # The form's CSRF token (its cookie is in the client's jar): bridge.browser.form_post.
    field = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert field
    response = client.post("/auth/ad/login", data={"email": "shirley@example.com",
                                                   "password": PASSWORD,
                                                   "csrf_token": field.group(1)})
    assert response.status_code == 302
    assert "bridge_session=" in response.headers["Set-Cookie"]
    refused = client.post("/auth/ad/login", data={"email": "shirley@example.com",
                                                  "password": "nope",
                                                  "csrf_token": field.group(1)})
    assert refused.status_code == 401 and b'id="reason">invalid_credentials' in refused.data


def test_an_account_without_a_directory_answers_alike_for_known_and_unknown(
        ad: tuple[Bridge, FlaskClient]) -> None:
    from tests.builders import default_identity, enterprise
    from tests.integration.ad.conftest import ADMIN

    bridge, client = ad
    engine = bridge.services.engine
    enterprise(engine, ADMIN, ["corp.example"], name="No Directory Corp")
    known = engine.decide_sign_in(default_identity("kim@corp.example"), ADMIN)
    assert known.allowed and known.email == "kim@corp.example"
    expected = (400, {"error": "directory_sign_in_not_available",
                      "message": "This account does not sign in with directory passwords."})
    assert _login(client, "kim@corp.example") == expected
    assert _login(client, "nobody@corp.example") == expected
