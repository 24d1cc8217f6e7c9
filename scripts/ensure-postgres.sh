#!/usr/bin/env bash
# Tests need a real PostgreSQL (TESTING.md). Use DRKIT_TEST_PG_DSN when set; otherwise make sure the
# local server on 127.0.0.1:5432 is up, starting the Debian cluster if it is down.
set -euo pipefail
scripts/ensure-postgres-binaries.sh
[ -n "${DRKIT_TEST_PG_DSN:-}" ] && exit 0
if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then exit 0; fi
if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
  ver=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $ver (pg_ctlcluster)" >&2
  pg_ctlcluster --skip-systemctl-redirect "$ver" main start
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done
fi
echo "no PostgreSQL on 127.0.0.1:5432 and none could be started; set DRKIT_TEST_PG_DSN" >&2
exit 1
