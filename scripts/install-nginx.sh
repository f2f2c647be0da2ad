#!/usr/bin/env bash
# Install Debian's nginx for the reverse-proxy tests (tests/integration/test_debug_access_nginx.py).
# Idempotent: does nothing when the binary is present. The tests start their own nginx
# (a config in a temporary directory, a free loopback port, `daemon off;`) and stop it;
# this script starts, stops or reconfigures no nginx service.
set -euo pipefail

binary="$(command -v nginx || true)"
[[ -z "$binary" && -x /usr/sbin/nginx ]] && binary=/usr/sbin/nginx
if [[ -n "$binary" ]]; then
    echo "nginx: $("$binary" -v 2>&1) ($binary)"
    exit 0
fi
sudo=""
[[ "$(id -u)" != 0 ]] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null \
    || { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends nginx >/dev/null; }
binary="$(command -v nginx || echo /usr/sbin/nginx)"
echo "nginx: $("$binary" -v 2>&1) ($binary)"
