"""An authoritative DNS server on 127.0.0.1 serving TXT records set by tests.

``DnsServer`` answers over UDP and TCP on the same free loopback port using
``dnslib.server.DNSServer`` with an in-memory, thread-safe record table:

* a name with TXT records answers a TXT (or ANY) query with all of them, with
  the authoritative-answer flag set;
* a name with records answers other query types with NOERROR and no answer
  (NODATA);
* any other name answers NXDOMAIN.

Names are case-insensitive and a trailing dot is optional. Each value passed to
``set_txt`` becomes one TXT record; values longer than 255 bytes are split into
255-byte character-strings inside that record, as DNS requires (resolvers
join them back, e.g. ``b"".join(rdata.strings)`` in dnspython).
"""

from __future__ import annotations

import logging
import socketserver
import threading
from typing import Any

from dnslib import QTYPE, RCODE, RR, TXT  # type: ignore[import-untyped,unused-ignore]
from dnslib.server import DNSServer  # type: ignore[import-untyped,unused-ignore]

from tests.servers.ports import LOOPBACK, LoopbackServer

_log = logging.getLogger(__name__)
_MAX_CHARACTER_STRING = 255
_BIND_ATTEMPTS = 5


def _normalize(name: str) -> str:
    """Canonical table key: lower case with exactly one trailing dot."""
    name = name.strip().rstrip(".").lower()
    if not name:
        raise ValueError("DNS name must not be empty")
    return name + "."


def _chunks(value: str) -> list[bytes]:
    """Split one TXT value into <=255-byte character-strings (at least one)."""
    data = value.encode("utf-8")
    return [
        data[i : i + _MAX_CHARACTER_STRING] for i in range(0, len(data), _MAX_CHARACTER_STRING)
    ] or [b""]


class _TableResolver:
    """dnslib resolver (duck-typed ``resolve``) answering from a dict guarded by a lock."""

    def __init__(self, ttl: int) -> None:
        self._lock = threading.Lock()
        self._txt: dict[str, list[str]] = {}
        self.ttl = ttl

    def set_txt(self, name: str, values: list[str]) -> None:
        with self._lock:
            self._txt[_normalize(name)] = list(values)

    def remove(self, name: str) -> None:
        with self._lock:
            self._txt.pop(_normalize(name), None)

    def clear(self) -> None:
        with self._lock:
            self._txt.clear()

    def resolve(self, request: Any, handler: Any) -> Any:
        """Build the reply to a parsed ``dnslib.DNSRecord`` request (see module doc)."""
        reply = request.reply()
        reply.header.aa = 1
        qname = request.q.qname
        qtype = request.q.qtype
        with self._lock:
            values = self._txt.get(str(qname).rstrip(".").lower() + ".")
        if values is None:
            reply.header.rcode = RCODE.NXDOMAIN
        elif qtype in (QTYPE.TXT, QTYPE.ANY):
            for value in values:
                reply.add_answer(RR(qname, QTYPE.TXT, rdata=TXT(_chunks(value)), ttl=self.ttl))
        return reply


class _QuietLogger:
    """dnslib logger interface: errors to ``logging`` at DEBUG, nothing to stdout."""

    def log_recv(self, handler: Any, data: bytes) -> None:
        """Ignore raw packets received."""

    def log_send(self, handler: Any, data: bytes) -> None:
        """Ignore raw packets sent."""

    def log_request(self, handler: Any, request: Any) -> None:
        """Ignore parsed requests."""

    def log_reply(self, handler: Any, reply: Any) -> None:
        """Ignore replies."""

    def log_truncated(self, handler: Any, reply: Any) -> None:
        """Ignore truncation notices."""

    def log_error(self, handler: Any, error: Exception) -> None:
        """Record undecodable requests at DEBUG level."""
        _log.debug("DNS request from %s failed: %r", handler.client_address, error)

    def log_data(self, dnsobj: Any) -> None:
        """Ignore full dumps."""


class DnsServer(LoopbackServer):
    """Authoritative DNS for tests on ``127.0.0.1:<port>``, UDP and TCP.

    Use as ``with DnsServer() as dns:`` or call ``start()`` / ``stop()``. The
    record methods may be called at any time, from any thread, and take effect
    for the next query.
    """

    def __init__(self, *, ttl: int = 60) -> None:
        """Prepare (but do not start) a server whose answers carry ``ttl`` seconds."""
        self._resolver = _TableResolver(ttl)
        self._running: list[tuple[socketserver.BaseServer, threading.Thread]] = []
        self._port: int | None = None

    # -- records -------------------------------------------------------------

    def set_txt(self, name: str, values: list[str]) -> None:
        """Make ``name`` answer TXT queries with one record per value (replacing any)."""
        self._resolver.set_txt(name, values)

    def remove(self, name: str) -> None:
        """Forget ``name`` so it answers NXDOMAIN; no error if it was unknown."""
        self._resolver.remove(name)

    def clear(self) -> None:
        """Forget every name."""
        self._resolver.clear()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> DnsServer:
        """Bind UDP and TCP on one free loopback port, serve in threads; return ``self``.

        On return both sockets are bound and listening.

        Raises:
            RuntimeError: if already running, or no port could be bound for both
                protocols after several attempts.
        """
        if self._port is not None:
            raise RuntimeError("DnsServer is already started")
        last_error: OSError | None = None
        for _ in range(_BIND_ATTEMPTS):
            udp = DNSServer(self._resolver, address=LOOPBACK, port=0, logger=_QuietLogger())
            port: int = udp.server.server_address[1]
            try:
                tcp = DNSServer(
                    self._resolver, address=LOOPBACK, port=port, tcp=True, logger=_QuietLogger()
                )
            except OSError as exc:  # the TCP side of that port is taken: try another
                udp.server.server_close()
                last_error = exc
                continue
            break
        else:
            raise RuntimeError(f"could not bind DNS on {LOOPBACK} for UDP+TCP: {last_error!r}")
        self._port = port
        for proto, server in (("udp", udp), ("tcp", tcp)):
            thread = threading.Thread(
                target=server.server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"dns-{proto}-{port}",
                daemon=True,
            )
            thread.start()
            self._running.append((server.server, thread))
        return self

    def stop(self) -> None:
        """Stop serving and close both sockets. Idempotent; safe if never started."""
        running, self._running = self._running, []
        for server, thread in running:
            server.shutdown()  # returns once serve_forever has exited
            server.server_close()
            thread.join(timeout=5)
        self._port = None

    # -- addresses -----------------------------------------------------------

    def _running_port(self) -> int | None:
        return self._port  # UDP and TCP alike

    @property
    def nameserver(self) -> str:
        """``"127.0.0.1:<port>"``, the form a resolver setting takes."""
        return f"{LOOPBACK}:{self.port}"
