#!/usr/bin/env bash
# Install Debian's Chromium and its WebDriver for the dashboard tests. Idempotent:
# does nothing when both are present. (No browser download of any test framework.)
set -euo pipefail

if command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1; then
    echo "chromium: $(chromium --version 2>/dev/null | head -1); chromedriver present"
    exit 0
fi
if [[ "$(id -u)" -ne 0 ]]; then
    SUDO=sudo
else
    SUDO=
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core >/dev/null
echo "chromium: $(chromium --version 2>/dev/null | head -1); chromedriver: $(command -v chromedriver)"
