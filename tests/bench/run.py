"""`make bench`: every drkit benchmark, one table each, and one JSON file with all the figures.

    .venv/bin/python tests/bench/run.py [--scale 50] [--noise-mb 200] [--repeat 2]
        [--mem-scales 10,50] [--out FILE.json] [--skip-crypto] [--skip-pg]

Runs tests/bench/bench_crypto.py (streaming encryption against raw AESGCM) as a subprocess,
then the PostgreSQL engine benchmark (tests/bench/bench_pg.py: backup, drill and peak
memory against plain pg_dump/pg_restore). Each target prints PASS or MISS; benchmarks
inform, they do not gate, so the exit status is 0 unless something errored (1), or the run
was interrupted (130; everything it created is removed first).

Results go to --out (default /tmp/drkit-bench/<timestamp>.json), with the exact command.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_pg  # noqa: E402
from benchproc import save_results  # noqa: E402

# bench_crypto.py exits 1 when a target is missed; only other codes (or a traceback) are errors.
CRYPTO_MISSED = 1


def run_crypto(mib: int) -> tuple[dict[str, Any], bool]:
    """bench_crypto.py as a subprocess; returns (figures, errored)."""
    argv = [sys.executable, str(HERE / "bench_crypto.py"), "--mib", str(mib)]
    print(f"$ {shlex.join(argv)}", flush=True)
    start = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    errored = proc.returncode not in (0, CRYPTO_MISSED) or "Traceback" in proc.stderr
    verdict = "PASS" if proc.returncode == 0 else ("ERROR" if errored else "MISS")
    print(proc.stdout.rstrip())
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)
    print(f"crypto targets: {verdict}\n", flush=True)
    return {
        "command": shlex.join(argv),
        "exit": proc.returncode,
        "verdict": verdict,
        "wall_s": time.monotonic() - start,
        "output": proc.stdout,
        "stderr": proc.stderr,
    }, errored


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    bench_pg.add_arguments(ap)
    ap.add_argument("--out", type=Path, help="JSON results file (default /tmp/drkit-bench/<timestamp>.json)")
    ap.add_argument("--skip-crypto", action="store_true", help="do not run bench_crypto.py")
    ap.add_argument("--skip-pg", action="store_true", help="do not run the PostgreSQL engine benchmark")
    ap.add_argument("--skip-fleet", action="store_true", help="do not run the RDS fleet benchmark")
    ap.add_argument("--skip-s3", action="store_true", help="do not run the S3 verify benchmark")
    ap.add_argument("--crypto-mib", type=int, default=512, help="bench_crypto.py --mib (default 512)")
    args = ap.parse_args()

    command = shlex.join([sys.executable, *sys.argv])
    results: dict[str, Any] = {"command": command, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    status = 0
    try:
        if not args.skip_crypto:
            results["crypto"], errored = run_crypto(args.crypto_mib)
            status = 1 if errored else 0
        if not args.skip_pg:
            data, table, pg_status = bench_pg.run(args)
            results["pg"] = data
            print("\n" + table)
            status = pg_status or status
        if not args.skip_fleet:
            import bench_fleet  # RDS fleet (issue #3): API calls per page, CPU of planning

            status = max(status, bench_fleet.run_into(results))
        if not args.skip_s3:
            # S3 verify (issue #4) against `aws s3 sync --dryrun` and a bare listing, on one moto server
            code = subprocess.run([sys.executable, str(HERE / "bench_s3_verify.py")], check=False).returncode
            results["s3_verify_exit"] = code
            status = max(status, 1 if code not in (0, 1) else 0)  # 1 = a target missed, reported
    except KeyboardInterrupt:
        status = 130
        results["error"] = "interrupted"
    results["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    out = save_results(results, args.out, "all")
    print(f"\ncommand: {command}\nresults: {out}")
    return status


if __name__ == "__main__":
    sys.exit(main())
