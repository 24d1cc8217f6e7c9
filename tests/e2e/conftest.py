"""drkit as a user runs it: a subprocess, a config folder, a real PostgreSQL source."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pg.pgdata import load_sample

DRILL = """\
environment: test
targets: {rto: 15m, rpo: %(rpo)s}
scenario: data-corruption
source:
  postgres: {schedule: local, resource: app}
  recovery_point: latest
verify:
  database: app
  checks:
    - {name: customers present, sql: "SELECT count(*) FROM customers", expect: ">= 3000"}
    - name: orders reference customers
      sql: >-
        SELECT count(*) FROM orders o LEFT JOIN customers c ON c.id = o.customer_id
        WHERE c.id IS NULL
      expect: "== 0"
    - {name: newest customer, sql: "SELECT max(created_at) FROM customers", freshness: true}
%(extra)s
teardown: always
report: {dir: reports, formats: [json, md, html, junit]}
"""

SCHEDULE = """\
environment: test
targets: {rto: 15m, rpo: 5m}
timezone: UTC
postgres:
  - name: app
    dsn_env: APP_DATABASE_URL
    backups: {cron: "0 */6 * * *", keep: {last: %(keep_last)d}}
    store: file://backups
    encryption: {key_file: keys/backup.key}
"""


@dataclass
class Env:
    root: Path
    source: str
    vars: dict[str, str]

    def write_drill(self, name: str = "t", *, rpo: str = "5m", extra_checks: str = "") -> None:
        (self.root / "drills").mkdir(exist_ok=True)
        extra = textwrap.indent(extra_checks, "    ") if extra_checks else ""
        (self.root / "drills" / f"{name}.yaml").write_text(DRILL % {"rpo": rpo, "extra": extra})

    def write_schedule(self, keep_last: int = 10) -> None:
        (self.root / "schedules").mkdir(exist_ok=True)
        (self.root / "schedules" / "local.yaml").write_text(SCHEDULE % {"keep_last": keep_last})

    def run(
        self, *args: str, check: bool = False, timeout: float = 180, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "drkit", "--config-dir", str(self.root), *args],
            env={**self.vars, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"drkit {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [sys.executable, "-m", "drkit", "--config-dir", str(self.root), *args],
            env=self.vars,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def drkit_tmp() -> Iterator[Path]:
    """drkit's TMPDIR: outside pytest's 0700 tree, so the unprivileged cluster user can enter it."""
    path = Path(tempfile.mkdtemp(prefix="drkit-e2e-tmp-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def drkit_env(fresh_db: str, tmp_path: Path, drkit_tmp: Path) -> Env:
    load_sample(fresh_db)
    root = tmp_path / "config"
    root.mkdir()
    variables = {
        **os.environ,
        "APP_DATABASE_URL": fresh_db,
        "DRKIT_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "TMPDIR": str(drkit_tmp),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    env = Env(root=root, source=fresh_db, vars=variables)
    env.write_schedule()
    env.write_drill()
    return env


def leftovers(tmp: Path) -> list[str]:
    """Anything a drill could leave: cluster or work directories, and postgres processes using them."""
    found = [p.name for p in tmp.iterdir()]
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if str(tmp) in cmdline and "postgres" in cmdline:
                found.append(f"process {proc.name}: {cmdline[:80]}")
    return found


LeftoverCheck = Callable[[Path], list[str]]


# -- AWS: one moto server for the e2e session, reset before every test ------------------------

MOTO_CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's server on 127.0.0.1 (TESTING.md: e2e), for drkit and the AWS CLI alike."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def moto_env(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A fresh moto state, and the environment a drkit subprocess (or the AWS CLI) runs with;
    this process's own boto3 clients point at the same server."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    env = {**os.environ, **MOTO_CREDS, "AWS_ENDPOINT_URL": moto_endpoint, "HOME": str(tmp_path / "home"),
           "DRKIT_CATALOG": f"sqlite:///{tmp_path / 'catalog.db'}", "XDG_STATE_HOME": str(tmp_path / "state"),
           "AWS_EC2_METADATA_DISABLED": "true", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for var in ("AWS_PROFILE", "AWS_REGION", "AWS_SESSION_TOKEN"):
        env.pop(var, None)
        monkeypatch.delenv(var, raising=False)
    for key, value in {**MOTO_CREDS, "AWS_ENDPOINT_URL": moto_endpoint}.items():
        monkeypatch.setenv(key, value)
    return env
