"""schemathesis against the bridge's own ``/openapi.json``: every operation of the
document, signed with SigV4 (botocore's SigV4Auth, service ``chime``) as a FullAccess and
as a ReadOnly admin. Zero 5xx, and every answer conforms to the document (status code,
content type, headers, body schema) — which is what makes the document true.

Deterministic (``derandomize``, no example database) and bounded (``max_examples`` per
operation and role); requests go to the Flask app in process, outbound dependencies to
closed loopback ports (``fuzz_app``)."""

from __future__ import annotations

import json
import zlib
from typing import Any

import pytest
import schemathesis
from flask import Flask
from schemathesis.checks import not_a_server_error
from schemathesis.core import NotSet
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from bridge.api.setup import load_actions
from bridge.api.web import openapi_document
from tests.admin_client import SETUP_ACTOR, AdminClient, admin_client
from tests.builders import enterprise
from tests.functional.hostile.conftest import loopback_only
from tests.functional.hostile.strategies import fuzz_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


# The document as the app serves it (test_the_served_document_is_the_one_tested checks
# that). Loaded eagerly: schemathesis's lazy ``from_fixture`` loader does not work with
# pytest 9 (it sets ``Function._nodeid``, which pytest 9 no longer has).
load_actions()
schema = schemathesis.openapi.from_dict(openapi_document())


def test_the_served_document_is_the_one_tested(fuzz_app: Flask) -> None:
    served = fuzz_app.test_client().get("/openapi.json")
    assert served.status_code == 200
    assert served.get_json() == json.loads(json.dumps(openapi_document()))
    assert len(list(schema.get_all_operations())) == sum(
        len(methods) for methods in served.get_json()["paths"].values())


def test_the_document_lists_every_error_the_server_can_answer() -> None:
    from bridge.api.errors import ERROR_TABLE

    for item in openapi_document()["paths"].values():
        for operation in item.values():
            for name, status in ERROR_TABLE.values():
                documented = operation["responses"][str(status)]
                assert documented["headers"]["x-amzn-ErrorType"]["schema"] == {"const": name}


@pytest.fixture
def world(fuzz_app: Flask) -> dict[str, str]:
    """Real resources, so that half of the generated path parameters name one (the rest
    stay as generated: unknown ids, odd characters)."""
    engine = fuzz_app.extensions["bridge"].engine
    account = enterprise(engine, SETUP_ACTOR, ["example.org"], name="Schema Corp")
    key = engine.api_keys.create(SETUP_ACTOR, account.id, connect=True)
    return {"accountId": account.id, "domainName": "example.org",
            "keyId": key.view.key_id, "groupName": "staff"}


@pytest.fixture
def full_access(fuzz_app: Flask) -> AdminClient:
    return admin_client(fuzz_app, "FullAccess", name="st-full-access")


@pytest.fixture
def read_only(fuzz_app: Flask) -> AdminClient:
    return admin_client(fuzz_app, "ReadOnly", name="st-read-only")


def _real_or_generated(case: Any, world: dict[str, str]) -> None:
    for name, value in list((case.path_parameters or {}).items()):
        if name in world and zlib.crc32(repr(value).encode()) % 2 == 0:
            case.path_parameters[name] = world[name]


@schema.parametrize()
@fuzz_settings(20)
def test_every_operation_as_full_access(case: Any, full_access: AdminClient,
                                        world: dict[str, str]) -> None:
    _call_and_validate(case, full_access, world)


@schema.parametrize()
@fuzz_settings(20)
def test_every_operation_as_read_only(case: Any, read_only: AdminClient,
                                      world: dict[str, str]) -> None:
    _call_and_validate(case, read_only, world)


def _call_and_validate(case: Any, signer: AdminClient, world: dict[str, str]) -> None:
    _real_or_generated(case, world)
    body = b""
    if isinstance(case.body, bytes):  # a negative case: not JSON at all
        body = case.body
    elif not isinstance(case.body, NotSet):
        body = json.dumps(loopback_only(case.body)).encode()
    path = case.formatted_path
    response = signer.request(case.method.upper(), path, data=body,
                              query={k: v for k, v in (case.query or {}).items()},
                              headers={"Content-Type": "application/json"} if body else {})
    case.validate_response(response, checks=CHECKS)
