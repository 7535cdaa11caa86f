// SPDX-License-Identifier: Apache-2.0
// Tests for kernels/kv_cache.hpp: K and V follow QuaRot's two rules (re-expressed here), the
// cache stores exactly the fake-quantized rows whether tokens come one by one or in a batch,
// attention over it matches a dense softmax reference on the dequantized cache (GQA, causal
// queries, every tile tail), does not depend on the thread count, and bad input is refused.
#include "rotquant/kernels/kv_cache.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rotquant/core/threading.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::kv_cache;
using rotquant::kv_cache_options;
using rotquant::matrix_f;
using rotquant_test::gaussian;

kv_cache_options opts(index_t heads, index_t d, int bits, bool sym = false, float clip = 1.0f) {
  kv_cache_options o;
  o.heads = heads;
  o.head_dim = d;
  o.bits = bits;
  o.symmetric = sym;
  o.k_clip = clip;
  o.v_clip = clip;
  return o;
}

// QuaRot's asymmetric ActQuantizer on one group of values, in double like a NumPy re-expression
// (its fp32 arithmetic gives the same codes for these inputs; compared with a tolerance).
std::vector<double> quarot_asym(const float* x, index_t n, int bits, double clip, bool zero_in) {
  double lo = *std::min_element(x, x + n), hi = *std::max_element(x, x + n);
  if (zero_in) lo = std::min(lo, 0.0), hi = std::max(hi, 0.0);
  lo *= clip, hi *= clip;
  if (lo == 0 && hi == 0) lo = -1, hi = 1;
  const double maxq = (1 << bits) - 1;
  const double s = (hi - lo) / maxq, z = std::nearbyint(-lo / s);
  std::vector<double> y(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) {
    const double q = std::clamp(std::nearbyint(x[i] / s) + z, 0.0, maxq);
    y[static_cast<std::size_t>(i)] = (q - z) * s;
  }
  return y;
}

TEST(KvCacheRules, KeysForceZeroInPerTokenAndHeadValuesUseTheRawGroupRange) {
  const index_t H = 3, d = 16;
  matrix_f k = gaussian(5, H * d, 1);
  k.row(2).array() += 4.0f;  // all positive: only K's rule pulls 0 into the range
  for (int bits : {4, 8}) {
    const auto o = opts(H, d, bits, false, 0.95f);
    const matrix_f kq = rotquant::kv_fake_quantize_keys(o, k);
    const matrix_f vq = rotquant::kv_fake_quantize_values(o, k);
    for (index_t t = 0; t < k.rows(); ++t)
      for (index_t h = 0; h < H; ++h) {
        const float* row = k.data() + t * H * d + h * d;
        const auto rk = quarot_asym(row, d, bits, 0.95f, true);
        const auto rv = quarot_asym(row, d, bits, 0.95f, false);
        for (index_t i = 0; i < d; ++i) {
          EXPECT_NEAR(kq(t, h * d + i), rk[static_cast<std::size_t>(i)], 1e-5)
              << "K bits " << bits << " (" << t << ", " << h << ", " << i << ")";
          EXPECT_NEAR(vq(t, h * d + i), rv[static_cast<std::size_t>(i)], 1e-5)
              << "V bits " << bits << " (" << t << ", " << h << ", " << i << ")";
        }
      }
  }
  // The two rules differ on the shifted token (raw range is tighter), and KV16 is a copy.
  const auto o4 = opts(H, d, 4);
  EXPECT_GT((rotquant::kv_fake_quantize_keys(o4, k).row(2) - k.row(2)).norm(),
            (rotquant::kv_fake_quantize_values(o4, k).row(2) - k.row(2)).norm());
  EXPECT_EQ(rotquant::kv_fake_quantize_keys(opts(H, d, 16), k), k);
}

TEST(KvCacheStore, HoldsTheFakeQuantizedRowsWhetherAppendedOneByOneOrInABatch) {
  const index_t H = 2, d = 64, T = 70;
  const matrix_f k = gaussian(T, H * d, 2), v = gaussian(T, H * d, 3, 2.0);
  for (int bits : {16, 8, 4})
    for (bool sym : {false, true}) {
      const auto o = opts(H, d, bits, sym, 0.95f);
      kv_cache one(o), batch(o);
      for (index_t t = 0; t < T; ++t) one.append(matrix_f(k.row(t)), matrix_f(v.row(t)));
      batch.append(matrix_f(k.topRows(33)), matrix_f(v.topRows(33)));
      batch.append(matrix_f(k.bottomRows(T - 33)), matrix_f(v.bottomRows(T - 33)));
      ASSERT_EQ(one.size(), T);
      const matrix_f kq = rotquant::kv_fake_quantize_keys(o, k);
      const matrix_f vq = rotquant::kv_fake_quantize_values(o, v);
      EXPECT_EQ(one.keys(), kq) << "bits " << bits << " sym " << sym;
      EXPECT_EQ(one.values(), vq) << "bits " << bits << " sym " << sym;
      EXPECT_EQ(batch.keys(), kq);
      EXPECT_EQ(batch.values(), vq);
    }
}

// softmax(q K^T s) V per head in double, causal: query i of Tq sees tokens 0 .. n - Tq + i.
matrix_f reference_attention(const matrix_f& q, const matrix_f& K, const matrix_f& V,
                             index_t q_heads, index_t heads, index_t d) {
  const index_t Tq = q.rows(), n = K.rows(), group = q_heads / heads;
  matrix_f out(Tq, q_heads * d);
  const double s = 1.0 / std::sqrt(static_cast<double>(d));
  for (index_t i = 0; i < Tq; ++i)
    for (index_t h = 0; h < q_heads; ++h) {
      const index_t g = h / group, lim = n - Tq + i;
      std::vector<double> w(static_cast<std::size_t>(lim + 1));
      double mx = -1e300, sum = 0;
      for (index_t j = 0; j <= lim; ++j) {
        double dot = 0;
        for (index_t c = 0; c < d; ++c)
          dot += static_cast<double>(q(i, h * d + c)) * K(j, g * d + c);
        w[static_cast<std::size_t>(j)] = dot * s;
        mx = std::max(mx, dot * s);
      }
      for (auto& x : w) sum += (x = std::exp(x - mx));
      for (index_t c = 0; c < d; ++c) {
        double acc = 0;
        for (index_t j = 0; j <= lim; ++j) acc += w[static_cast<std::size_t>(j)] * V(j, g * d + c);
        out(i, h * d + c) = static_cast<float>(acc / sum);
      }
    }
  return out;
}

// Every tail of the 64-token tiles, head dims on and off the 16-lane width, symmetric and
// asymmetric codes (the scale and zero point are folded into scores and weights: same result).
TEST(KvCacheAttention, MatchesDenseSoftmaxOverTheDequantizedCacheForEveryTail) {
  const index_t H = 2, q_heads = 6;
  for (index_t d : {32, 40})
    for (index_t n : {1, 2, 63, 64, 65, 130}) {
      const matrix_f k = gaussian(n, H * d, 10 + static_cast<std::uint64_t>(n), 1.5);
      const matrix_f v = gaussian(n, H * d, 20 + static_cast<std::uint64_t>(n));
      for (int bits : {16, 8, 4})
        for (bool sym : {false, true}) {
          if (bits == 16 && sym) continue;
          kv_cache c(opts(H, d, bits, sym));
          c.append(k, v);
          for (index_t Tq : {index_t{1}, std::min<index_t>(n, 5), n}) {
            const matrix_f q = gaussian(Tq, q_heads * d, 30 + static_cast<std::uint64_t>(Tq), 1.5);
            const matrix_f got = c.attend(q, q_heads);
            const matrix_f want = reference_attention(q, c.keys(), c.values(), q_heads, H, d);
            EXPECT_LT((got - want).cwiseAbs().maxCoeff(), 2e-5f)
                << "d " << d << " n " << n << " Tq " << Tq << " bits " << bits << " sym " << sym;
          }
        }
    }
}

TEST(KvCacheAttention, DoesNotDependOnTheThreadCount) {
  const index_t H = 4, d = 64,
                n = 600;  // enough work per head that the heads run on separate threads
  kv_cache c(opts(H, d, 4, false, 0.95f));
  c.append(gaussian(n, H * d, 5), gaussian(n, H * d, 6));
  const matrix_f q = gaussian(3, 2 * H * d, 7);
  const matrix_f serial = c.attend(q, 2 * H);
  rotquant::thread_pool_executor pool(3);
  EXPECT_EQ(c.attend(q, 2 * H, 0.0f, &pool), serial);
}

TEST(KvCacheStore, Kv4TakesUnderAThirdOfTheFloatBytes) {
  for (index_t d : {64, 128}) {
    const double f = kv_cache(opts(8, d, 16)).bytes_per_token();
    EXPECT_EQ(f, 2.0 * 8 * static_cast<double>(d) * 4);
    EXPECT_LE(kv_cache(opts(8, d, 4)).bytes_per_token(), 0.3 * f) << "head_dim " << d;
    EXPECT_LE(kv_cache(opts(8, d, 8)).bytes_per_token(), 0.4 * f) << "head_dim " << d;
  }
}

TEST(KvCacheBadInput, NamesTheProblemAndTheAcceptedValues) {
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(2, 16, 3)), "accepted: 4, 8, 16");
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(2, 15, 4)), "head_dim = 15");
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(0, 16, 4)), "heads = 0");
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(2, 16, 4, false, 0.0f)), "not in (0, 1]");
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(2, 16, 4, false, 1.5f)), "not in (0, 1]");
  EXPECT_ROTQUANT_ERROR(kv_cache(opts(2, 16, 4, false, std::nanf(""))), "not in (0, 1]");
  kv_cache c(opts(2, 16, 4));
  const matrix_f k = gaussian(3, 32, 1);
  EXPECT_ROTQUANT_ERROR(c.append(gaussian(3, 30, 1), k), "expected heads * head_dim = 32");
  EXPECT_ROTQUANT_ERROR(c.append(k, gaussian(2, 32, 1)), "K has 3 tokens and V 2");
  matrix_f bad = k;
  bad(1, 7) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(c.append(bad, k), "at (1, 7)");
  EXPECT_EQ(c.size(), 0);
  c.append(k, k);
  EXPECT_ROTQUANT_ERROR(c.attend(gaussian(4, 64, 2), 4), "4 queries for 3 cached tokens");
  EXPECT_ROTQUANT_ERROR(c.attend(gaussian(1, 48, 2), 3), "not a multiple of the 2 KV heads");
  EXPECT_ROTQUANT_ERROR(c.attend(gaussian(1, 60, 2), 4), "expected q_heads * head_dim = 64");
  EXPECT_ROTQUANT_ERROR(rotquant::kv_key_quantizer(opts(2, 16, 16)), "bits = 16");
}

}  // namespace
