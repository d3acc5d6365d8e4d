"""A real Samba 4 Active Directory domain controller for integration tests.

`SambaDC` provisions a throw-away AD domain (realm ``EXAMPLE.COM``, NetBIOS domain
``EXAMPLE``, DC host name ``dc1``) into a directory of the test run's own, and runs
``samba`` with ``server services = ldap`` bound to one loopback address only. Nothing
is ever sent to an address other than loopback.

Contract:

* Ports 389 (LDAP + StartTLS), 636 (LDAPS), 3268 and 3269 (global catalog) are fixed
  by Samba, so each instance listens on an address of its own in 127.0.0.0/8
  (`address`): by default the first of 127.0.0.2-127.0.0.254 that no other instance on
  this machine holds (a lock file under the temporary directory, released when the
  process ends) and whose LDAP ports are free; two test runs (two work trees) can so
  run a DC each. ``BRIDGE_TEST_SAMBA_ADDRESS`` or the *address* argument pins it;
  `start` fails with `SambaDCError` if a port on it is taken.
* Simple binds without TLS are refused ("strongerAuthRequired") unless the instance
  was built with ``require_strong_auth=False``.
* TLS uses Samba's self-signed CA (`ca_cert_path`); the server certificate has no
  subjectAltName and its CN is `tls_server_name` (``DC1.example.com``), so clients
  that verify it must be told that name (`tls` does so for ldap3).
* The provisioned (and optionally seeded) state is snapshotted; `restore` brings the
  directory back to the last snapshot in well under a second.
* If the Samba binaries are missing, `SambaNotInstalledError` is raised (tests must
  not be skipped): run ``scripts/install-test-deps.sh``.

Typical use::

    with SambaDC() as dc:
        dn = dc.add_user("alice", password="Secret-123")
        conn = dc.connection(dn, "Secret-123")
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from ldap3 import (
    BASE,
    NONE,
    Connection,
    Server,
)

from tests.servers.samba_ldap import (
    SambaDCError,
    SambaDirectory,
    SambaNotInstalledError,
    encode_unicode_pwd,
    generate_password,
    iter_paged,
)
from tests.servers.samba_process import (
    INSTALL_HINT,
    LDAP_PORTS,
    claim_address,
    copy_tree,
    group_alive,
    port_accepts,
    port_is_free,
    set_parent_death_signal,
    tail,
    tool,
    which,
)

__all__ = [
    "LDAP_PORTS",
    "SambaDC",
    "SambaDCError",
    "SambaNotInstalledError",
    "encode_unicode_pwd",
    "generate_password",
    "iter_paged",
]

REQUIRED_BINARIES = ("samba", "samba-tool", "ldbadd")
ADDRESS_ENV = "BRIDGE_TEST_SAMBA_ADDRESS"


_LIVE: set[SambaDC] = set()  # strong refs: an unclosed instance must not be collected


def _stop_all_at_exit() -> None:
    """atexit hook: close every unclosed instance so no samba outlives the test process.

    (If the process is killed outright, samba still gets SIGTERM: see
    `set_parent_death_signal`.)
    """
    for dc in list(_LIVE):
        with contextlib.suppress(Exception):
            dc.close()


atexit.register(_stop_all_at_exit)


class SambaDC(SambaDirectory):
    """A provisioned Samba AD DC listening on its own loopback address, driven with ldap3.

    The instance provisions its domain lazily on the first `start` (or explicitly via
    `provision`), exactly once. Use it as a context manager, or call `start` and
    `close`; `stop` may be called any number of times, also after a failed start, and
    an atexit hook stops instances that were not closed.
    """

    realm = "EXAMPLE.COM"
    domain = "EXAMPLE"
    dns_domain = "example.com"
    host_name = "dc1"
    netbios_name = "DC1"

    def __init__(
        self,
        base_dir: Path | None = None,
        *,
        admin_password: str | None = None,
        require_strong_auth: bool = True,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        process_model: str | None = "single",
        worker_grace: float = 3.0,
        backend_store: str = "mdb",
        address: str | None = None,
    ) -> None:
        """Prepare (but do not provision or start) a DC living under *base_dir*.

        *base_dir* defaults to a fresh temporary directory that `close` removes; a
        given directory is kept, and must not already contain a ``dc`` sub-directory.
        *require_strong_auth* False adds ``ldap server require strong auth = no``
        (plain simple binds allowed). *process_model* is passed as ``samba -M``: the
        default ``single`` runs one process that stops at once; None means Samba's own
        default, ``prefork``, whose workers still running *worker_grace* seconds after
        the root process exited are SIGKILLed. *backend_store* is ``samba-tool domain
        provision --backend-store``: ``mdb`` (LMDB, the default here; Samba's choice for
        large domains) keeps an ordered index on ``uSNChanged``, so ``(uSNChanged>=N)``
        costs the same at any directory size, as on Windows AD; ``tdb`` scans every
        object for it. *address* pins the loopback address (see the module's contract).
        """
        self._address_lock: int | None = None
        pinned = address or os.environ.get(ADDRESS_ENV)
        if pinned:
            self.address = pinned
        else:
            self.address, self._address_lock = claim_address()
        self._owns_base_dir = base_dir is None
        self.base_dir = Path(tempfile.mkdtemp(prefix="samba-dc-")) if base_dir is None else base_dir
        self.base_dir = self.base_dir.resolve()
        self.data_dir = self.base_dir / "dc"
        self.snapshot_dir = self.base_dir / "dc.snap"
        self.log_dir = self.base_dir / "logs"
        self._admin_password = admin_password or generate_password()
        self.require_strong_auth = require_strong_auth
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.process_model = process_model
        self.worker_grace = worker_grace
        self.backend_store = backend_store
        self._proc: subprocess.Popen[bytes] | None = None
        self._admin_conn: Connection | None = None
        self._provisioned = False
        self._closed = False
        self.last_ldbadd_seconds: float | None = None
        _LIVE.add(self)

    # ------------------------------------------------------------------ properties

    @property
    def ldap_url(self) -> str:
        """URL of the plain LDAP port (StartTLS required for simple binds)."""
        return f"ldap://{self.address}:389"

    @property
    def ldaps_url(self) -> str:
        """URL of the LDAPS port."""
        return f"ldaps://{self.address}:636"

    @property
    def host(self) -> str:
        """The address the DC listens on (always loopback)."""
        return self.address

    @property
    def ca_cert_path(self) -> Path:
        """Samba's self-signed CA certificate (exists once the DC has started once)."""
        return self.data_dir / "private" / "tls" / "ca.pem"

    @property
    def tls_server_name(self) -> str:
        """The name in the server certificate (CN only, no SAN): ``DC1.example.com``."""
        return f"{self.netbios_name}.{self.dns_domain}"

    @property
    def base_dn(self) -> str:
        """The domain naming context, ``DC=example,DC=com``."""
        return ",".join(f"DC={part}" for part in self.dns_domain.split("."))

    @property
    def users_dn(self) -> str:
        """The default ``CN=Users`` container."""
        return f"CN=Users,{self.base_dn}"

    @property
    def admin_dn(self) -> str:
        """DN of the domain Administrator."""
        return f"CN=Administrator,{self.users_dn}"

    @property
    def admin_upn(self) -> str:
        """UPN of the domain Administrator."""
        return f"Administrator@{self.dns_domain}"

    @property
    def admin_password(self) -> str:
        """The Administrator password chosen at construction."""
        return self._admin_password

    @property
    def smb_conf(self) -> Path:
        """The smb.conf the DC and the offline tools run with."""
        return self.data_dir / "etc" / "smb.conf"

    @property
    def sam_ldb(self) -> Path:
        """The SAM database file (only to be touched while the DC is stopped)."""
        return self.data_dir / "private" / "sam.ldb"

    @property
    def pid(self) -> int | None:
        """PID of the running samba root process, or None."""
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        """True while the samba process started by this instance is alive."""
        return self._proc is not None and self._proc.poll() is None

    # ------------------------------------------------------------------ lifecycle

    def __enter__(self) -> SambaDC:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def check_installed() -> None:
        """Raise `SambaNotInstalledError` unless samba, samba-tool and ldbadd are on PATH."""
        missing = [name for name in REQUIRED_BINARIES if which(name) is None]
        if missing:
            raise SambaNotInstalledError(
                f"Samba AD DC tools not found on PATH: {', '.join(missing)}. "
                f"Install them with {INSTALL_HINT} (apt packages samba-ad-dc "
                "samba-ad-provision ldb-tools ldap-utils)."
            )

    def provision(self) -> None:
        """Provision the domain into `data_dir` and snapshot it; idempotent per instance."""
        if self._provisioned:
            return
        if self._closed:
            raise SambaDCError("this SambaDC was closed")
        self.check_installed()
        if self.data_dir.exists():
            raise SambaDCError(f"{self.data_dir} already exists; give SambaDC an empty base_dir")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [
            tool("samba-tool"),
            "domain",
            "provision",
            f"--targetdir={self.data_dir}",
            f"--realm={self.realm}",
            f"--domain={self.domain}",
            "--server-role=dc",
            "--dns-backend=NONE",
            f"--host-name={self.host_name}",
            f"--adminpass={self._admin_password}",
            f"--backend-store={self.backend_store}",
        ]
        self._run(cmd, log_name="provision.log", timeout=300)
        self._write_smb_conf()
        self._provisioned = True
        self.snapshot()

    def start(self) -> None:
        """Provision if needed, start samba and wait until it answers on LDAP and LDAPS.

        No-op if already running. The ports are checked before provisioning. Raises
        `SambaDCError` if a port is taken, samba exits early or it is not ready within
        ``start_timeout`` seconds (the process is then stopped again).
        """
        if self.running:
            return
        if self._closed:
            raise SambaDCError("this SambaDC was closed")
        self._reap()
        self.check_installed()
        busy = [port for port in LDAP_PORTS if not port_is_free(port, self.address)]
        if busy:
            raise SambaDCError(
                f"ports {busy} on {self.address} are already in use; another LDAP server "
                "(or a leftover samba) is running. Samba AD's LDAP ports are fixed."
            )
        self.provision()
        cmd = [tool("samba"), "-s", str(self.smb_conf), "-F", "--no-process-group"]
        if self.process_model:
            cmd += ["-M", self.process_model]
        out = (self.log_dir / "samba.stdout.log").open("ab")
        try:
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=set_parent_death_signal,
            )
        finally:
            out.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self._complete_snapshot_tls()

    def stop(self) -> None:
        """Stop samba (SIGTERM, then SIGKILL after ``stop_timeout``) and wait for its ports.

        Safe to call when not running, twice, or after a failed start.
        """
        if self._admin_conn is not None:
            with contextlib.suppress(Exception):
                self._admin_conn.unbind()
            self._admin_conn = None
        proc = self._proc
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: samba leads its own process group
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                proc.wait(timeout=self.stop_timeout)
        # Prefork workers exit within ~0.1 s of the root process. They are re-parented
        # to PID 1, which may reap them late, so zombies are not waited for.
        grace_end = time.monotonic() + self.worker_grace
        while group_alive(pgid):
            if time.monotonic() > grace_end:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                grace_end = time.monotonic() + self.stop_timeout
            time.sleep(0.01)
        self._proc = None
        deadline = time.monotonic() + self.stop_timeout
        while not all(port_is_free(port, self.address) for port in LDAP_PORTS):
            if time.monotonic() > deadline:
                raise SambaDCError("samba stopped but its LDAP ports did not become free")
            time.sleep(0.02)

    def close(self) -> None:
        """Stop the DC and remove the base directory if this instance created it."""
        self.stop()
        if self._owns_base_dir and not self._closed:
            shutil.rmtree(self.base_dir, ignore_errors=True)
        self._closed = True
        if self._address_lock is not None:
            os.close(self._address_lock)
            self._address_lock = None
        _LIVE.discard(self)

    def snapshot(self) -> None:
        """Make the current directory state the one `restore` returns to.

        Stops the DC for the copy if it is running and starts it again afterwards.
        """
        self.provision()
        was_running = self.running
        self.stop()
        tmp = self.snapshot_dir.with_name(self.snapshot_dir.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        copy_tree(self.data_dir, tmp)
        shutil.rmtree(self.snapshot_dir, ignore_errors=True)
        tmp.rename(self.snapshot_dir)
        if was_running:
            self.start()

    def restore(self) -> None:
        """Bring the directory back to the last snapshot; a running DC is restarted.

        The snapshot lives at a sibling path and is copied back to the same path
        (smb.conf holds absolute paths); the TLS CA stays the same.
        """
        if not self.snapshot_dir.exists():
            raise SambaDCError("no snapshot to restore (provision first)")
        was_running = self.running
        self.stop()
        shutil.rmtree(self.data_dir)
        copy_tree(self.snapshot_dir, self.data_dir)
        if was_running:
            self.start()

    def save_to(self, target: Path) -> None:
        """Copy the (stopped, then restarted if it ran) directory state to *target*, a
        path that must not exist yet, for `adopt` by another instance later (a cache of a
        loaded DC: loading 100k users takes many minutes, copying it seconds)."""
        self.provision()
        was_running = self.running
        self.stop()
        try:
            copy_tree(self.data_dir, target)
        finally:
            if was_running:
                self.start()

    def adopt(self, source: Path) -> None:
        """Take a copy of a DC state saved with `save_to` as this instance's provisioned
        domain instead of provisioning one (before the first `start`).

        The instance must have been built with the *admin_password* of the saved DC.
        smb.conf is written afresh for this instance's paths and address (the databases
        name their partitions by relative paths, so the copy works anywhere). No snapshot
        is taken (`snapshot` makes one when wanted).
        """
        if self._provisioned or self._closed:
            raise SambaDCError("adopt() only before the first provision or start")
        self.check_installed()
        if self.data_dir.exists():
            raise SambaDCError(f"{self.data_dir} already exists; give SambaDC an empty base_dir")
        self.base_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        copy_tree(source, self.data_dir)
        self._write_smb_conf()
        self._provisioned = True

    def load_ldif_offline(self, ldif_text: str, *, timeout: float = 1800) -> int:
        """Add the entries of *ldif_text* straight into sam.ldb with ``ldbadd``.

        Runs ``ldbadd -o batch_mode:1 --nosync`` while samba is stopped; the DC is
        restarted afterwards (also on failure) if it was running. Returns the number of
        records added; ldbadd's own time is left in ``last_ldbadd_seconds``.

        ldbadd stops at the first bad record but exits 0 and keeps the records before
        it, so this raises `SambaDCError` (with ldbadd's message) whenever the count
        added differs from the records in *ldif_text* or ldbadd reports an error; the
        directory is then partly loaded: `restore` to get back to the snapshot.
        """
        self.provision()
        expected = sum(1 for line in ldif_text.splitlines() if re.match(r"dn::? ", line))
        was_running = self.running
        self.stop()
        ldif_path = self.base_dir / f"load-{uuid.uuid4().hex}.ldif"
        ldif_path.write_text(ldif_text, encoding="utf-8")
        started = time.monotonic()
        try:
            output = self._run(
                [
                    tool("ldbadd"),
                    "-o",
                    "batch_mode:1",
                    "--nosync",
                    "-H",
                    str(self.sam_ldb),
                    f"--configfile={self.smb_conf}",
                    str(ldif_path),
                ],
                log_name="ldbadd.log",
                timeout=timeout,
            )
        finally:
            ldif_path.unlink(missing_ok=True)
            self.last_ldbadd_seconds = time.monotonic() - started
            if was_running:
                self.start()
        match = re.search(r"Added (\d+) records", output)
        added = int(match.group(1)) if match else 0
        if added != expected or "ERR" in output:
            raise SambaDCError(
                f"ldbadd added {added} of {expected} records (the rest was not loaded; "
                f"restore() to undo):\n{output[-2000:]}"
            )
        return added

    # ------------------------------------------------------------------ internals

    def _write_smb_conf(self) -> None:
        """Overwrite the provisioned smb.conf with an isolated, loopback-only, LDAP-only one."""
        d = self.data_dir
        dirs = {
            "private dir": d / "private",
            "lock directory": d / "lock",
            "state directory": d / "state",
            "cache directory": d / "cache",
            "pid directory": d / "run",
            "ncalrpc dir": d / "ncalrpc",
            "winbindd socket directory": d / "winbindd",
            "binddns dir": d / "bind-dns",
        }
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        lines = [
            "[global]",
            f"netbios name = {self.netbios_name}",
            f"realm = {self.realm}",
            f"workgroup = {self.domain}",
            "server role = active directory domain controller",
            "server services = ldap",
            # An address that is on no interface is taken only with a mask (Samba
            # matches bare addresses against the probed interfaces' own addresses).
            f"interfaces = {self.address}/8",
            "bind interfaces only = yes",
            *(f"{key} = {path}" for key, path in dirs.items()),
            f"log file = {self.log_dir / 'samba.log'}",
            "log level = 1",
        ]
        if not self.require_strong_auth:
            lines.append("ldap server require strong auth = no")
        self.smb_conf.write_text("\n\t".join(lines) + "\n", encoding="utf-8")

    def _wait_ready(self) -> None:
        """Poll until the rootDSE answers on 389 and 636 accepts connections."""
        deadline = time.monotonic() + self.start_timeout
        while True:
            proc = self._proc
            if proc is None or proc.poll() is not None:
                code = proc.returncode if proc is not None else None
                raise SambaDCError(f"samba exited during start (code {code}).\n{self._log_tails()}")
            if port_accepts(636, self.address) and self._root_dse_answers():
                return
            if time.monotonic() > deadline:
                raise SambaDCError(
                    f"samba not ready after {self.start_timeout:.0f}s.\n{self._log_tails()}"
                )
            time.sleep(0.05)

    def _root_dse_answers(self) -> bool:
        """Return True if an anonymous rootDSE read on 389 succeeds."""
        conn = Connection(
            Server(self.address, port=389, get_info=NONE, connect_timeout=1),
            auto_referrals=False,
            receive_timeout=2,
        )
        try:
            conn.open()
            ok = conn.search("", "(objectClass=*)", BASE, attributes=["dsServiceName"])
            return bool(ok and conn.response)
        except Exception:
            return False
        finally:
            with contextlib.suppress(Exception):
                conn.unbind()

    def _complete_snapshot_tls(self) -> None:
        """Copy the TLS key/certs made on the first start into the snapshot.

        The snapshot is taken before the first start; without this every `restore`
        would make samba generate a new CA (1-4 s) and invalidate `ca_cert_path`.
        """
        src = self.data_dir / "private" / "tls"
        dst = self.snapshot_dir / "private" / "tls"
        names = ("ca.pem", "cert.pem", "key.pem")
        if not self.snapshot_dir.exists() or all((dst / n).exists() for n in names):
            return
        if not all((src / n).exists() for n in names):
            return
        dst.mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copy2(src / name, dst / name)

    def _reap(self) -> None:
        """Forget a samba process that already exited (e.g. crashed)."""
        if self._proc is not None and self._proc.poll() is not None:
            self.stop()

    def _log_tails(self) -> str:
        """Return the end of samba's stdout and log file for error messages."""
        return (
            f"--- {self.log_dir / 'samba.stdout.log'}\n"
            f"{tail(self.log_dir / 'samba.stdout.log')}\n"
            f"--- {self.log_dir / 'samba.log'}\n{tail(self.log_dir / 'samba.log')}"
        )

    def _run(self, cmd: list[str], *, log_name: str, timeout: float) -> str:
        """Run a Samba tool, append its output to ``logs/<log_name>``, return the output.

        Raises `SambaDCError` (with the output, password masked) on a non-zero exit.
        """
        try:
            result = subprocess.run(
                cmd,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except FileNotFoundError as exc:
            raise SambaNotInstalledError(
                f"{cmd[0]} not found; install the test dependencies with {INSTALL_HINT}"
            ) from exc
        output = (result.stdout or "") + (result.stderr or "")
        shown = " ".join(cmd).replace(self._admin_password, "***")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with (self.log_dir / log_name).open("a", encoding="utf-8") as log:
            log.write(f"$ {shown}\n{output}\n")
        if result.returncode != 0:
            raise SambaDCError(
                f"{shown} failed with exit code {result.returncode}:\n{output[-4000:]}"
            )
        return output
