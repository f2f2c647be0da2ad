#!/usr/bin/env bash
# Vendor the dashboard's chart library (uPlot, MIT) from the npm registry into the package.
# Reproducible: a pinned version, checked against its published integrity hash.
# Re-run after changing UPLOT_VERSION; commit the files it writes.
set -euo pipefail

UPLOT_VERSION="1.6.32"
UPLOT_INTEGRITY="sha512-KIMVnG68zvu5XXUbC4LQEPnhwOxBuLyW1AHtpm6IKTXImkbLgkMy+jabjLgSLMasNuGGzQm/ep3tOkyTxpiQIw=="

here="$(cd "$(dirname "$0")/.." && pwd)"
dest="$here/src/pooltender/dashboard/static/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
npm pack --silent "uplot@${UPLOT_VERSION}" >/dev/null
tarball="uplot-${UPLOT_VERSION}.tgz"
actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
if [[ "$actual" != "$UPLOT_INTEGRITY" ]]; then
    echo "vendor-assets: integrity mismatch for uplot@${UPLOT_VERSION}: $actual" >&2
    exit 1
fi
tar -xzf "$tarball"
mkdir -p "$dest"
cp package/dist/uPlot.iife.min.js "$dest/uPlot.iife.min.js"
cp package/dist/uPlot.min.css "$dest/uPlot.min.css"
cp package/LICENSE "$dest/uPlot.LICENSE"
echo "uplot ${UPLOT_VERSION}" > "$dest/VERSIONS"
echo "vendored uplot@${UPLOT_VERSION} into ${dest#"$here"/}"
