#!/usr/bin/env bash
# Install Debian's Prometheus (the server and promtool) for the tests of the alerting
# rules and the Grafana dashboard (contrib/). Idempotent: does nothing when both are
# present. Starts no server: the tests run their own, on a loopback port, in a temp dir.
set -euo pipefail

have() { command -v "$1" >/dev/null 2>&1; }

if ! have promtool || ! have prometheus; then
    sudo=""
    [[ "$(id -u)" != 0 ]] && sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # The package's postinst may try to start its service; where there is no init
    # system it cannot, and the tests do not need it to.
    $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null \
        || { $sudo apt-get update -qq \
            && $sudo apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
fi

echo "prometheus: $(prometheus --version 2>&1 | head -1)"
echo "promtool: $(promtool --version 2>&1 | head -1)"
