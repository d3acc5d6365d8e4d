"""Domain verification against real DNS (dnspython) and the background re-check.

The resolver asks the nameservers of ``BRIDGE_DNS_NAMESERVERS`` (``host:port`` list; empty:
the system resolver) for the TXT record ``_chime-bridge-verification.<domain>``. The
result goes to :meth:`ResolutionEngine.record_domain_check`, which decides: token found →
verified; not found for longer than the verification window (24 h) → failed.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import dns.exception
import dns.nameserver
import dns.resolver

from bridge.domain import Actor
from bridge.engine import ResolutionEngine
from bridge.engine.results import DomainView
from bridge.errors import BridgeError
from config import Settings

log = logging.getLogger(__name__)
RECHECK_ACTOR = Actor.system("domain-recheck")


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


def recheck_pending(engine: ResolutionEngine, settings: Settings) -> int:
    """One pass over every pending domain; returns how many became verified."""
    verified = 0
    for domain in engine.pending_domains():
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


class DomainRechecker:
    """A daemon thread re-checking pending domains every ``interval`` until stopped.

    Every worker process may run one: a check is idempotent (the engine locks the
    account row and a verified domain stays verified).
    """

    def __init__(self, engine: ResolutionEngine, settings: Settings,
                 interval: float | None = None) -> None:
        self._engine = engine
        self._settings = settings
        self._interval = interval or float(settings.domain_recheck_interval_seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="domain-recheck", daemon=True)
        self._passed = threading.Condition()
        self.passes = 0

    def start(self) -> DomainRechecker:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def wait_for_passes(self, count: int, timeout: float) -> bool:
        """Block until at least ``count`` passes have finished in total; False on timeout.
        (For operators' health checks and tests: a pass is observable without polling.)"""
        with self._passed:
            return self._passed.wait_for(lambda: self.passes >= count, timeout=timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                recheck_pending(self._engine, self._settings)
            except Exception:  # keep the thread alive; the next pass retries
                log.exception("domain re-check pass failed")
            with self._passed:
                self.passes += 1
                self._passed.notify_all()
