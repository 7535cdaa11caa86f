#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh: build and run the whole test suite (README's second command):
# dev (with consumption tests), asan (ASan+UBSan), tsan (ThreadSanitizer on the threading,
# GEMM, quantize and pipeline tests only), scalar (forced reference path) and
# aarch64 (cross-built, run under qemu-aarch64) and fuzz (clang libFuzzer targets of the file
# parsers, run briefly under ASan+UBSan). Pass preset names to run a subset.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(dev asan tsan scalar aarch64 fuzz)
pkgs=(g++ cmake make libeigen3-dev libgtest-dev googletest)
for p in "${presets[@]}"; do
  case "$p" in
    dev) pkgs+=(python3-numpy python3-torch pkg-config) ;;  # exporter and pkg-config tests
    aarch64) pkgs+=(g++-aarch64-linux-gnu qemu-user) ;;
    fuzz) pkgs+=(clang libclang-rt-dev) ;;
    release) pkgs+=(libbenchmark-dev pkg-config) ;;
  esac
done
rq_ensure_packages "${pkgs[@]}"
status=0
summary=()
for p in "${presets[@]}"; do
  echo "=== rotquant: workflow preset '$p' ==="
  start=$(date +%s)
  mkdir -p build
  set +e
  cmake --workflow --preset "$p" 2>&1 | tee "build/log-$p.txt"
  rc=${PIPESTATUS[0]}
  set -e
  line=$(grep -E "tests passed|tests failed" "build/log-$p.txt" | tail -n 1 || true)
  summary+=("$p: ${line:-no ctest summary} ($(( $(date +%s) - start )) s, exit $rc)")
  [ "$rc" -eq 0 ] || status=1
done
echo "=== rotquant: summary ==="
printf '%s\n' "${summary[@]}"
exit $status
