#!/usr/bin/env bash
# Installs this build (cmake --install) into BUILD/plugin-prefix and builds examples/plugin
# against it, out of tree, as a user would: what tests/integration/plugin_test.cpp then loads.
#   build_plugin.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
rm -rf "$build/plugin-prefix" "$build/plugin-build"
cmake --install "$build" --prefix "$build/plugin-prefix" --strip >/dev/null
cmake -S "$src/examples/plugin" -B "$build/plugin-build" \
      -DCMAKE_PREFIX_PATH="$build/plugin-prefix" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build/plugin-build"
test -f "$build/plugin-build/topk_plugin.so"
echo "build_plugin: ok"
