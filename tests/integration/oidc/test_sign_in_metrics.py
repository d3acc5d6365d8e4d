"""Sign-in decision and session metrics after real OIDC sign-ins (oidc-provider)."""

from __future__ import annotations

from flask.testing import FlaskClient

from tests.functional.observability.conftest import value
from tests.integration.oidc.conftest import OktaAccount, session_of, sign_in
from tests.servers.oidc_op import OpenIdProvider

JSON = {"Accept": "application/json"}


def test_decisions_by_door_and_reason_and_sessions(
        web: FlaskClient, okta_op: OpenIdProvider, okta_account: OktaAccount) -> None:
    def decisions(reason: str) -> float:
        return value("bridge_sign_in_decisions_total", door="oidc", reason=reason)

    before = {r: decisions(r) for r in ("ok", "no_mapped_group", "not_in_directory")}
    issued = value("bridge_sessions_issued_total", source="oidc")
    verified = value("bridge_session_verifications_total", result="ok")
    callbacks = value("bridge_http_requests_total", door="oidc",
                      operation="GET /auth/okta/callback", status_class="4xx")

    assert sign_in(web, okta_op, email="pro@okta.example").status_code == 302
    assert session_of(web).status_code == 200
    assert sign_in(web, okta_op, email="nogroup@okta.example",
                   headers=JSON).status_code == 403
    assert sign_in(web, okta_op, email="ghost@okta.example", headers=JSON).status_code == 403

    assert decisions("ok") == before["ok"] + 1
    assert decisions("no_mapped_group") == before["no_mapped_group"] + 1
    assert decisions("not_in_directory") == before["not_in_directory"] + 1
    assert value("bridge_sessions_issued_total", source="oidc") == issued + 1
    assert value("bridge_session_verifications_total", result="ok") == verified + 1
    assert value("bridge_http_requests_total", door="oidc",
                 operation="GET /auth/okta/callback", status_class="4xx") == callbacks + 2
