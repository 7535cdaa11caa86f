#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# compile_cost.sh: what including rotquant costs a consumer. For each case below (or the
# headers given as arguments), compiles a TU holding only those #includes with
# `${CXX:-g++} -std=c++17 -O2 -c` and prints wall seconds and peak memory (GNU time), the
# median of RUNS=3 compiles.
#   bash tools/compile_cost.sh                 # the standard cases and their targets
#   bash tools/compile_cost.sh rotquant/io/npy.hpp rotquant/kernels/gemm.hpp
# Extra flags (e.g. -DROTQUANT_COMPILED) come from CXXFLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
cxx=${CXX:-g++}
eigen=$(pkg-config --cflags eigen3 2>/dev/null || echo -I/usr/include/eigen3)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
[ -x /usr/bin/time ] || { echo "compile_cost.sh needs GNU time (Debian: apt-get install time)" >&2; exit 2; }

measure() {  # name target_s target_mb headers... (a header "+use" appends $tmp/use.cpp)
  local name=$1 ts=$2 tm=$3
  shift 3
  : >"$tmp/tu.cpp"
  for h in "$@"; do
    if [ "$h" = "+use" ]; then cat "$tmp/use.cpp" >>"$tmp/tu.cpp"; else echo "#include <$h>" >>"$tmp/tu.cpp"; fi
  done
  # The median of RUNS compiles (default 3; a shared VM's timings vary by 10-20%), its memory.
  local runs=${RUNS:-3} i
  : >"$tmp/all"
  for ((i = 0; i < runs; i++)); do
    # shellcheck disable=SC2086
    /usr/bin/time -f "%e %M" -o "$tmp/t" $cxx -std=c++17 -O2 ${CXXFLAGS:-} -Iinclude $eigen \
      -c "$tmp/tu.cpp" -o "$tmp/tu.o"
    cat "$tmp/t" >>"$tmp/all"
  done
  read -r s kb < <(sort -n "$tmp/all" | sed -n "$(((runs + 1) / 2))p")
  local mb=$(( kb / 1024 )) verdict=""
  if [ "$ts" != "-" ]; then
    if awk -v s="$s" -v t="$ts" 'BEGIN{exit !(s<=t)}' && [ "$mb" -le "$tm" ]; then
      verdict="ok (target <= ${ts} s, <= ${tm} MB)"
    else
      verdict="OVER (target <= ${ts} s, <= ${tm} MB)"
    fi
  fi
  printf '%-34s %7.2f s %6d MB  %s\n' "$name" "$s" "$mb" "$verdict"
}

echo "compiler: $($cxx --version | head -n 1); flags: -O2 ${CXXFLAGS:-}"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
if [ $# -gt 0 ]; then
  for h in "$@"; do measure "$h" - - "$h"; done
  exit 0
fi
# What an engine's TU pays: the inference header alone, then with one layer loaded from a
# transform file and run (every ISA path of the kernels and the Hadamard instantiated).
cat >"$tmp/use.cpp" <<'CPP'
rotquant::matrix_f run_layer(const std::string& file, const rotquant::packed_weights& w,
                             const rotquant::matrix_f& x) {
  const rotquant::w4a4_linear layer(rotquant::io::load_transform(file, "online"), w);
  return layer.forward(x);
}
CPP
measure "inference.hpp" 5 512 rotquant/inference.hpp
measure "inference.hpp + a layer's forward" - - rotquant/inference.hpp +use
measure "kernels/gemm.hpp" - - rotquant/kernels/gemm.hpp
measure "io/transform_file.hpp" - - rotquant/io/transform_file.hpp
measure "pipeline/presets.hpp" 15 1024 rotquant/pipeline/presets.hpp
measure "rotquant.hpp (umbrella)" 15 1024 rotquant/rotquant.hpp
