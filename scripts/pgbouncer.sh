#!/usr/bin/env bash
# Start PgBouncer (transaction mode, 2 server connections) on 127.0.0.1:6432 in front of
# the local PostgreSQL, for the integration tests. Idempotent: does nothing when a
# PgBouncer already answers there.
#
#   scripts/pgbouncer.sh            # start (install Debian's pgbouncer if missing)
#   scripts/pgbouncer.sh stop       # stop the one this script started
#
# Environment: PGBOUNCER_PORT (6432), PGHOST (127.0.0.1), PGPORT (5432),
# PGBOUNCER_DIR (where config, log and pid file go; default a directory under $TMPDIR).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
templates="$here/../tests/pgbouncer"
port="${PGBOUNCER_PORT:-6432}"
pghost="${PGHOST:-127.0.0.1}"
pgport="${PGPORT:-5432}"
dir="${PGBOUNCER_DIR:-${TMPDIR:-/tmp}/pooltender-pgbouncer-$port}"

answers() {
    pg_isready -q -h 127.0.0.1 -p "$port" -U postgres -d test 2>/dev/null \
        || (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

if [[ "${1:-start}" == "stop" ]]; then
    if [[ -f "$dir/pgbouncer.pid" ]]; then
        kill "$(cat "$dir/pgbouncer.pid")" 2>/dev/null || true
        echo "pgbouncer on 127.0.0.1:$port stopped"
    fi
    exit 0
fi

if answers; then
    echo "pgbouncer already answers on 127.0.0.1:$port"
    exit 0
fi

binary="$(command -v pgbouncer || true)"
[[ -z "$binary" && -x /usr/sbin/pgbouncer ]] && binary=/usr/sbin/pgbouncer
if [[ -z "$binary" ]]; then
    sudo=""
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get install -y --no-install-recommends pgbouncer \
        || { $sudo apt-get update && $sudo apt-get install -y --no-install-recommends pgbouncer; }
    binary="$(command -v pgbouncer || echo /usr/sbin/pgbouncer)"
fi

mkdir -p "$dir"
sed -e "s|@PORT@|$port|g" -e "s|@DIR@|$dir|g" -e "s|@PGHOST@|$pghost|g" -e "s|@PGPORT@|$pgport|g" \
    "$templates/pgbouncer.ini" > "$dir/pgbouncer.ini"
cp "$templates/userlist.txt" "$dir/userlist.txt"

# PgBouncer refuses to run as root: drop to an unprivileged user then.
user_args=()
if [[ "$(id -u)" == 0 ]]; then
    runas="$(id -u postgres >/dev/null 2>&1 && echo postgres || echo nobody)"
    chown -R "$runas" "$dir"
    user_args=(-u "$runas")
fi
"$binary" -d "${user_args[@]}" "$dir/pgbouncer.ini"

for _ in $(seq 50); do
    if answers; then
        echo "pgbouncer answers on 127.0.0.1:$port (transaction mode, config in $dir)"
        exit 0
    fi
    sleep 0.1
done
echo "pgbouncer did not answer on 127.0.0.1:$port; log:" >&2
cat "$dir/pgbouncer.log" >&2 || true
exit 1
