"""The process side of the Samba test DC that is not the DC itself: claiming a loopback
address of its own (Samba's LDAP ports are fixed), finding Samba's tools, watching its
process group, and copying a stopped DC's directory."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import shutil
import signal
import socket
import stat
import tempfile
from pathlib import Path

from tests.servers.samba_ldap import SambaDCError, SambaNotInstalledError

INSTALL_HINT = "scripts/install-test-deps.sh"
LDAP_PORTS = (389, 636, 3268, 3269)
PR_SET_PDEATHSIG = 1


def port_is_free(port: int, address: str) -> bool:
    """Return True if nothing listens on *address*:*port* (TIME_WAIT does not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def port_accepts(port: int, address: str, timeout: float = 0.2) -> bool:
    """Return True if a TCP connection to *address*:*port* succeeds."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except OSError:
        return False


def claim_address() -> tuple[str, int]:
    """Claim a loopback address for one DC: return it and the open lock file holding it.

    The lock (``flock`` on a file in the temporary directory) is the process's until the
    file is closed or the process ends, so a crashed run never keeps an address.
    """
    for last in range(2, 255):
        address = f"127.0.0.{last}"
        path = Path(tempfile.gettempdir()) / f"bridge-test-samba-{address}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        if all(port_is_free(port, address) for port in LDAP_PORTS):
            return address, fd
        os.close(fd)
    raise SambaDCError("no free loopback address in 127.0.0.2-127.0.0.254 for a Samba DC")


def set_parent_death_signal() -> None:
    """In the child (pre-exec): get SIGTERM if the test process dies without stopping us."""
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def tail(path: Path, lines: int = 40) -> str:
    """Return the last *lines* lines of *path* (empty string if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def which(name: str) -> str | None:
    """shutil.which that also looks in the sbin directories (samba lives in /usr/sbin)."""
    path = os.environ.get("PATH", "")
    extra = ["/usr/local/sbin", "/usr/sbin", "/sbin"]
    return shutil.which(name, path=os.pathsep.join([path, *extra]))


def tool(name: str) -> str:
    """Return the absolute path of Samba tool *name* or raise `SambaNotInstalledError`."""
    found = which(name)
    if found is None:
        raise SambaNotInstalledError(
            f"{name} not found; install the test dependencies with {INSTALL_HINT}"
        )
    return found


def group_alive(pgid: int) -> bool:
    """Return True while a process of process group *pgid* runs (zombies do not count)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat_line = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat_line[stat_line.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
            return True
    return False


def copy_tree(src: Path, dst: Path) -> None:
    """Copy *src* to *dst* like ``cp -a`` (metadata and symlinks kept), minus sockets.

    A stopped samba leaves its unix sockets (ldapi, msg.sock/*) behind; they cannot be
    copied and samba recreates them.
    """

    def sockets(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(directory, n)).st_mode)}

    shutil.copytree(src, dst, symlinks=True, ignore=sockets)
