// SPDX-License-Identifier: Apache-2.0
// search_test.cpp: clip-ratio grid search (MSE and layer-output objectives) and HQ-DiT's FP4
// format + clipping selection.
#include "rotquant/quant/search.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/quant/metrics.hpp"
#include "test_util.hpp"

namespace {

using rotquant::clip_grid;
using rotquant::fp4_kind;
using rotquant::granularity;
using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;
using rotquant::quantizer;

using rotquant_test::gaussian;

TEST(ClipGrid, EndpointsAndValidation) {
  const clip_grid g{0.5f, 1.0f, 51};
  EXPECT_EQ(g.at(0), 1.0f);
  EXPECT_EQ(g.at(50), 0.5f);
  EXPECT_FLOAT_EQ(g.at(10), 0.9f);
  EXPECT_EQ((clip_grid{0.7f, 0.7f, 1}.at(0)), 0.7f);
  EXPECT_ROTQUANT_ERROR((clip_grid{1.0f, 0.5f, 3}.validate()), "lo <= hi");
  EXPECT_ROTQUANT_ERROR((clip_grid{0.0f, 0.5f, 3}.validate()), "0 < lo");
}

TEST(ClipSearch, MseObjectivePicksEachRowsBestRatio) {
  const matrix_f w = gaussian(12, 128, 5);
  const quantizer q = quantizer::int_sym(4);
  const clip_grid grid{0.5f, 1.0f, 26};
  const auto res = rotquant::search_clip_ratio(q, w, grid);
  ASSERT_EQ(res.ratios.size(), 12u);
  EXPECT_LE(res.error, res.error_at_hi);
  EXPECT_EQ(res.dequantized, rotquant::dequantize(res.quantized));
  double mean_ratio = 0;
  for (index_t r = 0; r < w.rows(); ++r) {
    // Brute force over the grid for this row alone.
    const matrix_f row = w.row(r);
    double best = 1e300;
    float best_ratio = 0;
    for (int i = 0; i < grid.steps; ++i) {
      quantizer qi = q;
      qi.clip = grid.at(i);
      const double e = (rotquant::fake_quantize(qi, row) - row).squaredNorm();
      if (e < best) {
        best = e;
        best_ratio = qi.clip;
      }
    }
    EXPECT_EQ(res.ratios[static_cast<std::size_t>(r)], best_ratio) << r;
    quantizer qr = q;
    qr.clip = best_ratio;
    EXPECT_EQ(matrix_f(res.dequantized.row(r)), rotquant::fake_quantize(qr, row)) << r;
    mean_ratio += best_ratio;
  }
  // INT4 on Gaussian rows of 128: the MSE-optimal clip is well inside the range.
  EXPECT_LT(mean_ratio / 12, 0.95);
  EXPECT_GT(mean_ratio / 12, 0.6);
  EXPECT_LT(res.error, 0.9 * res.error_at_hi);
}

TEST(ClipSearch, OutputObjectiveBeatsMseChoiceOnOutputError) {
  // Calibration inputs with a few high-variance channels: the output error weighs the weight
  // columns they hit, so the output-aware choice differs from the MSE one and is better on Y.
  const index_t in = 64;
  matrix_f x = gaussian(rotquant_test::scaled(256, 64), in, 8);
  for (index_t c = 0; c < in; c += 9) x.col(c) *= 12.0f;
  const matrix_f w = gaussian(16, in, 9);
  const quantizer q = quantizer::int_asym(4, granularity::per_group, 16);
  const clip_grid grid{0.5f, 1.0f, 26};
  const auto by_mse = rotquant::search_clip_ratio(q, w, grid);
  const auto by_out = rotquant::search_clip_ratio(q, w, x, grid);
  const matrix_d xd = x.cast<double>();
  auto out_err = [&](const matrix_f& wq) {
    return (xd * (wq.cast<double>() - w.cast<double>()).transpose()).squaredNorm();
  };
  EXPECT_NEAR(by_out.error, out_err(by_out.dequantized), 1e-9 * by_out.error);
  EXPECT_LE(out_err(by_out.dequantized), out_err(by_mse.dequantized));
  EXPECT_LT(out_err(by_out.dequantized), 0.999 * out_err(by_mse.dequantized));
  EXPECT_LE(by_out.error, by_out.error_at_hi);
  // Zero points and scales come from the chosen candidate of each row.
  for (index_t r = 0; r < w.rows(); ++r) {
    quantizer qr = q;
    qr.clip = by_out.ratios[static_cast<std::size_t>(r)];
    const auto m = rotquant::quantize(qr, matrix_f(w.row(r)));
    for (index_t k = 0; k < 4; ++k) {
      EXPECT_EQ(by_out.quantized.scales[static_cast<std::size_t>(r * 4 + k)],
                m.scales[static_cast<std::size_t>(k)]);
      EXPECT_EQ(by_out.quantized.zero_points[static_cast<std::size_t>(r * 4 + k)],
                m.zero_points[static_cast<std::size_t>(k)]);
    }
  }
}

TEST(ClipSearch, PerTensorTakesOneRatio) {
  const matrix_f w = gaussian(8, 64, 10);
  const auto res = rotquant::search_clip_ratio(quantizer::int_sym(3, granularity::per_tensor), w);
  ASSERT_EQ(res.ratios.size(), 1u);
  quantizer q = quantizer::int_sym(3, granularity::per_tensor);
  q.clip = res.ratios[0];
  EXPECT_EQ(res.dequantized, rotquant::fake_quantize(q, w));
  EXPECT_LT(res.ratios[0], 1.0f);
}

TEST(ClipSearch, RejectsBadArguments) {
  const matrix_f w = gaussian(4, 64, 1);
  EXPECT_ROTQUANT_ERROR(rotquant::search_clip_ratio(quantizer::mxfp4(), w), "fixed scale rule");
  EXPECT_ROTQUANT_ERROR(rotquant::search_clip_ratio(quantizer::gptq_weight(4, true, true), w),
                        "already has its own clip search");
  EXPECT_ROTQUANT_ERROR(
      rotquant::search_clip_ratio(quantizer::int_sym(4), w, gaussian(3, 32, 2), {}),
      "they must match");
  matrix_f bad = w;
  bad(2, 3) = std::nanf("");
  EXPECT_ROTQUANT_ERROR(rotquant::search_clip_ratio(quantizer::int_sym(4), bad), "at (2, 3)");
}

// ----------------------------------------------------------------- HQ-DiT selection

TEST(HqDitSelection, UniformDataPicksE1M2) {
  rotquant::rng g(1);
  matrix_f x(rotquant_test::scaled(64, 16), 128);
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t c = 0; c < x.cols(); ++c) x(r, c) = static_cast<float>(2.0 * g.uniform() - 1.0);
  }
  const auto sel = rotquant::select_fp4_format(x);
  std::printf("uniform: %s clip %.3f bias %.3f\n", rotquant::to_string(sel.best.kind),
              sel.best.clip, sel.best.bias);
  EXPECT_EQ(sel.best.kind, fp4_kind::e1m2);
  EXPECT_EQ(sel.candidates.size(), 3u * 36u);
  EXPECT_GT(sel.best.clip, 0.85f);  // little to clip on bounded data
  EXPECT_EQ(sel.chosen.format, rotquant::element_format::fp4_e1m2);
}

TEST(HqDitSelection, HeavyTailedDataPicksMoreExponentBits) {
  // Laplace-like with a log-normal scale mixture: many small values, rare large ones.
  rotquant::rng g(2);
  matrix_f x(rotquant_test::scaled(64, 16), 128);
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t c = 0; c < x.cols(); ++c) {
      x(r, c) = static_cast<float>(g.normal() * std::exp(1.2 * g.normal()));
    }
  }
  const auto sel = rotquant::select_fp4_format(x);
  std::printf("heavy-tailed: %s clip %.3f bias %.3f\n", rotquant::to_string(sel.best.kind),
              sel.best.clip, sel.best.bias);
  EXPECT_TRUE(sel.best.kind == fp4_kind::e3m0 || sel.best.kind == fp4_kind::e2m1);
  // The reported bias is the real-valued bias of docs/algorithms.md 4.1 for maxval = clip * absmax.
  const double amax = x.cwiseAbs().maxCoeff();
  EXPECT_NEAR(sel.best.maxval, amax * sel.best.clip, 1e-9 * amax);
  const int e = sel.best.kind == fp4_kind::e3m0 ? 3 : 2;
  const int m = 3 - e;
  EXPECT_NEAR(sel.best.bias,
              std::pow(2.0, e) - std::log2(sel.best.maxval) + std::log2(2 - std::pow(2.0, -m)) - 1,
              1e-9);
  // The winner's error is the minimum over all candidates and matches a direct evaluation.
  for (const auto& c : sel.candidates) EXPECT_GE(c.error, sel.best.error);
  const matrix_f d = rotquant::fake_quantize(sel.chosen, x);
  EXPECT_NEAR(rotquant::mse(x, d), sel.best.error, 1e-9 * sel.best.error);
}

TEST(HqDitSelection, WeightVariantUsesOutputError) {
  const matrix_f w = gaussian(16, 64, 4);
  const matrix_f x = gaussian(32, 64, 5);
  const auto sel = rotquant::select_fp4_format(w, x, granularity::per_row);
  const matrix_f d = rotquant::fake_quantize(sel.chosen, w);
  const matrix_d xd = x.cast<double>();
  const double want = (xd * (d.cast<double>() - w.cast<double>()).transpose()).squaredNorm() / 32.0;
  EXPECT_NEAR(sel.best.error, want, 1e-9 * want);
  EXPECT_TRUE(std::isnan(sel.best.bias));  // per-row: no single bias
  EXPECT_ROTQUANT_ERROR(rotquant::select_fp4_format(w, gaussian(4, 32, 1)), "X.cols() == W.cols()");
  EXPECT_ROTQUANT_ERROR(rotquant::select_fp4_format(matrix_f(0, 4)), "empty calibration data");
}

}  // namespace
