"""The engine's facade: the one object every door receives.

It builds the unit of work and every room once, with what each needs passed in, and
exposes the rooms (``engine.accounts``, ``engine.sign_in``, ...) and, for the doors, each
room's operations under their own names (``engine.create_account``). See
``docs/architecture.md`` for what each room owns.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy.orm import Session, sessionmaker

from bridge.domain.usage import Pricing
from bridge.engine.accounts import Accounts
from bridge.engine.ad_directories import AdDirectories
from bridge.engine.ad_sync_runs import AdSyncRuns
from bridge.engine.api_keys import ApiKeys
from bridge.engine.billing import PUBLISHED_PRICING, Billing
from bridge.engine.bulk import BulkProvisioning
from bridge.engine.delegations import Delegations
from bridge.engine.directories import Directories
from bridge.engine.directory_groups import DirectoryGroups
from bridge.engine.directory_registry import DirectoryRegistry
from bridge.engine.domains import Domains
from bridge.engine.exports import DataExports
from bridge.engine.members import Members
from bridge.engine.openid_configs import Discover, OpenIdConfigs
from bridge.engine.provisioning import Provisioning
from bridge.engine.queries import Queries
from bridge.engine.reports import Reports
from bridge.engine.rollup import Rollup
from bridge.engine.secrets import NoSealer, Sealer
from bridge.engine.session_checks import SessionChecks
from bridge.engine.sign_in import SignIn
from bridge.engine.support import Support
from bridge.engine.unit_of_work import UnitOfWork
from bridge.engine.usage import Usage
from bridge.store.models import utcnow

Clock = Callable[[], datetime]
# The organisation of the setting admin_aws_account_id's default.
DEFAULT_ORGANISATION = "000000000000"


class ResolutionEngine:
    """The user-resolution engine. ``clock`` is injectable so tests can move time (trials,
    grace periods); every room reads time from it. What the composition root passes in:
    ``secrets`` (seals the secrets rooms keep at rest: bind passwords, Okta client
    secrets), ``discover`` (checks an OpenID issuer over HTTP), whether plain ``ldap://``
    without StartTLS is allowed (test directories only), the ``pricing`` of the Active Pro
    rule, and ``default_organisation`` (the setting ``admin_aws_account_id``), which owns
    accounts created by callers outside any organisation."""

    def __init__(self, session_factory: sessionmaker[Session], clock: Clock = utcnow, *,
                 pricing: Pricing = PUBLISHED_PRICING, secrets: Sealer | None = None,
                 discover: Discover | None = None, allow_insecure_ldap: bool = False,
                 default_organisation: str = DEFAULT_ORGANISATION) -> None:
        self.uow = uow = UnitOfWork(session_factory)
        sealer: Sealer = secrets if secrets is not None else NoSealer()
        self._clock = clock
        self.default_organisation = default_organisation
        self.accounts = Accounts(uow, clock, default_organisation)
        self.delegations = Delegations(uow, clock)
        self.domains = Domains(uow, clock)
        self.members = Members(uow, clock)
        self.support = Support(uow, clock)
        self.directories = Directories(uow, clock)
        self.directory_registry = DirectoryRegistry(uow, clock, sealer,
                                                    allow_insecure_ldap=allow_insecure_ldap)
        self.ad_directories = AdDirectories(uow, clock, sealer, self.directory_registry,
                                            allow_insecure_ldap=allow_insecure_ldap)
        self.ad_sync_runs = AdSyncRuns(uow, clock)
        self.openid_configs = (OpenIdConfigs(uow, clock, sealer, discover)
                               if discover is not None else OpenIdConfigs(uow, clock, sealer))
        self.api_keys = ApiKeys(uow, clock)
        self.provisioning = Provisioning(uow, clock)
        self.groups = DirectoryGroups(uow, clock)
        self.bulk = BulkProvisioning(uow, clock, self.provisioning, self.groups)
        self.queries = Queries(uow, clock)
        self.sign_in = SignIn(uow, clock)
        self.session_checks = SessionChecks(uow, clock)
        self.exports = DataExports(uow, clock)
        self.usage = Usage(uow, clock)
        self.billing = Billing(uow, clock, pricing)
        self.reports = Reports(uow, clock)
        self.rollup = Rollup(uow, clock)
        # The unit of work's blocks, for doors that group reads or a page of changes.
        self.single_transaction = uow.single_transaction
        self.reading = uow.reading
        self.writing = uow.writing
        self.writers_take_turns = uow.writers_take_turns
        self.after_reading = uow.after_reading
        self.record_event = uow.record_event
        # Accounts
        self.create_account = self.accounts.create_account
        self.rename_account = self.accounts.rename_account
        self.delete_account = self.accounts.delete_account
        self.get_account = self.accounts.get_account
        self.list_accounts = self.accounts.list_accounts
        self.get_account_settings = self.accounts.get_account_settings
        self.update_account_settings = self.accounts.update_account_settings
        # Domains
        self.add_domain = self.domains.add_domain
        self.list_domains = self.domains.list_domains
        self.get_domain = self.domains.get_domain
        self.record_domain_check = self.domains.record_domain_check
        self.pending_domains = self.domains.pending_domains
        self.delete_domain = self.domains.delete_domain
        # Members
        self.get_user = self.members.get_user
        self.get_user_by_email = self.members.get_user_by_email
        self.list_users = self.members.list_users
        self.list_users_by_address = self.members.list_users_by_address
        self.invite_users = self.members.invite_users
        self.accept_invitation = self.members.accept_invitation
        self.accept_invitation_and_sign_in = self.members.accept_invitation_and_sign_in
        self.invitation_preview = self.members.invitation_preview
        self.remove_users = self.members.remove_users
        self.suspend_users = self.members.suspend_users
        self.activate_users = self.members.activate_users
        self.update_user_licenses = self.members.update_user_licenses
        self.reset_personal_pin = self.members.reset_personal_pin
        self.logout_user = self.members.logout_user
        # Support
        self.submit_support_request = self.support.submit_support_request
        self.set_support_request_mail_status = self.support.set_support_request_mail_status
        # Directories
        self.set_directory = self.directories.set_directory
        self.okta_connect_plan = self.directories.okta_connect_plan
        self.list_group_mappings = self.directories.list_group_mappings
        self.add_or_update_group_mappings = self.directories.add_or_update_group_mappings
        self.delete_group_mappings = self.directories.delete_group_mappings
        # Provisioning
        self.upsert_directory_user = self.provisioning.upsert_directory_user
        self.patch_directory_user = self.provisioning.patch_directory_user
        self.directory_user = self.provisioning.directory_user
        self.mark_directory_user_deleted = self.provisioning.mark_directory_user_deleted
        self.delete_user = self.provisioning.delete_user
        self.purge_deleted_users = self.provisioning.purge_deleted_users
        # DirectoryGroups
        self.create_group = self.groups.create_group
        self.upsert_group = self.groups.upsert_group
        self.change_group = self.groups.change_group
        self.change_group_members = self.groups.change_group_members
        self.delete_group = self.groups.delete_group
        self.set_user_groups = self.groups.set_user_groups
        self.get_group = self.groups.get_group
        # BulkProvisioning
        self.apply_directory_users = self.bulk.apply_directory_users
        # Queries
        self.search_users = self.queries.search_users
        self.search_groups = self.queries.search_groups
        self.resolve_address = self.queries.resolve_address
        self.relinkable_directory_profiles = self.queries.relinkable_directory_profiles
        self.home_realm = self.queries.home_realm
        # SignIn
        self.decide_sign_in = self.sign_in.decide_sign_in
        self.begin_password_attempt = self.sign_in.begin_password_attempt
        self.begin_console_password_attempt = self.sign_in.begin_console_password_attempt
        self.end_password_attempt = self.sign_in.end_password_attempt
        # SessionChecks
        self.check_session = self.session_checks.check_session
        self.check_sign_in_session = self.session_checks.check_sign_in_session
        # DataExports
        self.start_data_export = self.exports.start_data_export
        self.latest_data_export = self.exports.latest_data_export
        # Usage, billing, reports (issue 14)
        self.put_usage = self.usage.put_usage
        self.license_history = self.usage.license_history
        self.bill = self.billing.bill
        self.usage_summary = self.reports.usage_summary
        self.activity_summary = self.reports.activity_summary
        self.roll_up_usage = self.rollup.roll_up

    def now(self) -> datetime:
        """The engine's clock. Sessions are stamped with it so that revocations
        (``sessions_valid_after``) and issuance compare on one time line."""
        return self._clock()
