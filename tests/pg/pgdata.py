"""Test data and comparisons shared by the PostgreSQL engine tests."""

from __future__ import annotations

import psycopg

SCHEMA_SQL = """
CREATE TABLE customers (id bigserial PRIMARY KEY, name text NOT NULL, note text, balance numeric(12,2),
                        created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE blobs (id int PRIMARY KEY, payload bytea NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id bigint REFERENCES customers(id), total numeric,
                     tags text[], meta jsonb);
CREATE VIEW big_customers AS SELECT * FROM customers WHERE balance > 500;
INSERT INTO customers (name, note, balance)
  SELECT 'customer ' || g, CASE WHEN g % 7 = 0 THEN NULL ELSE 'naïve café ☕ ' || g END, (g * 3.17)::numeric(12,2)
  FROM generate_series(1, 3000) g;
INSERT INTO blobs SELECT g, decode(md5(g::text) || md5((g * 31)::text), 'hex') || gen_random_bytes_fallback(g)
  FROM generate_series(1, 400) g;
INSERT INTO orders SELECT g, 1 + g % 3000, g * 1.5, ARRAY['a', 'b' || g], jsonb_build_object('n', g)
  FROM generate_series(1, 5000) g;
"""

# pgcrypto may be absent; random-looking bytes from md5 chains are enough and need no extension.
FALLBACK_FN = """
CREATE FUNCTION gen_random_bytes_fallback(n int) RETURNS bytea LANGUAGE sql AS
$$ SELECT string_agg(decode(md5(n::text || '-' || i::text), 'hex'), ''::bytea) FROM generate_series(1, 64) i $$;
"""

TABLES = ("customers", "blobs", "orders", "drkit_heartbeat")


def load_sample(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(FALLBACK_FN)
        conn.execute(SCHEMA_SQL)


def table_checksums(dsn: str, tables: tuple[str, ...] = TABLES) -> dict[str, tuple[int, str]]:
    """(row count, md5 over every row's text form in a stable order) per table."""
    out = {}
    with psycopg.connect(dsn) as conn:
        for table in tables:
            row = conn.execute(
                f"SELECT count(*), coalesce(md5(string_agg(t::text, '|' ORDER BY t::text)), '') FROM {table} t"
            ).fetchone()
            assert row is not None
            out[table] = (int(row[0]), str(row[1]))
    return out
