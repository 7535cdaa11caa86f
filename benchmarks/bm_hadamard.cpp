// SPDX-License-Identifier: Apache-2.0
// bm_hadamard.cpp: the fast Hadamard transform over rows x n floats against the peers a user
// would pick instead: a textbook three-loop radix-2 FWHT (plus a naive K x K loop for K * 2^m,
// as QuaRot's CPU code does it), a dense Eigen rotation X T^T, and a plain memcpy of the same
// bytes (the memory-speed floor for batches beyond the caches).
//
// Names spell out every argument: BM_rotquant/n:4096/rows:2048/isa:auto (isa: auto = the best
// path of this CPU, its name in the label; scalar, avx2, avx512: that path forced), the peers
// BM_textbook/n:4096/rows:2048, BM_eigen_dense/..., BM_memcpy/...
// Counters (per CPU second of the one benchmark thread, so a busy shared machine inflates wall
// time but not these): time_per_row (CPU time / rows, printed in s, ms, us or ns),
// bytes_per_second (read + write of the rows) and el_log2n_per_second = rows * n * log2(n)
// per second (the FFT-style work rate: 1G/s is one element x log2(n) per ns). rows = 32 keeps
// the batch in L2 (compute speed); rows = 2048 and 8192 exceed it (memory speed). Run on one
// core, e.g. (Google Benchmark 1.7 takes --benchmark_min_time as a plain number of seconds)
//   bm_hadamard --benchmark_filter='n:4096/' --benchmark_min_time=0.2
// Eigen's own AVX-512 GEMM (the dense peer, built with -march=native) trips GCC 12's
// -Wmaybe-uninitialized inside the intrinsic headers (GCC bug 105593); silence it for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <benchmark/benchmark.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/hadamard.hpp"

namespace {

using rotquant::index_t;

std::vector<float> random_rows(index_t rows, index_t n) {
  std::vector<float> v(static_cast<std::size_t>(rows * n));
  rotquant::rng g(1);
  for (auto& x : v) x = static_cast<float>(g.uniform() * 2.0 - 1.0);
  return v;
}

void set_counters(benchmark::State& state, index_t rows, index_t n) {
  const double it = static_cast<double>(state.iterations());
  const double elems = static_cast<double>(rows) * static_cast<double>(n) * it;
  // Seconds per row: an inverted rate (rows per second, inverted), so the console prints a time.
  state.counters["time_per_row"] = benchmark::Counter(
      static_cast<double>(rows) * it, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
  state.counters["bytes_per_second"] =
      benchmark::Counter(2.0 * 4.0 * elems, benchmark::Counter::kIsRate);
  state.counters["el_log2n_per_second"] =
      benchmark::Counter(elems * std::log2(static_cast<double>(n)), benchmark::Counter::kIsRate);
}

// The ISA argument of BM_rotquant: auto (the best path of this CPU) or one path forced.
struct isa_choice {
  const char* name;
  bool automatic;
  rotquant::isa path;
};
const isa_choice kAuto = {"auto", true, rotquant::isa::scalar};
const isa_choice kScalar = {"scalar", false, rotquant::isa::scalar};
const isa_choice kAvx2 = {"avx2", false, rotquant::isa::avx2};
const isa_choice kAvx512 = {"avx512", false, rotquant::isa::avx512};

void BM_rotquant(benchmark::State& state, index_t n, index_t rows, isa_choice choice) {
  const auto which = choice.automatic ? rotquant::best_isa() : choice.path;
  if (!rotquant::isa_available(which)) {
    state.SkipWithError("ISA not available");
    return;
  }
  rotquant::scoped_isa force(which);
  rotquant::hadamard_plan plan(n);
  auto data = random_rows(rows, n);
  for (auto _ : state) {
    plan.apply_rows(data.data(), rows, n);
    benchmark::DoNotOptimize(data.data());
    benchmark::ClobberMemory();
  }
  if (choice.automatic) state.SetLabel(rotquant::to_string(which));
  set_counters(state, rows, n);
}

// The textbook CPU FWHT: three nested loops per row (stride, block, pair), then a scale; for
// n = K * 2^m QuaRot's CPU form follows: a naive K x K +-1 matrix product per column.
void textbook_row(float* x, index_t k, index_t m, const std::vector<float>& hk, float s,
                  std::vector<float>& tmp) {
  for (index_t b = 0; b < k; ++b) {
    float* y = x + b * m;
    for (index_t h = 1; h < m; h *= 2)
      for (index_t i = 0; i < m; i += 2 * h)
        for (index_t j = i; j < i + h; ++j) {
          const float a = y[j], c = y[j + h];
          y[j] = a + c;
          y[j + h] = a - c;
        }
  }
  if (k == 1) {
    for (index_t j = 0; j < m; ++j) x[j] *= s;
    return;
  }
  for (index_t j = 0; j < m; ++j) {
    for (index_t r = 0; r < k; ++r) {
      float acc = 0;
      for (index_t c = 0; c < k; ++c) acc += hk[static_cast<std::size_t>(r * k + c)] * x[c * m + j];
      tmp[static_cast<std::size_t>(r)] = acc * s;
    }
    for (index_t r = 0; r < k; ++r) x[r * m + j] = tmp[static_cast<std::size_t>(r)];
  }
}

void BM_textbook(benchmark::State& state) {
  const index_t n = state.range(0), rows = state.range(1);
  rotquant::hadamard_plan plan(n);
  const index_t k = plan.base_order(), m = plan.block_length();
  std::vector<float> hk(static_cast<std::size_t>(k * k));
  for (std::size_t i = 0; i < hk.size(); ++i) hk[i] = plan.base().entries[i];
  std::vector<float> tmp(static_cast<std::size_t>(k));
  const float s = static_cast<float>(1.0 / std::sqrt(static_cast<double>(n)));
  auto data = random_rows(rows, n);
  for (auto _ : state) {
    for (index_t r = 0; r < rows; ++r) textbook_row(data.data() + r * n, k, m, hk, s, tmp);
    benchmark::DoNotOptimize(data.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows, n);
}

// Dense rotation Y = X T^T with Eigen (what a user without a fast transform writes).
void BM_eigen_dense(benchmark::State& state) {
  const index_t n = state.range(0), rows = state.range(1);
  const rotquant::matrix_f t = rotquant::hadamard_matrix(n).cast<float>();
  const auto v = random_rows(rows, n);
  const rotquant::matrix_f x = Eigen::Map<const rotquant::matrix_f>(v.data(), rows, n);
  rotquant::matrix_f y(rows, n);
  for (auto _ : state) {
    y.noalias() = x * t.transpose();
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows, n);
}

// memcpy of the same bytes (reads rows * n floats, writes as many): the memory-speed floor.
void BM_memcpy(benchmark::State& state) {
  const index_t n = state.range(0), rows = state.range(1);
  const auto src = random_rows(rows, n);
  std::vector<float> dst(src.size());
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), src.size() * sizeof(float));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, rows, n);
}

const index_t kSizes[] = {128, 4096, 5120, 8192, 11008, 14336, 16384, 18944};

// BM_rotquant/n:N/rows:R/isa:NAME, one registration per point (the ISA spelled out).
void add_rotquant(index_t n, index_t rows, const isa_choice& choice) {
  const std::string name = "BM_rotquant/n:" + std::to_string(n) + "/rows:" + std::to_string(rows) +
                           "/isa:" + choice.name;
  benchmark::RegisterBenchmark(name.c_str(), BM_rotquant, n, rows, choice)
      ->Unit(benchmark::kMicrosecond);
}

int register_rotquant() {
  for (index_t rows : {2048, 8192})
    for (index_t n : kSizes) add_rotquant(n, rows, kAuto);
  // Per-ISA figures at n = 4096 (the reference size), beyond cache and in L2 (32 rows).
  for (const isa_choice& c : {kScalar, kAvx2, kAvx512}) add_rotquant(4096, 2048, c);
  for (index_t n : kSizes)
    for (const isa_choice& c : {kAvx2, kAvx512}) add_rotquant(n, 32, c);
  return 0;
}
[[maybe_unused]] const int rotquant_registered = register_rotquant();

void peer_args(benchmark::internal::Benchmark* b) {
  for (index_t rows : {2048, 8192})
    for (index_t n : kSizes) b->Args({n, rows});
  for (index_t n : kSizes) b->Args({n, 32});
}

// The textbook loop's naive K x K part makes large-K sizes take seconds per iteration at 8192
// rows; there it runs at 2048 and 32 rows only.
void textbook_args(benchmark::internal::Benchmark* b) {
  for (index_t rows : {2048, 8192})
    for (index_t n : kSizes)
      if (rows == 2048 || (n & (n - 1)) == 0) b->Args({n, rows});
  for (index_t n : kSizes) b->Args({n, 32});
}

void dense_args(benchmark::internal::Benchmark* b) {
  for (index_t n : {128, 4096, 5120}) b->Args({n, 2048});
}

BENCHMARK(BM_textbook)
    ->Apply(textbook_args)
    ->ArgNames({"n", "rows"})
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_memcpy)->Apply(peer_args)->ArgNames({"n", "rows"})->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_eigen_dense)
    ->Apply(dense_args)
    ->ArgNames({"n", "rows"})
    ->Unit(benchmark::kMicrosecond);

}  // namespace
