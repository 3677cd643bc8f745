#!/bin/bash
# Downloads, here, the Debian packages the GPU machine lacks (it has no network) into .gpu-debs/
# of this checkout; scripts/gpu-check.sh unpacks them there. Keep .gpu-debs/ out of git
# (.git/info/exclude) and name it in the device call's carry.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-debs && cd .gpu-debs
apt-get download \
  libcaf-core0.17 libcaf-io0.17 libcaf-dev \
  libboost1.81-dev libboost-json1.81-dev libboost-json1.81.0 \
  libboost-container1.81-dev libboost-container1.81.0 \
  libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 \
  prometheus-cpp-dev libprometheus-cpp-core1.0 libmimalloc-dev libmimalloc2.0 \
  catch2 wrk libluajit-5.1-2 2>&1 | grep -v "^W: Download is performed unsandboxed" || true
du -sh .
