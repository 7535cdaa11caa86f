// SPDX-License-Identifier: Apache-2.0
// orthogonal_test.cpp: Haar random orthogonal matrices: orthogonality, sign fix, determinism.
#include "rotquant/transforms/orthogonal.hpp"

#include <gtest/gtest.h>

#include <Eigen/LU>
#include <limits>

#include "rotquant/core/dispatch.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;

TEST(Orthogonal, OrthogonalInDoubleAndAfterRoundingToFloat) {
  const index_t top = rotquant_test::scaled(1024, 128);
  for (index_t n : {1, 8, 64, 128, 1024}) {
    if (n > top) continue;
    const matrix_d q = rotquant::random_orthogonal(n, 17);
    EXPECT_LE(rotquant::orthogonality_error(q), 1e-12) << n;
    EXPECT_LE(rotquant::orthogonality_error(q.cast<float>()), 1e-6) << n;
    EXPECT_NEAR(std::abs(q.determinant()), 1.0, 1e-6 * n) << n;
  }
}

TEST(Orthogonal, SignOfDiagonalOfRIsFixedPositive) {
  const index_t n = 48;
  const matrix_d g = rotquant::random_normal_matrix<double>(n, n, 3);
  const matrix_d q = rotquant::orthogonal_from_gaussian(g);
  // R = Q^T G must be upper triangular with a positive diagonal (QuaRot's Q diag(sign(diag R))).
  const matrix_d r = q.transpose() * g;
  for (index_t i = 0; i < n; ++i) {
    EXPECT_GT(r(i, i), 0.0) << i;
    for (index_t j = 0; j < i; ++j) EXPECT_NEAR(r(i, j), 0.0, 1e-12) << i << "," << j;
  }
  EXPECT_LE((q * r - g).norm() / g.norm(), 1e-14);
  // The seeded builder is exactly the Gaussian route on random_normal_matrix(seed).
  EXPECT_TRUE(rotquant::random_orthogonal(n, 3) == q);
}

TEST(Orthogonal, SameSeedSameMatrixOnEveryIsaDifferentSeedDifferent) {
  const matrix_d want = rotquant::random_orthogonal(96, 5);
  for (auto path : rotquant_test::isa_paths()) {
    rotquant::scoped_isa force(path);
    EXPECT_TRUE(rotquant::random_orthogonal(96, 5) == want) << rotquant::to_string(path);
  }
  EXPECT_GT((rotquant::random_orthogonal(96, 6) - want).cwiseAbs().maxCoeff(), 0.1);
}

TEST(Orthogonal, BadInputsRejected) {
  EXPECT_ROTQUANT_ERROR(rotquant::random_orthogonal(0, 1), "size must be >= 1");
  EXPECT_ROTQUANT_ERROR(rotquant::orthogonal_from_gaussian(matrix_d(3, 4)), "got 3 x 4");
  matrix_d g = rotquant::random_normal_matrix<double>(4, 4, 1);
  g(2, 1) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::orthogonal_from_gaussian(g), "non-finite value nan at (2, 1)");
  matrix_d singular = matrix_d::Ones(4, 4);
  EXPECT_ROTQUANT_ERROR(rotquant::orthogonal_from_gaussian(singular), "singular");
  EXPECT_ROTQUANT_ERROR(rotquant::orthogonality_error(matrix_d(2, 3)), "expected square");
}

}  // namespace
