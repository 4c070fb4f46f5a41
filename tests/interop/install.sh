#!/usr/bin/env bash
# Installs the independent gRPC stacks of the interop tests (tests/tests/interop_*.rs) into the
# target directory, never system-wide: Python grpcio into $TARGET/interop/python (the tests'
# PYTHONPATH) and Node @grpc/grpc-js into $TARGET/interop/node/node_modules (their NODE_PATH).
# Versions are pinned here and in node/package-lock.json; a second run finds them and returns.
# Needs python3 (3.11) with pip and node (20) with npm, and the PyPI and npm registries.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
GRPCIO=1.85.1
py="$target/interop/python"
node="$target/interop/node"

if [ "$(PYTHONPATH="$py" python3 -c 'import grpc; print(grpc.__version__)' 2>/dev/null)" != "$GRPCIO" ]; then
  rm -rf "$py"
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --root-user-action=ignore \
    --target "$py" "grpcio==$GRPCIO"
fi
echo "interop: grpcio $(PYTHONPATH="$py" python3 -c 'import grpc; print(grpc.__version__)') in $py"

mkdir -p "$node"
# npm ci installs exactly the lock file; it is rerun only when the lock file changed.
if ! cmp -s "$root/tests/interop/node/package-lock.json" "$node/package-lock.json" \
  || [ ! -f "$node/node_modules/@grpc/grpc-js/package.json" ]; then
  cp "$root/tests/interop/node/package.json" "$root/tests/interop/node/package-lock.json" "$node/"
  npm ci --prefix "$node" --no-audit --no-fund --loglevel=error
fi
echo "interop: @grpc/grpc-js $(node -p 'require(process.argv[1]).version' \
  "$node/node_modules/@grpc/grpc-js/package.json") in $node/node_modules"
