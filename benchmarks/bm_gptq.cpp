// SPDX-License-Identifier: Apache-2.0
// bm_gptq.cpp: GPTQ (quant/gptq.hpp) on one n x n linear layer vs a straightforward
// column-by-column Eigen implementation of the same algorithm, in one binary.
//
// Data: W = 0.02 N(0, 1) [n, n]; X [2048, n] calibration rows, N(0, 1) with 8 large channels
// (x 10 .. x 45); weights INT4 symmetric per output channel with QuaRot's --w_clip MSE search
// (quantizer::gptq_weight(4, true, true)); QuaRot's fasterquant defaults (block 128, percdamp
// 0.01, no act-order).
//
// Names: BM_gptq_layer/n:4096/rows:2048/thr:1 (n x n weight, rows = calibration rows, thr =
// rotquant::thread_pool_executor size, caller included). Rows (times are real time):
//   BM_gptq_layer            end to end: hessian_accumulator<float>::add(X) + hessian() + gptq()
//   BM_gptq_hessian          the Hessian part alone (add + hessian())
//   BM_gptq_quantize         gptq(W, H, q) given H: params, factor, column loop
//   BM_gptq_part_params      where BM_gptq_quantize's time goes, 1: the per-row --w_clip search
//                            (timed as rotquant::quantize(q, W), which runs the same search and
//                            then encodes; gptq finds these params once, up front)
//   BM_gptq_part_factor      2: U, the upper Cholesky factor of (H + damp I)^-1
//                            (detail::gptq_inverse_factor: one Cholesky, one triangular inverse)
//                            the rest of BM_gptq_quantize is the blocked column loop
//   BM_gptq_straightforward  the peer, end to end on one thread: H = 2/T X^T X (Eigen GEMM),
//                            QuaRot's --w_clip search in Eigen arrays (80 candidates, |.|^2.4),
//                            Eigen LLT, H^-1 = llt.solve(I), U = LLT(H^-1).matrixU(), then per
//                            column the RTN code with the per-row scales and a rank-1 update of
//                            every remaining column (no blocking). Before timing, a one-off
//                            check: its output error ||X (W - Q)^T||^2 must be within 1% of
//                            rotquant's (else the row is an error). Counters: hessian_s, search_s,
//                            factor_s, loop_s (its own parts, seconds), err_diff_ppm (the check's
//                            relative difference, parts per million: 10000 = 1%),
//                            x_straightforward = its time / BM_gptq_layer's
//                            time at the same n on one thread (above 1: rotquant is faster);
//                            present only when that row ran earlier in the same process (not
//                            filtered out).
// BM_gptq_hessian's flops_per_second counts 2 flops per multiply-add of the product's lower
// triangle; BM_gptq_quantize's loss is gptq()'s (no unit). Run e.g.
//   build/release/benchmarks/bm_gptq --benchmark_filter='n:1024/'
#include <benchmark/benchmark.h>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/quant/gptq.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_f;
using clock_type = std::chrono::steady_clock;

constexpr index_t kCalibRows = 2048;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

rotquant::quantizer weight_quantizer() {
  return rotquant::quantizer::gptq_weight(4, true, /*mse_clip=*/true);
}

const matrix_f& weight(index_t n) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[n];
  if (!p)
    p = std::make_unique<matrix_f>(
        0.02f * rotquant::random_normal_matrix<float>(n, n, 101 + static_cast<std::uint64_t>(n)));
  return *p;
}

const matrix_f& calibration(index_t n) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[n];
  if (!p) {
    p = std::make_unique<matrix_f>(
        rotquant::random_normal_matrix<float>(kCalibRows, n, 7 + static_cast<std::uint64_t>(n)));
    for (index_t k = 0; k < 8; ++k)  // a few large channels, spread over the row
      p->col((k * 997 + 13) % n) *= 10.0f + 5.0f * static_cast<float>(k);
  }
  return *p;
}

const matrix_f& hessian(index_t n) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[n];
  if (!p) {
    rotquant::hessian_accumulator<float> h(n);
    h.add(calibration(n));
    p = std::make_unique<matrix_f>(h.hessian());
  }
  return *p;
}

// ||X (W - Q)^T||_F^2 in double.
double output_error(const matrix_f& x, const matrix_f& w, const matrix_f& q) {
  const matrix_f d = w - q;
  const matrix_f y = x * d.transpose();
  return y.cast<double>().squaredNorm();
}

// rotquant's quantized weight for the equivalence check (one thread, computed once per n).
const matrix_f& rotquant_result(index_t n) {
  static std::map<index_t, std::unique_ptr<matrix_f>> cache;
  auto& p = cache[n];
  if (!p)
    p = std::make_unique<matrix_f>(
        rotquant::gptq(weight(n), hessian(n), weight_quantizer()).dequantized);
  return *p;
}

// BM_gptq_layer's seconds per iteration on one thread, by n (for x_straightforward).
std::map<index_t, double>& layer_seconds() {
  static std::map<index_t, double> m;
  return m;
}

// ------------------------------------------------------------------ the straightforward peer

struct peer_times {
  double hessian_s = 0, search_s = 0, factor_s = 0, loop_s = 0;
};

// GPTQ column by column (fasterquant without the lazy block updates), float, Eigen's default
// column-major layout so that a weight column is contiguous. Returns the quantized weight
// [rows, C] (row-major, as rotquant's dequantized).
matrix_f straightforward_gptq(const matrix_f& W, const matrix_f& X, const rotquant::quantizer& q,
                              peer_times& t, double percdamp = 0.01) {
  const index_t rows = W.rows(), C = W.cols();
  auto t0 = clock_type::now();
  Eigen::MatrixXf H = (2.0f / static_cast<float>(X.rows())) * (X.transpose() * X);
  t.hessian_s = seconds_since(t0);

  t0 = clock_type::now();
  Eigen::MatrixXf w = W;
  // Per-row scales as GPTQ's find_params(W) ahead of the loop: QuaRot's --w_clip search written
  // with Eigen arrays (candidates p = 1 - i / 100, i < 80; error sum |Q(w) - w|^2.4 per row; a
  // candidate kept where strictly better).
  (void)q;
  const Eigen::ArrayXXf wa = W.array();
  const Eigen::ArrayXf xm =
      wa.cwiseAbs().rowwise().maxCoeff().cwiseMax(1e-5f);  // max(|min(w, 0)|, max(w, 0))
  Eigen::ArrayXf best = Eigen::ArrayXf::Constant(rows, std::numeric_limits<float>::infinity());
  Eigen::ArrayXf scale = xm / 7.0f;
  for (int i = 0; i < 80; ++i) {
    const float pc = static_cast<float>(1.0 - i / 100.0);
    const Eigen::ArrayXf s = pc * xm / 7.0f;
    const Eigen::ArrayXXf qv =
        (wa.colwise() / s).rint().cwiseMax(-8.0f).cwiseMin(7.0f).colwise() * s;
    const Eigen::ArrayXf err = (qv - wa).abs().pow(2.4f).rowwise().sum();
    for (index_t r = 0; r < rows; ++r)
      if (err(r) < best(r)) best(r) = err(r), scale(r) = s(r);
  }
  std::vector<float> scales(scale.data(), scale.data() + rows);
  t.search_s = seconds_since(t0);
  t0 = clock_type::now();
  for (index_t d = 0; d < C; ++d) {
    if (H(d, d) == 0.0f) {  // dead input
      H(d, d) = 1.0f;
      w.col(d).setZero();
    }
  }
  H.diagonal().array() += static_cast<float>(percdamp) * H.diagonal().mean();
  const Eigen::LLT<Eigen::MatrixXf> llt(H);
  if (llt.info() != Eigen::Success) throw std::runtime_error("peer: H is not positive definite");
  const Eigen::MatrixXf Hinv = llt.solve(Eigen::MatrixXf::Identity(C, C));
  const Eigen::LLT<Eigen::MatrixXf> llt_inv(Hinv);
  if (llt_inv.info() != Eigen::Success)
    throw std::runtime_error("peer: H^-1 is not positive definite");
  const Eigen::MatrixXf U = llt_inv.matrixU();
  t.factor_s = seconds_since(t0);

  t0 = clock_type::now();
  Eigen::MatrixXf Q(rows, C);
  Eigen::VectorXf err(rows);
  for (index_t i = 0; i < C; ++i) {
    const float d = U(i, i);
    for (index_t r = 0; r < rows; ++r) {
      const float s = scales[static_cast<std::size_t>(r)];
      const float x = w(r, i);
      const float v = std::clamp(std::rint(x / s), -8.0f, 7.0f) * s;
      Q(r, i) = v;
      err(r) = (x - v) / d;
    }
    const index_t rest = C - i - 1;
    if (rest > 0) w.rightCols(rest).noalias() -= err * U.row(i).tail(rest);
  }
  t.loop_s = seconds_since(t0);
  return Q;
}

// ------------------------------------------------------------------ rotquant rows

// args: n, calibration rows, threads
void BM_gptq_layer(benchmark::State& st) {
  const index_t n = st.range(0);
  const int threads = static_cast<int>(st.range(2));
  const matrix_f& w = weight(n);
  const matrix_f& x = calibration(n);
  const rotquant::quantizer q = weight_quantizer();
  rotquant::thread_pool_executor pool(threads);
  rotquant::gptq_options o;
  o.ex = &pool;
  double total = 0;
  for (auto _ : st) {
    const auto t0 = clock_type::now();
    rotquant::hessian_accumulator<float> h(n);
    h.add(x, &pool);
    const rotquant::gptq_result r = rotquant::gptq(w, h.hessian(), q, o);
    benchmark::DoNotOptimize(r.loss);
    benchmark::DoNotOptimize(r.dequantized.data());
    total += seconds_since(t0);
  }
  if (threads == 1 && st.iterations() > 0)
    layer_seconds()[n] = total / static_cast<double>(st.iterations());
  st.SetLabel(q.name());
}

void BM_gptq_hessian(benchmark::State& st) {
  const index_t n = st.range(0);
  const matrix_f& x = calibration(n);
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(2)));
  for (auto _ : st) {
    rotquant::hessian_accumulator<float> h(n);
    h.add(x, &pool);
    const matrix_f H = h.hessian();
    benchmark::DoNotOptimize(H.data());
  }
  // Flops per second, counting 2 flops for each of the T n (n + 1) / 2 multiply-adds of the
  // symmetric product's lower triangle (what the accumulator needs; it computes a little more:
  // each 128-column panel's diagonal block in full).
  st.counters["flops_per_second"] = benchmark::Counter(
      static_cast<double>(x.rows()) * static_cast<double>(n) * static_cast<double>(n + 1),
      benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel("hessian_accumulator<float>::add + hessian()");
}

void BM_gptq_quantize(benchmark::State& st) {
  const index_t n = st.range(0);
  const matrix_f& w = weight(n);
  const matrix_f& H = hessian(n);
  const rotquant::quantizer q = weight_quantizer();
  rotquant::thread_pool_executor pool(static_cast<int>(st.range(2)));
  rotquant::gptq_options o;
  o.ex = &pool;
  double loss = 0;
  for (auto _ : st) {
    const rotquant::gptq_result r = rotquant::gptq(w, H, q, o);
    benchmark::DoNotOptimize(r.dequantized.data());
    loss = r.loss;
  }
  st.counters["loss"] = loss;
  st.SetLabel("gptq() given H");
}

void BM_gptq_part_params(benchmark::State& st) {
  const index_t n = st.range(0);
  const matrix_f& w = weight(n);
  const rotquant::quantizer q = weight_quantizer();
  for (auto _ : st) {
    const rotquant::quantized_matrix m = rotquant::quantize(q, w);
    benchmark::DoNotOptimize(m.scales.data());
  }
  st.SetLabel("per-row --w_clip search (quantize(q, W), one thread)");
}

void BM_gptq_part_factor(benchmark::State& st) {
  const index_t n = st.range(0);
  matrix_f H = hessian(n);
  H.diagonal().array() += static_cast<float>(0.01 * H.diagonal().cast<double>().mean());
  matrix_f U;
  for (auto _ : st) {
    if (!rotquant::detail::gptq_inverse_factor(H, U)) {
      st.SkipWithError("H is not positive definite");
      return;
    }
    benchmark::DoNotOptimize(U.data());
  }
  st.SetLabel("upper Cholesky factor of H^-1 (one thread)");
}

void rotquant_args(benchmark::internal::Benchmark* b) {
  for (index_t n : {1024, 2048, 4096})
    for (int threads : {1, 2}) b->Args({n, kCalibRows, threads});
}
void one_thread_args(benchmark::internal::Benchmark* b) {
  for (index_t n : {1024, 2048, 4096}) b->Args({n, kCalibRows});
}

BENCHMARK(BM_gptq_layer)
    ->Apply(rotquant_args)
    ->ArgNames({"n", "rows", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_hessian)
    ->Apply(rotquant_args)
    ->ArgNames({"n", "rows", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_quantize)
    ->Apply(rotquant_args)
    ->ArgNames({"n", "rows", "thr"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_part_params)
    ->Apply(one_thread_args)
    ->ArgNames({"n", "rows"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_part_factor)
    ->Apply(one_thread_args)
    ->ArgNames({"n", "rows"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// ------------------------------------------------------------------ the peer row

// args: n, calibration rows
void BM_gptq_straightforward(benchmark::State& st) {
  const index_t n = st.range(0);
  const matrix_f& w = weight(n);
  const matrix_f& x = calibration(n);
  const rotquant::quantizer q = weight_quantizer();
  peer_times t;
  // One-off check before timing: the same algorithm gives the same output error to 1%.
  double rel = 0;
  try {
    const matrix_f mine = straightforward_gptq(w, x, q, t);
    const double e_peer = output_error(x, w, mine);
    const double e_rq = output_error(x, w, rotquant_result(n));
    rel = std::fabs(e_peer - e_rq) / e_rq;
    if (!(rel < 0.01)) {
      st.SkipWithError(("output error differs from rotquant's by " + std::to_string(100 * rel) +
                        "% (peer " + std::to_string(e_peer) + ", rotquant " + std::to_string(e_rq) +
                        ")")
                           .c_str());
      return;
    }
  } catch (const std::exception& e) {
    st.SkipWithError(e.what());
    return;
  }
  double total = 0;
  for (auto _ : st) {
    const auto t0 = clock_type::now();
    const matrix_f res = straightforward_gptq(w, x, q, t);
    benchmark::DoNotOptimize(res.data());
    total += seconds_since(t0);
  }
  st.counters["hessian_s"] = t.hessian_s;
  st.counters["search_s"] = t.search_s;
  st.counters["factor_s"] = t.factor_s;
  st.counters["loop_s"] = t.loop_s;
  st.counters["err_diff_ppm"] = 1e6 * rel;
  const auto it = layer_seconds().find(n);
  if (it != layer_seconds().end() && st.iterations() > 0)
    st.counters["x_straightforward"] = total / static_cast<double>(st.iterations()) / it->second;
  st.SetLabel("column-by-column Eigen peer, one thread");
}
BENCHMARK(BM_gptq_straightforward)
    ->Args({1024, kCalibRows})
    ->Args({2048, kCalibRows})
    ->ArgNames({"n", "rows"})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_gptq_straightforward)
    ->Args({4096, kCalibRows})
    ->ArgNames({"n", "rows"})
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace
