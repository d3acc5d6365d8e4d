"""Alembic environment: runs migrations on the URL the bridge passes in its config."""

from __future__ import annotations

from alembic import context
from sqlalchemy import pool

from bridge.store import (  # noqa: F401 - their tables join the metadata
    ad_models,
    ad_sync_report_models,
    console_models,
    export_models,
    usage_models,
)
from bridge.store.db import make_engine
from bridge.store.models import Base
from bridge.store.models_delegation import AccountDelegation  # noqa: F401 - its tables

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if url is None:
        raise RuntimeError("sqlalchemy.url is not set in the Alembic config")
    connectable = config.attributes.get("connection")
    if connectable is not None:
        context.configure(connection=connectable, target_metadata=target_metadata,
                          render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata,
                          render_as_batch=True, compare_type=True)
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
