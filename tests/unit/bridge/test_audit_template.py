"""``audit.EventTemplate`` (the bulk page's events) gives what ``audit.event_row`` gives, and
its redaction is ``redact``'s: a secret-named field, a URL's credentials in any string (a
directory group may be called ``ldap://svc:pw@dc``) never reach the trail."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bridge import audit
from bridge.domain import Actor

KEYS = st.sampled_from(["groups", "emails", "displayName", "ClientSecret", "bind_password",
                        "personalPin", "tokenType", "enabled", "accountId", "nested"])
LEAVES = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
    st.sampled_from(["", "plain", "ldaps://svc:pw@dc:636", "see smtp://m:s@mail:25 x",
                     "a@b.example", "http://no-credentials/x"]),
    st.text(max_size=8),
    st.just(datetime(2026, 12, 5, 2, 30, tzinfo=UTC)))
VALUES = st.recursive(LEAVES, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.tuples(inner, inner),
    st.dictionaries(KEYS, inner, max_size=3)), max_leaves=12)


@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_the_fast_redaction_is_redacts(fields: dict[str, Any]) -> None:
    assert audit._redact_fields(fields) == audit.redact(dict(fields))


def test_credentials_in_a_group_name_or_an_address_list_are_redacted() -> None:
    out = audit._redact_fields({"groups": ["Staff", "ldap://svc:pw@dc"],
                                "primaryEmail": "x://u:p@h", "bind_password": "p"})
    assert out == {"groups": ["Staff", "ldap://***@dc"], "primaryEmail": "x://***@h",
                   "bind_password": "***"}


def _without_ids(row: dict[str, Any]) -> dict[str, Any]:
    body = {k: v for k, v in row["body"].items() if k not in ("eventID", "eventTime")}
    return {**{k: v for k, v in row.items() if k not in ("event_id", "event_time")},
            "body": body}


def test_a_templates_rows_are_event_rows() -> None:
    actor = Actor(type="System", principal_id="ad-sync", name="ad-sync", request_id="run-1",
                  source_ip="127.0.0.1", user_agent="bench")
    request = {"accountId": "a" * 36, "source": "ActiveDirectory", "externalId": "g",
               "primaryEmail": "p@example.com", "emails": ["q@example.com"],
               "enabled": True, "groups": ["ldap://svc:pw@dc"], "password": "x"}
    response = {"userId": "u", "created": True, "skipped": []}
    template = audit.EventTemplate(actor, "SyncDirectoryUser", account_id="a" * 36)
    for args in [(request, response, None, None), (request, None, "NotFound", "gone"),
                 (None, None, None, None)]:
        made = template.row(*args)
        expected = audit.event_row(actor, "SyncDirectoryUser", account_id="a" * 36,
                                   request_parameters=args[0], response_elements=args[1],
                                   error_code=args[2], error_message=args[3])
        assert _without_ids(made) == _without_ids(expected)
        assert made["event_id"] == made["body"]["eventID"] != expected["event_id"]
        assert made["body"]["requestID"] == "run-1"
    assert made["body"]["requestParameters"] is None
    first = template.row(request, response)
    assert first["body"]["requestParameters"]["groups"] == ["ldap://***@dc"]
    assert first["body"]["requestParameters"]["password"] == "***"


def test_a_template_files_no_account_under_an_impossible_id_and_ids_each_event() -> None:
    actor = Actor(type="System", principal_id="ad-sync", name="ad-sync")
    template = audit.EventTemplate(actor, "X", account_id="x" * 37)
    one, two = template.row(), template.row()
    assert one["account_id"] is None and one["body"]["recipientAccountId"] is None
    # Without a request id each event gets its own, as event_row gives it.
    assert one["body"]["requestID"] != two["body"]["requestID"]
    assert one["event_id"] != two["event_id"]
