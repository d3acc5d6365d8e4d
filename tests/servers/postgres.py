"""A throw-away PostgreSQL cluster on 127.0.0.1 for integration tests.

``PostgresServer.start()`` runs ``initdb`` into a fresh temporary directory and
starts the cluster with ``pg_ctl`` on a free loopback port (durability switched
off for speed, trust authentication, superuser ``postgres``). ``stop()`` shuts it
down with ``pg_ctl stop -m immediate`` and deletes the directory.

PostgreSQL refuses to run as root, so when the test process is root every
PostgreSQL command runs through ``runuser -u postgres --`` (override the OS user
with ``BRIDGE_TEST_PG_OS_USER``); as any other user the commands run directly.

Binaries are looked up in ``BRIDGE_TEST_PG_BINDIR`` if set, then next to an
``initdb`` found on ``PATH``, then in the newest ``/usr/lib/postgresql/*/bin``.
Missing binaries raise ``PostgresHarnessError`` pointing at
``scripts/install-test-deps.sh``: tests needing PostgreSQL fail, they never skip.

Clean-up is layered so no cluster outlives the tests: ``stop()`` is idempotent and
safe after a failed ``start()``; an ``atexit`` hook stops a cluster that is still
running at interpreter exit; and a small watchdog process, started with the
cluster, stops it and removes its directory if the test process dies without
running ``atexit`` (SIGKILL, SIGTERM, a crash).
"""

from __future__ import annotations

import atexit
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from tests.servers.ports import LOOPBACK, LoopbackServer, free_port

INSTALL_HINT = (
    "run scripts/install-test-deps.sh, which installs the PostgreSQL server binaries "
    "(initdb, pg_ctl, postgres) and the 'postgres' system user"
)

SUPERUSER = "postgres"
"""Database superuser created by ``initdb`` and used in every URL."""

_PG_ENV_PREFIXES = ("PG",)
_BIND_FAILURE = re.compile(r"could not bind|address already in use", re.IGNORECASE)
_START_ATTEMPTS = 3

# Runs in a separate process. It blocks reading its stdin, a pipe whose only write
# end is held by the test process. "done" means the test process cleaned up by
# itself; EOF without it means the test process died, so stop the cluster and
# remove its directory here.
_WATCHDOG_SOURCE = """
import json, shutil, subprocess, sys
spec = json.loads(sys.argv[1])
if sys.stdin.buffer.read().strip() == b"done":
    sys.exit(0)
subprocess.run(spec["stop"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
               stderr=subprocess.DEVNULL, env=spec["env"], cwd="/", timeout=60, check=False)
shutil.rmtree(spec["root"], ignore_errors=True)
"""


class PostgresHarnessError(RuntimeError):
    """The test PostgreSQL cluster could not be set up, started or used."""


def find_pg_bindir() -> Path:
    """Return the directory holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Raises:
        PostgresHarnessError: if no directory holds all three; the message names
            ``scripts/install-test-deps.sh``.
    """
    candidates: list[Path] = []
    override = os.environ.get("BRIDGE_TEST_PG_BINDIR")
    if override:
        candidates.append(Path(override))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    versioned = [p for p in Path("/usr/lib/postgresql").glob("*/bin") if p.parent.name.isdigit()]
    candidates.extend(sorted(versioned, key=lambda p: int(p.parent.name), reverse=True))
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    searched = ", ".join(str(c) for c in candidates) or "nothing found to search"
    raise PostgresHarnessError(
        f"PostgreSQL server binaries not found (searched: {searched}); {INSTALL_HINT}"
    )


def _run_as() -> tuple[list[str], pwd.struct_passwd | None]:
    """Return the command prefix that drops root, and the account it switches to."""
    if os.geteuid() != 0:
        return [], None
    user = os.environ.get("BRIDGE_TEST_PG_OS_USER", "postgres")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise PostgresHarnessError(
            f"running as root, but the OS user {user!r} that PostgreSQL must run as "
            f"does not exist; {INSTALL_HINT}"
        ) from None
    runuser = shutil.which("runuser")
    if runuser is None:
        raise PostgresHarnessError(
            "running as root, but 'runuser' (util-linux) is missing, so PostgreSQL "
            f"cannot be started as {user!r}; {INSTALL_HINT}"
        )
    return [runuser, "-u", user, "--"], account


def _clean_env() -> dict[str, str]:
    """The environment for PostgreSQL commands: no PG* variables, C locale."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PG_ENV_PREFIXES)}
    env["LC_ALL"] = "C"
    return env


class PostgresServer(LoopbackServer):
    """A private PostgreSQL cluster listening on ``127.0.0.1:<free port>``.

    Use as ``with PostgresServer() as pg:`` or call ``start()`` / ``stop()``.
    ``host``, ``port``, ``url()``, ``conninfo()``, ``create_database()`` and
    ``drop_database()`` are valid only while the server runs.
    """

    def __init__(self, *, startup_timeout: float = 30.0) -> None:
        """Prepare (but do not start) a cluster; ``startup_timeout`` bounds ``pg_ctl -w``."""
        self._startup_timeout = startup_timeout
        self._root: Path | None = None
        self._port: int | None = None
        self._prefix: list[str] = []
        self._bindir: Path | None = None
        self._env: dict[str, str] = {}
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> PostgresServer:
        """Create and start the cluster; return ``self``.

        On return the server accepts connections on ``host:port``. On failure
        everything created so far is removed before the exception propagates.

        Raises:
            PostgresHarnessError: binaries or the OS user are missing, or
                ``initdb`` / ``pg_ctl start`` failed (the message carries their
                output and the tail of the server log).
            RuntimeError: if the server is already running.
        """
        if self._root is not None:
            raise RuntimeError("PostgresServer is already started")
        bindir = find_pg_bindir()
        prefix, account = _run_as()
        self._bindir, self._prefix, self._env = bindir, prefix, _clean_env()
        self._root = Path(tempfile.mkdtemp(prefix="bridge-pg-"))
        atexit.register(self._stop_at_exit)
        try:
            (self._root / "sock").mkdir(mode=0o700)
            if account is not None:
                for path in (self._root, self._root / "sock"):
                    os.chown(path, account.pw_uid, account.pw_gid)
            self._start_watchdog()
            self._initdb()
            self._start_cluster()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop the cluster (``pg_ctl stop -m immediate``) and delete its directory.

        Idempotent: does nothing when not started, and is safe after a failed
        ``start()``. Never raises because the server is already gone.
        """
        root = self._root
        if root is None:
            return
        data = root / "data"
        if (data / "postmaster.pid").exists():
            result = self._run_pg(
                ["pg_ctl", "stop", "-D", str(data), "-m", "immediate", "-w", "-s"],
                timeout=60,
            )
            if result.returncode != 0:
                self._signal_postmaster(data)
        shutil.rmtree(root, ignore_errors=True)
        self._stop_watchdog()
        atexit.unregister(self._stop_at_exit)
        self._root = None
        self._port = None

    # -- addresses -----------------------------------------------------------

    def _running_port(self) -> int | None:
        return self._port

    @property
    def user(self) -> str:
        """The database superuser (trust authentication, no password)."""
        return SUPERUSER

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL ``postgresql+psycopg://postgres@127.0.0.1:<port>/<dbname>``."""
        return f"postgresql+psycopg://{SUPERUSER}@{LOOPBACK}:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres") -> str:
        """libpq connection string for ``psycopg.connect`` to ``dbname``."""
        return make_conninfo(
            host=LOOPBACK, port=str(self.port), user=SUPERUSER, dbname=dbname, connect_timeout="10"
        )

    # -- databases -----------------------------------------------------------

    def create_database(self, name: str) -> str:
        """Create database ``name`` (an identifier, quoted safely) and return its URL.

        Raises:
            psycopg.errors.DuplicateDatabase: if it already exists.
        """
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, terminating its open connections."""
        with psycopg.connect(self.conninfo("postgres"), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- internals -----------------------------------------------------------

    def _command(self, argv: list[str]) -> list[str]:
        assert self._bindir is not None
        return [*self._prefix, str(self._bindir / argv[0]), *argv[1:]]

    def _run_pg(self, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL binary as the PostgreSQL OS user, capturing its output.

        stdin is /dev/null and output goes to pipes; ``pg_ctl start`` sends the
        server's own output to ``-l`` so the pipes close when ``pg_ctl`` exits.
        """
        assert self._root is not None
        return subprocess.run(
            self._command(argv),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=self._env,
            cwd=self._root,
            timeout=timeout,
            check=False,
        )

    def _initdb(self) -> None:
        assert self._root is not None
        result = self._run_pg(
            [
                "initdb",
                "-D",
                str(self._root / "data"),
                "-U",
                SUPERUSER,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ],
            timeout=120,
        )
        if result.returncode != 0:
            raise PostgresHarnessError(
                f"initdb failed (exit {result.returncode}):\n{result.stdout}{result.stderr}"
            )

    def _start_cluster(self) -> None:
        assert self._root is not None
        root = self._root
        sockdir = root / "sock"
        log = root / "postgres.log"
        for _ in range(_START_ATTEMPTS):
            port = free_port()
            options = " ".join(
                [
                    f"-k {shlex.quote(str(sockdir))}",
                    f"-h {LOOPBACK}",
                    f"-p {port}",
                    "-c fsync=off",
                    "-c synchronous_commit=off",
                    "-c full_page_writes=off",
                ]
            )
            result = self._run_pg(
                [
                    "pg_ctl",
                    "start",
                    "-D",
                    str(root / "data"),
                    "-l",
                    str(log),
                    "-w",
                    "-s",
                    "-t",
                    str(max(1, int(self._startup_timeout))),
                    "-o",
                    options,
                ],
                timeout=self._startup_timeout + 30,
            )
            if result.returncode == 0:
                self._port = port
                return
            log_tail = self._log_tail(log)
            if not _BIND_FAILURE.search(log_tail):
                break
        raise PostgresHarnessError(
            f"pg_ctl start failed (exit {result.returncode}):\n"
            f"{result.stdout}{result.stderr}\n--- server log ---\n{self._log_tail(log)}"
        )

    @staticmethod
    def _log_tail(log: Path, lines: int = 40) -> str:
        try:
            return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    @staticmethod
    def _signal_postmaster(data: Path) -> None:
        """Last resort when ``pg_ctl stop`` failed: SIGQUIT (immediate shutdown)."""
        try:
            pid = int((data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGQUIT)
        except (OSError, ValueError, IndexError):
            pass

    def _start_watchdog(self) -> None:
        assert self._root is not None
        spec = {
            "root": str(self._root),
            "env": self._env,
            "stop": self._command(
                ["pg_ctl", "stop", "-D", str(self._root / "data"), "-m", "immediate", "-w", "-s"]
            ),
        }
        self._watchdog = subprocess.Popen(
            [sys.executable, "-I", "-c", _WATCHDOG_SOURCE, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # keep terminal Ctrl-C away from it
        )

    def _stop_watchdog(self) -> None:
        watchdog, self._watchdog = self._watchdog, None
        if watchdog is None:
            return
        assert watchdog.stdin is not None
        try:
            watchdog.stdin.write(b"done\n")
            watchdog.stdin.close()
        except OSError:
            pass
        try:
            watchdog.wait(timeout=10)
        except subprocess.TimeoutExpired:
            watchdog.kill()
            watchdog.wait()

    def _stop_at_exit(self) -> None:
        self.stop()
