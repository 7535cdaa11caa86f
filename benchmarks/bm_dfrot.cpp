// SPDX-License-Identifier: Apache-2.0
// bm_dfrot.cpp: DFRot at LLaMA scale (C = 4096, 16384 rows): one alternating step and its parts
// on 1 and 2 threads, extrapolated to the released 100 steps; peer: one plain Eigen GEMM.
//
// What is parallel: the two T x C x C products of a step (A R through row blocks, (A R)^T Q(A R)
// through column blocks of the result), the per-token quantization and the C x C product R P go
// through rotquant's executor (a thread_pool_executor here). The SVD and the QR of the C x C
// matrices run on the calling thread: Eigen parallelises nothing without OpenMP and the
// benchmarks are not built with it. "100 steps" counters are 100 x the measured step time
// (each step does the same work), not a measured 100-step run.
// Names: BM_dfrot_step/C:4096/rows:16384/sample:4096/thr:2 (sample = normal rows sampled, 0 =
// all; thr = rotquant's pool size), BM_dfrot_part<part::svd_polar>/C:4096/rows:16384/thr:1.
// Counters: objective_rows (a count), step_s (seconds), x100_steps_min (minutes) and
// flops_per_second (2 T C^2 per second, for the two T x C x C products and their peer).
// Eigen's AVX-512 GEMM kernels trip GCC 12's -Wmaybe-uninitialized inside the intrinsic headers
// (GCC bug 105593) when built with -march=native; not our code, so silence it for this file.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <map>
#include <memory>
#include <utility>
#include <vector>

#include "rotquant/transforms/dfrot.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;

/// LLaMA-like RMSNorm outputs (as in the tests): N(0, 1), 4 outlier channels offset by +-6,
/// 3 massive tokens with values in the thousands, rows scaled to norm sqrt(C).
const matrix_f& calibration_rows(index_t t, index_t c) {
  static std::map<std::pair<index_t, index_t>, std::unique_ptr<matrix_f>> cache;
  auto& slot = cache[{t, c}];
  if (!slot) {
    slot = std::make_unique<matrix_f>(rotquant::random_normal_matrix<float>(t, c, 2024));
    matrix_f& x = *slot;
    for (int k = 0; k < 4; ++k) x.col((k * 37 + 5) % c).array() += (k % 2 ? -6.0f : 6.0f);
    for (index_t m : {index_t(0), t / 3, t / 2 + 1}) {
      x(m, 11 % c) = 2400.0f;
      x(m, 1415 % c) = -1700.0f;
    }
    for (index_t r = 0; r < t; ++r) x.row(r) *= std::sqrt(static_cast<float>(c)) / x.row(r).norm();
  }
  return *slot;
}

/// The weighted objective rows A = X S (randomized Hadamard start), massive rows times 100,
/// optionally with only `sample` normal rows (weighted sqrt(N / n)).
matrix_f objective_rows(index_t t, index_t c, index_t sample) {
  const matrix_f& x = calibration_rows(t, c);
  const auto mask = rotquant::detect_massive_tokens(x);
  std::vector<index_t> massive, normal;
  for (index_t i = 0; i < t; ++i)
    (mask[static_cast<std::size_t>(i)] ? massive : normal).push_back(i);
  const index_t n = sample > 0 ? sample : static_cast<index_t>(normal.size());
  matrix_f a(static_cast<index_t>(massive.size()) + n, c);
  index_t r = 0;
  for (index_t i : massive) a.row(r++) = 100.0f * x.row(i);
  const auto perm = rotquant::random_permutation(static_cast<index_t>(normal.size()), 1);
  const float w = std::sqrt(static_cast<float>(normal.size()) / static_cast<float>(n));
  for (index_t k = 0; k < n; ++k)
    a.row(r++) = w * x.row(normal[static_cast<std::size_t>(perm[static_cast<std::size_t>(k)])]);
  rotquant::randomized_hadamard(c, 42).apply_inplace(rotquant::view(a));
  return a;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// One whole alternating step: refine_rotation(steps = 1), i.e. the initial quantization of A
/// (about 1% of it) plus cross product, SVD, R P, QR, A R', quantization and loss.
/// Args: C, rows, sampled normal rows (0 = all), threads.
void BM_dfrot_step(benchmark::State& state) {
  const index_t c = state.range(0), t = state.range(1), sample = state.range(2);
  const int threads = static_cast<int>(state.range(3));
  const matrix_f a = objective_rows(t, c, sample);
  rotquant::thread_pool_executor pool(threads);
  const rotquant::dfrot_sym_quantizer q;
  double seconds = 0.0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const auto r = rotquant::detail::refine_rotation(a, 1, 100.0, 0.1, q, &pool);
    benchmark::DoNotOptimize(r.rotation.data());
    seconds = seconds_since(t0);
  }
  state.counters["objective_rows"] = static_cast<double>(a.rows());
  state.counters["step_s"] = seconds;
  state.counters["x100_steps_min"] = 100.0 * seconds / 60.0;
}

/// The parts of a step. Args: C, rows, threads (ignored by the serial parts).
enum class part { cross_product, multiply_rows, quantize, svd_polar, householder_q, r_times_p };

template <part P>
void BM_dfrot_part(benchmark::State& state) {
  const index_t c = state.range(0), t = state.range(1);
  const int threads = static_cast<int>(state.range(2));
  rotquant::thread_pool_executor pool(threads);
  const rotquant::dfrot_sym_quantizer q;
  matrix_f a, aq, out;
  matrix_d m, p;
  if (P == part::cross_product || P == part::multiply_rows || P == part::quantize) {
    a = objective_rows(t, c, 0);
    rotquant::detail::fake_quantize_rows(a, aq, q, &pool);
  }
  if (P == part::svd_polar || P == part::householder_q || P == part::r_times_p) {
    m = rotquant::random_normal_matrix(c, c, 5);
    p = rotquant::random_orthogonal(c, 6);
  }
  const matrix_f r = rotquant::random_orthogonal(c, 7).cast<float>();
  for (auto _ : state) {
    switch (P) {
      case part::cross_product:
        m = rotquant::detail::cross_product(a, aq, &pool);
        break;
      case part::multiply_rows:
        rotquant::detail::multiply_rows(a, r, out, &pool);
        break;
      case part::quantize:
        rotquant::detail::fake_quantize_rows(a, out, q, &pool);
        break;
      case part::svd_polar:
        p = rotquant::detail::polar_factor(m);
        break;
      case part::householder_q:
        m = rotquant::detail::householder_q(p);
        break;
      case part::r_times_p: {
        matrix_d rp(c, c);
        rotquant::parallel_for(
            0, c, rotquant::detail::dfrot_col_grain,
            [&](index_t lo, index_t hi) {
              rp.middleRows(lo, hi - lo).noalias() = m.middleRows(lo, hi - lo) * p;
            },
            &pool);
        benchmark::DoNotOptimize(rp.data());
        break;
      }
    }
    benchmark::ClobberMemory();
  }
  if (P == part::cross_product || P == part::multiply_rows)
    state.counters["flops_per_second"] =
        benchmark::Counter(2.0 * t * c * c, benchmark::Counter::kIsIterationInvariantRate);
}

/// Peer: the product A R as one plain Eigen call (single-threaded without OpenMP), the same
/// T x C x C fp32 product that multiply_rows splits over the executor.
void BM_peer_eigen_gemm(benchmark::State& state) {
  const index_t c = state.range(0), t = state.range(1);
  const matrix_f& a = calibration_rows(t, c);
  const matrix_f r = rotquant::random_orthogonal(c, 7).cast<float>();
  matrix_f out(t, c);
  for (auto _ : state) {
    out.noalias() = a * r;
    benchmark::ClobberMemory();
  }
  state.counters["flops_per_second"] =
      benchmark::Counter(2.0 * t * c * c, benchmark::Counter::kIsIterationInvariantRate);
}

void step_args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) {
    b->Args({1024, 4096, 0, threads});
    b->Args({4096, 16384, 0, threads});
    b->Args({4096, 16384, 4096, threads});  // sampled: 3 massive + 4096 of the 16381 others
  }
  b->ArgNames({"C", "rows", "sample", "thr"})
      ->Iterations(1)
      ->Unit(benchmark::kSecond)
      ->UseRealTime();
}

void part_args(benchmark::internal::Benchmark* b) {
  for (int threads : {1, 2}) b->Args({4096, 16384, threads});
  b->ArgNames({"C", "rows", "thr"})->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
}

void serial_part_args(benchmark::internal::Benchmark* b) {
  b->Args({4096, 16384, 1})
      ->ArgNames({"C", "rows", "thr"})
      ->Iterations(1)
      ->Unit(benchmark::kSecond)
      ->UseRealTime();
}

}  // namespace

BENCHMARK(BM_dfrot_step)->Apply(step_args);
BENCHMARK_TEMPLATE(BM_dfrot_part, part::cross_product)->Apply(part_args);
BENCHMARK_TEMPLATE(BM_dfrot_part, part::multiply_rows)->Apply(part_args);
BENCHMARK(BM_peer_eigen_gemm)
    ->Args({4096, 16384})
    ->ArgNames({"C", "rows"})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_dfrot_part, part::quantize)->Apply(part_args);
BENCHMARK_TEMPLATE(BM_dfrot_part, part::r_times_p)->Apply(part_args);
BENCHMARK_TEMPLATE(BM_dfrot_part, part::svd_polar)->Apply(serial_part_args);
BENCHMARK_TEMPLATE(BM_dfrot_part, part::householder_q)->Apply(serial_part_args);
