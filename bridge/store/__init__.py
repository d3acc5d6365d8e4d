"""The store: SQLAlchemy models, the repository (every query), the database helpers and
the Alembic migrations. Used by the engine; depends only on the domain and config."""
