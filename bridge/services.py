"""What the composition root builds once and hands to the doors: the settings, the store,
the engine and the secret box. A plain container (no Flask, no locator): each door receives
it, or the parts it needs, when the composition root registers the door."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import requests
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bridge.crypto import SecretBox, load_or_create_key
from bridge.engine import ResolutionEngine
from bridge.engine.billing import pricing_of
from bridge.oidc_discovery import fetch_discovery
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
    """Build the store, the secret box and the engine from settings (no request is made
    here). The engine receives what its rooms need from outside: the secret box and the
    OpenID discovery over one HTTP session (``engine_kwargs`` may replace either, e.g.
    ``discover=`` with another timeout)."""
    db = make_engine(settings.effective_database_url)
    sessions = make_session_factory(db)
    secrets = SecretBox(load_or_create_key(settings))
    http = requests.Session()
    engine_kwargs.setdefault("secrets", secrets)
    engine_kwargs.setdefault("discover", partial(fetch_discovery, http=http))
    engine_kwargs.setdefault("allow_insecure_ldap", settings.allow_insecure_ldap)
    engine_kwargs.setdefault("pricing", pricing_of(
        settings.billing_daily_rate, settings.billing_monthly_cap, settings.billing_currency))
    engine_kwargs.setdefault("default_organisation", settings.admin_aws_account_id)
    return Services(
        settings=settings,
        db=db,
        sessions=sessions,
        engine=ResolutionEngine(sessions, **engine_kwargs),
        secrets=secrets,
    )


__all__ = ["Services", "build_services"]
