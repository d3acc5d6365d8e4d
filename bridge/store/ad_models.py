"""The Active Directory tables: the organisation's registered directories, each account's
connection, and the AD sync's state (records per objectGUID, staged changes). Part of the
one metadata (:class:`bridge.store.models.Base`); imported wherever the metadata must be
whole (the migrations' env, the store's ``create_all``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from bridge.store.models import Base, utcnow


class AuthorizedDirectory(Base):
    """An Active Directory an organisation made available to its accounts (the guide's
    AuthorizeDirectory, "Cloud directory ID"): where and as whom to bind, once for every
    account that connects to it (each with its own BaseDn).

    ``organisation`` is the AWS account id of the admins who authorized it; accounts
    connect to it by ``id`` (``d-`` and ten hex digits, as AWS Directory Service ids).
    The bind password is sealed with the service's SecretBox and never returned. Health is
    what the last bind (the authorization's check, the sync daemon's bind) found.
    """

    __tablename__ = "authorized_directories"
    __table_args__ = (
        UniqueConstraint("organisation", "ldap_url", "bind_dn"),
        Index("ix_authorized_directories_organisation", "organisation"),
    )

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    organisation: Mapped[str] = mapped_column(String(12))
    name: Mapped[str] = mapped_column(String(255))
    ldap_url: Mapped[str] = mapped_column(String(512))
    start_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    bind_dn: Mapped[str] = mapped_column(String(1024))
    bind_password_sealed: Mapped[str] = mapped_column(String(2048))
    ca_certificate_pem: Mapped[str | None] = mapped_column(String(65536), default=None)
    tls_server_name: Mapped[str | None] = mapped_column(String(253), default=None)
    naming_context: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # The last bind: when, whether it worked, and the error in words (no secret in it).
    checked_at: Mapped[datetime | None] = mapped_column(default=None)
    healthy: Mapped[bool | None] = mapped_column(Boolean, default=None)
    health_error: Mapped[str | None] = mapped_column(String(2048), default=None)


class AdDirectory(Base):
    """An enterprise account's Active Directory connection and its sync watermark.

    Either inline settings (URL, bind account, CA) or ``directory_id``, a registered
    directory several accounts share, each with its own BaseDn. The bind password is
    sealed with the service's SecretBox and never returned. The watermark (``dc_name``,
    ``invocation_id``, ``highest_usn``) is written in the same transaction as the data of
    the page that completes a run, so it never runs ahead of what was applied; a changed
    ``invocation_id`` (the DC was restored) forces a full sync.
    """

    __tablename__ = "ad_directories"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    # A registered directory (AuthorizeDirectory) the account connected to by its id; the
    # connection settings below are then empty (the registry's hold for every account).
    directory_id: Mapped[str | None] = mapped_column(
        ForeignKey("authorized_directories.id", ondelete="RESTRICT"), default=None,
        index=True)
    ldap_url: Mapped[str | None] = mapped_column(String(512), default=None)
    start_tls: Mapped[bool] = mapped_column(Boolean, default=False)
    base_dn: Mapped[str] = mapped_column(String(1024))
    bind_dn: Mapped[str | None] = mapped_column(String(1024), default=None)
    bind_password_sealed: Mapped[str | None] = mapped_column(String(2048), default=None)
    ca_certificate_pem: Mapped[str | None] = mapped_column(String(65536), default=None)
    tls_server_name: Mapped[str | None] = mapped_column(String(253), default=None)
    user_filter: Mapped[str | None] = mapped_column(String(2048), default=None)
    group_base_dn: Mapped[str | None] = mapped_column(String(1024), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Sync watermark and state.
    dc_name: Mapped[str | None] = mapped_column(String(1024), default=None)
    invocation_id: Mapped[str | None] = mapped_column(String(64), default=None)
    highest_usn: Mapped[int | None] = mapped_column(BigInteger, default=None)
    mappings_fingerprint: Mapped[str | None] = mapped_column(String(64), default=None)
    last_full_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_sync_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status: Mapped[str | None] = mapped_column(String(32), default=None)
    last_error: Mapped[str | None] = mapped_column(String(2048), default=None)
    # A full sync interrupted after some pages: its start USN (resumed runs start over,
    # skipping the users already applied, which are unchanged by then).
    full_run_started_usn: Mapped[int | None] = mapped_column(BigInteger, default=None)


class AdDirectoryUser(Base):
    """What the last sync applied for one directory user, keyed by objectGUID.

    ``fingerprint`` hashes the facts the sync hands to the engine (addresses, name, enabled,
    mapped groups), so unchanged users cost one comparison; ``groups`` are the mapped
    groups the user is in (nested membership resolved by the DC).
    """

    __tablename__ = "ad_directory_users"
    __table_args__ = (Index("ix_ad_directory_users_user", "user_id"),
                      Index("ix_ad_directory_users_retry", "account_id", "retry"))

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    guid: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    dn: Mapped[str] = mapped_column(String(1024))
    fingerprint: Mapped[str] = mapped_column(String(64))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    present: Mapped[bool] = mapped_column(Boolean, default=True)
    groups: Mapped[list[str]] = mapped_column(default=list)
    seen_run: Mapped[str | None] = mapped_column(String(36), default=None)
    # The last apply skipped an address another user owns: applied again every run
    # (indexed: an incremental run reads these few without scanning the directory's users).
    retry: Mapped[bool] = mapped_column(Boolean, default=False)


class AdSyncPending(Base):
    """A change a full AD sync run found and has not applied yet: the run reads the
    directory once, stages what changed here page by page, checks the mass-change guard,
    then applies the staged changes page by page (each page's engine changes and the
    removal of its staged rows commit together)."""

    __tablename__ = "ad_sync_pending"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    guid: Mapped[str] = mapped_column(String(36), primary_key=True)
    run_id: Mapped[str] = mapped_column(String(36))
    facts: Mapped[dict[str, Any]] = mapped_column()


class AdSyncGroups(Base):
    """The group side of an account's AD sync (``ad_sync/groups.py``): the closure of the
    mapped groups the last run used (group objectGUID -> DN, RID and the mapped names it
    stands for) and the DirSync cookie after which group membership changes are still to
    be read. Written with the watermark, in the same transaction, so an incremental run
    reads only the groups changed since (their member values added or removed), never the
    whole membership of a group. A NULL cookie means the DC refused DirSync: incremental
    runs then compare every user's groups when a group changed."""

    __tablename__ = "ad_sync_groups"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    closure: Mapped[dict[str, Any]] = mapped_column(default=dict)
    cookie: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)
