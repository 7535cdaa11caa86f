// SPDX-License-Identifier: Apache-2.0
// permutation_test.cpp: permutation validation, inverse, exact application, matrix form.
#include "rotquant/transforms/permutation.hpp"

#include <gtest/gtest.h>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;

TEST(Permutation, InverseComposesToIdentityExactly) {
  for (index_t n : {1, 2, 17, 4096}) {
    const auto p = rotquant::random_permutation(n, 9);
    const auto q = rotquant::inverse_permutation(p);
    for (index_t i = 0; i < n; ++i) {
      EXPECT_EQ(q[static_cast<std::size_t>(p[static_cast<std::size_t>(i)])], i);
      EXPECT_EQ(p[static_cast<std::size_t>(q[static_cast<std::size_t>(i)])], i);
    }
  }
}

TEST(Permutation, ApplicationIsAGatherAndMatchesTheMatrix) {
  const index_t n = 23;
  const auto p = rotquant::random_permutation(n, 4);
  const rotquant::matrix_f x = rotquant::random_normal_matrix<float>(3, n, 2);
  const rotquant::matrix_f y = rotquant::permute_columns(x, p);
  for (index_t r = 0; r < 3; ++r)
    for (index_t i = 0; i < n; ++i) EXPECT_EQ(y(r, i), x(r, p[static_cast<std::size_t>(i)]));
  EXPECT_TRUE((x.cast<double>() * rotquant::permutation_matrix(p)).cast<float>() == y);
  EXPECT_TRUE(rotquant::permute_columns(y, rotquant::inverse_permutation(p)) == x);
}

TEST(Permutation, BadPermutationsRejected) {
  EXPECT_ROTQUANT_ERROR(rotquant::inverse_permutation({0, 2, 2}),
                        "duplicate index 2 at positions 1 and 2");
  EXPECT_ROTQUANT_ERROR(rotquant::inverse_permutation({0, 3, 1}),
                        "entry 1 is 3, out of range [0, 3)");
  EXPECT_ROTQUANT_ERROR(rotquant::inverse_permutation({-1, 0}), "out of range");
  EXPECT_ROTQUANT_ERROR(rotquant::permute_columns(rotquant::matrix_f(2, 3), {0, 1}),
                        "2 entries, the dimension is 3");
}

}  // namespace
