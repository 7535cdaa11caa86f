// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/matrix.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <vector>

#include "test_util.hpp"

namespace {

TEST(Matrix, AliasesAreRowMajor) {
  rotquant::matrix_f m(2, 3);
  m << 1, 2, 3, 4, 5, 6;
  EXPECT_EQ(m.data()[1], 2.0f);  // row-major: (0, 1) follows (0, 0)
  EXPECT_EQ(m.data()[3], 4.0f);
  static_assert(rotquant::matrix_d::IsRowMajor, "row-major by convention");
}

TEST(Matrix, StridedViewSeesTheSlice) {
  std::vector<float> buffer(3 * 5);
  for (std::size_t i = 0; i < buffer.size(); ++i) buffer[i] = static_cast<float>(i);
  auto v = rotquant::make_view(buffer.data() + 1, 3, 2, 5);
  EXPECT_EQ(v(0, 0), 1.0f);
  EXPECT_EQ(v(2, 1), 12.0f);
  v(1, 1) = -1.0f;
  EXPECT_EQ(buffer[7], -1.0f);
  const float* cdata = buffer.data();
  auto cv = rotquant::make_view(cdata, 3, 5, 5);
  EXPECT_EQ(cv.sum(), v.sum() + (cv.col(0).sum() + cv.rightCols(2).sum()));
}

TEST(Matrix, ViewRejectsBadShapes) {
  std::vector<float> b(10);
  EXPECT_ROTQUANT_ERROR(rotquant::make_view(b.data(), 2, 5, 4), "row stride 4");
  EXPECT_ROTQUANT_ERROR(rotquant::make_view(b.data(), -1, 5, 5), "negative shape");
  EXPECT_ROTQUANT_ERROR(rotquant::make_view(static_cast<float*>(nullptr), 2, 2, 2), "null data");
  EXPECT_NO_THROW(rotquant::make_view(static_cast<float*>(nullptr), 0, 2, 2));
}

TEST(Matrix, CheckFiniteNamesFirstBadEntry) {
  rotquant::matrix_f m = rotquant::matrix_f::Zero(3, 4);
  EXPECT_NO_THROW(rotquant::check_finite(m, "X"));
  m(2, 1) = std::numeric_limits<float>::quiet_NaN();
  m(2, 3) = std::numeric_limits<float>::infinity();
  EXPECT_ROTQUANT_ERROR(rotquant::check_finite(m, "X"), "X holds a non-finite value nan at (2, 1)");
  m(2, 1) = 0;
  EXPECT_ROTQUANT_ERROR(rotquant::check_finite(m, "W"), "at (2, 3)");
}

}  // namespace
