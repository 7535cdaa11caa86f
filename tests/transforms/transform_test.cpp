// SPDX-License-Identifier: Apache-2.0
// transform_test.cpp: the stage list: apply == X * to_dense, fold invariance for chains of every
// stage kind, inverse, orthogonality, executors and strides, composition, bad inputs.
#include "rotquant/transforms/transform.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;
using rotquant::transform;
using rotquant::vector_d;

vector_d positive_scales(index_t n, std::uint64_t seed) {
  rotquant::rng g(seed);
  vector_d s(n);
  for (index_t i = 0; i < n; ++i) s[i] = std::exp(g.normal());  // spread over ~e^-3..e^3
  return s;
}

// A chain with every stage kind over dimension c (c must be a multiple of 8 and Hadamard-able).
transform every_kind_chain(index_t c, bool orthogonal_only) {
  transform t(c);
  if (!orthogonal_only) t.append_scale(positive_scales(c, 1));
  t.append_signs(rotquant::random_signs<double>(c, 2));
  t.append_permutation(rotquant::random_permutation(c, 3));
  t.append_hadamard();
  t.append_hadamard(c / 2, true);
  t.append_block_diagonal(rotquant::random_orthogonal(8, 4));
  std::vector<matrix_d> blocks;
  for (index_t g = 0; g < c / 4; ++g) blocks.push_back(rotquant::random_orthogonal(4, 10 + g));
  t.append_block_diagonal(blocks);
  if (c <= 512) {
    t.append_dense(rotquant::random_orthogonal(c, 5));
    if (!orthogonal_only) {
      // A non-orthogonal invertible dense stage: I + 0.1 G.
      t.append_dense(matrix_d::Identity(c, c) +
                     0.1 / std::sqrt(double(c)) * rotquant::random_normal_matrix<double>(c, c, 6));
    }
  }
  return t;
}

double rel(const matrix_d& got, const matrix_d& want) {
  return (got - want).norm() / want.norm();
}

TEST(Transform, ApplyEqualsDenseProduct) {
  for (index_t c : {24, 64, 160}) {
    const transform t = every_kind_chain(c, false);
    const matrix_d m = t.to_dense();
    const matrix_d x = rotquant::random_normal_matrix<double>(5, c, 7);
    EXPECT_LE(rel(t.apply(x), x * m), 1e-13) << c;
    const matrix_f xf = x.cast<float>();
    EXPECT_LE(rel(t.apply(xf).cast<double>(), xf.cast<double>() * m), 1e-5) << c;
  }
}

TEST(Transform, FoldInvarianceForChainsOfEveryStageKind) {
  const int tokens = rotquant_test::scaled(16, 4);
  for (index_t c : {64, 160, 1024}) {
    if (c > rotquant_test::scaled(1024, 160)) continue;
    for (bool orth : {true, false}) {
      const transform t = every_kind_chain(c, orth);
      matrix_d x = rotquant::random_normal_matrix<double>(tokens, c, 8);
      x.col(3) *= 1e4;  // a massive-activation channel
      const matrix_d w = rotquant::random_normal_matrix<double>(32, c, 9);
      const matrix_d want = x * w.transpose();
      // double
      const matrix_d got_d = t.apply(x) * t.fold_into_weight(w).transpose();
      EXPECT_LE(rel(got_d, want), 1e-12) << "c=" << c << " orth=" << orth;
      // float: transform and product in float, compared with the double product
      const matrix_f xf = x.cast<float>(), wf = w.cast<float>();
      const matrix_f got_f = t.apply(xf) * t.fold_into_weight(wf).transpose();
      const matrix_d want_f = xf.cast<double>() * wf.cast<double>().transpose();
      EXPECT_LE(rel(got_f.cast<double>(), want_f), 1e-5) << "c=" << c << " orth=" << orth;
    }
  }
}

TEST(Transform, FoldOfOrthogonalChainIsApply) {
  const transform t = every_kind_chain(64, true);
  EXPECT_TRUE(t.is_orthogonal());
  const matrix_d w = rotquant::random_normal_matrix<double>(6, 64, 1);
  EXPECT_LE(rel(t.fold_into_weight(w), t.apply(w)), 1e-14);
}

TEST(Transform, InverseRestoresInput) {
  for (bool orth : {true, false}) {
    const transform t = every_kind_chain(160, orth);
    const transform inv = t.inverse();
    EXPECT_EQ(inv.num_stages(), t.num_stages());
    const matrix_d x = rotquant::random_normal_matrix<double>(4, 160, 3);
    EXPECT_LE(rel(inv.apply(t.apply(x)), x), 1e-12) << orth;
    EXPECT_LE(rel(t.apply(inv.apply(x)), x), 1e-12) << orth;
    EXPECT_LE((t.to_dense() * inv.to_dense() - matrix_d::Identity(160, 160)).cwiseAbs().maxCoeff(),
              1e-12);
  }
  // Signs and permutations invert bit-exactly.
  transform p(37);
  p.append_permutation(rotquant::random_permutation(37, 1));
  p.append_signs(rotquant::random_signs<double>(37, 2));
  const matrix_f x = rotquant::random_normal_matrix<float>(3, 37, 4);
  EXPECT_TRUE(p.inverse().apply(p.apply(x)) == x);
}

TEST(Transform, IsOrthogonalDetectsScalesAndDenseStages) {
  EXPECT_TRUE(every_kind_chain(64, true).is_orthogonal());
  EXPECT_FALSE(every_kind_chain(64, false).is_orthogonal());
  transform t(16);
  vector_d s = positive_scales(16, 3);
  t.append_scale(s).append_scale(s.cwiseInverse());  // cancels: orthogonal as a product
  EXPECT_TRUE(t.is_orthogonal(1e-12));
  EXPECT_TRUE(transform(5).is_orthogonal());
}

TEST(Transform, CompositionKeepsFastStagesFast) {
  transform a = rotquant::randomized_hadamard(5120, 1);
  transform b(5120);
  b.append_permutation(rotquant::random_permutation(5120, 2)).append_hadamard(128);
  a.append(b);
  ASSERT_EQ(a.num_stages(), 4u);
  EXPECT_EQ(a.stages()[1].kind, rotquant::stage_kind::hadamard);
  EXPECT_EQ(a.stages()[3].kind, rotquant::stage_kind::hadamard);
  EXPECT_EQ(a.stages()[3].block, 128);
  EXPECT_TRUE(a.stages()[1].blocks.empty());
  const std::string d = a.describe();
  EXPECT_NE(d.find("hadamard block=5120 (40 x 128, doubling)"), std::string::npos) << d;
  // The inverse keeps them fast too (transposed Hadamards).
  const transform inv = a.inverse();
  EXPECT_EQ(inv.stages()[0].kind, rotquant::stage_kind::hadamard);
  EXPECT_TRUE(inv.stages()[0].transposed);
  // Rebuilding from the stage data gives the same transform bit for bit.
  transform rebuilt(5120);
  for (const auto& st : a.stages()) rebuilt.append_stage(st);
  const matrix_f x = rotquant::random_normal_matrix<float>(2, 5120, 5);
  EXPECT_TRUE(rebuilt.apply(x) == a.apply(x));
}

TEST(Transform, StridedViewsAndExecutorsGiveIdenticalBits) {
  // C = 1024 gives row chunks of 64 (transform's grain), so the pool really splits the work.
  const index_t c = 1024;
  const transform t = every_kind_chain(c, false);
  const index_t rows = rotquant_test::scaled(301, 197);
  const matrix_f x = rotquant::random_normal_matrix<float>(rows, c, 6);
  const matrix_f want = t.apply(x);
  matrix_f wide = matrix_f::Constant(rows, c + 7, -9.0f);
  wide.leftCols(c) = x;
  rotquant::thread_pool_executor pool(3);
  t.apply_inplace(rotquant::make_view(wide.data(), rows, c, c + 7), &pool);
  EXPECT_TRUE(wide.leftCols(c) == want);
  EXPECT_TRUE((wide.rightCols(7).array() == -9.0f).all());
  matrix_f y = x;
  rotquant::serial_executor serial;
  t.apply_inplace(rotquant::view(y), &serial);
  EXPECT_TRUE(y == want);
}

TEST(Transform, EmptyInputsAreFine) {
  const transform t = every_kind_chain(64, true);
  const matrix_f x(0, 64);
  EXPECT_EQ(t.apply(x).rows(), 0);
  const matrix_d y = rotquant::random_normal_matrix<double>(2, 64, 1);
  EXPECT_TRUE(transform(64).apply(y) == y);  // no stages: identity
}

TEST(Transform, BadInputsRejected) {
  EXPECT_ROTQUANT_ERROR(transform(0), "dimension must be >= 1");
  transform t(8);
  vector_d s = vector_d::Ones(8);
  s[2] = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(t.append_scale(s), "scale[2] = nan");
  s[2] = 0.0;
  EXPECT_ROTQUANT_ERROR(t.append_scale(s), "scale[2] = 0");
  s[2] = -1.0;
  EXPECT_ROTQUANT_ERROR(t.append_scale(s), "must be finite, normal and > 0");
  EXPECT_ROTQUANT_ERROR(t.append_scale(vector_d::Ones(7)), "7 scales for dimension 8");
  vector_d d = vector_d::Ones(8);
  d[5] = 0.5;
  EXPECT_ROTQUANT_ERROR(t.append_signs(d), "sign[5] = 0.5");
  EXPECT_ROTQUANT_ERROR(t.append_permutation({0, 1, 2, 3, 4, 5, 6, 6}), "duplicate index 6");
  EXPECT_ROTQUANT_ERROR(t.append_permutation({0, 1, 2, 3, 4, 5, 6, 8}), "out of range");
  EXPECT_ROTQUANT_ERROR(t.append_permutation({0, 1}), "2 entries, the dimension is 8");
  EXPECT_ROTQUANT_ERROR(t.append_hadamard(3), "block 3 does not divide");
  EXPECT_ROTQUANT_ERROR(transform(100).append_hadamard(), "n = 100 = 25 * 2^2");
  EXPECT_ROTQUANT_ERROR(t.append_block_diagonal(matrix_d::Identity(3, 3)), "block size 3");
  EXPECT_ROTQUANT_ERROR(t.append_block_diagonal(matrix_d::Zero(4, 4)), "singular");
  EXPECT_ROTQUANT_ERROR(t.append_block_diagonal(matrix_d::Identity(4, 2)), "expected 4 x 4");
  EXPECT_ROTQUANT_ERROR(t.append_block_diagonal(std::vector<matrix_d>(3, matrix_d::Identity(4, 4))),
                        "3 blocks of 4 for dimension 8");
  EXPECT_ROTQUANT_ERROR(t.append_dense(matrix_d::Identity(4, 4)), "expected 8 x 8");
  matrix_d bad = matrix_d::Identity(8, 8);
  bad(1, 1) = std::numeric_limits<double>::infinity();
  EXPECT_ROTQUANT_ERROR(t.append_dense(bad), "non-finite");
  EXPECT_ROTQUANT_ERROR(t.append(transform(9)), "dimensions differ");
  EXPECT_EQ(t.num_stages(), 0u);  // nothing half-appended
  t.append_hadamard();
  EXPECT_ROTQUANT_ERROR(t.apply(matrix_f(2, 9)),
                        "input has 9 columns, the transform dimension is 8");
  EXPECT_ROTQUANT_ERROR(t.fold_into_weight(matrix_d(2, 4)), "input has 4 columns");
}

}  // namespace

// The fold inverse of a non-orthogonal block (complete-pivoting Gauss-Jordan): A A^{-1} = I within
// the backward-stability bound for blocks that need row and column pivots (zero leading entries,
// scales 1e-3..1e3), and a rank-deficient block is an error naming its rank.
TEST(Transform, DenseInverseNeedsPivotsAndReportsRank) {
  for (index_t n : {1, 2, 5, 16, 33}) {
    matrix_d a = rotquant::random_normal_matrix<double>(n, n, 100 + static_cast<std::uint64_t>(n));
    if (n > 1) a(0, 0) = 0.0;  // the first pivot cannot be (0, 0)
    for (index_t i = 0; i < n; ++i) a.row(i) *= std::pow(10.0, 3.0 * (i % 3) - 3.0);
    matrix_d inv;
    ASSERT_EQ(rotquant::detail::invert_complete_pivoting(a, inv), n) << "n = " << n;
    // Backward-stable inversion: |A X - I| <= c n eps ||A|| ||X|| (infinity norms), c = 8.
    const double err = (a * inv - matrix_d::Identity(n, n)).cwiseAbs().maxCoeff();
    const double bound = 8.0 * static_cast<double>(n) * std::numeric_limits<double>::epsilon() *
                         a.cwiseAbs().rowwise().sum().maxCoeff() *
                         inv.cwiseAbs().rowwise().sum().maxCoeff();
    EXPECT_LE(err, bound) << "n = " << n;
  }
  matrix_d r = rotquant::random_normal_matrix<double>(4, 4, 7);
  r.row(3) = 2.0 * r.row(1) - r.row(0);  // rank 3
  matrix_d inv;
  EXPECT_EQ(rotquant::detail::invert_complete_pivoting(r, inv), 3);
  transform t(8);
  EXPECT_ROTQUANT_ERROR(t.append_block_diagonal(r), "singular (rank 3)");
}
