#!/usr/bin/env bash
# Installs the etcd3gw Python client (etcd's grpc-gateway JSON API) into the target directory,
# never system-wide, for registry-node/tests/it/http_api.rs (its PYTHONPATH). Pinned; a second
# run finds it and returns. Needs python3 with pip and the PyPI registry.
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
VERSION=2.7.0
dir="$target/interop/etcd3gw"
have() { PYTHONPATH="$dir" python3 -c 'import importlib.metadata as m; print(m.version("etcd3gw"))' 2>/dev/null; }
if [ "$(have)" != "$VERSION" ]; then
  rm -rf "$dir"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --target "$dir" "etcd3gw==$VERSION"
fi
echo "etcd3gw $(have) in $dir"
