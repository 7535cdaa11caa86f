// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/reduce.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

// Every compiled path against the scalar reference, bit for bit, over all tail lengths and
// unaligned starts. The largest element is planted at every position class (head, body, tail).
TEST(Reduce, AbsmaxEveryPathBitExactWithScalar) {
  rotquant::rng g(7);
  std::vector<float> buf(600);
  for (auto& v : buf) v = static_cast<float>(g.normal());
  for (auto path : rotquant_test::isa_paths()) {
    for (int offset = 0; offset < 3; ++offset) {
      for (int n = 0; n <= 300; ++n) {
        const float* x = buf.data() + offset;
        const float want = rotquant::detail::arch::absmax(rotquant::detail::arch::scalar{}, x, n);
        float got = 0;
        {
          rotquant::scoped_isa force(path);
          got = rotquant::absmax(x, n);
        }
        ASSERT_EQ(got, want) << rotquant::to_string(path) << " n=" << n << " off=" << offset;
      }
    }
  }
}

TEST(Reduce, AbsmaxFindsPlantedExtremeAnywhere) {
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    for (int n : {1, 7, 8, 15, 16, 17, 31, 32, 33, 100}) {
      for (int pos = 0; pos < n; ++pos) {
        std::vector<float> x(n, 0.5f);
        x[pos] = -1e4f;  // a massive activation with negative sign
        ASSERT_EQ(rotquant::absmax(x.data(), n), 1e4f) << rotquant::to_string(path);
      }
    }
  }
}

TEST(Reduce, RowAbsmaxUsesStride) {
  rotquant::matrix_f m = rotquant::matrix_f::Zero(3, 10);
  m(0, 9) = 5;  // outside the 3 x 8 view
  m(1, 2) = -3;
  m(2, 7) = 2;
  auto v = rotquant::make_view(static_cast<const float*>(m.data()), 3, 8, 10);
  const auto r = rotquant::row_absmax(v);
  EXPECT_EQ(r[0], 0.0f);
  EXPECT_EQ(r[1], 3.0f);
  EXPECT_EQ(r[2], 2.0f);
}

TEST(Reduce, BadArguments) {
  EXPECT_ROTQUANT_ERROR(rotquant::absmax(nullptr, 3), "null data");
  float x = 1;
  EXPECT_ROTQUANT_ERROR(rotquant::absmax(&x, -1), "negative length");
  EXPECT_EQ(rotquant::absmax(nullptr, 0), 0.0f);
}

}  // namespace
