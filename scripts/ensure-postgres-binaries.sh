#!/usr/bin/env bash
# The demo needs PostgreSQL's server binaries (initdb, postgres, pg_dump, pg_restore, pgbench),
# not a running server: it starts its own throwaway clusters. Install them when missing.
set -euo pipefail
have() { ls /usr/lib/postgresql/*/bin/"$1" >/dev/null 2>&1 || command -v "$1" >/dev/null 2>&1; }
if have initdb && have pgbench && have pg_restore; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing PostgreSQL server binaries (apt-get install postgresql postgresql-contrib)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql postgresql-contrib >/dev/null
else
  echo "PostgreSQL server binaries (initdb, pg_restore, pgbench) are missing: install your distribution's postgresql package" >&2
  exit 1
fi
