"""Property-based: the SCIM filter parser and PATCH never answer 5xx, and a refused
request changes nothing (issue 10, item 3). Deterministic and bounded (strategies.py)."""

from __future__ import annotations

import contextlib
import json
from typing import Any
from urllib.parse import quote

from hypothesis import given
from hypothesis import strategies as st

from bridge.errors import ValidationError
from scim.filters import parse_filter
from scim.schemas import GROUP, USER
from tests.functional.hostile.strategies import (
    filters,
    fuzz_settings,
    patch_bodies,
    raw_bodies,
)
from tests.functional.scim.conftest import GROUP as GROUP_URN
from tests.functional.scim.conftest import USER as USER_URN
from tests.functional.scim.conftest import ScimClient


@fuzz_settings(800)
@given(text=filters())
def test_the_filter_parser_returns_a_tree_or_invalid_filter(text: str) -> None:
    for schema in (USER, GROUP):
        # Anything but InvalidFilter (a ValidationError: 400 invalidFilter) fails the test.
        with contextlib.suppress(ValidationError):
            parse_filter(text, schema)


def _assert_scim_answer(resp: Any, allowed: set[int]) -> None:
    assert resp.status_code < 500, (resp.status_code, resp.get_data(as_text=True))
    assert resp.status_code in allowed, (resp.status_code, resp.get_data(as_text=True))
    if resp.status_code >= 400:
        body = json.loads(resp.get_data())
        assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
        assert body["status"] == str(resp.status_code)


def _seed(scim: ScimClient) -> tuple[str, str]:
    user = scim.post("/Users", {"schemas": [USER_URN], "userName": "bjensen@example.com",
                                "emails": [{"value": "bjensen@example.com", "type": "work",
                                            "primary": True}]})
    assert user.status_code == 201
    group = scim.post("/Groups", {"schemas": [GROUP_URN], "displayName": "Staff",
                                  "members": [{"value": user.get_json()["id"]}]})
    assert group.status_code == 201
    return user.get_json()["id"], group.get_json()["id"]


def _state(scim: ScimClient) -> Any:
    users = scim.get("/Users?count=100").get_json()["Resources"]
    groups = scim.get("/Groups?count=100").get_json()["Resources"]
    return users, groups


def test_filters_over_http_answer_200_or_invalid_filter(scim: ScimClient) -> None:
    _seed(scim)

    @fuzz_settings(150)
    @given(text=filters(), resource=st.sampled_from(["/Users", "/Groups"]),
           search=st.booleans())
    def run(text: str, resource: str, search: bool) -> None:
        if search:
            resp = scim.post(f"{resource}/.search", {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": text})
        else:
            resp = scim.get(f"{resource}?filter={quote(text)}")
        _assert_scim_answer(resp, {200, 400})

    run()


def test_patch_answers_4xx_or_applies_and_a_refusal_changes_nothing(
        scim: ScimClient) -> None:
    user_id, group_id = _seed(scim)

    @fuzz_settings(250)
    @given(body=st.one_of(patch_bodies().map(json.dumps), raw_bodies()),
           target=st.sampled_from(["Users", "Groups"]))
    def run(body: str | bytes, target: str) -> None:
        before = _state(scim)
        path = f"/{target}/{user_id if target == 'Users' else group_id}"
        resp = scim.request("PATCH", path, raw=body)
        _assert_scim_answer(resp, {200, 204, 400, 404, 409, 412})
        if resp.status_code >= 400:
            assert _state(scim) == before

    run()
