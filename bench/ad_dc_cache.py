"""Loaded Samba DCs for the AD benchmark, built once and kept on disk.

Loading 100,000 users into Samba with ``ldbadd`` takes tens of minutes on a small machine,
so the benchmark loads each directory once and keeps the stopped DC's directory under
``~/.cache/bridge-bench/`` (``BENCH_AD_CACHE`` overrides), keyed by a hash of the LDIF, the
Samba version and the backend: a change to the generated data or to Samba builds it again.
Each benchmark run works on a copy (`SambaDC.adopt`), so the cached state is never changed.

The users are loaded in batches of ``batch`` users (one ``ldbadd`` run each) and the groups
last; the time of each batch is kept in the cache's ``meta.json`` to see whether the load
grows linearly with the directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.servers.samba_dc import SambaDC
from tests.servers.samba_ldif import groups_ldif, users_ldif

CACHE = Path(os.environ.get("BENCH_AD_CACHE") or Path.home() / ".cache" / "bridge-bench")
BACKEND = "mdb"
OU_RDN = "OU=Bench"
# The benchmark's directory shape: two groups of n/2 direct members each (at 100k: two
# groups of 50,000) and user-all nesting both (so every user's tier depends on a nested group).
GROUPS = 2


def _batches(n: int, base_dn: str, batch: int) -> list[str]:
    ou = f"{OU_RDN},{base_dn}"
    texts = []
    for start in range(1, n + 1, batch):
        count = min(batch, n + 1 - start)
        texts.append(users_ldif(count, base_dn, ou, groups=0, nest_groups=False,
                                start=start, create_ou=start == 1))
    texts.append(groups_ldif(n, ou, groups=GROUPS, nest_groups=True))
    return texts


def _samba_version() -> str:
    done = subprocess.run(["samba", "-V"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "unknown"


def cache_key(n: int, base_dn: str) -> str:
    """Hash of what the loaded DC holds (the LDIF as one batch), Samba's version, backend."""
    digest = hashlib.sha256(f"{_samba_version()}|{BACKEND}|{n}|".encode())
    for text in _batches(n, base_dn, n or 1):
        digest.update(text.encode())
    return digest.hexdigest()[:16]


def loaded_dc(n: int, *, batch: int = 10_000, log: Any = None) -> tuple[Path, dict[str, Any]]:
    """The cache entry (directory with ``dc/`` and ``meta.json``) of a DC holding *n* bench
    users, built now if missing. Returns (entry, meta)."""
    say = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    base_dn = "DC=example,DC=com"  # SambaDC's fixed domain
    entry = CACHE / f"samba-{n}-{cache_key(n, base_dn)}"
    meta_path = entry / "meta.json"
    if meta_path.exists():
        return entry, json.loads(meta_path.read_text())
    CACHE.mkdir(parents=True, exist_ok=True)
    say(f"building the cached DC with {n} users in {entry} (batches of {batch})")
    with tempfile.TemporaryDirectory(prefix=f"build-{n}-", dir=CACHE) as tmp:
        dc = SambaDC(base_dir=Path(tmp) / "samba", backend_store=BACKEND)
        try:
            dc.start()  # provisions and makes the TLS key, kept in the copy
            dc.stop()
            batches: list[dict[str, Any]] = []
            started = time.perf_counter()
            for text in _batches(n, dc.base_dn, batch):
                added = dc.load_ldif_offline(text, timeout=7200)
                batches.append({"records": added,
                                "seconds": round(dc.last_ldbadd_seconds or 0.0, 1)})
                say(f"  ldbadd batch {len(batches)}: {added} records in "
                    f"{batches[-1]['seconds']} s")
            load_seconds = time.perf_counter() - started
            staged = Path(tmp) / "entry"
            staged.mkdir()
            dc.save_to(staged / "dc")
            meta = {"users": n, "groups": GROUPS, "batch": batch, "adminPassword":
                    dc.admin_password, "loadSeconds": round(load_seconds, 1),
                    "batches": batches, "samba": _samba_version(), "backend": BACKEND}
            (staged / "meta.json").write_text(json.dumps(meta, indent=1))
        finally:
            dc.close()
        if not meta_path.exists():  # another build may have finished first
            shutil.rmtree(entry, ignore_errors=True)
            staged.rename(entry)
    return entry, json.loads(meta_path.read_text())


def start_copy(n: int, work: Path, *, batch: int = 10_000) -> tuple[SambaDC, dict[str, Any]]:
    """A running DC on a fresh copy of the cached *n*-user DC (built first if missing)."""
    entry, meta = loaded_dc(n, batch=batch)
    dc = SambaDC(base_dir=work / f"samba-{n}", admin_password=meta["adminPassword"],
                 backend_store=BACKEND)
    try:
        dc.adopt(entry / "dc")
        dc.start()
    except BaseException:
        dc.close()
        raise
    return dc, meta


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.ad_dc_cache 100000 [--batch 10000]``: build the cache entries."""
    import argparse

    parser = argparse.ArgumentParser(description="build cached Samba DCs for bench.ad_sync")
    parser.add_argument("sizes")
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    for n in (int(s) for s in args.sizes.split(",")):
        entry, meta = loaded_dc(n, batch=args.batch)
        print(json.dumps({"entry": str(entry), **{k: v for k, v in meta.items()
                                                   if k != "adminPassword"}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
