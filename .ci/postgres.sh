#!/usr/bin/env bash
# A throw-away PostgreSQL server for the tests (Debian's postgresql; `apt-get install postgresql`):
#   .ci/postgres.sh start DIR [PORT]   initdb in DIR (first time), start on 127.0.0.1:PORT, print its URL
#   .ci/postgres.sh stop DIR           stop it (the data stays in DIR; `start DIR PORT` again resumes it)
# postgres refuses to run as root, so as root it runs as the `postgres` user.
set -euo pipefail
cmd=${1:?start or stop}; dir=${2:?data folder}
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$bin" ] || bin=$(dirname "$(command -v pg_ctl)")
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
start)
    port=${3:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}
    mkdir -p "$dir"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$dir"; chmod 700 "$dir"; fi
    if [ ! -f "$dir/data/PG_VERSION" ]; then
        as_pg "$bin/initdb" -D "$dir/data" -A trust -U codesign --no-sync -E UTF8 >"$dir/initdb.log" 2>&1
    fi
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
    as_pg "$bin/psql" -h 127.0.0.1 -p "$port" -U codesign -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'codesign'" | grep -q 1 \
        || as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U codesign codesign
    echo "postgresql://codesign@127.0.0.1:$port/codesign"
    ;;
stop)
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    ;;
*) echo "usage: $0 start DIR [PORT] | stop DIR" >&2; exit 2 ;;
esac
