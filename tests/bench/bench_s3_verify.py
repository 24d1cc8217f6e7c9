"""`drkit s3 verify` against `aws s3 sync --dryrun` and a bare listing, on one moto server.

    .venv/bin/python tests/bench/bench_s3_verify.py [--objects 20000] [--rounds 2] [--mem-scales 20000,100000]

What it does (issue 4, benchmarks):
1. starts ONE ThreadedMotoServer in this process and fills two buckets (source in us-east-1,
   replica in us-west-2) by injecting objects straight into moto's in-process backend
   (`moto.s3.models.s3_backends`), because 2 x 20,000 PutObject calls through HTTP take minutes
   here. The replica lacks 1% of the keys and has another 0.5% at a different size.
2. times, alternating, `rounds` times each: `drkit s3 verify assets -o json` (subprocess),
   `aws s3 sync --dryrun s3://src s3://dst --endpoint-url ...` (subprocess) and a bare
   paginated listing of the larger (source) bucket (boto3 paginator in a subprocess, so that it
   pays the same interpreter start-up as the other two), and, for information, both buckets
   listed at once by two bare threads ("both": the floor for any comparison by listing here,
   since one moto server answers both listings with one GIL).
3. peak RSS of verify: the real command at `--objects`, and the same code path (prefetching
   threads, merge, tally) over synthetic listings of each of `--mem-scales` keys, in subprocesses.

Targets: verify/sync <= 0.8; verify/listing <= 1.1 (a comparison by listing cannot beat one
listing of the larger bucket); peak RSS flat in the number of keys (100k within 1.25x of 20k).
Exit 0 when all targets are met, 1 when one is missed, 2 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO))

from benchproc import run_measured  # noqa: E402

ACCOUNT = "123456789012"
SRC, DST = "bench-src", "bench-dst"
DRKIT = "import drkit.cli.s3_verify_cmd; from drkit.cli import main; main()"

LISTING = textwrap.dedent(
    """
    import sys, boto3
    s3 = boto3.client("s3", region_name="us-east-1")
    n = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=sys.argv[1]):
        n += len(page.get("Contents", ()))
    print(n)
    """
)

# The floor for any comparison by listing on this server: both buckets listed at once, nothing else.
LISTING_BOTH = textwrap.dedent(
    """
    import sys, threading, boto3
    def run(bucket, region):
        s3 = boto3.client("s3", region_name=region)
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            pass
    threads = [threading.Thread(target=run, args=(sys.argv[1], "us-east-1")),
               threading.Thread(target=run, args=(sys.argv[2], "us-west-2"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    """
)

# The verify code path (prefetch threads + merge + tally) over generated listings: no server.
SYNTHETIC = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime, timedelta
    from drkit.aws.s3list import prefetched
    from drkit.domain.s3compare import MergeStats, Tally, merge_diff

    N = int(sys.argv[1])
    T0 = datetime(2026, 1, 1, tzinfo=UTC)

    class Pages:
        def __init__(self, skip):
            self.skip = skip
        def paginate(self, **_):
            for start in range(0, N, 1000):
                yield {"Contents": [{"Key": f"data/{i:09d}.bin", "Size": 1000 + (i % 997 == 0),
                                     "LastModified": T0} for i in range(start, min(N, start + 1000))
                                    if i % self.skip]}

    class Client:
        def __init__(self, skip):
            self.skip = skip
        def get_paginator(self, name):
            return Pages(self.skip)

    stats = MergeStats()
    tally = Tally(now=T0 + timedelta(hours=1), allowance=timedelta(minutes=15))
    with prefetched(Client(10**12), "src") as src, prefetched(Client(100), "dst") as dst:
        for d in merge_diff(src, dst, stats):
            tally.add(d)
    r = tally.result("src", "dst", stats)
    print(r.checked, r.missing_count, r.mismatched_count)
    """
)


def populate(endpoint: str, objects: int) -> dict[str, int]:
    """Buckets via the API, objects straight into moto's backend (see the module docstring)."""
    import boto3
    from moto.s3.models import s3_backends

    boto3.client("s3", region_name="us-east-1", endpoint_url=endpoint).create_bucket(Bucket=SRC)
    boto3.client("s3", region_name="us-west-2", endpoint_url=endpoint).create_bucket(
        Bucket=DST, CreateBucketConfiguration={"LocationConstraint": "us-west-2"}
    )
    backend = s3_backends[ACCOUNT]["aws"]
    missing = mismatched = 0
    for i in range(objects):
        key = f"assets/{i % 37:02d}/object-{i:07d}.bin"
        backend.put_object(SRC, key, b"x" * 64)
        if i % 100 == 7:
            missing += 1
            continue
        if i % 200 == 3:
            mismatched += 1
            backend.put_object(DST, key, b"y" * 65)
        else:
            backend.put_object(DST, key, b"x" * 64)
    return {"source": objects, "replica": objects - missing, "missing": missing, "mismatched": mismatched}


def json_in(log: Path) -> dict[str, Any]:
    """The JSON document in a log that also holds stderr lines (stdout and stderr are merged)."""
    lines = log.read_text().splitlines()
    start, end = lines.index("{"), len(lines) - 1 - lines[::-1].index("}")
    doc: dict[str, Any] = json.loads("\n".join(lines[start : end + 1]))
    return doc


def write_config(root: Path) -> Path:
    (root / "schedules").mkdir(parents=True)
    (root / "schedules" / "bench.yaml").write_text(
        textwrap.dedent(
            f"""\
            environment: bench
            targets: {{rto: 1h, rpo: 15m}}
            aws: {{region: us-east-1, dr_region: us-west-2}}
            s3:
              - name: assets
                bucket: {SRC}
                replica_bucket: {DST}
                kms_key: alias/drkit-dr
            """
        )
    )
    return root


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--objects", type=int, default=20_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mem-scales", default="20000,100000")
    args = ap.parse_args()
    command = shlex.join([sys.executable, *sys.argv])
    print(f"$ {command}", flush=True)

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise

    work = Path(tempfile.mkdtemp(prefix="drkit-bench-s3-"))
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        creds = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
        os.environ.update(creds)
        placed = populate(endpoint, args.objects)
        # verify runs with --lag-allowance 1s: a missing object younger than that is "in flight",
        # not missing. Let the newest placed objects age past it, so the counts can be checked.
        time.sleep(1.5)
        print(f"placed {placed} (injected into moto's backend)", flush=True)
        env = {
            **os.environ,
            **creds,
            "AWS_ENDPOINT_URL": endpoint,
            "HOME": str(work / "home"),
            "DRKIT_CATALOG": f"sqlite:///{work / 'catalog.db'}",
            "XDG_STATE_HOME": str(work / "state"),
            "AWS_EC2_METADATA_DISABLED": "true",
            "PYTHONPATH": str(REPO),
        }
        env.pop("AWS_PROFILE", None)
        config = write_config(work / "config")
        aws = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
        argv = {
            "verify": [
                sys.executable,
                "-c",
                DRKIT,
                "--config-dir",
                str(config),
                "s3",
                "verify",
                "assets",
                "-o",
                "json",
                "--lag-allowance",
                "1s",
            ],
            "sync": [
                aws,
                "s3",
                "sync",
                "--dryrun",
                "--only-show-errors",
                f"s3://{SRC}",
                f"s3://{DST}",
                "--endpoint-url",
                endpoint,
            ],
            "listing": [sys.executable, "-c", LISTING, SRC],
            "both": [sys.executable, "-c", LISTING_BOTH, SRC, DST],
        }
        times: dict[str, list[float]] = {k: [] for k in argv}
        peaks: dict[str, list[int]] = {k: [] for k in argv}
        for rnd in range(args.rounds):
            for name, cmd in argv.items():
                log = work / f"{name}-{rnd}.log"
                m = run_measured(cmd, env=env, log=log, check=False, cwd=work)
                if m.returncode not in ((0, 1) if name == "verify" else (0,)):
                    print(f"{name} exited {m.returncode}:\n{m.tail()}", file=sys.stderr)
                    return 2
                times[name].append(m.wall_s)
                peaks[name].append(m.self_peak_kib)
                print(
                    f"round {rnd + 1}: {name:8s} {m.wall_s:6.2f} s  peak RSS {m.self_peak_kib / 1024:6.1f} MiB",
                    flush=True,
                )
        report = json_in(work / "verify-0.log")
        counts = report["counts"]
        sane = counts["missing"] == placed["missing"] and counts["mismatched"] == placed["mismatched"]
        mem: dict[int, int] = {}
        for scale in (int(s) for s in args.mem_scales.split(",")):
            m = run_measured(
                [sys.executable, "-c", SYNTHETIC, str(scale)],
                env=env,
                log=work / f"mem-{scale}.log",
                what=f"synthetic {scale}",
            )
            mem[scale] = m.self_peak_kib
    finally:
        server.stop()

    med = {k: statistics.median(v) for k, v in times.items()}
    r_sync, r_list, r_both = med["verify"] / med["sync"], med["verify"] / med["listing"], med["verify"] / med["both"]
    scales = sorted(mem)
    r_mem = mem[scales[-1]] / mem[scales[0]] if len(scales) > 1 else 1.0
    checks = [
        ("verify / sync", r_sync, 0.8),
        ("verify / listing", r_list, 1.1),
        ("RSS largest / smallest", r_mem, 1.25),
    ]
    print()
    print(f"{'what':34s} {'median s':>9s} {'runs':>20s} {'peak RSS MiB':>13s}")
    for name in argv:
        runs = ", ".join(f"{t:.2f}" for t in times[name])
        print(
            f"{name + ' (' + str(args.objects) + ' objects)':34s} {med[name]:9.2f} {runs:>20s} "
            f"{max(peaks[name]) / 1024:13.1f}"
        )
    for scale in scales:
        print(f"{'verify code path, synthetic ' + str(scale):34s} {'':9s} {'':>20s} {mem[scale] / 1024:13.1f}")
    print()
    for label, value, target in checks:
        print(f"{label:24s} {value:5.2f}  target <= {target:<5}  {'PASS' if value <= target else 'MISS'}")
    print(f"{'verify / both listings':24s} {r_both:5.2f}  (information: the floor of a two-listing comparison here)")
    print(
        f"verify found missing={counts['missing']} mismatched={counts['mismatched']} "
        f"(placed {placed['missing']}/{placed['mismatched']}): {'ok' if sane else 'WRONG'}"
    )
    shutil.rmtree(work, ignore_errors=True)
    if not sane:
        return 2
    return 0 if all(v <= t for _, v, t in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
