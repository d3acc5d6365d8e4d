"""Support requests (SubmitSupportRequest): the ticket; the door mails it after commit."""

from __future__ import annotations

import logging
from typing import Any

from bridge.domain import (
    Actor,
    has_control_characters,
    normalize_email,
)
from bridge.engine.results import (
    SupportRequestView,
)
from bridge.engine.room import Room
from bridge.errors import NotFound, ValidationError
from bridge.store.repository import Repository

log = logging.getLogger(__name__)


class Support(Room):
    """Support requests (SubmitSupportRequest): the ticket; the door mails it after commit."""

    def submit_support_request(self, actor: Actor, *, subject: str, description: str,
                               account_id: str | None = None,
                               contact_email: str | None = None) -> SupportRequestView:
        """SubmitSupportRequest: store a ticket (the admin door mails it after commit).

        Raises ValidationError for an empty or over-long subject (256) or description
        (20000), or a bad contact address; NotFound for an unknown account.
        """
        from bridge.store.models import SupportRequest

        params = {"accountId": account_id, "subject": subject, "contactEmail": contact_email}

        def work(repo: Repository) -> tuple[SupportRequestView, dict[str, Any]]:
            for name, value, limit in (("Subject", subject, 256),
                                       ("Description", description, 20000)):
                if not isinstance(value, str) or not value.strip():
                    raise ValidationError(f"{name} must not be empty.", field=name)
                if len(value) > limit:
                    raise ValidationError(f"{name} is longer than {limit} characters.",
                                          field=name)
            if has_control_characters(subject.strip()):  # the mail's Subject header is one line
                raise ValidationError("Subject must be one line without control "
                                      "characters.", field="Subject")
            contact = (normalize_email(contact_email, field_name="ContactEmail")
                       if contact_email is not None else None)
            if account_id is not None:
                self._account(repo, account_id)
            row = SupportRequest(principal_id=actor.principal_id, account_id=account_id,
                                 subject=subject.strip(), description=description,
                                 contact_email=contact, created_at=self._now(),
                                 mail_status="NotSent")
            repo.session.add(row)
            repo.session.flush()
            return self._support_view(row), {"supportRequestId": row.id}

        return self._run(actor, "SubmitSupportRequest", params, work, account_id=account_id)

    @staticmethod
    def _support_view(row: Any) -> SupportRequestView:
        return SupportRequestView(row.id, row.principal_id, row.account_id, row.subject,
                                  row.description, row.contact_email, row.created_at,
                                  row.mail_status)

    def set_support_request_mail_status(self, request_id: str, status: str) -> None:
        """Record whether the support mail went out (bookkeeping, not an admin action)."""
        from bridge.store.models import SupportRequest

        def work(repo: Repository) -> None:
            row = repo.session.get(SupportRequest, request_id)
            if row is None:
                raise NotFound(f"Support request {request_id} was not found.")
            row.mail_status = status

        self._read(work)
