#!/usr/bin/env bash
# A PostgreSQL primary and a synchronous streaming replica on loopback, for failover tests.
# Two throwaway clusters of their own (never the shared server on 5432), trust auth on
# 127.0.0.1, database `test`, user `postgres`. The integration tests' `Cluster` fixture
# (tests/support/cluster.py) calls this script; people can too:
#
#   scripts/pg-cluster.sh up                   # build and start the pair; one line per node
#   scripts/pg-cluster.sh status               # each node's port and role (primary/standby/down)
#   scripts/pg-cluster.sh down                 # stop both, remove the directory
#   scripts/pg-cluster.sh reset                # back to the state `up` built: roles, data
#   scripts/pg-cluster.sh promote PORT         # the standby on PORT becomes a primary
#   scripts/pg-cluster.sh stop-node PORT [fast|immediate]   # stop one node (default fast)
#   scripts/pg-cluster.sh rejoin PORT          # the node on PORT (stopped or demoted) comes
#                                              # back on PORT as a standby of the other node
#
# `up` is idempotent: when the pair already runs with its initial roles it does nothing;
# otherwise (nothing there, a failed-over pair) it does what `reset` does, so `up` always
# ends with the primary on PG_PRIMARY_PORT and the replica synchronous on PG_REPLICA_PORT.
# The first `up` builds the pair (initdb, pg_basebackup -R) and keeps a copy of both data
# directories, stopped cleanly, in $PG_CLUSTER_DIR/template; `reset` stops both nodes and
# restores that copy, only the files that changed (a fraction of a second, where building
# takes seconds), dropping whatever the tests wrote.
#
# Replication is synchronous with synchronous_commit = remote_apply: a commit is
# acknowledged only once the standby has flushed *and applied* it, so no acknowledged
# write can be lost in a failover and the standby shows it at once. wal_log_hints is on,
# so pg_rewind can turn a failed-over primary into a standby (`rejoin`; when the rewind
# fails it falls back to a fresh pg_basebackup). `promote` clears the new primary's
# synchronous_standby_names (it has no standby, and would otherwise wait for one on every
# commit); `rejoin` names the rejoined standby there again once it streams.
#
# Each node lives in $PG_CLUSTER_DIR/<port>/ (data/, log); its port and cluster_name
# (also its replication application_name, `pg<port>`) are given on the command line, not
# in postgresql.conf, because pg_basebackup and pg_rewind copy the configuration files
# from one node to the other. No Unix sockets: every client uses TCP on 127.0.0.1.
#
# Environment: PG_CLUSTER_DIR (${TMPDIR:-/tmp}/pooltender-cluster), PG_PRIMARY_PORT (5441),
# PG_REPLICA_PORT (5442), PG_BINDIR (the server binaries; default `pg_config --bindir`,
# else the newest /usr/lib/postgresql/*/bin), PG_CLUSTER_TIMEOUT (seconds each wait may
# take, 30; every step is bounded by it). Run as root, the servers run as the `postgres`
# OS user.
set -euo pipefail

primary_port="${PG_PRIMARY_PORT:-5441}"
replica_port="${PG_REPLICA_PORT:-5442}"
dir="$(realpath -m "${PG_CLUSTER_DIR:-${TMPDIR:-/tmp}/pooltender-cluster}")"
timeout="${PG_CLUSTER_TIMEOUT:-30}"
marker="$dir/.pooltender-cluster"
template="$dir/template"

say() { echo "pg-cluster: $*"; }
die() { echo "pg-cluster: $*" >&2; exit 1; }

bindir="${PG_BINDIR:-}"
if [[ -z "$bindir" ]] && command -v pg_config >/dev/null; then
    bindir="$(pg_config --bindir)"
fi
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
    bindir="$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
fi
[[ -n "$bindir" && -x "$bindir/initdb" ]] \
    || die "no PostgreSQL server binaries (initdb) found; set PG_BINDIR"

# initdb and postgres refuse to run as root.
if [[ "$(id -u)" == 0 ]]; then
    as_pg() { runuser -u postgres -- "$@"; }
else
    as_pg() { "$@"; }
fi
cd /  # the postgres user may not be allowed into the caller's directory

node_dir() { echo "$dir/$1"; }
data_dir() { echo "$dir/$1/data"; }
app_name() { echo "pg$1"; }
check_port() {
    [[ "$1" == "$primary_port" || "$1" == "$replica_port" ]] \
        || die "port $1 is not a node of this pair ($primary_port, $replica_port)"
}
other_port() {
    if [[ "$1" == "$primary_port" ]]; then echo "$replica_port"; else echo "$primary_port"; fi
}

# One SQL statement on a node, one unaligned value per line out.
sql() { # port, statement
    PGCONNECT_TIMEOUT=5 timeout "$timeout" "$bindir/psql" -X -q -At -v ON_ERROR_STOP=1 \
        -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2"
}

role() { # port -> primary | standby | down
    local recovery
    if ! recovery="$(sql "$1" "SELECT pg_is_in_recovery()" 2>/dev/null)"; then
        echo down
    elif [[ "$recovery" == t ]]; then
        echo standby
    else
        echo primary
    fi
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

running() { # port: is this node's server (ours) running?
    local data
    data="$(data_dir "$1")"
    [[ -f "$data/postmaster.pid" ]] && as_pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

start_node() { # port
    local port=$1 data
    data="$(data_dir "$port")"
    if listening "$port"; then die "127.0.0.1:$port is already in use by another server"; fi
    as_pg "$bindir/pg_ctl" -D "$data" -l "$(node_dir "$port")/log" -w -t "$timeout" \
        -o "-p $port -c cluster_name=$(app_name "$port")" start >/dev/null \
        || die "node 127.0.0.1:$port did not start within ${timeout}s; log: $(node_dir "$port")/log"
}

stop_node() { # port, mode
    local port=$1 mode=${2:-fast}
    if running "$port"; then
        as_pg "$bindir/pg_ctl" -D "$(data_dir "$port")" -m "$mode" -w -t "$timeout" stop \
            >/dev/null || die "node 127.0.0.1:$port did not stop within ${timeout}s"
    fi
}

wait_until() { # description, command...
    local what=$1 deadline=$((SECONDS + timeout))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || die "$what: still not so after ${timeout}s"
        sleep 0.1
    done
}

# Is the standby `app` connected to the primary on `port` as its synchronous standby?
streams_sync() { # primary port, standby application_name
    [[ "$(sql "$1" "SELECT sync_state FROM pg_stat_replication
                    WHERE application_name = '$2' AND state = 'streaming'")" == sync ]]
}

streams() { # primary port, standby application_name
    [[ "$(sql "$1" "SELECT count(*) FROM pg_stat_replication
                    WHERE application_name = '$2' AND state = 'streaming'")" == 1 ]]
}

name_sync_standby() { # primary port, standby application_name
    sql "$1" "ALTER SYSTEM SET synchronous_standby_names = '$2'" >/dev/null
    sql "$1" "SELECT pg_reload_conf()" >/dev/null
}

replayed_past() { # standby port, LSN
    [[ "$(sql "$1" "SELECT pg_last_wal_replay_lsn() >= '$2'")" == t ]]
}

# Make the node on `port` a standby of the node on `upstream` (its data directory holds a
# copy of the upstream's: a base backup without -R, or a rewound old primary).
standby_config() { # port, upstream port
    local data
    data="$(data_dir "$1")"
    as_pg touch "$data/standby.signal"
    local conninfo
    conninfo="host=127.0.0.1 port=$2 user=postgres application_name=$(app_name "$1")"
    echo "primary_conninfo = '$conninfo'" | as_pg tee -a "$data/postgresql.auto.conf" >/dev/null
}

healthy() { # the pair runs with its initial roles, the replica synchronous
    running "$primary_port" && running "$replica_port" \
        && [[ "$(role "$primary_port")" == primary && "$(role "$replica_port")" == standby ]] \
        && streams_sync "$primary_port" "$(app_name "$replica_port")"
}

print_status() {
    local port
    for port in "$primary_port" "$replica_port"; do
        echo "127.0.0.1:$port $(role "$port")"
    done
}

cmd_down() {
    [[ -e "$dir" ]] || return 0
    if [[ ! -e "$marker" ]] && [[ -n "$(ls -A "$dir")" ]]; then
        die "$dir is not a directory this script made (no $marker); not removing it"
    fi
    local port
    for port in "$primary_port" "$replica_port"; do
        stop_node "$port" immediate
    done
    rm -rf "$dir"
}

ports_free() {
    local port
    for port in "$primary_port" "$replica_port"; do
        if listening "$port"; then die "127.0.0.1:$port is already in use by another server"; fi
    done
}

# Start both nodes (primary first) and wait until the replica is synchronous.
start_pair() {
    start_node "$primary_port"
    start_node "$replica_port"
    wait_until "replica 127.0.0.1:$replica_port is synchronous to 127.0.0.1:$primary_port" \
        streams_sync "$primary_port" "$(app_name "$replica_port")"
}

# A new pair from initdb; then a copy of both data directories, stopped cleanly, is kept
# as $template so that `reset` restores the initial state without initdb or base backup.
build() {
    ports_free
    mkdir -p "$(node_dir "$primary_port")" "$(node_dir "$replica_port")"
    touch "$marker"
    if [[ "$(id -u)" == 0 ]]; then chown -R postgres: "$dir"; fi
    as_pg test -w "$dir" || die "the postgres user cannot write $dir (set PG_CLUSTER_DIR)"

    local primary replica
    primary="$(data_dir "$primary_port")"
    replica="$(data_dir "$replica_port")"
    # 1 MB WAL segments: a small pg_wal makes the template quick to copy.
    as_pg "$bindir/initdb" -D "$primary" -U postgres --auth=trust -E UTF8 --locale=C \
        --wal-segsize=1 --no-sync >"$(node_dir "$primary_port")/initdb.log" \
        || die "initdb failed; see $(node_dir "$primary_port")/initdb.log"
    # synchronous_standby_names stays empty until the replica streams: a commit before
    # that (CREATE DATABASE) would wait for it.
    as_pg bash -c "cat >> '$primary/postgresql.conf'" <<'CONF'

# pooltender failover-test pair (scripts/pg-cluster.sh); port and cluster_name are on
# the command line of each node.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
max_connections = 50
shared_buffers = 16MB
wal_level = replica
wal_log_hints = on
max_wal_senders = 5
wal_keep_size = 32MB
min_wal_size = 4MB
max_wal_size = 64MB
hot_standby = on
synchronous_commit = remote_apply
synchronous_standby_names = ''
fsync = on
CONF
    start_node "$primary_port"
    sql "$primary_port" "CREATE DATABASE test" >/dev/null

    local source="host=127.0.0.1 port=$primary_port user=postgres"
    as_pg timeout "$timeout" "$bindir/pg_basebackup" -D "$replica" -X stream -c fast -R \
        --no-sync -d "$source application_name=$(app_name "$replica_port")" \
        || die "pg_basebackup from 127.0.0.1:$primary_port failed"
    start_node "$replica_port"
    wait_until "replica 127.0.0.1:$replica_port streams from 127.0.0.1:$primary_port" \
        streams "$primary_port" "$(app_name "$replica_port")"
    name_sync_standby "$primary_port" "$(app_name "$replica_port")"
    wait_until "replica 127.0.0.1:$replica_port is synchronous to 127.0.0.1:$primary_port" \
        streams_sync "$primary_port" "$(app_name "$replica_port")"

    # The primary's shutdown checkpoint reaches the replica before the primary stops.
    stop_node "$primary_port" fast
    stop_node "$replica_port" fast
    as_pg mkdir -p "$template"
    local port
    for port in "$primary_port" "$replica_port"; do
        cp -a "$(data_dir "$port")" "$template/$port"
        touch "$(node_dir "$port")/template-stamp"
    done
    start_pair
}

# The data directory of `port` equal to its template again. Only what changed since it
# last was (the stamp's time) is copied: entries the template lacks go; entries it has that
# are missing, or whose inode changed after the stamp (written, truncated, renamed onto:
# ctime, which no program can set back), come back. Without a stamp: a full copy.
restore_node() { # port
    local port=$1 data source stamp have want
    data="$(data_dir "$port")"
    source="$template/$port"
    stamp="$(node_dir "$port")/template-stamp"
    if [[ -f "$stamp" && -d "$data" ]]; then
        have="$(cd "$data" && find . -mindepth 1 | LC_ALL=C sort)"
        want="$(cd "$source" && find . -mindepth 1 | LC_ALL=C sort)"
        LC_ALL=C comm -23 <(echo "$have") <(echo "$want") \
            | (cd "$data" && xargs -r -d '\n' rm -rf --)
        {
            LC_ALL=C comm -13 <(echo "$have") <(echo "$want")
            (cd "$data" && find . -type f -cnewer "$stamp")
        } | (cd "$source" && xargs -r -d '\n' cp -a --parents -t "$data" --)
    else
        rm -rf "$data"
        cp -a "$source" "$data"
    fi
    touch "$stamp"  # before the node starts: every later change has a later ctime
}

# Back to the state `build` left: both data directories as in the template.
restore() {
    local port
    for port in "$primary_port" "$replica_port"; do
        stop_node "$port" immediate
    done
    ports_free
    for port in "$primary_port" "$replica_port"; do
        restore_node "$port"
    done
    start_pair
}

print_up() {
    echo "127.0.0.1:$primary_port $(role "$primary_port") (data $(data_dir "$primary_port"))"
    echo "127.0.0.1:$replica_port $(role "$replica_port"), synchronous" \
        "(data $(data_dir "$replica_port"))"
}

cmd_up() {
    if [[ -e "$marker" ]] && healthy; then
        say "already up"
        print_up
        return 0
    fi
    cmd_reset
}

cmd_reset() {
    if [[ -e "$marker" && -d "$template/$primary_port" && -d "$template/$replica_port" ]]; then
        restore
    else
        cmd_down
        build
    fi
    print_up
}

cmd_promote() { # port
    local port=$1
    [[ "$(role "$port")" == standby ]] || die "node 127.0.0.1:$port is not a standby"
    # The new primary has no standby: with a standby named here, every commit would wait.
    sql "$port" "ALTER SYSTEM SET synchronous_standby_names = ''" >/dev/null
    sql "$port" "SELECT pg_reload_conf()" >/dev/null
    as_pg "$bindir/pg_ctl" -D "$(data_dir "$port")" -w -t "$timeout" promote >/dev/null \
        || die "node 127.0.0.1:$port was not promoted within ${timeout}s"
    sql "$port" "ALTER SYSTEM RESET primary_conninfo" >/dev/null
    sql "$port" "SELECT pg_reload_conf()" >/dev/null
    say "127.0.0.1:$port $(role "$port")"
}

cmd_rejoin() { # port
    local port=$1 upstream data log
    upstream="$(other_port "$port")"
    data="$(data_dir "$port")"
    log="$(node_dir "$port")/rejoin.log"
    [[ "$(role "$upstream")" == primary ]] || die "node 127.0.0.1:$upstream is not a primary"
    # A just-promoted primary writes its new timeline to pg_control only at its next
    # checkpoint; until then pg_rewind would see one timeline and rewind nothing.
    sql "$upstream" "CHECKPOINT" >/dev/null
    stop_node "$port" fast
    : >"$log"
    if [[ "$(id -u)" == 0 ]]; then chown postgres: "$log"; fi
    if as_pg timeout "$timeout" "$bindir/pg_rewind" -D "$data" --no-sync \
        --source-server="host=127.0.0.1 port=$upstream user=postgres dbname=postgres" \
        >>"$log" 2>&1; then
        say "127.0.0.1:$port rewound to 127.0.0.1:$upstream"
    else
        say "pg_rewind of 127.0.0.1:$port failed (see $log); taking a fresh base backup"
        rm -rf "$data"
        as_pg timeout "$timeout" "$bindir/pg_basebackup" -D "$data" -X stream -c fast --no-sync \
            -d "host=127.0.0.1 port=$upstream user=postgres" >>"$log" 2>&1 \
            || die "pg_basebackup from 127.0.0.1:$upstream failed; see $log"
    fi
    rm -f "$data/standby.signal" "$data/recovery.signal"
    standby_config "$port" "$upstream"
    start_node "$port"
    # Past the upstream's position now: on the upstream's timeline, not stuck at the fork.
    local position
    position="$(sql "$upstream" "SELECT pg_current_wal_lsn()")"
    wait_until "standby 127.0.0.1:$port replays 127.0.0.1:$upstream's WAL past $position" \
        replayed_past "$port" "$position"
    wait_until "standby 127.0.0.1:$port streams from 127.0.0.1:$upstream" \
        streams "$upstream" "$(app_name "$port")"
    name_sync_standby "$upstream" "$(app_name "$port")"
    wait_until "standby 127.0.0.1:$port is synchronous" \
        streams_sync "$upstream" "$(app_name "$port")"
    say "127.0.0.1:$port $(role "$port") of 127.0.0.1:$upstream, synchronous"
}

case "${1:-}" in
    up) cmd_up ;;
    reset) cmd_reset ;;
    down) cmd_down ;;
    status) print_status ;;
    promote) check_port "${2:?promote PORT}" && cmd_promote "$2" ;;
    stop-node)
        check_port "${2:?stop-node PORT [fast|immediate]}"
        stop_node "$2" "${3:-fast}"
        say "127.0.0.1:$2 stopped"
        ;;
    rejoin) check_port "${2:?rejoin PORT}" && cmd_rejoin "$2" ;;
    *) die "usage: $0 up|down|status|reset|promote PORT|stop-node PORT [MODE]|rejoin PORT" ;;
esac
