"""A tour of the admin API through boto3 on each store (SQLite and a real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bridge.app import Services, create_app
from bridge.domain import Actor
from tests.admin_client import LiveServer, admin_client
from tests.builders import default_identity, enterprise

SETUP = Actor(type="TestSetup", principal_id="setup")


@pytest.fixture
def store_server(services: Services) -> Iterator[LiveServer]:
    server = LiveServer(create_app(services.settings, services)).start()
    yield server
    server.stop()


def test_admin_tour(store_server: LiveServer, services: Services) -> None:
    chime: Any = store_server.boto3(admin_client(store_server.app))
    team = chime.create_account(Name="Team")["Account"]["AccountId"]
    view = enterprise(services.engine, SETUP, ["tour.example"])
    user_id = services.engine.decide_sign_in(default_identity("tia@tour.example"),
                                             SETUP).user_id
    assert {a["AccountId"] for a in chime.list_accounts()["Accounts"]} == {team, view.id}
    errors = chime.batch_suspend_user(AccountId=view.id, UserIdList=[user_id, "ghost"])
    assert [e["UserId"] for e in errors["UserErrors"]] == ["ghost"]
    user = chime.get_user(AccountId=view.id, UserId=user_id)["User"]
    assert user["UserRegistrationStatus"] == "Suspended"
    with pytest.raises(ClientError) as exc:
        chime.delete_account(AccountId=view.id)
    assert exc.value.response["Error"]["Code"] == "ConflictException"
    invites = chime.invite_users(AccountId=team, UserEmailList=["tia@tour.example"])
    assert invites["Invites"][0]["Status"] == "Failed"  # the domain belongs to the other
    chime.delete_account(AccountId=team)
    assert [a["AccountId"] for a in chime.list_accounts()["Accounts"]] == [view.id]
