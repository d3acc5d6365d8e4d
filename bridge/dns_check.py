"""Domain verification against real DNS (dnspython) and the background re-check.

The resolver asks the nameservers of ``BRIDGE_DNS_NAMESERVERS`` (``host:port`` list; empty:
the system resolver) for the TXT record ``_chime-bridge-verification.<domain>``. The
result goes to :meth:`ResolutionEngine.record_domain_check`, which decides: token found →
verified; not found for longer than the verification window (24 h) → failed. The background
re-check is the named job ``domain-recheck`` (:func:`recheck_job`, run by
:class:`bridge.jobs.JobRunner`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import dns.exception
import dns.nameserver
import dns.resolver

from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.engine.results import DomainView
from bridge.errors import BridgeError
from bridge.jobs import Job
from config import Settings

log = logging.getLogger(__name__)
RECHECK_JOB = "domain-recheck"
RECHECK_ACTOR = Actor.system(RECHECK_JOB)


def _resolver(settings: Settings) -> dns.resolver.Resolver:
    if not settings.dns_nameservers:
        resolver = dns.resolver.Resolver()
    else:
        resolver = dns.resolver.Resolver(configure=False)
        servers: list[dns.nameserver.Nameserver] = []
        for entry in settings.dns_nameservers:
            host, _, port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "53")
            servers.append(dns.nameserver.Do53Nameserver(host, int(port)))
        resolver.nameservers = servers
    resolver.timeout = settings.dns_timeout_seconds
    resolver.lifetime = settings.dns_timeout_seconds
    return resolver


def lookup_txt(settings: Settings, name: str) -> list[str] | None:
    """The TXT strings published at ``name`` ([] when the name or record does not exist);
    None when DNS could not be asked (timeout, no nameserver answered)."""
    try:
        answer = _resolver(settings).resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        log.warning("TXT look-up of %s failed: %s", name, exc)
        return None
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def check_domain(engine: ResolutionEngine, settings: Settings, actor: Actor,
                 domain: DomainView) -> DomainView:
    """Look the domain's verification record up now and record the result (audited as
    VerifyDomain). Raises Conflict when another account verified the domain first."""
    from bridge.observability import metrics

    values = lookup_txt(settings, domain.verification_record_name)
    try:
        result = engine.record_domain_check(
            actor, domain.account_id, domain.name, values,
            window=timedelta(hours=settings.domain_verification_window_hours))
    except BridgeError:
        metrics.DOMAIN_CHECKS.labels("refused").inc()  # e.g. verified elsewhere first
        raise
    metrics.DOMAIN_CHECKS.labels("dns_error" if values is None else result.status).inc()
    return result


def recheck_pending(engine: ResolutionEngine, settings: Settings,
                    keep: Callable[[], None] | None = None) -> int:
    """One pass over every pending domain; returns how many became verified.

    ``keep`` is called before each domain (the job lease's :meth:`~bridge.jobs.Lease.keep`:
    it renews the lease, or raises LeaseLost to stop the pass).
    """
    verified = 0
    for domain in engine.pending_domains():
        if keep is not None:
            keep()
        try:
            result = check_domain(engine, settings, RECHECK_ACTOR, domain)
        except BridgeError as exc:  # e.g. verified by another account meanwhile
            log.info("re-check of %s: %s", domain.name, exc.message)
            continue
        except Exception:  # one bad domain must not stop the others
            log.exception("re-check of %s failed", domain.name)
            continue
        if result.status == "verified":
            verified += 1
    return verified


def recheck_job(engine: ResolutionEngine, settings: Settings,
                interval: float | None = None) -> Job:
    """The ``domain-recheck`` job: a pass over the pending domains every ``interval``
    seconds (default ``BRIDGE_DOMAIN_RECHECK_INTERVAL_SECONDS``), run by one runner at a
    time across every worker and host (:mod:`bridge.jobs`)."""
    seconds = interval if interval is not None else settings.domain_recheck_interval_seconds
    return Job(name=RECHECK_JOB, interval=timedelta(seconds=seconds),
               run=lambda lease: recheck_pending(engine, settings, keep=lease.keep))
