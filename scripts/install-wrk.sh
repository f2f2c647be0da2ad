#!/bin/sh
# wrk, the HTTP load generator of benchmarks/run.py (Debian package). Not needed by the tests.
set -eu
command -v wrk >/dev/null 2>&1 && exit 0
apt-get install -y --no-install-recommends wrk >/dev/null || {
    apt-get update >/dev/null && apt-get install -y --no-install-recommends wrk >/dev/null
}
