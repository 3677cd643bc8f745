#!/usr/bin/env bash
# Installs everything actorserve's build, tests and quickstart need on Debian 12. Idempotent:
# packages already present are skipped by apt and pip, and the venv is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(build-essential cmake ccache pkg-config python3-venv
      libcaf-dev libssl-dev libboost1.81-dev libboost-json1.81-dev
      catch2 libspdlog-dev prometheus-cpp-dev curl prometheus openssl
      libhiredis-dev redis-server libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev
      protobuf-compiler clang libclang-rt-14-dev
      libturbojpeg0-dev libpng-dev libcurl4-openssl-dev libmimalloc-dev)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# PyPI torch 2.11.0 is the GPU machine's version; its wheel carries libtorch (headers, CMake config).
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
if ! .venv/bin/python -c 'import torch, torchvision, sys; sys.exit(torch.__version__.split("+")[0] != "2.11.0")' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check torch==2.11.0 torchvision==0.26.0
fi
# Triton's own HTTP and gRPC clients: the integration tests check protocol compatibility with them.
if ! .venv/bin/python -c 'import tritonclient.http, tritonclient.grpc' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check "tritonclient[http,grpc]"
fi
# An HTTP/2 client that can send what gRPC's clients never do (the rapid-reset flood test).
if ! .venv/bin/python -c 'import h2' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check h2
fi
# A Redis client for the event-queue examples and benchmark (examples/queue/).
if ! .venv/bin/python -c 'import redis' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check redis
fi
# Photographs (scikit-image's sample images) for the image pipeline's tests and benchmark.
if ! .venv/bin/python -c 'import skimage.data' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check scikit-image
fi
# OpenTelemetry's protobuf definitions: the tracing test's collector decodes what the node exports.
if ! .venv/bin/python -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check opentelemetry-proto
fi
# Kubernetes' API schemas, offline, for the manifests' check (tests/kubernetes/check_manifests.py).
if ! .venv/bin/python -c 'import kubernetes_validate' 2>/dev/null; then
  .venv/bin/pip install -q --disable-pip-version-check kubernetes-validate
fi
echo "install-deps: done"
