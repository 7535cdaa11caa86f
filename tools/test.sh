#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# test.sh: build and run the whole test suite (README's second command). Stages, in order:
#   dev         RelWithDebInfo build of everything; all tests, consumption tests, format check
#   isa-scalar  the dev binaries again under ROTQUANT_ISA=scalar (every kernel on its reference
#               path; nothing rebuilt)
#   asan        AddressSanitizer, every test
#   tsan        ThreadSanitizer on the threading, GEMM, quantize and pipeline tests
#   scalar      ROTQUANT_FORCE_SCALAR build (no SIMD path compiled in) under UBSan: dispatch,
#               core, kernels
#   aarch64     cross-built with g++-aarch64-linux-gnu, every test under qemu-aarch64
#   fuzz        clang libFuzzer targets of the file parsers, run briefly under ASan + UBSan
#   bench       release build of the Google Benchmark binaries, each run once on its smallest case
# Pass stage names to run a subset. The summary prints each stage's configure, build and test
# wall times and the total.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
presets=("$@")
[ ${#presets[@]} -eq 0 ] && presets=(dev isa-scalar asan tsan scalar aarch64 fuzz bench)
pkgs=(g++ cmake make libeigen3-dev libgtest-dev googletest)
for p in "${presets[@]}"; do
  case "$p" in
    dev) pkgs+=(python3-numpy python3-torch pkg-config clang clang-format) ;;
    aarch64) pkgs+=(g++-aarch64-linux-gnu qemu-user) ;;
    fuzz) pkgs+=(clang libclang-rt-dev) ;;
    bench | release) pkgs+=(libbenchmark-dev pkg-config) ;;
  esac
done
rq_ensure_packages "${pkgs[@]}"

# stage -> "configure-preset build-preset test-preset"
steps_of() {
  case "$1" in
    isa-scalar) echo "dev dev isa-scalar" ;;
    bench) echo "release release-bench release-bench" ;;
    *) echo "$1 $1 $1" ;;
  esac
}

status=0
summary=()
total_start=$(date +%s)
mkdir -p build
for p in "${presets[@]}"; do
  read -r conf bld tst <<<"$(steps_of "$p")"
  echo "=== rotquant: stage '$p' (configure $conf, build $bld, test $tst) ==="
  log="build/log-$p.txt"
  : >"$log"
  times=()
  rc=0
  for step in configure build test; do
    t0=$(date +%s)
    set +e
    case "$step" in
      configure) cmake --preset "$conf" 2>&1 | tee -a "$log" ;;
      build) cmake --build --preset "$bld" 2>&1 | tee -a "$log" ;;
      test) ctest --preset "$tst" 2>&1 | tee -a "$log" ;;
    esac
    rc=${PIPESTATUS[0]}
    set -e
    times+=("$step $(($(date +%s) - t0)) s")
    [ "$rc" -eq 0 ] || break
  done
  line=$(grep -E "tests passed|tests failed" "$log" | tail -n 1 || true)
  summary+=("$(printf '%-10s %-52s %s, exit %s' "$p:" "${line:-no ctest summary}" \
    "$(IFS=,; echo "${times[*]}" | sed 's/,/, /g')" "$rc")")
  [ "$rc" -eq 0 ] || status=1
done
echo "=== rotquant: summary ==="
printf '%s\n' "${summary[@]}"
total=$(($(date +%s) - total_start))
printf 'total: %d s (%d min %02d s) wall, %s CPUs\n' "$total" $((total / 60)) $((total % 60)) \
  "$(nproc)"
exit $status
