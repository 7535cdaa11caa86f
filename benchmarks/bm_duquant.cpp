// SPDX-License-Identifier: Apache-2.0
// bm_duquant.cpp: time to build the DuQuant transform of one linear input (R1, zigzag, R2),
// exact fast search vs the straightforward search of the released code, in one binary.
//
// Shape: T = 2048 tokens, C in {4096, 11008}, B = 128, N = 256, p = 1 (the released scripts).
// Data: "llm": LLM-like activation (lognormal per-channel scales, 8 outlier channels with
// a consistent offset of 20-60, 3 massive tokens of 500-1500 in 2 channels); "gauss": plain
// N(0, 1), the worst case for the norm bound (every row norm is close to every other).
// Names: BM_duquant_<search>_<data>/C:4096. Counters (counts, no unit): row_steps = B x B row
// products performed by the two searches; full_row_steps = the 2 * (T C / B) * N of them the
// straightforward search does; k1, k2 = the zigzag step counts the two searches chose. Run e.g.
//   build/release/benchmarks/bm_duquant --benchmark_counters_tabular=true
// GCC 12 reports a false -Wmaybe-uninitialized inside Eigen's AVX-512 GEMM packing (the
// intrinsics headers) under -march=native; silenced for the headers only.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdint>

#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/duquant.hpp"
#pragma GCC diagnostic pop

namespace {

using rotquant::index_t;
using rotquant::matrix_f;

matrix_f make_llm_like(index_t t, index_t c, std::uint64_t seed) {
  rotquant::rng g(seed);
  std::vector<double> scale(static_cast<std::size_t>(c)), offset(static_cast<std::size_t>(c), 0.0);
  for (auto& s : scale) s = std::exp(0.5 * g.normal());
  for (int i = 0; i < 8; ++i)
    offset[g.uniform_int(static_cast<std::uint64_t>(c))] = g.sign() * (20.0 + 40.0 * g.uniform());
  matrix_f x(t, c);
  for (index_t r = 0; r < t; ++r)
    for (index_t j = 0; j < c; ++j) {
      const auto sj = static_cast<std::size_t>(j);
      x(r, j) = static_cast<float>(offset[sj] + scale[sj] * g.normal());
    }
  for (int i = 0; i < 3; ++i) {
    const auto r = static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(t)));
    for (int k = 0; k < 2; ++k)
      x(r, static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(c)))) =
          static_cast<float>(g.sign() * (500.0 + 1000.0 * g.uniform()));
  }
  return x;
}

matrix_f make_gauss(index_t t, index_t c, std::uint64_t seed) {
  return rotquant::random_normal_matrix<float>(t, c, seed);
}

void run(benchmark::State& state, bool llm, bool exhaustive) {
  const index_t t = 2048, c = state.range(0);
  const matrix_f x = llm ? make_llm_like(t, c, 2) : make_gauss(t, c, 2);
  rotquant::duquant_options opt;  // B = 128, N = 256, p = 1, released_code
  opt.exhaustive = exhaustive;
  std::int64_t work = 0;
  index_t k1 = 0, k2 = 0;
  for (auto _ : state) {
    const auto res = rotquant::duquant(x, opt);
    benchmark::DoNotOptimize(res.xform.num_stages());
    work = res.rotations[0].searches[0].row_steps + res.rotations[1].searches[0].row_steps;
    k1 = res.rotations[0].searches[0].chosen;
    k2 = res.rotations[1].searches[0].chosen;
  }
  state.counters["row_steps"] = static_cast<double>(work);
  state.counters["full_row_steps"] = static_cast<double>(2 * (t * c / 128) * 256);
  state.counters["k1"] = static_cast<double>(k1);
  state.counters["k2"] = static_cast<double>(k2);
}

void BM_duquant_fast_llm(benchmark::State& s) {
  run(s, true, false);
}
void BM_duquant_straightforward_llm(benchmark::State& s) {
  run(s, true, true);
}
void BM_duquant_fast_gauss(benchmark::State& s) {
  run(s, false, false);
}
void BM_duquant_straightforward_gauss(benchmark::State& s) {
  run(s, false, true);
}

BENCHMARK(BM_duquant_fast_llm)
    ->Arg(4096)
    ->Arg(11008)
    ->ArgNames({"C"})
    ->Unit(benchmark::kMillisecond)
    ->MinTime(2.0);
BENCHMARK(BM_duquant_straightforward_llm)
    ->Arg(4096)
    ->Arg(11008)
    ->ArgNames({"C"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_duquant_fast_gauss)
    ->Arg(4096)
    ->ArgNames({"C"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);
BENCHMARK(BM_duquant_straightforward_gauss)
    ->Arg(4096)
    ->ArgNames({"C"})
    ->Unit(benchmark::kMillisecond)
    ->Iterations(1);

}  // namespace
