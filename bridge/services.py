"""What the composition root builds once and hands to the doors: the settings, the store,
the engine and the secret box. A plain container (no Flask, no locator): each door receives
it, or the parts it needs, when the composition root registers the door."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.crypto import SecretBox, load_or_create_key
from bridge.engine import ResolutionEngine
from bridge.store.db import make_engine, make_session_factory
from config import Settings


@dataclass
class Services:
    """What the doors get from the composition root."""

    settings: Settings
    db: Engine
    sessions: sessionmaker[Session]
    engine: ResolutionEngine
    secrets: SecretBox


def build_services(settings: Settings, **engine_kwargs: Any) -> Services:
    """Build the store, the engine and the secret box from settings (no HTTP)."""
    db = make_engine(settings.effective_database_url)
    sessions = make_session_factory(db)
    engine_kwargs.setdefault("default_organisation", settings.admin_aws_account_id)
    return Services(
        settings=settings,
        db=db,
        sessions=sessions,
        engine=ResolutionEngine(sessions, **engine_kwargs),
        secrets=SecretBox(load_or_create_key(settings)),
    )


__all__ = ["Services", "build_services"]
