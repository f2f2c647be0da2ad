#!/usr/bin/env bash
# Make sure the servers the integration tests talk to are up: PostgreSQL and MariaDB on
# loopback. Starts what is installed but down; waits until each answers. Idempotent.
set -euo pipefail

wait_for() { # name, command
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 0.5
  done
  echo "services: $name did not come up" >&2
  return 1
}

pg_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
if ! pg_up; then
  echo "services: starting PostgreSQL"
  if command -v pg_ctlcluster >/dev/null; then
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  fi
fi
wait_for PostgreSQL pg_up

maria_up() { mariadb-admin -h 127.0.0.1 -P 3306 -u root ping 2>/dev/null || mysqladmin -h 127.0.0.1 -P 3306 -u root ping; }
if ! maria_up >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd -- --user=mysql 2>/dev/null || true
fi
wait_for MariaDB maria_up

# The primary/replica pair of the failover tests (ports 5441/5442, clusters of their own;
# the tests' fixture also brings it up, and removes it at the end of a run).
echo "services: the failover-test pair (scripts/pg-cluster.sh up)"
bash "$(dirname "$0")/pg-cluster.sh" up
