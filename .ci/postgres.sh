#!/usr/bin/env bash
# A throwaway PostgreSQL 15 server for the test suite, on a free loopback port.
#
#   .ci/postgres.sh start        start one; prints `export VAR=...` lines to eval
#   .ci/postgres.sh stop DIR     stop it and delete its data directory
#   .ci/postgres.sh run CMD...   start, run CMD with CERTAPI_TEST_DATABASE_URL set, stop
#
# PostgreSQL refuses to run as root, so as root the server runs as an unprivileged
# account ($CERTAPI_PG_USER, else `postgres` when it exists, else `nobody`) in a
# temporary directory that account owns. Durability settings are off (fsync): the
# data is thrown away, and the tests crash the application, never the server.
set -euo pipefail

PG_BIN=${CERTAPI_PG_BIN:-/usr/lib/postgresql/15/bin}
DB_NAME=certapi
DB_ROLE=certapi

as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

pick_user() {
    if [ "$(id -u)" -ne 0 ]; then
        PG_USER=$(id -un)
    elif [ -n "${CERTAPI_PG_USER:-}" ]; then
        PG_USER=$CERTAPI_PG_USER
    elif id postgres >/dev/null 2>&1; then
        PG_USER=postgres
    else
        PG_USER=nobody
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
    [ -x "$PG_BIN/initdb" ] || { echo "no PostgreSQL binaries in $PG_BIN" >&2; exit 1; }
    pick_user
    local dir port tries=0
    dir=$(mktemp -d "${TMPDIR:-/tmp}/certapi-pg.XXXXXX")
    chmod 700 "$dir"
    [ "$(id -u)" -ne 0 ] || chown "$PG_USER" "$dir"
    as_owner "$PG_BIN/initdb" -D "$dir/data" -U "$DB_ROLE" --auth=trust -E UTF8 \
        --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; rm -rf "$dir"; exit 1; }
    # The port is free when picked; another process may take it before the server
    # binds, so a failed start tries another one.
    until port=$(free_port) && as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" \
            -w -t 30 -o "-c listen_addresses=127.0.0.1 -c port=$port \
            -c unix_socket_directories=$dir -c max_connections=300 -c fsync=off \
            -c synchronous_commit=off -c full_page_writes=off" start >/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 5 ]; then
            cat "$dir/server.log" >&2; rm -rf "$dir"; exit 1
        fi
    done
    as_owner "$PG_BIN/createdb" -h 127.0.0.1 -p "$port" -U "$DB_ROLE" "$DB_NAME"
    echo "export CERTAPI_PG_DIR=$dir"
    echo "export CERTAPI_TEST_DATABASE_URL=postgresql://$DB_ROLE@127.0.0.1:$port/$DB_NAME"
}

stop() {
    local dir=${1:?usage: postgres.sh stop DIR}
    pick_user
    if [ -d "$dir/data" ]; then
        as_owner "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$dir"
}

run() {
    local env
    env=$(start)
    eval "$env"
    trap 'stop "$CERTAPI_PG_DIR"' EXIT
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') for tests: $CERTAPI_TEST_DATABASE_URL" >&2
    "$@"
}

case "${1:-}" in
    start) start ;;
    stop) shift; stop "$@" ;;
    run) shift; run "$@" ;;
    *) echo "usage: $0 start | stop DIR | run CMD..." >&2; exit 2 ;;
esac
