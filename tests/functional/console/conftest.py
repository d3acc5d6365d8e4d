"""Console functional tests: the app through Flask's test client, admins with console
passwords made through the real stores."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest
from flask.testing import FlaskClient

from bridge import audit
from bridge.api.console_credentials import ConsoleCredentials
from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.domain import Actor
from bridge.store.db import transaction
from tests.conftest import FakeClock

OPERATOR = Actor(type="CliOperator", principal_id="cli:test", name="test")
PASSWORD = "correct horse battery staple"
AWS_ACCOUNT = "000000000000"


def csrf_token(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def events(services: Services, name: str | None = None) -> list[dict[str, object]]:
    with transaction(services.sessions) as session:
        found, _ = audit.lookup(session, audit.EventQuery(event_name=name, limit=1000))
    return found


@dataclass
class Console:
    """Makes admins and signs a test client in."""

    services: Services
    client: FlaskClient
    clock: FakeClock

    @property
    def credentials(self) -> ConsoleCredentials:
        return ConsoleCredentials(self.services.engine.uow, self.services.secrets,
                                  clock=self.clock)

    def make_admin(self, name: str, policy: str = "FullAccess",
                   password: str = PASSWORD) -> None:
        PrincipalStore(self.services.engine.uow, self.services.secrets).create(
            OPERATOR, name, [{"Managed": policy}])
        self.credentials.set_password(OPERATOR, name, password)

    def post_sign_in(self, name: str, password: str = PASSWORD,
                     account_id: str = AWS_ACCOUNT) -> object:
        token = csrf_token(self.client.get("/console").text)
        return self.client.post("/console", data={
            "csrf_token": token, "account_id": account_id, "username": name,
            "password": password})

    def sign_in(self, name: str, policy: str = "FullAccess") -> None:
        self.make_admin(name, policy)
        response = self.post_sign_in(name)
        assert response.status_code == 302, response.text  # type: ignore[attr-defined]
        assert response.headers["Location"] == "/console/accounts"  # type: ignore[attr-defined]

    def form(self, path: str, data: dict[str, object], page: str | None = None) -> object:
        """Post ``data`` with the CSRF token of the page at ``page`` (default: ``path``)."""
        token = csrf_token(self.client.get(page or path).text)
        return self.client.post(path, data={"csrf_token": token, **data})


@pytest.fixture
def console(app_services: Services, client: FlaskClient, clock: FakeClock) -> Console:
    return Console(app_services, client, clock)
