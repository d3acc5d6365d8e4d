"""Benchmark of the AD sync against a real Samba AD DC (``python -m bench.ad_sync``).

For each directory size (default 2,000 and 10,000 users; the loaded DC is built once with
``ldbadd`` and cached, see bench/ad_dc_cache.py):

* ``ldapsearch`` reading the same users, paged 1000 (the floor): with the six attributes
  of earlier rounds (``ldapsearch_seconds``) and with all eight the sync reads, memberOf
  and primaryGroupID too (``ldapsearch_sync_attributes_seconds``); ratios against both;
* the first full sync into an empty bridge (creates every user);
* a second full sync (nothing changed: the daily reconciliation);
* an incremental sync after 10 users changed;
* an incremental sync after one member was removed from and one added to the mapped group
  ``user-group-000`` (n/2 members: 50,000 at 100k);
* peak memory (``VmHWM``) of each sync, run in a child process, and its RSS before the
  sync started (imports and the app); and of the reader process of the full runs.

Prints one JSON summary. About 2-3 minutes on 2 cores once the DCs are cached (building
the 100k one takes 20-40 minutes: ``python -m bench.ad_dc_cache 100000`` ahead). The DC listens on a
loopback address of its own (see tests/servers/samba_dc.py), so a test run may use
another at the same time.
Options: ``--sizes 2000,10000``. ``BENCH_AD_PROFILE=DIR`` writes a cProfile of each sync
there; ``BENCH_AD_SQL=1`` prints each sync's 12 costliest SQL statements to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import SECRET_KEY

ROOT = Path(__file__).resolve().parents[1]
# The floor of earlier rounds read six attributes; the sync also reads memberOf and
# primaryGroupID (ms_ad.USER_ATTRIBUTES). Both floors are measured and reported.
ATTRS = ["objectGUID", "mail", "proxyAddresses", "displayName", "userAccountControl",
         "uSNChanged"]
SYNC_ATTRS = [*ATTRS, "memberOf", "primaryGroupID"]


def _hwm_kb() -> int:
    """This process's peak RSS (VmHWM). Not ru_maxrss: Linux carries the parent's peak
    at fork into the child's ru_maxrss, VmHWM starts afresh at exec."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _time_statements(engine: Any) -> dict[str, tuple[int, float]]:
    """Statement text (first 160 characters) -> (executions, seconds), filled as the sync
    runs (``BENCH_AD_SQL=1``: the child prints the 12 costliest to stderr)."""
    from sqlalchemy import event

    times: dict[str, tuple[int, float]] = {}

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info["bench_t0"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        spent = time.perf_counter() - conn.info["bench_t0"]
        text = " ".join(statement.split())[:160]
        count, total = times.get(text, (0, 0.0))
        times[text] = (count + 1, total + spent)

    return times


def _child(args: argparse.Namespace) -> int:
    """Run one sync in this (fresh) process and print its figures."""
    rss_before = _hwm_kb()
    from ad_sync.sync import DirectorySync
    from bridge.app import build_services
    from config import load_settings

    settings = load_settings(env={}, overrides={"data_dir": Path(args.data_dir),
                                                "database_url": args.db,
                                                "secret_key": SECRET_KEY,
                                                "allow_insecure_ldap": False})
    services = build_services(settings)
    DirectorySync(services, args.account).records.state(args.account)  # warm the pool
    rss_ready = _hwm_kb()
    profile = None
    if os.environ.get("BENCH_AD_PROFILE"):
        import cProfile

        profile = cProfile.Profile()
        profile.enable()
    sql_times = _time_statements(services.db) if os.environ.get("BENCH_AD_SQL") else None
    started = time.perf_counter()
    report = DirectorySync(services, args.account, allow_mass_change=True).run(
        full=args.child == "full")
    seconds = time.perf_counter() - started
    rss_peak = _hwm_kb()
    if sql_times is not None:
        for text, (count, total) in sorted(sql_times.items(), key=lambda kv: -kv[1][1])[:12]:
            print(f"SQL {total * 1000:7.1f} ms {count:5d}x {text}", file=sys.stderr)
    if profile is not None:
        import pstats

        profile.disable()
        out = Path(os.environ["BENCH_AD_PROFILE"]) / f"{args.child}-{os.getpid()}.txt"
        profile.dump_stats(out.with_suffix(".prof"))
        with out.open("w") as fh:
            pstats.Stats(profile, stream=fh).sort_stats("cumulative").print_stats(40)
    print(json.dumps({"seconds": round(seconds, 3), "status": report.status,
                      "mode": report.mode, "added": report.added, "updated": report.updated,
                      "unchanged": report.unchanged, "pages": report.pages,
                      "rss_before_mb": round(rss_before / 1024, 1),
                      "rss_ready_mb": round(rss_ready / 1024, 1),
                      "rss_peak_mb": round(rss_peak / 1024, 1),
                      "sync_growth_mb": round((rss_peak - rss_ready) / 1024, 1),
                      "reader_peak_mb": report.reader_peak_rss_mb}))
    return 0 if report.status == "ok" else 1


def _run_child(mode: str, db: str, data_dir: Path, account: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.ad_sync", "--child", mode, "--db", db,
         "--data-dir", str(data_dir), "--account", account],
        cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if os.environ.get("BENCH_AD_SQL"):
        print(f"--- {mode} sync, costliest statements:\n{done.stderr[-4000:]}", file=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"sync child failed: {done.stdout}\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def _ldapsearch(dc: Any, base: str, attrs: list[str] = ATTRS) -> tuple[float, int]:
    env = dict(os.environ, LDAPTLS_CACERT=str(dc.ca_cert_path), LDAPTLS_REQCERT="never")
    started = time.perf_counter()
    done = subprocess.run(
        ["ldapsearch", "-LLL", "-o", "ldif-wrap=no", "-H", dc.ldaps_url, "-x", "-D",
         dc.admin_dn, "-w", dc.admin_password, "-b", base, "-E", "pr=1000/noprompt",
         "(&(objectCategory=person)(objectClass=user)(!(objectClass=computer)))", *attrs],
        env=env, capture_output=True, text=True, timeout=300, check=True)
    seconds = time.perf_counter() - started
    return seconds, done.stdout.count("\ndn: ") + done.stdout.startswith("dn: ")


def _one_size(dc: Any, n: int, work: Path) -> dict[str, Any]:
    from ad_sync import client
    from bridge.app import build_services
    from bridge.domain import Actor, Tier
    from bridge.store.db import upgrade
    from config import load_settings
    from tests.builders import claim

    ou = f"OU=Bench,{dc.base_dn}"
    data_dir = work / f"bridge-{n}"
    db = f"sqlite:///{data_dir / 'bridge.db'}"
    upgrade(db)
    settings = load_settings(env={}, overrides={"data_dir": data_dir, "database_url": db,
                                                "secret_key": SECRET_KEY})
    services = build_services(settings)
    admin = Actor(type="AdminUser", principal_id="bench", name="bench")
    account = services.engine.create_account(admin, f"Bench {n}")
    claim(services.engine, admin, account.id, "example.com")
    services.engine.ad_directories.connect(admin, account.id, {
        "LdapUrl": dc.ldaps_url, "BaseDn": ou, "BindDn": dc.admin_dn,
        "BindPassword": dc.admin_password, "CaCertificatePem": dc.ca_cert_path.read_text(),
        "TlsServerName": dc.tls_server_name, "GroupBaseDn": ou,
    }, lambda cfg: client.verify_connection(cfg, allow_insecure=False))
    services.engine.add_or_update_group_mappings(
        admin, account.id, {"user-group-000": Tier.PRO, "user-all": Tier.BASIC})
    services.db.dispose()

    ldapsearch_s, entries = _ldapsearch(dc, ou)
    ldapsearch_sync_s, _ = _ldapsearch(dc, ou, SYNC_ATTRS)
    cold = _run_child("full", db, data_dir, account.id)
    warm = _run_child("full", db, data_dir, account.id)
    ldapsearch_again, _ = _ldapsearch(dc, ou)  # the same run, after the syncs
    ldapsearch_sync_again, _ = _ldapsearch(dc, ou, SYNC_ATTRS)
    for i in range(1, 11):
        dc.replace(f"CN=user{i * (n // 10):05d},{ou}", {"displayName": f"Changed {i}"})
    incremental = _run_child("incremental", db, data_dir, account.id)
    assert incremental["updated"] == 10, incremental
    # A change to the mapped group of n/2 members: one member removed (user00002 loses
    # Pro and, with no group left, Basic) and one added (user00001, from the other group).
    big_group = f"CN=user-group-000,{ou}"
    dc.remove_member(big_group, f"CN=user00002,{ou}")
    dc.add_member(big_group, f"CN=user00001,{ou}")
    group_change = _run_child("incremental", db, data_dir, account.id)
    assert group_change["updated"] == 2, group_change
    floor = min(ldapsearch_s, ldapsearch_again)
    floor_sync = min(ldapsearch_sync_s, ldapsearch_sync_again)
    return {
        "users": n, "ldapsearch_entries": entries,
        "ldapsearch_seconds": round(floor, 3),
        "ldapsearch_sync_attributes_seconds": round(floor_sync, 3),
        "full_cold": cold, "full_warm": warm, "incremental_10_changed": incremental,
        "incremental_big_group_change": {"group_members": n // 2, **group_change},
        "peak_rss_mb": {"sync_cold": cold["rss_peak_mb"], "sync_warm": warm["rss_peak_mb"],
                        "sync_incremental": incremental["rss_peak_mb"],
                        "reader_cold": cold["reader_peak_mb"],
                        "reader_warm": warm["reader_peak_mb"]},
        "full_cold_vs_ldapsearch": round(cold["seconds"] / floor, 2),
        "full_warm_vs_ldapsearch": round(warm["seconds"] / floor, 2),
        "full_cold_vs_ldapsearch_sync_attributes": round(cold["seconds"] / floor_sync, 2),
        "full_warm_vs_ldapsearch_sync_attributes": round(warm["seconds"] / floor_sync, 2),
        "load_average": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000")
    parser.add_argument("--batch", type=int, default=10_000,
                        help="users per ldbadd run when a cached DC is built")
    parser.add_argument("--child", choices=["full", "incremental"], help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--account", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return _child(args)
    sys.path.insert(0, str(ROOT))
    from bench.ad_dc_cache import start_copy

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-ad-") as tmp:
        work = Path(tmp)
        for n in (int(s) for s in args.sizes.split(",")):
            # The loaded DC comes from the cache (built on first use: minutes at 100k).
            dc, meta = start_copy(n, work, batch=args.batch)
            try:
                result = _one_size(dc, n, work)
            finally:
                dc.close()
            result["ldbadd_seconds"] = meta["loadSeconds"]
            result["ldbadd_batches"] = [b["seconds"] for b in meta["batches"]]
            results.append(result)
    print(json.dumps({"benchmark": "ad_sync", "machine": {
        "cpus": os.cpu_count(), "python": platform.python_version(),
        "platform": platform.platform()}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
