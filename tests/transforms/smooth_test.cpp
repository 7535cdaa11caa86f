// SPDX-License-Identifier: Apache-2.0
// smooth_test.cpp: smoothing statistics over batches and DuQuant's smoothing-scale rule.
#include "rotquant/transforms/smooth.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/transform.hpp"
#include "test_util.hpp"

namespace {

using rotquant::matrix_f;
using rotquant::vector_d;

TEST(Smooth, StatisticsOverBatchesEqualWholeData) {
  const matrix_f all = rotquant::random_normal_matrix<float>(40, 12, 1);
  rotquant::smooth_statistics whole, batched(12);
  whole.add(all);
  batched.add(matrix_f(all.topRows(15)));
  batched.add(matrix_f(all.bottomRows(25)));
  EXPECT_TRUE(whole.absmax() == batched.absmax());
  EXPECT_EQ(batched.tokens(), 40);
  for (int j = 0; j < 12; ++j)
    EXPECT_EQ(whole.absmax()[j], static_cast<double>(all.col(j).cwiseAbs().maxCoeff()));
}

TEST(Smooth, ScalesFollowTheClampedRule) {
  vector_d a(4), w(4);
  a << 16.0, 0.0, 1e-9, 4.0;
  w << 1.0, 2.0, 1e-9, 0.25;
  const vector_d s = rotquant::smooth_scales(a, w, 0.5);
  EXPECT_DOUBLE_EQ(s[0], 4.0);                               // sqrt(16) / sqrt(1)
  EXPECT_DOUBLE_EQ(s[1], std::sqrt(1e-5) / std::sqrt(2.0));  // act clamped to 1e-5
  EXPECT_DOUBLE_EQ(s[2], 1.0);                               // both clamped to 1e-5
  EXPECT_DOUBLE_EQ(s[3], 4.0);                               // sqrt(4) / sqrt(0.25)
  const vector_d s1 = rotquant::smooth_scales(a, w, 1.0);
  EXPECT_DOUBLE_EQ(s1[0], 16.0);
  EXPECT_DOUBLE_EQ(s1[1], 1e-5);  // result clamped to >= 1e-5
  const vector_d s0 = rotquant::smooth_scales(a, w, 0.0);
  EXPECT_DOUBLE_EQ(s0[3], 4.0);  // 1 / 0.25
}

TEST(Smooth, ScalesFoldInvariantThroughTransform) {
  const matrix_f x = rotquant::random_normal_matrix<float>(8, 16, 2);
  const matrix_f w = rotquant::random_normal_matrix<float>(5, 16, 3);
  rotquant::smooth_statistics st;
  st.add(x);
  const vector_d s = rotquant::smooth_scales(st.absmax(), rotquant::weight_absmax(w), 0.6);
  rotquant::transform t(16);
  t.append_scale(s);
  const matrix_f y = t.apply(x) * t.fold_into_weight(w).transpose();
  const matrix_f want = x * w.transpose();
  EXPECT_LE((y - want).norm() / want.norm(), 1e-6);
}

TEST(Smooth, BadInputsRejected) {
  rotquant::smooth_statistics st;
  matrix_f x = matrix_f::Ones(3, 4);
  x(1, 2) = std::numeric_limits<float>::infinity();
  EXPECT_ROTQUANT_ERROR(st.add(x), "at (1, 2)");
  EXPECT_EQ(st.tokens(), 0);
  st.add(matrix_f(matrix_f::Ones(2, 4)));
  EXPECT_ROTQUANT_ERROR(st.add(matrix_f(matrix_f::Ones(2, 5))),
                        "batch has 5 channels, earlier batches 4");
  EXPECT_ROTQUANT_ERROR(rotquant::smooth_scales(vector_d::Ones(3), vector_d::Ones(4), 0.5),
                        "3 channels, weight statistics 4");
  EXPECT_ROTQUANT_ERROR(rotquant::smooth_scales(vector_d::Ones(3), vector_d::Ones(3), 1.5),
                        "alpha must be in [0, 1], got 1.5");
  vector_d a = vector_d::Ones(3);
  a[1] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::smooth_scales(a, vector_d::Ones(3), 0.5), "act_absmax[1] = nan");
  a[1] = -2;
  EXPECT_ROTQUANT_ERROR(rotquant::smooth_scales(vector_d::Ones(3), a, 0.5),
                        "weight_absmax[1] = -2");
  EXPECT_ROTQUANT_ERROR(rotquant::smooth_statistics(0), "channel count must be >= 1");
}

}  // namespace
