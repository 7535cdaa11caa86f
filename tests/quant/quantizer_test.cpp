// SPDX-License-Identifier: Apache-2.0
// quantizer_test.cpp: the peer rules on hand-checked inputs, block formats, edge cases,
// idempotence, row functions, and reference error figures on fixed seeds.
#include "rotquant/quant/quantizer.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::granularity;
using rotquant::index_t;
using rotquant::matrix_f;
using rotquant::quantizer;

matrix_f row_of(std::initializer_list<float> v) {
  matrix_f m(1, static_cast<index_t>(v.size()));
  index_t i = 0;
  for (float x : v) m(0, i++) = x;
  return m;
}

std::vector<int> codes_of(const rotquant::quantized_matrix& m, index_t r = 0) {
  std::vector<int> out;
  for (index_t c = 0; c < m.cols; ++c) out.push_back(m.code(r, c));
  return out;
}

using rotquant_test::gaussian;

double mse(const matrix_f& a, const matrix_f& b) {
  return (a.cast<double>() - b.cast<double>()).squaredNorm() / static_cast<double>(a.size());
}

double sqnr_db(const matrix_f& x, const matrix_f& xq) {
  return 10.0 * std::log10(x.cast<double>().squaredNorm() /
                           (x.cast<double>() - xq.cast<double>()).squaredNorm());
}

// ----------------------------------------------------------------- QuaRot symmetric

TEST(QuaRotSym, ExactScaleHandCase) {
  // absmax 8, clip 0.875 -> s = 8 * 0.875 / 7 = 1 exactly; ties go to even.
  const matrix_f x = row_of({-8.0f, 8.0f, 2.5f, -3.5f, 0.5f, 1.5f, -0.5f, 0.0f});
  const auto q = rotquant::quantize(quantizer::int_sym(4, granularity::per_row, 0, 0.875f), x);
  EXPECT_EQ(q.scales[0], 1.0f);
  EXPECT_EQ(codes_of(q), (std::vector<int>{-8, 7, 2, -4, 0, 2, 0, 0}));
  const matrix_f d = rotquant::dequantize(q);
  EXPECT_EQ(d(0, 0), -8.0f);
  EXPECT_EQ(d(0, 1), 7.0f);
}

TEST(QuaRotSym, Clip09NegativeExtremesRoundToMinus8) {
  // s = 1 * 0.9 / 7; -1 / s = -7.78 -> -8 (kept), +1 / s = 7.78 -> 8 -> clamped to 7.
  const matrix_f x = row_of({-1.0f, 1.0f, -0.95f, 0.95f, 0.3f, -0.45f, 0.0f});
  const auto q = rotquant::quantize(quantizer::quarot_activation(4, true, 0.9f), x);
  const float s = 1.0f * 0.9f / 7.0f;
  EXPECT_EQ(q.scales[0], s);
  EXPECT_EQ(codes_of(q), (std::vector<int>{-8, 7, -7, 7, 2, -4, 0}));
  for (index_t c = 0; c < x.cols(); ++c) {  // the literal rule, computed here
    const int want = static_cast<int>(std::min(7.0f, std::max(-8.0f, std::nearbyint(x(0, c) / s))));
    EXPECT_EQ(q.code(0, c), want) << c;
  }
  // With clip 1 the code -8 never occurs.
  const auto q1 = rotquant::quantize(quantizer::quarot_activation(4, true, 1.0f), x);
  EXPECT_EQ(q1.code(0, 0), -7);
  EXPECT_EQ(q1.code(0, 1), 7);
}

TEST(QuaRotSym, AllZeroRowHasScaleOne) {
  const matrix_f x = matrix_f::Zero(2, 9);
  for (int bits : {2, 3, 4, 8}) {
    const auto q = rotquant::quantize(quantizer::int_sym(bits), x);
    for (float s : q.scales) EXPECT_EQ(s, 1.0f);
    EXPECT_EQ(rotquant::dequantize(q), x);
  }
}

TEST(IntFormats, CodeRangesPerBitWidth) {
  const matrix_f x = gaussian(4, 64, 1);
  for (int bits = 2; bits <= 8; ++bits) {
    const auto qs = rotquant::quantize(quantizer::int_sym(bits, granularity::per_row, 0, 0.6f), x);
    const auto qa = rotquant::quantize(quantizer::int_asym(bits), x);
    int smin = 1000, smax = -1000, amin = 1000, amax = -1000;
    for (index_t r = 0; r < x.rows(); ++r) {
      for (index_t c = 0; c < x.cols(); ++c) {
        smin = std::min(smin, qs.code(r, c));
        smax = std::max(smax, qs.code(r, c));
        amin = std::min(amin, qa.code(r, c));
        amax = std::max(amax, qa.code(r, c));
      }
    }
    // Clip 0.6 saturates both ends; asym with clip 1 spans the whole unsigned range.
    EXPECT_EQ(smin, -(1 << (bits - 1))) << bits;
    EXPECT_EQ(smax, (1 << (bits - 1)) - 1) << bits;
    EXPECT_EQ(amin, 0) << bits;
    EXPECT_EQ(amax, (1 << bits) - 1) << bits;
    EXPECT_EQ(qs.row_bytes, bits <= 4 ? 32 : 64);
  }
}

// ----------------------------------------------------------------- QuaRot asymmetric

TEST(QuaRotAsym, PerTokenForcesZeroIntoTheRange) {
  const matrix_f x = row_of({1.0f, 2.0f, 3.0f, 4.0f});
  const auto q = rotquant::quantize(quantizer::quarot_activation(4, false), x);
  // xmin = min(1, 0) = 0, xmax = 4: s = 4/15, z = 0.
  EXPECT_EQ(q.scales[0], 4.0f / 15.0f);
  EXPECT_EQ(q.zero_points[0], 0);
  // fp32: 2 / (4/15f) = 7.4999995 (4/15f rounds up), so not a tie: -> 7.
  EXPECT_EQ(codes_of(q), (std::vector<int>{4, 7, 11, 15}));
  // All negative: xmax forced to 0 -> z = 15.
  const auto qn =
      rotquant::quantize(quantizer::quarot_activation(4, false), row_of({-1.0f, -2.0f}));
  EXPECT_EQ(qn.scales[0], 2.0f / 15.0f);
  EXPECT_EQ(qn.zero_points[0], 15);
  // fp32: -1 / (2/15f) = -7.4999995 -> -7, + 15 = 8.
  EXPECT_EQ(codes_of(qn), (std::vector<int>{8, 0}));
}

TEST(QuaRotAsym, GroupwiseUsesRawRange) {
  const matrix_f x = row_of({1.0f, 2.0f, 3.0f, 4.0f, -1.0f, -2.0f, -3.0f, -4.0f});
  const auto q = rotquant::quantize(quantizer::quarot_activation(4, false, 1.0f, 4), x);
  // Group 0: xmin 1, xmax 4: s = 3/15 = 0.2, z = rint(-1 / 0.2) = -5.
  EXPECT_EQ(q.scales[0], 3.0f / 15.0f);
  EXPECT_EQ(q.zero_points[0], -5);
  // Group 1: xmin -4, xmax -1: s = 0.2, z = 20.
  EXPECT_EQ(q.scales[1], 3.0f / 15.0f);
  EXPECT_EQ(q.zero_points[1], 20);
  EXPECT_EQ(codes_of(q), (std::vector<int>{0, 5, 10, 15, 15, 10, 5, 0}));
  const matrix_f d = rotquant::dequantize(q);
  for (index_t c = 0; c < 8; ++c) EXPECT_NEAR(d(0, c), x(0, c), 1e-6f);
}

TEST(QuaRotAsym, AllZeroUsesMinusOneToOne) {
  const auto q = rotquant::quantize(quantizer::quarot_activation(4, false), matrix_f::Zero(1, 5));
  EXPECT_EQ(q.scales[0], 2.0f / 15.0f);
  EXPECT_EQ(q.zero_points[0], 7);  // fp32: 1 / (2/15f) = 7.4999995 -> 7
  for (int c : codes_of(q)) EXPECT_EQ(c, 7);
  EXPECT_EQ(rotquant::dequantize(q), matrix_f::Zero(1, 5));
}

TEST(QuaRotAsym, ConstantGroupIsWidenedToIncludeZero) {
  // The peer would divide by a zero-width range; we widen to [0, 3].
  const matrix_f x = row_of({3.0f, 3.0f, 3.0f, 3.0f});
  const auto q = rotquant::quantize(quantizer::quarot_activation(4, false, 1.0f, 2), x);
  EXPECT_EQ(q.scales[0], 3.0f / 15.0f);
  EXPECT_EQ(q.zero_points[0], 0);
  const matrix_f d = rotquant::dequantize(q);
  for (index_t c = 0; c < 4; ++c) EXPECT_NEAR(d(0, c), 3.0f, 1e-6f);
}

// ----------------------------------------------------------------- DuQuant

TEST(DuQuant, RawRangeAndScaleClamps) {
  // Raw min/max (no zero forcing), clip 0.9 on both ends.
  const matrix_f x = row_of({1.0f, 2.0f, 3.0f, 4.0f});
  const auto q = rotquant::quantize(quantizer::duquant(4, 0.9f), x);
  const float xmin = 1.0f * 0.9f;
  const float xmax = 4.0f * 0.9f;
  const float s = (xmax - xmin) / 15.0f;
  EXPECT_EQ(q.scales[0], s);
  EXPECT_EQ(q.zero_points[0], static_cast<int>(std::nearbyint(-xmin / s)));
  EXPECT_EQ(q.zero_points[0], -5);

  // Scale clamped below at 1e-5: a row of range 1e-7.
  const auto lo = rotquant::quantize(quantizer::duquant(4), row_of({1e-7f, 2e-7f}));
  EXPECT_EQ(lo.scales[0], 1e-5f);
  EXPECT_EQ(lo.zero_points[0], 0);  // rint(-0.01) = -0
  EXPECT_EQ(codes_of(lo), (std::vector<int>{0, 0}));

  // Scale clamped above at 1e4, zero point = rint(1e6 / 1e4) = 100; codes saturate.
  const auto hi = rotquant::quantize(quantizer::duquant(4), row_of({-1e6f, 1e6f, 0.0f}));
  EXPECT_EQ(hi.scales[0], 1e4f);
  EXPECT_EQ(hi.zero_points[0], 100);
  EXPECT_EQ(codes_of(hi), (std::vector<int>{0, 15, 15}));

  // Zero point clamped to -1e4 when -xmin / s is far below.
  const auto zp = rotquant::quantize(quantizer::duquant(4), row_of({1000.0f, 1000.5f}));
  EXPECT_EQ(zp.scales[0], 0.5f / 15.0f);
  EXPECT_EQ(zp.zero_points[0], -10000);
  EXPECT_EQ(codes_of(zp), (std::vector<int>{15, 15}));

  // All-zero row: s = 1e-5 (clamped), z = 0, exact zeros.
  const auto z = rotquant::quantize(quantizer::duquant(4), matrix_f::Zero(1, 3));
  EXPECT_EQ(z.scales[0], 1e-5f);
  EXPECT_EQ(rotquant::dequantize(z), matrix_f::Zero(1, 3));
}

TEST(DuQuant, SymmetricBranchHasConstantZeroPoint) {
  quantizer q = quantizer::duquant(4);
  q.symmetric = true;
  const auto m = rotquant::quantize(q, row_of({-7.0f, 3.0f, 7.0f}));
  EXPECT_EQ(m.scales[0], 1.0f);
  EXPECT_EQ(m.zero_points[0], 7);
  EXPECT_EQ(codes_of(m), (std::vector<int>{0, 10, 14}));
}

// ----------------------------------------------------------------- GPTQ weight quantizer

// The peer's search written out literally (fp32 candidate scales, strict improvement).
float literal_gptq_sym_scale(const matrix_f& w, index_t r, int bits) {
  const int maxq = (1 << (bits - 1)) - 1;
  float xmin = 0, xmax = 0;
  for (index_t c = 0; c < w.cols(); ++c) {
    xmin = std::min(xmin, w(r, c));
    xmax = std::max(xmax, w(r, c));
  }
  xmax = std::max(std::max(std::fabs(xmin), xmax), 1e-5f);
  double best = std::numeric_limits<double>::infinity();
  float best_s = xmax / static_cast<float>(maxq);
  for (int i = 0; i < 80; ++i) {
    const float p = static_cast<float>(1.0 - i / 100.0);
    const float s = p * xmax / static_cast<float>(maxq);
    double err = 0;
    for (index_t c = 0; c < w.cols(); ++c) {
      const float q = std::min(static_cast<float>(maxq), std::max(static_cast<float>(-maxq - 1),
                                                                  std::nearbyint(w(r, c) / s)));
      err += std::pow(std::fabs(static_cast<double>(q * s) - w(r, c)), 2.4);
    }
    if (err < best) {
      best = err;
      best_s = s;
    }
  }
  return best_s;
}

TEST(GPTQ, MseSearchMatchesLiteralRuleAndImproves) {
  const matrix_f w = gaussian(16, 96, 21);
  const auto plain = rotquant::quantize(quantizer::gptq_weight(4, true, false), w);
  const auto searched = rotquant::quantize(quantizer::gptq_weight(4, true, true), w);
  for (index_t r = 0; r < w.rows(); ++r) {
    EXPECT_EQ(searched.scales[static_cast<std::size_t>(r)], literal_gptq_sym_scale(w, r, 4)) << r;
    EXPECT_LE(searched.scales[static_cast<std::size_t>(r)],
              plain.scales[static_cast<std::size_t>(r)]);
  }
  // The searched error (norm 2.4 per row) never exceeds the unsearched one.
  const matrix_f dp = rotquant::dequantize(plain);
  const matrix_f ds = rotquant::dequantize(searched);
  for (index_t r = 0; r < w.rows(); ++r) {
    double ep = 0, es = 0;
    for (index_t c = 0; c < w.cols(); ++c) {
      ep += std::pow(std::fabs(static_cast<double>(dp(r, c)) - w(r, c)), 2.4);
      es += std::pow(std::fabs(static_cast<double>(ds(r, c)) - w(r, c)), 2.4);
    }
    EXPECT_LE(es, ep + 1e-12) << r;
  }
  // On Gaussian rows the search clips: the mean chosen ratio is well below 1.
  double ratio = 0;
  for (index_t r = 0; r < w.rows(); ++r) {
    ratio +=
        searched.scales[static_cast<std::size_t>(r)] / plain.scales[static_cast<std::size_t>(r)];
  }
  EXPECT_LT(ratio / w.rows(), 0.95);
}

TEST(GPTQ, AsymmetricMseSearchMatchesLiteralRule) {
  const matrix_f w = gaussian(8, 48, 23);
  const auto searched = rotquant::quantize(quantizer::gptq_weight(4, false, true), w);
  for (index_t r = 0; r < w.rows(); ++r) {
    float xmin = 0, xmax = 0;
    for (index_t c = 0; c < w.cols(); ++c) {
      xmin = std::min(xmin, w(r, c));
      xmax = std::max(xmax, w(r, c));
    }
    double best = std::numeric_limits<double>::infinity();
    float best_s = 0;
    float best_z = 0;
    for (int i = 0; i < 80; ++i) {
      const float p = static_cast<float>(1.0 - i / 100.0);
      const float lo = p * xmin;
      const float hi = p * xmax;
      const float s = (hi - lo) / 15.0f;
      const float z = std::nearbyint(-lo / s);
      double err = 0;
      for (index_t c = 0; c < w.cols(); ++c) {
        const float q = std::min(15.0f, std::max(0.0f, std::nearbyint(w(r, c) / s) + z));
        err += std::pow(std::fabs(static_cast<double>(s * (q - z)) - w(r, c)), 2.4);
      }
      if (err < best) {
        best = err;
        best_s = s;
        best_z = z;
      }
    }
    EXPECT_EQ(searched.scales[static_cast<std::size_t>(r)], best_s) << r;
    EXPECT_EQ(searched.zero_points[static_cast<std::size_t>(r)], static_cast<int>(best_z)) << r;
  }
}

TEST(GPTQ, StrictImprovementKeepsTheFirstOfEqualCandidates) {
  // An all-zero row: every candidate has error 0; strict '<' keeps i = 0 (p = 1), so the scale
  // is the clamped 1e-5 / 7 (a non-strict rule would end at p = 0.21).
  const auto q = rotquant::quantize(quantizer::gptq_weight(4, true, true), matrix_f::Zero(1, 8));
  EXPECT_EQ(q.scales[0], 1e-5f / 7.0f);
  // A row of equal magnitudes x = +-1: p = 1 reproduces it (to an ulp); every later candidate
  // has a larger error, so the first is kept.
  const auto q1 = rotquant::quantize(quantizer::gptq_weight(4, true, true), row_of({1, -1, 1, -1}));
  EXPECT_EQ(q1.scales[0], 1.0f / 7.0f);
}

TEST(GPTQ, AsymmetricRuleForcesZeroAndClampsRange) {
  const auto q =
      rotquant::quantize(quantizer::gptq_weight(4, false, false), row_of({1.0f, 2.0f, 4.0f}));
  EXPECT_EQ(q.scales[0], 4.0f / 15.0f);
  EXPECT_EQ(q.zero_points[0], 0);
  const auto tiny =
      rotquant::quantize(quantizer::gptq_weight(4, false, false), row_of({1e-7f, 2e-7f}));
  EXPECT_EQ(tiny.scales[0], 1e-5f / 15.0f);
  const auto z = rotquant::quantize(quantizer::gptq_weight(4, false, false), matrix_f::Zero(1, 4));
  EXPECT_EQ(z.scales[0], 2.0f / 15.0f);
  EXPECT_EQ(z.zero_points[0], 7);  // fp32: 1 / (2/15f) = 7.4999995
  // Search on asymmetric rows also never loses to the plain rule.
  const matrix_f w = gaussian(8, 64, 4);
  const matrix_f dp = rotquant::fake_quantize(quantizer::gptq_weight(4, false, false), w);
  const matrix_f ds = rotquant::fake_quantize(quantizer::gptq_weight(4, false, true), w);
  EXPECT_LE(mse(w, ds), mse(w, dp) * 1.05);
}

// ----------------------------------------------------------------- FP element formats

TEST(FP4Scaled, E2M1PerRowMatchesLiteralRule) {
  const matrix_f x = gaussian(5, 70, 8);
  const auto q = rotquant::quantize(
      quantizer::fp4(rotquant::fp4_kind::e2m1, granularity::per_row, 0, 0.9f), x);
  for (index_t r = 0; r < x.rows(); ++r) {
    const float s = x.row(r).cwiseAbs().maxCoeff() * 0.9f / 6.0f;
    EXPECT_EQ(q.scales[static_cast<std::size_t>(r)], s);
    for (index_t c = 0; c < x.cols(); ++c) {
      ASSERT_EQ(q.code(r, c), rotquant::e2m1_encode(x(r, c) / s));
    }
  }
}

TEST(FP4Scaled, EffectiveBiasEqualsRealBiasFormat) {
  // Scaling the canonical grid by s is the real-valued bias format with maxval = absmax * clip.
  const matrix_f x = gaussian(1, 200, 12);
  const float amax = x.cwiseAbs().maxCoeff();
  for (auto k : {rotquant::fp4_kind::e1m2, rotquant::fp4_kind::e2m1, rotquant::fp4_kind::e3m0}) {
    const matrix_f d =
        rotquant::fake_quantize(quantizer::fp4(k, granularity::per_tensor, 0, 0.8f), x);
    const auto f = rotquant::fp4_format::from_maxval(k, static_cast<double>(amax * 0.8f));
    for (index_t c = 0; c < x.cols(); ++c) {
      ASSERT_NEAR(d(0, c), f.fake_quantize(x(0, c)), 1e-6f * amax) << rotquant::to_string(k);
    }
  }
}

TEST(FP8Scaled, PerTensorE4M3AndE5M2) {
  const matrix_f x = gaussian(3, 50, 2, 10.0);
  const float amax = x.cwiseAbs().maxCoeff();
  const auto q4 = rotquant::quantize(quantizer::fp8(true), x);
  EXPECT_EQ(q4.scales.size(), 1u);
  EXPECT_EQ(q4.scales[0], amax / 448.0f);
  const auto q5 = rotquant::quantize(quantizer::fp8(false), x);
  EXPECT_EQ(q5.scales[0], amax / 57344.0f);
  const matrix_f d4 = rotquant::dequantize(q4);
  const matrix_f d5 = rotquant::dequantize(q5);
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t c = 0; c < x.cols(); ++c) {
      // Relative step 2^-4 (E4M3) / 2^-3 (E5M2) for normal values: error <= half of it.
      EXPECT_LE(std::fabs(d4(r, c) - x(r, c)), std::fabs(x(r, c)) / 16 + q4.scales[0] * 0.002f);
      EXPECT_LE(std::fabs(d5(r, c) - x(r, c)), std::fabs(x(r, c)) / 8 + q5.scales[0] * 2e-5f);
      EXPECT_EQ(q4.code(r, c), rotquant::e4m3_encode(x(r, c) / q4.scales[0]));
    }
  }
}

// ----------------------------------------------------------------- block formats

TEST(MXFP4, ScaleRuleTailAndAllZeroBlock) {
  // Block 0: amax 7.5 -> e = floor(log2 7.5) - 2 = 0: 7.5 clips to 6. Block 1 all zero.
  // Block 2 (tail of 5): amax 0.75 -> e = -1 - 2 = -3.
  matrix_f x = matrix_f::Zero(1, 69);
  x(0, 0) = 7.5f;
  x(0, 1) = -2.6f;
  x(0, 2) = 0.25f;
  x(0, 64) = 0.75f;
  x(0, 65) = -0.1f;
  const auto q = rotquant::quantize(quantizer::mxfp4(), x);
  ASSERT_EQ(q.scale_codes.size(), 3u);
  EXPECT_EQ(q.scale_codes[0], 127);
  EXPECT_EQ(q.scale_codes[1], 0);  // e = -127
  EXPECT_EQ(q.scale_codes[2], 124);
  EXPECT_EQ(q.code(0, 0), 0x7);
  EXPECT_EQ(q.code(0, 1), 0xD);   // -2.6 -> -3
  EXPECT_EQ(q.code(0, 2), 0x0);   // 0.25 tie -> 0
  EXPECT_EQ(q.code(0, 64), 0x7);  // 0.75 * 8 = 6
  EXPECT_EQ(q.code(0, 65), 0xA);  // -0.1 * 8 = -0.8 -> -1.0
  const matrix_f d = rotquant::dequantize(q);
  EXPECT_EQ(d(0, 0), 6.0f);
  EXPECT_EQ(d(0, 64), 0.75f);
  for (index_t c = 32; c < 64; ++c) EXPECT_EQ(d(0, c), 0.0f);
}

TEST(MXINT8, ScaleRule) {
  matrix_f x = matrix_f::Zero(1, 32);
  x(0, 0) = 3.0f;  // e = 1: codes x * 2^5
  x(0, 1) = -3.99f;
  x(0, 2) = 0.015625f;  // 2^-6 * 32 = 0.5 -> tie -> 0
  x(0, 3) = 0.046875f;  // 1.5 -> 2
  const auto q = rotquant::quantize(quantizer::mxint8(), x);
  EXPECT_EQ(q.scale_codes[0], 128);
  EXPECT_EQ(q.code(0, 0), 96);
  EXPECT_EQ(q.code(0, 1), -127);  // -127.68 -> -128 -> clamped to the symmetric -127
  EXPECT_EQ(q.code(0, 2), 0);
  EXPECT_EQ(q.code(0, 3), 2);
  const matrix_f d = rotquant::dequantize(q);
  EXPECT_EQ(d(0, 0), 3.0f);
  EXPECT_EQ(d(0, 1), -127.0f / 32.0f);
}

TEST(NVFP4, ScaleRule) {
  const matrix_f x = gaussian(3, 40, 17, 2.0);
  const auto q = rotquant::quantize(quantizer::nvfp4(), x);
  const float amax = x.cwiseAbs().maxCoeff();
  EXPECT_EQ(q.tensor_scale, amax / (448.0f * 6.0f));
  EXPECT_EQ(q.groups_per_row, 3);  // 16 + 16 + tail 8
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t b = 0; b < 3; ++b) {
      const index_t c1 = std::min<index_t>(40, (b + 1) * 16);
      float bamax = 0;
      for (index_t c = b * 16; c < c1; ++c) bamax = std::max(bamax, std::fabs(x(r, c)));
      const std::uint8_t byte = rotquant::ue4m3_encode((bamax / 6.0f) / q.tensor_scale);
      const float sb = rotquant::ue4m3_decode(byte) * q.tensor_scale;
      const auto k = static_cast<std::size_t>(r * 3 + b);
      EXPECT_EQ(q.scale_codes[k], byte);
      EXPECT_EQ(q.scales[k], sb);
      for (index_t c = b * 16; c < c1; ++c)
        ASSERT_EQ(q.code(r, c), rotquant::e2m1_encode(x(r, c) / sb));
    }
  }
  // All-zero tensor: ts = 1, block bytes 0, codes 0, exact zeros.
  const auto z = rotquant::quantize(quantizer::nvfp4(), matrix_f::Zero(2, 16));
  EXPECT_EQ(z.tensor_scale, 1.0f);
  EXPECT_EQ(rotquant::dequantize(z), matrix_f::Zero(2, 16));
}

// ----------------------------------------------------------------- edge cases, policy

std::vector<quantizer> all_quantizers() {
  using rotquant::fp4_kind;
  return {quantizer::int_sym(4),
          quantizer::int_asym(4),
          quantizer::int_sym(3, granularity::per_group, 4),
          quantizer::int_asym(4, granularity::per_group, 4),
          quantizer::int_sym(8, granularity::per_tensor),
          quantizer::int_asym(2, granularity::per_tensor),
          quantizer::duquant(4, 0.9f),
          quantizer::gptq_weight(4, true, true),
          quantizer::gptq_weight(4, false, true, 4),
          quantizer::fp4(fp4_kind::e1m2),
          quantizer::fp4(fp4_kind::e2m1, granularity::per_group, 4),
          quantizer::fp4(fp4_kind::e3m0, granularity::per_tensor),
          quantizer::fp8(true, granularity::per_row),
          quantizer::fp8(false),
          quantizer::mxfp4(),
          quantizer::mxint8(),
          quantizer::nvfp4()};
}

TEST(EdgeCases, AllZeroRowsGiveZerosWithFiniteScales) {
  matrix_f x = gaussian(3, 32, 5);
  x.row(1).setZero();
  for (const auto& q : all_quantizers()) {
    const auto m = rotquant::quantize(q, x);
    for (float s : m.scales) EXPECT_TRUE(std::isfinite(s)) << q.name();
    const matrix_f d = rotquant::dequantize(m);
    for (index_t c = 0; c < x.cols(); ++c) {
      if (q.gran == granularity::per_tensor) break;
      EXPECT_EQ(d(1, c), 0.0f) << q.name();
    }
    EXPECT_TRUE(d.allFinite()) << q.name();
  }
}

TEST(EdgeCases, TinyAndMassiveMagnitudes) {
  for (const auto& q : all_quantizers()) {
    if (q.rule == rotquant::range_rule::duquant || q.rule == rotquant::range_rule::gptq) continue;
    for (double mag : {1e-30, 1e4}) {
      const matrix_f x = gaussian(2, 32, 6, mag);
      const matrix_f d = rotquant::fake_quantize(q, x);
      ASSERT_TRUE(d.allFinite()) << q.name() << " mag " << mag;
      // Scale invariance: relative error is the same order as at unit scale.
      const matrix_f x1 = gaussian(2, 32, 6, 1.0);
      const double rel1 = mse(x1, rotquant::fake_quantize(q, x1));
      const double rel = mse(x, d) / (mag * mag);
      EXPECT_LT(rel, 4 * rel1 + 1e-12) << q.name() << " mag " << mag;
      EXPECT_GT(rel, 0.25 * rel1) << q.name() << " mag " << mag;
    }
  }
  // A massive token (1e4) in per-row quantization leaves the other rows untouched.
  matrix_f x = gaussian(4, 64, 7);
  const matrix_f before = rotquant::fake_quantize(quantizer::int_sym(4), x);
  x(2, 5) = 1e4f;
  const matrix_f after = rotquant::fake_quantize(quantizer::int_sym(4), x);
  for (index_t r : {0, 1, 3}) EXPECT_EQ(after.row(r), before.row(r));
}

TEST(EdgeCases, NonFiniteRejectedWithFirstIndex) {
  matrix_f x = gaussian(3, 8, 1);
  x(1, 6) = std::numeric_limits<float>::quiet_NaN();
  x(2, 0) = std::numeric_limits<float>::infinity();
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(4), x), "at (1, 6)");
  EXPECT_ROTQUANT_ERROR(rotquant::fake_quantize(quantizer::mxfp4(), x), "non-finite");
  std::vector<std::uint8_t> packed(4);
  std::vector<float> row = {1.0f, 2.0f, -std::numeric_limits<float>::infinity(), 0.0f};
  EXPECT_ROTQUANT_ERROR(rotquant::quantize_row_int4_sym(row.data(), 4, 1.0f, packed.data()),
                        "at index 2");
}

TEST(EdgeCases, InvalidSettingsRejected) {
  const matrix_f x = gaussian(2, 12, 1);
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(9), x), "accepted: 2..8");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(1), x), "accepted: 2..8");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(4, granularity::per_group, 5), x),
                        "does not divide the row length 12");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(4, granularity::per_group, 0), x),
                        "group size > 0");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(4, granularity::per_row, 0, 0.0f), x),
                        "clip ratio");
  // A scale that overflows fp32 is an error, never a silent Inf scale.
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_sym(4, granularity::per_row, 0, 4.0f),
                                           row_of({3e38f, 1.0f})),
                        "overflows fp32");
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(quantizer::int_asym(4), row_of({-3e38f, 3e38f})),
                        "overflows");
  quantizer m = quantizer::mxfp4();
  m.group_size = 16;
  EXPECT_ROTQUANT_ERROR(rotquant::quantize(m, x), "blocks of 32");
}

// ----------------------------------------------------------------- idempotence, consistency

TEST(Consistency, QuantizeIsIdempotentOnDequantizedData) {
  const matrix_f x = gaussian(6, 64, 31);
  for (const auto& q : all_quantizers()) {
    if (q.format == rotquant::element_format::nvfp4 || q.rule == rotquant::range_rule::duquant ||
        q.search != rotquant::clip_search::none) {
      continue;  // tensor-scale / clamped / searched rules are not fixed points by design
    }
    const auto m1 = rotquant::quantize(q, x);
    const matrix_f d1 = rotquant::dequantize(m1);
    const auto m2 = rotquant::quantize(q, d1);
    for (index_t r = 0; r < x.rows(); ++r) {
      for (index_t c = 0; c < x.cols(); ++c) ASSERT_EQ(m2.code(r, c), m1.code(r, c)) << q.name();
    }
    const matrix_f d2 = rotquant::dequantize(m2);
    EXPECT_LE((d2 - d1).cwiseAbs().maxCoeff(), 1e-6f * d1.cwiseAbs().maxCoeff()) << q.name();
  }
}

TEST(Consistency, RowFunctionsMatchQuantize) {
  rotquant::rng g(77);
  for (index_t n : {1, 2, 7, 16, 31, 32, 33, 64, 100, 128}) {
    std::vector<float> x(static_cast<std::size_t>(n));
    for (auto& v : x) v = static_cast<float>(g.normal());
    const matrix_f X = Eigen::Map<const matrix_f>(x.data(), 1, n);
    const index_t nb = rotquant::packed_nibble_bytes(n);
    std::vector<std::uint8_t> p(static_cast<std::size_t>(nb));

    const float s = rotquant::quantize_row_int4_sym(x.data(), n, 0.9f, p.data());
    const auto m = rotquant::quantize(quantizer::int_sym(4, granularity::per_row, 0, 0.9f), X);
    EXPECT_EQ(s, m.scales[0]);
    EXPECT_EQ(p, m.codes) << n;

    const auto sz = rotquant::quantize_row_int4_asym(x.data(), n, 1.0f, p.data());
    const auto ma = rotquant::quantize(quantizer::int_asym(4), X);
    EXPECT_EQ(sz.scale, ma.scales[0]);
    EXPECT_EQ(sz.zero, ma.zero_points[0]);
    EXPECT_EQ(p, ma.codes) << n;

    std::vector<std::int8_t> c8(static_cast<std::size_t>(n));
    const float s8 = rotquant::quantize_row_int8_sym(x.data(), n, 1.0f, c8.data());
    const auto m8 = rotquant::quantize(quantizer::int_sym(8), X);
    EXPECT_EQ(s8, m8.scales[0]);
    for (index_t c = 0; c < n; ++c) EXPECT_EQ(c8[static_cast<std::size_t>(c)], m8.code(0, c));
    EXPECT_EQ(m8.code(0, 0), static_cast<int>(std::nearbyint(x[0] / s8)));

    const float sf = rotquant::quantize_row_fp4_e2m1(x.data(), n, 1.0f, p.data());
    const auto mf = rotquant::quantize(quantizer::fp4(rotquant::fp4_kind::e2m1), X);
    EXPECT_EQ(sf, mf.scales[0]);
    EXPECT_EQ(p, mf.codes);

    std::vector<std::uint8_t> sb(static_cast<std::size_t>((n + 15) / 16));
    rotquant::quantize_row_mxfp4(x.data(), n, p.data(), sb.data());
    const auto mx = rotquant::quantize(quantizer::mxfp4(), X);
    EXPECT_EQ(p, mx.codes);
    EXPECT_EQ(std::vector<std::uint8_t>(sb.begin(),
                                        sb.begin() + static_cast<long>(mx.scale_codes.size())),
              mx.scale_codes);

    const auto mn = rotquant::quantize(quantizer::nvfp4(), X);
    rotquant::quantize_row_nvfp4(x.data(), n, mn.tensor_scale, p.data(), sb.data());
    EXPECT_EQ(mn.tensor_scale, rotquant::nvfp4_tensor_scale(X));
    EXPECT_EQ(p, mn.codes);
    EXPECT_EQ(std::vector<std::uint8_t>(sb.begin(),
                                        sb.begin() + static_cast<long>(mn.scale_codes.size())),
              mn.scale_codes);

    if (n % 16 == 0) {
      std::vector<float> gs(static_cast<std::size_t>(n / 16));
      std::vector<std::int32_t> gz(static_cast<std::size_t>(n / 16));
      rotquant::quantize_row_int4_sym_groups(x.data(), n, 16, 1.0f, p.data(), gs.data());
      const auto mg = rotquant::quantize(quantizer::int_sym(4, granularity::per_group, 16), X);
      EXPECT_EQ(p, mg.codes);
      EXPECT_EQ(gs, mg.scales);
      rotquant::quantize_row_int4_asym_groups(x.data(), n, 16, 1.0f, p.data(), gs.data(),
                                              gz.data());
      const auto mga = rotquant::quantize(quantizer::int_asym(4, granularity::per_group, 16), X);
      EXPECT_EQ(p, mga.codes);
      EXPECT_EQ(gs, mga.scales);
      EXPECT_EQ(gz, mga.zero_points);
    }
  }
}

TEST(Consistency, OddColumnsPackPerRow) {
  const matrix_f x = gaussian(3, 7, 2);
  const auto m = rotquant::quantize(quantizer::int_sym(4), x);
  EXPECT_EQ(m.row_bytes, 4);
  for (index_t r = 0; r < 3; ++r) {
    EXPECT_EQ(m.codes[static_cast<std::size_t>(r * 4 + 3)] >> 4, 0) << "odd tail nibble is zero";
    for (index_t c = 0; c < 7; ++c) {
      const std::uint8_t byte = m.codes[static_cast<std::size_t>(r * 4 + c / 2)];
      const int nib = (c % 2 == 0) ? (byte & 0xF) : (byte >> 4);
      EXPECT_EQ(rotquant::sign_extend_nibble(static_cast<std::uint8_t>(nib)), m.code(r, c));
    }
  }
}

// ----------------------------------------------------------------- reference error figures

TEST(ReferenceFigures, GaussianInt4RowVsGroup128VsMxfp4) {
  const index_t rows = rotquant_test::scaled(64, 16);
  const matrix_f x = gaussian(rows, 4096, 2024);
  const double row_db = sqnr_db(x, rotquant::fake_quantize(quantizer::int_sym(4), x));
  const double g128_db =
      sqnr_db(x, rotquant::fake_quantize(quantizer::int_sym(4, granularity::per_group, 128), x));
  const double mx_db = sqnr_db(x, rotquant::fake_quantize(quantizer::mxfp4(), x));
  const double nv_db = sqnr_db(x, rotquant::fake_quantize(quantizer::nvfp4(), x));
  // Uniform-noise model: step = amax / 7 with amax ~ 3.9 sigma (row of 4096) and ~ 2.7 sigma
  // (group of 128): SQNR ~ 10 log10(12 / step^2) ~ 15.9 dB and ~ 18.7 dB. Measured on this seed
  // (deterministic): 15.96, 18.61, MXFP4 18.80, NVFP4 20.41 dB.
  EXPECT_NEAR(row_db, 15.96, 0.25);
  EXPECT_NEAR(g128_db, 18.61, 0.25);
  EXPECT_GT(g128_db, row_db + 2.0);
  EXPECT_NEAR(mx_db, 18.80, 0.25);
  EXPECT_NEAR(nv_db, 20.41, 0.25);
  EXPECT_GT(nv_db, mx_db);  // finer blocks and an E4M3 scale
  std::printf("INT4 row %.2f dB, group-128 %.2f dB, MXFP4 %.2f dB, NVFP4 %.2f dB\n", row_db,
              g128_db, mx_db, nv_db);
}

TEST(ReferenceFigures, RotatingOutlierChannelsFirstCutsTheError) {
  // 2 outlier channels (x 20) among 256: per-token INT4 is dominated by them. A normalized
  // Sylvester Hadamard H (orthogonal, built here) spreads them; error measured back in the
  // original basis (Q(X H) H^T vs X, same as in the rotated basis since H is orthogonal).
  const index_t n = 256;
  matrix_f x = gaussian(rotquant_test::scaled(128, 32), n, 99);
  for (index_t c : {3, 150}) x.col(c) *= 20.0f;
  rotquant::matrix_d h = rotquant::matrix_d::Ones(1, 1);
  while (h.rows() < n) {
    rotquant::matrix_d next(2 * h.rows(), 2 * h.rows());
    next << h, h, h, -h;
    h = next;
  }
  h /= std::sqrt(static_cast<double>(n));
  const matrix_f hf = h.cast<float>();
  const auto q = quantizer::int_sym(4);
  const matrix_f plain = rotquant::fake_quantize(q, x);
  const matrix_f xr = x * hf;
  const matrix_f rotated = rotquant::fake_quantize(q, xr) * hf.transpose();
  const double e_plain = mse(x, plain);
  const double e_rot = mse(x, rotated);
  std::printf("outliers: plain MSE %.4f, rotated MSE %.4f (ratio %.1f)\n", e_plain, e_rot,
              e_plain / e_rot);
  EXPECT_GT(e_plain / e_rot, 10.0);
}

// The canonical E2M1 grid's thresholds are exactly e2m1_encode's ladder (the fake-quant fast
// path uses them for fp4_e2m1): '>' ends become the next float up.
TEST(FP4Scaled, CanonicalE2M1ThresholdsAreTheOcpLadder) {
  const auto& f = rotquant::canonical_fp4(rotquant::fp4_kind::e2m1);
  const float inf = std::numeric_limits<float>::infinity();
  const float want[7] = {std::nextafter(0.25f, inf), 0.75f, std::nextafter(1.25f, inf), 1.75f,
                         std::nextafter(2.5f, inf),  3.5f,  std::nextafter(5.0f, inf)};
  for (int i = 0; i < 7; ++i) EXPECT_EQ(f.threshold(i), want[i]) << i;
}

// fake_quantize takes a direct path (no packed buffers): it must equal dequantize(quantize())
// bit for bit for every format, granularity, search and shape, tails included.
TEST(Consistency, FakeQuantizeEqualsDequantizeOfQuantize) {
  using rotquant::fp4_kind;
  std::vector<quantizer> qs = {quantizer::int_sym(4),
                               quantizer::int_sym(8, granularity::per_tensor),
                               quantizer::int_asym(4, granularity::per_group, 16),
                               quantizer::int_sym(3, granularity::per_group, 32, 0.9f),
                               quantizer::quarot_activation(4, false, 0.9f),
                               quantizer::gptq_weight(4, true, true),
                               quantizer::gptq_weight(4, false, true, 16),
                               quantizer::duquant(4, 0.8f),
                               quantizer::fp4(fp4_kind::e1m2, granularity::per_row, 0, 0.8f),
                               quantizer::fp4(fp4_kind::e2m1, granularity::per_tensor),
                               quantizer::fp4(fp4_kind::e3m0, granularity::per_group, 16, 0.6f),
                               quantizer::fp8(true),
                               quantizer::fp8(false, granularity::per_row),
                               quantizer::mxfp4(),
                               quantizer::mxint8(),
                               quantizer::nvfp4()};
  rotquant::rng g(5);
  for (const auto& q : qs) {
    for (index_t cols : {1, 7, 16, 33, 64, 95}) {
      const index_t rows = 1 + static_cast<index_t>(g() % 5);
      matrix_f x = gaussian(rows, cols, g(), 2.0);
      x(0, 0) = 0.0f;
      if (cols > 3) x(rows - 1, 3) *= 50.0f;  // an outlier
      matrix_f want;
      try {
        want = rotquant::dequantize(rotquant::quantize(q, x));
      } catch (const rotquant::error&) {
        // Shapes the quantizer rejects must be rejected by both paths.
        EXPECT_THROW(rotquant::fake_quantize(q, x), rotquant::error) << q.name() << " " << cols;
        continue;
      }
      const matrix_f got = rotquant::fake_quantize(q, x);
      ASSERT_EQ(got.rows(), want.rows());
      for (index_t i = 0; i < got.size(); ++i) {
        ASSERT_EQ(std::memcmp(got.data() + i, want.data() + i, sizeof(float)), 0)
            << q.name() << " " << rows << "x" << cols << " element " << i << ": " << got.data()[i]
            << " vs " << want.data()[i];
      }
    }
  }
}

}  // namespace
