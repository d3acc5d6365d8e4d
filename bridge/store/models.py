"""SQLAlchemy 2 models: the bridge's durable state.

Identities are keyed by (source, issuer, immutable external id); addresses live in one unique,
lowercased table that holds every *effective* address (primaries and aliases) so that an
address can belong to one user only, service-wide. Times are timezone-aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    event,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from uuid_utils import uuid7

from bridge.domain.search import folded_user_document

# How much longer ``str.lower`` can make a string: U+0130 (İ) lowers to two code points
# ("i̇"), every other character to one. A ``*_lower`` column is this much wider than the
# name it copies, or a valid name of U+0130s would overflow it on PostgreSQL (a 500).
LOWERED_GROWTH = 2

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A new row key: a UUIDv7 (RFC 9562) as a canonical lowercase 36-character string.

    Keys sort in creation order — 48 bits of Unix milliseconds, then a counter that the
    library keeps for the whole process (later calls in the same millisecond sort after
    earlier ones), then random bits — so an index on them takes each new row at its end
    instead of at a random leaf: the AD sync's cold import writes 100,000 users this way
    (docs/performance.md, issue 17). Not a secret: a key reveals its row's creation time
    to the millisecond, and nothing that must be unguessable (tokens, invitation links,
    API keys) is made here (those come from :mod:`secrets`). Lowercase matters:
    bridge/store/search.py compares ids as their own folded copies."""
    return str(uuid7())


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that always comes back timezone-aware in UTC (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class Account(Base):
    """A Chime account: team (no verified domain) or enterprise (at least one)."""

    __tablename__ = "accounts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(100), index=True)
    # Lowercased copy of the name for case-insensitive prefix search (twice as wide:
    # LOWERED_GROWTH).
    name_lower: Mapped[str] = mapped_column(String(100 * LOWERED_GROWTH), index=True)
    directory_kind: Mapped[str | None] = mapped_column(String(32), default=None)
    default_license: Mapped[str] = mapped_column(String(16), default="pro")
    remote_control_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    call_me_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    owner_principal: Mapped[str | None] = mapped_column(String(128), default=None)
    # The organisation (the guide's AWS account id) that owns the account; others see it
    # only when it is delegated to them (bridge/store/models_delegation.py).
    owner_organisation: Mapped[str | None] = mapped_column(String(12), index=True,
                                                           default=None)

    domains: Mapped[list[Domain]] = relationship(back_populates="account", lazy="raise")


class Domain(Base):
    """A domain claimed by an account. A name may be pending in several accounts, but only
    one account can hold it verified (partial unique index)."""

    __tablename__ = "domains"
    __table_args__ = (
        UniqueConstraint("account_id", "name"),
        Index(
            "uq_domains_verified_name",
            "name",
            unique=True,
            sqlite_where=text("status = 'verified'"),
            postgresql_where=text("status = 'verified'"),
        ),
        Index("ix_domains_name_status", "name", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(253))
    status: Mapped[str] = mapped_column(String(32), default="pending_verification")
    verification_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(default=None)
    last_checked_at: Mapped[datetime | None] = mapped_column(default=None)

    account: Mapped[Account] = relationship(back_populates="domains", lazy="raise")


class User(Base):
    """A person of the service: in an account, or unmanaged (``account_id`` NULL)."""

    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_account_primary", "account_id", "primary_email"),
        # ListUsers pages by id within an account: without this every page sorts the whole
        # account (admin API benchmark: 2.4x slower at 100k users than at 1k).
        Index("ix_users_account_id_id", "account_id", "id"),
        # The purge of profiles deleted in the directory past their grace period.
        Index("ix_users_account_directory_deleted", "account_id", "directory_deleted_at"),
        # SCIM userName: unique per account, case-insensitively (RFC 7643 section 4.1.1), so
        # racing duplicate creates end in an IntegrityError (409), never in two users.
        Index("uq_users_account_user_name", "account_id", "user_name_lower", unique=True),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True, default=None
    )
    # The primary address as the source gave it (display); the effective addresses are rows
    # of email_addresses. It may be on an unclaimed domain, then the user cannot sign in.
    primary_email: Mapped[str] = mapped_column(String(320))
    display_name: Mapped[str | None] = mapped_column(String(256), default=None)
    status: Mapped[str] = mapped_column(String(16), default="registered")
    # Console-managed accounts: always set. Directory accounts: computed from the mapped
    # groups, NULL when the user is in no mapped group (may not sign in).
    tier: Mapped[str | None] = mapped_column(String(8), default="pro")
    # Directory accounts: the tier the user had when Okta was connected, held until a mapped
    # group gives a tier (then the group rule decides for good) or the directory is
    # disconnected. The tier rule never clears a held tier.
    tier_held: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    trial_started_at: Mapped[datetime | None] = mapped_column(default=None)
    # Joining an account ends the Pro trial for good (it does not restart on removal).
    trial_ended_at: Mapped[datetime | None] = mapped_column(default=None)
    invited_at: Mapped[datetime | None] = mapped_column(default=None)
    joined_at: Mapped[datetime | None] = mapped_column(default=None)
    personal_pin: Mapped[str | None] = mapped_column(String(10), unique=True, default=None)
    privacy: Mapped[str] = mapped_column(String(8), default="public")
    last_active_at: Mapped[datetime | None] = mapped_column(default=None)
    meetings_attended: Mapped[int] = mapped_column(Integer, default=0)
    meetings_organized: Mapped[int] = mapped_column(Integer, default=0)
    chat_messages_sent: Mapped[int] = mapped_column(Integer, default=0)
    # Directory facts (AD or Okta/SCIM): present in the directory, enabled there.
    in_directory: Mapped[bool] = mapped_column(Boolean, default=False)
    directory_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    directory_deleted_at: Mapped[datetime | None] = mapped_column(default=None)
    # Every address the directory gave, claimed or not, so aliases appear as soon as their
    # domain is verified later (they are not reserved service-wide until then).
    source_addresses: Mapped[list[str]] = mapped_column(default=list)
    # SCIM userName as the provisioning client sent it (NULL for users not from SCIM) and
    # its lowercased copy for the per-account unique index and ``userName eq`` lookups.
    user_name: Mapped[str | None] = mapped_column(String(256), default=None)
    user_name_lower: Mapped[str | None] = mapped_column(String(256 * LOWERED_GROWTH),
                                                        default=None)
    # Free-form protocol attributes a door must round-trip (SCIM name, locale, ...).
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The case-insensitive searchable strings (displayName, the searchable attributes,
    # emails) lowered by Python (``bridge.domain.search.folded_user_document``): SCIM
    # filters compare against this copy, so SQLite and PostgreSQL fold exactly as the
    # in-memory evaluator does (SQL's lower() is ASCII-only on SQLite). Kept by the ORM
    # hook below and by every Core write of a user.
    search_folded: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Sessions issued before this moment are revoked (LogoutUser, suspension).
    sessions_valid_after: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


@event.listens_for(User, "before_insert")
@event.listens_for(User, "before_update")
def _fold_user(_mapper: Any, _connection: Any, user: User) -> None:
    """Every ORM write of a user refreshes its folded search copy (``search_folded``) from
    the columns it is made of; Core writes (``Repository.insert_user``, the bulk directory
    path, the SCIM PATCH update) set it themselves."""
    user.search_folded = folded_user_document(user.display_name, user.attributes,
                                              user.user_name, user.primary_email)


class EmailAddress(Base):
    """One effective address of one user; unique service-wide (lowercased)."""

    __tablename__ = "email_addresses"
    __table_args__ = (Index("ix_email_addresses_domain", "domain"),)

    address: Mapped[str] = mapped_column(String(320), primary_key=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    domain: Mapped[str] = mapped_column(String(253))
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)


class ExternalIdentity(Base):
    """Link from an external identity (source, issuer, immutable id) to a user."""

    __tablename__ = "external_identities"
    __table_args__ = (UniqueConstraint("source", "issuer", "external_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))
    issuer: Mapped[str] = mapped_column(String(512))
    external_id: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DirectoryGroup(Base):
    """A group the account's directory knows (pushed over SCIM or read from AD)."""

    __tablename__ = "directory_groups"
    __table_args__ = (
        UniqueConstraint("account_id", "name_lower"),
        Index("ix_directory_groups_external", "account_id", "external_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(256))
    name_lower: Mapped[str] = mapped_column(String(256 * LOWERED_GROWTH))
    external_id: Mapped[str | None] = mapped_column(String(256), default=None)
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=1)

    __mapper_args__ = {"version_id_col": version}


class GroupMembership(Base):
    """The directory says: this user is (directly or through nesting) in this group."""

    __tablename__ = "group_memberships"

    group_id: Mapped[str] = mapped_column(
        ForeignKey("directory_groups.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True
    )


class GroupMapping(Base):
    """The administrator's mapping of a directory group name to a tier."""

    __tablename__ = "group_mappings"
    __table_args__ = (UniqueConstraint("account_id", "name_lower"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(256))
    name_lower: Mapped[str] = mapped_column(String(256 * LOWERED_GROWTH))
    tier: Mapped[str] = mapped_column(String(8))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Invitation(Base):
    """A single-use registration link sent by InviteUsers; only the token's hash is kept."""

    __tablename__ = "invitations"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    accepted_at: Mapped[datetime | None] = mapped_column(default=None)


class AuditEvent(Base):
    """One append-only audit record, shaped like the guide's CloudTrail entry.

    The full event is ``body`` (JSON); the indexed columns are copies for querying.
    """

    __tablename__ = "audit_events"
    __table_args__ = (
        Index("ix_audit_events_time", "event_time"),
        Index("ix_audit_events_name_time", "event_name", "event_time"),
        Index("ix_audit_events_principal_time", "principal_id", "event_time"),
        Index("ix_audit_events_account_time", "account_id", "event_time"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_time: Mapped[datetime] = mapped_column()
    event_name: Mapped[str] = mapped_column(String(64))
    event_source: Mapped[str] = mapped_column(String(64))
    principal_id: Mapped[str | None] = mapped_column(String(128))
    account_id: Mapped[str | None] = mapped_column(String(36), default=None)
    # The acting administrator's organisation (None: no organisation — end users, the
    # CLI operator, system jobs): who may read an event filed under no account.
    organisation: Mapped[str | None] = mapped_column(String(12), default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    body: Mapped[dict[str, Any]] = mapped_column()


# --- OpenID Connect sign-in and sessions (issue 5) ----------------------------------------


class AccountOpenIdConfig(Base):
    """An enterprise account's Okta (OpenID Connect) relying-party configuration.

    ``issuer`` is stored exactly as the provider's discovery document states it (ID tokens
    must carry it verbatim); the client secret is sealed with the service's SecretBox.
    """

    __tablename__ = "account_openid_configs"

    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    issuer: Mapped[str] = mapped_column(String(512))
    client_id: Mapped[str] = mapped_column(String(256))
    # The Fernet token (bridge.crypto.SecretBox.seal) of a ClientSecret of up to 1,024
    # characters of up to 4 UTF-8 bytes each: 4,096 bytes seal to 5,560 characters.
    client_secret_sealed: Mapped[str] = mapped_column(String(5560))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SessionSigningKey(Base):
    """A key that signs the bridge's session JWTs. The newest unretired key signs; retired
    keys stay published (and accepted) until the sessions they signed have expired."""

    __tablename__ = "session_signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    public_jwk: Mapped[dict[str, Any]] = mapped_column()
    private_sealed: Mapped[str] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(default=None)


class SignInSession(Base):
    """One session issued after an allowed sign-in; its id is the JWT's ``jti``.

    ``issued_at`` keeps full precision (the JWT's ``iat`` is whole seconds) so revocation by
    ``users.sessions_valid_after`` is exact; ``ended_at`` is set by POST /auth/logout.
    """

    __tablename__ = "sign_in_sessions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[datetime] = mapped_column()
    expires_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None] = mapped_column(default=None)


# --- Admin API: principals, access keys, replay guard, support requests (issue 3) ---------


class AdminPrincipal(Base):
    """An administrator identity, like the guide's IAM user: a name and attached policies.

    ``policies`` is a JSON list; each item is ``{"Managed": "FullAccess"}`` (one of the
    managed policies) or ``{"Name": ..., "Document": {...}}`` (a custom policy document in
    the guide's JSON format).
    """

    __tablename__ = "admin_principals"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    policies: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # The organisation the principal belongs to (the guide's AWS account id).
    aws_account_id: Mapped[str] = mapped_column(String(12), default="000000000000",
                                                server_default="000000000000")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AdminAccessKey(Base):
    """A SigV4 access key of an admin principal. SigV4 needs the plain secret to compute
    the expected signature, so the secret is sealed with the service's SecretBox (never a
    hash, never in clear)."""

    __tablename__ = "admin_access_keys"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    principal_id: Mapped[str] = mapped_column(
        ForeignKey("admin_principals.id", ondelete="CASCADE"), index=True
    )
    secret_sealed: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


class AdminRequestSignature(Base):
    """A SigV4 signature that verified against its access key, kept until it is outside
    the allowed clock skew (after that the date check refuses it anyway). A second request
    with the same key and signature is a replay. Keyed by (access key, signature): only a
    request verified with that key can ever touch the row."""

    __tablename__ = "admin_request_signatures"

    access_key_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    signature_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)


class RateCounter(Base):
    """How many times (scope, subject) was counted in one fixed time window, shared by
    every worker and host through the database (see :mod:`bridge.store.throttle`: one atomic
    upsert per hit; rows are purged once their window has ended)."""

    __tablename__ = "rate_counters"

    scope: Mapped[str] = mapped_column(String(32), primary_key=True)
    subject: Mapped[str] = mapped_column(String(200), primary_key=True)
    window_start: Mapped[datetime] = mapped_column(primary_key=True)
    hits: Mapped[int] = mapped_column(Integer)
    window_end: Mapped[datetime] = mapped_column(index=True)


class SupportRequest(Base):
    """SubmitSupportRequest: a ticket from an administrator, stored and mailed."""

    __tablename__ = "support_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    principal_id: Mapped[str] = mapped_column(String(128))
    account_id: Mapped[str | None] = mapped_column(String(36), default=None, index=True)
    subject: Mapped[str] = mapped_column(String(256))
    description: Mapped[str] = mapped_column(String(20000))
    contact_email: Mapped[str | None] = mapped_column(String(320), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    mail_status: Mapped[str] = mapped_column(String(16), default="NotSent")


# --- SCIM provisioning API keys (issue 4) -------------------------------------------------


class ApiKey(Base):
    """A SCIM bearer key of an enterprise account (the guide's CreateApiKey).

    The key handed out once is ``<prefix>_<key id>_<secret>``; only the SHA-256 of the
    secret is stored (the secret is 256 random bits, so a slow hash adds nothing). Deleting
    the row revokes the key at once.
    """

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)


# --- background jobs (bridge/jobs.py) ----------------------------------------------------


class JobLease(Base):
    """Who runs a named background job (``domain-recheck``, ...) now, across every worker
    and host: a runner may start a pass only by moving ``expires_at`` into the future with
    one conditional UPDATE, which works the same on SQLite and PostgreSQL."""

    __tablename__ = "job_leases"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))  # host:pid:nonce of the last runner
    expires_at: Mapped[datetime] = mapped_column()  # the lease is free once this has passed
    next_run_at: Mapped[datetime] = mapped_column()  # no pass starts before this
    last_started_at: Mapped[datetime] = mapped_column()
    last_finished_at: Mapped[datetime | None] = mapped_column(default=None)
