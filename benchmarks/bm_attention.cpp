// SPDX-License-Identifier: Apache-2.0
// bm_attention.cpp: decode attention over the KV cache (one query token, M = 1) for one head
// group: one KV head of head_dim 128 and the 4 query heads that share it (LLaMA-3-8B's 32 / 8),
// contexts 256..4096. rotquant's kv_cache with an INT4 or INT8 packed cache (dequantized 64
// tokens at a time, online softmax) and with its float32 cache, against the peer an engine would
// write: Eigen on float32 K and V (scores = q K^T, softmax, p V per query head).
//
// Names: BM_attention/ctx:1024/kv:4 (kv = cache bits, 16 = float32), BM_eigen_attention/ctx:1024.
// Counter cache_bytes_per_second: the cache's bytes (codes, scales and zero points, or floats)
// read per second, so the packed rows show what their smaller footprint buys.
#include <benchmark/benchmark.h>

#include <cmath>
#include <string>

#include "rotquant/core/rng.hpp"
#include "rotquant/kernels/kv_cache.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_f;

constexpr index_t kHeadDim = 128, kQueryHeads = 4;

matrix_f keys_or_values(index_t ctx, std::uint64_t seed) {
  return rotquant::random_normal_matrix<float>(ctx, kHeadDim, seed);
}

const matrix_f& query() {
  static const matrix_f q = rotquant::random_normal_matrix<float>(1, kQueryHeads * kHeadDim, 9);
  return q;
}

void BM_attention(benchmark::State& st) {
  const index_t ctx = st.range(0);
  const int bits = static_cast<int>(st.range(1));
  rotquant::kv_cache_options o;
  o.heads = 1;
  o.head_dim = kHeadDim;
  o.bits = bits;
  o.k_clip = o.v_clip = bits < 16 ? 0.95f : 1.0f;
  rotquant::kv_cache cache(o);
  cache.append(keys_or_values(ctx, 1), keys_or_values(ctx, 2));
  matrix_f out(1, kQueryHeads * kHeadDim);
  for (auto _ : st) {
    cache.attend(rotquant::view(query()), kQueryHeads, rotquant::view(out));
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["cache_bytes_per_second"] =
      benchmark::Counter(cache.bytes_per_token() * static_cast<double>(ctx),
                         benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(bits == 16 ? "float32 cache" : "INT" + std::to_string(bits) + " packed cache");
}
BENCHMARK(BM_attention)
    ->ArgsProduct({{256, 1024, 4096}, {4, 8, 16}})
    ->ArgNames({"ctx", "kv"})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

// Peer: Eigen on float32 K and V, per query head: s = q K^T / sqrt(d), softmax, s V.
void BM_eigen_attention(benchmark::State& st) {
  const index_t ctx = st.range(0);
  const matrix_f k = keys_or_values(ctx, 1), v = keys_or_values(ctx, 2);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));
  Eigen::RowVectorXf s(ctx);
  matrix_f out(1, kQueryHeads * kHeadDim);
  for (auto _ : st) {
    for (index_t h = 0; h < kQueryHeads; ++h) {
      s.noalias() = query().middleCols(h * kHeadDim, kHeadDim) * k.transpose();
      s *= scale;
      s = (s.array() - s.maxCoeff()).exp().matrix();
      s /= s.sum();
      out.middleCols(h * kHeadDim, kHeadDim).noalias() = s * v;
    }
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["cache_bytes_per_second"] =
      benchmark::Counter(2.0 * static_cast<double>(ctx * kHeadDim) * 4.0,
                         benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel("Eigen float32 peer");
}
BENCHMARK(BM_eigen_attention)
    ->Arg(256)
    ->Arg(1024)
    ->Arg(4096)
    ->ArgName("ctx")
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace
