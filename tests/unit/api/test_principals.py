"""Admin principals and access keys on both stores: sealed secrets, policies, rotation,
and the replay guard."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from bridge.api.principals import PrincipalStore
from bridge.app import Services
from bridge.domain import Actor
from bridge.errors import Conflict, NotFound, ValidationError
from bridge.store.models import utcnow

OPERATOR = Actor(type="CliOperator", principal_id="cli:test")


@pytest.fixture
def store(services: Services) -> PrincipalStore:
    return PrincipalStore(services.engine.uow, services.secrets)


def test_create_authenticate_rotate_delete(store: PrincipalStore, services: Services) -> None:
    created = store.create(OPERATOR, "alice", [{"Managed": "FullAccess"}])
    credential = store.credential(created.access_key_id)
    assert credential is not None
    assert credential.secret_access_key == created.secret_access_key
    assert credential.principal.name == "alice"
    with services.db.connect() as conn:
        sealed = conn.execute(text("SELECT secret_sealed FROM admin_access_keys")).scalar_one()
    assert created.secret_access_key not in sealed
    rotated = store.rotate_key(OPERATOR, "alice")
    assert store.credential(created.access_key_id) is None
    assert store.credential(rotated.access_key_id) is not None
    store.delete(OPERATOR, "alice")
    assert store.credential(rotated.access_key_id) is None
    with pytest.raises(NotFound):
        store.get("alice")


def test_names_policies_and_conflicts(store: PrincipalStore) -> None:
    store.create(OPERATOR, "bob", [{"Managed": "ReadOnly"}])
    with pytest.raises(Conflict, match="already exists"):
        store.create(OPERATOR, "bob", [{"Managed": "ReadOnly"}])
    with pytest.raises(ValidationError):
        store.create(OPERATOR, "no spaces", [])
    # "$" in the name pattern matched before a final line break: "dave\n" was stored.
    with pytest.raises(ValidationError, match="1-64 letters"):
        store.create(OPERATOR, "dave\n", [{"Managed": "ReadOnly"}])
    with pytest.raises(ValidationError, match="Unknown managed policy"):
        store.create(OPERATOR, "carol", [{"Managed": "Root"}])
    doc = {"Version": "2012-10-17", "Statement": [{"Effect": "Deny", "Action": "chime:*",
                                                   "Resource": "*"}]}
    view = store.attach_policy(OPERATOR, "bob", {"Name": "deny-all", "Document": doc})
    assert [p.get("Managed") or p.get("Name") for p in view.policies] == [
        "ReadOnly", "deny-all"]
    view = store.detach_policy(OPERATOR, "bob", "ReadOnly")
    assert [p.get("Name") for p in view.policies] == ["deny-all"]


def test_replay_guard_accepts_a_signature_once(store: PrincipalStore) -> None:
    created = store.create(OPERATOR, "dave", [{"Managed": "FullAccess"}])
    expires = utcnow() + timedelta(minutes=5)
    assert store.accept_signature(created.access_key_id, "a" * 64, expires)
    assert not store.accept_signature(created.access_key_id, "a" * 64, expires)
    store.forget_signature(created.access_key_id, "a" * 64)
    assert store.accept_signature(created.access_key_id, "a" * 64, expires)
    assert store.accept_signature(created.access_key_id, "b" * 64, expires)


def test_a_signature_is_forgotten_only_under_its_own_key(store: PrincipalStore) -> None:
    """Rows are keyed by (access key, signature): naming the signature under another key
    releases nothing."""
    created = store.create(OPERATOR, "erin", [{"Managed": "FullAccess"}])
    expires = utcnow() + timedelta(minutes=5)
    assert store.accept_signature(created.access_key_id, "c" * 64, expires)
    store.forget_signature("AKIAAAAAAAAAAAAAAAAA", "c" * 64)
    assert not store.accept_signature(created.access_key_id, "c" * 64, expires)
