#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test through ctest.
#   tools/test.sh                 normal build in build/
#   MESHD_SANITIZE=address tools/test.sh   ASan+UBSan build in build-address/
#   MESHD_SANITIZE=thread  tools/test.sh   TSan build in build-thread/
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/tools/bootstrap.sh"

san="${MESHD_SANITIZE:-}"
build="$root/build${san:+-$san}"
jobs="$(nproc)"
# Let ccache share results between clones of the repo (CI builds a fresh one).
export CCACHE_BASEDIR="$root"
export CCACHE_NOHASHDIR=1

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DMESHD_BUILD_TESTS=ON ${san:+-DMESHD_SANITIZE=$san} >/dev/null
cmake --build "$build" -j "$jobs"
cd "$build"
if [ "$san" = address ]; then
  # Leaks inside CAF itself, each explained in the file.
  export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
fi
ctest --output-on-failure -j "$jobs" --timeout 600
