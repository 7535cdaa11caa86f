// SPDX-License-Identifier: Apache-2.0
// metrics_test.cpp: hand-computed MSE / SQNR / max error, per-row error spotting a massive token.
#include "rotquant/quant/metrics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "rotquant/core/rng.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "test_util.hpp"

namespace {

using rotquant::matrix_f;

TEST(Metrics, HandComputed) {
  matrix_f a(2, 2);
  a << 1, 2, 3, 4;
  matrix_f b(2, 2);
  b << 1, 2.5f, 3, 2;
  // errors: 0, 0.5, 0, 2 -> sum sq 4.25, mean 1.0625; signal 30.
  EXPECT_DOUBLE_EQ(rotquant::mse(a, b), 4.25 / 4);
  EXPECT_DOUBLE_EQ(rotquant::sqnr_db(a, b), 10 * std::log10(30 / 4.25));
  EXPECT_DOUBLE_EQ(rotquant::max_abs_error(a, b), 2.0);
  const auto rows = rotquant::per_row_mse(a, b);
  EXPECT_DOUBLE_EQ(rows(0), 0.125);
  EXPECT_DOUBLE_EQ(rows(1), 2.0);
  EXPECT_DOUBLE_EQ(rotquant::per_row_l2_error(a, b)(1), 2.0);
  EXPECT_DOUBLE_EQ(rotquant::per_row_sqnr_db(a, b)(0), 10 * std::log10(5 / 0.25));
  const auto rep = rotquant::compare(a, b);
  EXPECT_EQ(rep.worst_row, 1);
  EXPECT_DOUBLE_EQ(rep.mse, 4.25 / 4);
}

TEST(Metrics, DegenerateCases) {
  const matrix_f a = matrix_f::Ones(2, 3);
  EXPECT_TRUE(std::isinf(rotquant::sqnr_db(a, a)));
  EXPECT_GT(rotquant::sqnr_db(a, a), 0);
  EXPECT_EQ(rotquant::mse(a, a), 0.0);
  const matrix_f z = matrix_f::Zero(2, 3);
  EXPECT_LT(rotquant::sqnr_db(z, a), 0);
  EXPECT_TRUE(std::isinf(rotquant::sqnr_db(z, a)));
  const matrix_f e(0, 4);
  EXPECT_EQ(rotquant::mse(e, e), 0.0);
  EXPECT_EQ(rotquant::compare(e, e).worst_row, -1);
}

TEST(Metrics, RejectsShapeMismatchAndNonFinite) {
  const matrix_f a = matrix_f::Ones(2, 3);
  const matrix_f b = matrix_f::Ones(3, 2);
  EXPECT_ROTQUANT_ERROR(rotquant::mse(a, b), "shapes differ");
  matrix_f c = a;
  c(1, 2) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::sqnr_db(a, c), "approximation holds a non-finite value");
  EXPECT_ROTQUANT_ERROR(rotquant::per_row_mse(c, a), "at (1, 2)");
}

TEST(Metrics, PerRowErrorShowsTheMassiveToken) {
  // Per-tensor INT4: a token with a 1e3 activation inflates the shared scale; per-row error
  // of that token stands apart once the others are quantized per row.
  rotquant::rng g(3);
  matrix_f x(16, 128);
  for (rotquant::index_t r = 0; r < x.rows(); ++r) {
    for (rotquant::index_t c = 0; c < x.cols(); ++c) x(r, c) = static_cast<float>(g.normal());
  }
  x(9, 17) = 1000.0f;
  const matrix_f d =
      rotquant::fake_quantize(rotquant::quantizer::int_sym(4, rotquant::granularity::per_row), x);
  const auto rep = rotquant::compare(x, d);
  EXPECT_EQ(rep.worst_row, 9);
  double others = 0;
  for (rotquant::index_t r = 0; r < x.rows(); ++r) {
    if (r != 9) others = std::max(others, rep.row_mse(r));
  }
  EXPECT_GT(rep.row_mse(9), 20 * others);
  EXPECT_EQ(rotquant::per_row_l2_error(x, d).size(), 16);
}

}  // namespace
