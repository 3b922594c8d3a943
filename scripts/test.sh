#!/usr/bin/env bash
# The project's test command: starts a throwaway PostgreSQL 15 cluster, runs every test against
# both SQLite and that server, and stops the cluster. Fails loudly if Postgres cannot start;
# the Postgres tests are never skipped.
set -euo pipefail

cd "$(dirname "$0")/.."
PG_BIN="${PG_BIN:-/usr/lib/postgresql/15/bin}"
if [[ ! -x "$PG_BIN/initdb" ]]; then
    echo "error: PostgreSQL 15 server binaries not found in $PG_BIN (apt-get install postgresql-15)" >&2
    exit 1
fi

PG_DIR="$(mktemp -d /tmp/amc-collector-pg.XXXXXX)"
PG_PORT="${PG_PORT:-$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')}"
as_pg() {
    if [[ "$(id -u)" == "0" ]]; then
        # initdb and pg_ctl refuse to run as root.
        chown -R postgres:postgres "$PG_DIR"
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}
stop_pg() {
    as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$PG_DIR"
}
trap stop_pg EXIT

as_pg "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
    || { cat "$PG_DIR/initdb.log" >&2; echo "error: initdb failed" >&2; exit 1; }
as_pg "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" start >/dev/null \
    || { cat "$PG_DIR/server.log" >&2; echo "error: PostgreSQL did not start" >&2; exit 1; }

export AMC_TEST_PG_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"
echo "PostgreSQL 15 test cluster on port $PG_PORT"
cargo test --all-targets --no-fail-fast "$@"
