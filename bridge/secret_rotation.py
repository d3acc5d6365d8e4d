"""Rotating the key that encrypts secrets at rest (``BRIDGE_SECRET_KEY``).

:func:`reseal_all` opens every sealed column with the current key and seals it again with
the new one, all in ONE transaction with one ``RotateSecretKey`` audit event (counts only):
either every secret is under the new key or none is. Workers still running with the old
key cannot open the resealed secrets, so the procedure (docs/operations.md) stops them
first and starts them with the new key after.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from bridge.crypto import SecretBox
from bridge.domain import Actor
from bridge.engine.unit_of_work import UnitOfWork
from bridge.store.ad_models import AdDirectory, AuthorizedDirectory
from bridge.store.db import transaction
from bridge.store.models import AccountOpenIdConfig, AdminAccessKey, SessionSigningKey

# (model, sealed column): every secret the bridge keeps encrypted at rest.
SEALED_COLUMNS: tuple[tuple[Any, str], ...] = (
    (AccountOpenIdConfig, "client_secret_sealed"),
    (SessionSigningKey, "private_sealed"),
    (AdminAccessKey, "secret_sealed"),
    (AdDirectory, "bind_password_sealed"),
    (AuthorizedDirectory, "bind_password_sealed"),
)


def reseal_all(sessions: sessionmaker[Any], old: SecretBox, new: SecretBox,
               actor: Actor) -> dict[str, int]:
    """Re-encrypt every sealed secret from ``old`` to ``new``; returns how many of each
    table. Raises ValueError (nothing changed) when a secret does not open with ``old``."""
    counts: dict[str, int] = {}
    with transaction(sessions, write=True) as session:
        for model, column in SEALED_COLUMNS:
            # A connection to a registered directory keeps no password of its own.
            rows = session.scalars(select(model).where(
                getattr(model, column).is_not(None))).all()
            for row in rows:
                setattr(row, column, new.seal(old.open(getattr(row, column))))
            counts[model.__tablename__] = len(rows)
        # The re-encryption and its one event in one transaction (the unit of work's
        # recorder: no other code writes events).
        UnitOfWork.record_in(session, actor, "RotateSecretKey", response_elements=counts)
    return counts
