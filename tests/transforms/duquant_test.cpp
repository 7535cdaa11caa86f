// SPDX-License-Identifier: Apache-2.0
// duquant_test.cpp: DuQuant rotations, greedy search (fast == straightforward), zigzag, transform.
#include "rotquant/transforms/duquant.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;

// LLM-like activation: Gaussian bulk with per-channel scales, a few outlier channels, a few
// massive tokens; `ties` duplicates rows of the (T*C/B) x B view and rounds values to a coarse
// grid so equal maxima / minima occur at every step.
matrix_f make_activation(index_t t, index_t c, index_t b, std::uint64_t seed, bool ties) {
  rotquant::rng g(seed, 7);
  matrix_f x(t, c);
  std::vector<double> scale(static_cast<std::size_t>(c));
  for (auto& s : scale) s = 0.5 + g.uniform();
  const index_t outliers = 1 + static_cast<index_t>(g.uniform_int(3));
  for (index_t i = 0; i < outliers; ++i)
    scale[g.uniform_int(static_cast<std::uint64_t>(c))] = 10.0 + 40.0 * g.uniform();
  for (index_t r = 0; r < t; ++r)
    for (index_t j = 0; j < c; ++j)
      x(r, j) = static_cast<float>(g.normal() * scale[static_cast<std::size_t>(j)]);
  const index_t massive = static_cast<index_t>(g.uniform_int(3));
  for (index_t i = 0; i < massive; ++i)
    x(static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(t))),
      static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(c)))) =
        static_cast<float>((g.sign()) * (200.0 + 300.0 * g.uniform()));
  if (ties) {
    for (index_t r = 0; r < t; ++r)
      for (index_t j = 0; j < c; ++j) x(r, j) = std::round(x(r, j) / 4.0f) * 4.0f;
    // Copy view rows onto later view rows: identical rows stay identical at every step.
    const index_t rows = t * c / b;
    float* d = x.data();
    for (index_t i = 0; i < rows / 3; ++i) {
      const auto src = static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(rows)));
      const auto dst = static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(rows)));
      std::memcpy(d + dst * b, d + src * b, sizeof(float) * static_cast<std::size_t>(b));
    }
  }
  return x;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

void expect_identical(const rotquant::duquant_search& a, const rotquant::duquant_search& b) {
  EXPECT_TRUE(same_bits(a.peaks, b.peaks));
  EXPECT_EQ(a.swaps, b.swaps);
  EXPECT_EQ(a.chosen, b.chosen);
  EXPECT_TRUE(a.rotation == b.rotation);
}

void expect_identical(const rotquant::duquant_result& a, const rotquant::duquant_result& b) {
  ASSERT_EQ(a.rotations.size(), b.rotations.size());
  for (std::size_t i = 0; i < a.rotations.size(); ++i) {
    ASSERT_EQ(a.rotations[i].searches.size(), b.rotations[i].searches.size());
    for (std::size_t s = 0; s < a.rotations[i].searches.size(); ++s)
      expect_identical(a.rotations[i].searches[s], b.rotations[i].searches[s]);
  }
  EXPECT_EQ(a.permutations, b.permutations);
  EXPECT_TRUE(a.xform.to_dense() == b.xform.to_dense());
}

// Independent construction of R~ from its definition: G = G_{B-2} ... G_0 (Givens rotations on
// (i, i+1) with c = 1/sqrt(i+2), s = sqrt(i+1)/sqrt(i+2)), R~ = P G P (P swaps 0 and B-1).
matrix_d givens_base(index_t b) {
  matrix_d g = matrix_d::Identity(b, b);
  for (index_t i = 0; i + 1 < b; ++i) {
    matrix_d gi = matrix_d::Identity(b, b);
    const double c = 1.0 / std::sqrt(static_cast<double>(i + 2));
    const double s = std::sqrt(static_cast<double>(i + 1)) / std::sqrt(static_cast<double>(i + 2));
    gi(i, i) = c;
    gi(i, i + 1) = -s;
    gi(i + 1, i) = s;
    gi(i + 1, i + 1) = c;
    g = gi * g;
  }
  matrix_d p = matrix_d::Identity(b, b);
  p.row(0).swap(p.row(b - 1));
  return p * g * p;
}

TEST(DuquantRotation, BaseIsSwappedHelmert) {
  for (index_t b : {2, 3, 4, 5, 8, 17, 128}) {
    const matrix_d r = rotquant::duquant_base_rotation(b);
    const double err = (r * r.transpose() - matrix_d::Identity(b, b)).cwiseAbs().maxCoeff();
    EXPECT_LE(err, 1e-13) << "B = " << b;
    for (index_t c = 0; c < b; ++c)
      EXPECT_NEAR(r(0, c), 1.0 / std::sqrt(static_cast<double>(b)), 1e-15) << "B = " << b;
    // The Givens product defines only the rotation up to the sign convention of s; the rows
    // of the closed form must match it up to sign.
    const matrix_d gb = givens_base(b);
    for (index_t k = 0; k < b; ++k) {
      const double dp = (gb.row(k) - r.row(k)).cwiseAbs().maxCoeff();
      const double dm = (gb.row(k) + r.row(k)).cwiseAbs().maxCoeff();
      EXPECT_LE(std::min(dp, dm), 1e-13) << "B = " << b << " row " << k;
    }
  }
}

TEST(DuquantRotation, RandomQAndRot) {
  for (index_t b : {2, 4, 16, 128}) {
    const matrix_d q = rotquant::duquant_random_q(b - 1, 11, 3);
    const matrix_d q2 = rotquant::duquant_random_q(b - 1, 11, 3);
    EXPECT_TRUE(q == q2);
    EXPECT_LE((q.transpose() * q - matrix_d::Identity(b - 1, b - 1)).cwiseAbs().maxCoeff(), 1e-13);
    const matrix_d rot = rotquant::duquant_rotation(q);
    EXPECT_LE((rot.transpose() * rot - matrix_d::Identity(b, b)).cwiseAbs().maxCoeff(), 1e-13);
    EXPECT_NEAR(rot(0, 0), 1.0 / std::sqrt(static_cast<double>(b)), 1e-15);
    EXPECT_NEAR(rot.row(0).norm(), 1.0, 1e-13);
  }
  // Rot = R~ diag(1, Q') column by column for a permutation Q'.
  matrix_d q = matrix_d::Zero(3, 3);
  q(0, 1) = q(1, 0) = q(2, 2) = 1.0;
  const matrix_d rot = rotquant::duquant_rotation(q);
  const matrix_d base = rotquant::duquant_base_rotation(4);
  EXPECT_TRUE(rot.col(0) == base.col(0));
  EXPECT_TRUE(rot.col(1) == base.col(2));
  EXPECT_TRUE(rot.col(2) == base.col(1));
  EXPECT_TRUE(rot.col(3) == base.col(3));
  EXPECT_ROTQUANT_ERROR(rotquant::duquant_rotation(matrix_d::Constant(3, 3, 0.5)),
                        "not orthogonal");
}

TEST(DuquantKernel, EveryIsaMatchesScalarBitForBit) {
  rotquant::rng g(5);
  for (index_t b : {2, 3, 5, 8, 17, 33, 64, 100, 128, 130, 257}) {
    matrix_f rot =
        rotquant::duquant_rotation(rotquant::duquant_random_q(b - 1, 1, b)).cast<float>();
    std::vector<float> x(static_cast<std::size_t>(b)), scratch(static_cast<std::size_t>(2 * b));
    for (auto& v : x) v = static_cast<float>(g.normal());
    const index_t e = static_cast<index_t>(g.uniform_int(static_cast<std::uint64_t>(b)));
    std::vector<float> ref = x;
    rotquant::detail::arch::duquant_rotate_row(rotquant::detail::arch::scalar{}, rot.data(), b, e,
                                               ref.data(), scratch.data());
    // The scalar result is the documented fma chain.
    std::vector<float> xs = x;
    std::swap(xs[0], xs[static_cast<std::size_t>(e)]);
    std::vector<float> want(static_cast<std::size_t>(b));
    for (index_t c = 0; c < b; ++c) {
      float a = 0.0f;
      for (index_t k = 0; k < b; ++k) a = std::fma(xs[static_cast<std::size_t>(k)], rot(k, c), a);
      want[static_cast<std::size_t>(c)] = a;
    }
    std::swap(want[0], want[static_cast<std::size_t>(e)]);
    EXPECT_TRUE(same_bits(ref, want)) << "B = " << b;
    for (rotquant::isa i : rotquant_test::isa_paths()) {
      std::vector<float> y = x;
      rotquant::dispatch(
          [&](auto tag) {
            rotquant::detail::arch::duquant_rotate_row(tag, rot.data(), b, e, y.data(),
                                                       scratch.data());
          },
          i);
      EXPECT_TRUE(same_bits(y, ref)) << "B = " << b << " isa " << rotquant::to_string(i);
    }
  }
}

// Hand-computed case: B = 4, Q' = I (Rot = R~), X = 2 x 8 viewed as 4 rows:
//   r0 = [1 0 0 0], r1 = r2 = 0, r3 = [0 0 0 -8].
// Step 0: max 1 (flat 0), min -8 (flat 15), peak 9; |-8| wins -> row 3 -> e = 3.
//   r0 -> swap -> [0 0 0 1] -> row 3 of R~ = [0 -1/sqrt2 0 1/sqrt2] -> swap -> [a -a 0 0],
//   r3 -> [-8 0 0 0] -> -8 * row 0 = [-4 -4 -4 -4].
// Step 1: max a = 1/sqrt2 (flat 0), min -4 (flat 12, first of four), peak 4 + a; e = 3.
//   r3 -> -4 * (column sums of R~) -> swap:
//   [-4(1/2 + 1/sqrt6 + 1/sqrt12 + 1/sqrt2), -4(1/2 + 1/sqrt6 + 1/sqrt12 - 1/sqrt2),
//    -4(1/2 - 2/sqrt6 + 1/sqrt12), -4(1/2 - 3/sqrt12)],
//   r0 -> a[1/sqrt2 - 1/sqrt6, -1/sqrt6 - 1/sqrt2, 2/sqrt6, 0].
// Step 2: max -4(1/2 - 3/sqrt12) (flat 15), min -4(1/2 + 1/sqrt6 + 1/sqrt12 + 1/sqrt2) (flat 12).
// Peaks [9, 4 + a, 4 c0 - 4 c3 = 9.08] -> first minimum k = 1, R = E_3 R~ E_3.
TEST(DuquantSearch, HandComputedSmallCase) {
  matrix_f x = matrix_f::Zero(2, 8);
  x(0, 0) = 1.0f;
  x(1, 7) = -8.0f;
  const double a = 1.0 / std::sqrt(2.0), s6 = std::sqrt(6.0), s12 = std::sqrt(12.0);
  const double c0 = 0.5 + 1.0 / s6 + 1.0 / s12 + a;
  const double c3 = 0.5 - 3.0 / s12;
  rotquant::duquant_options opt;
  opt.block_size = 4;
  opt.rotation_steps = 2;
  opt.permutation_times = 0;
  opt.q_primes = {matrix_d::Identity(3, 3)};
  for (bool exhaustive : {true, false}) {
    opt.exhaustive = exhaustive;
    const auto res = rotquant::duquant(x, opt);
    const auto& s = res.rotations.at(0).searches.at(0);
    ASSERT_EQ(s.peaks.size(), 3u);
    EXPECT_NEAR(s.peaks[0], 9.0, 1e-6);
    EXPECT_NEAR(s.peaks[1], 4.0 + a, 1e-6);
    EXPECT_NEAR(s.peaks[2], -4.0 * c3 + 4.0 * c0, 1e-5);
    EXPECT_EQ(s.swaps, (std::vector<index_t>{3, 3}));
    EXPECT_EQ(s.chosen, 1);
    matrix_d want = rotquant::duquant_base_rotation(4);
    want.row(0).swap(want.row(3));
    want.col(0).swap(want.col(3));
    EXPECT_LE((res.R1() - want).cwiseAbs().maxCoeff(), 1e-15);
    const matrix_f y = res.xform.apply(x);
    EXPECT_NEAR(y(0, 0), a, 1e-6);
    EXPECT_NEAR(y(0, 1), -a, 1e-6);
    for (index_t c = 4; c < 8; ++c) EXPECT_NEAR(y(1, c), -4.0, 1e-6);
  }
}

TEST(DuquantSearch, FastEqualsStraightforwardOnPlantedOutliersAndTies) {
  const int cases = rotquant_test::scaled(48, 10);
  std::int64_t fast_work = 0, full_work = 0;
  for (int n = 0; n < cases; ++n) {
    const index_t b = (n % 3 == 0) ? 4 : (n % 3 == 1 ? 8 : 16);
    const index_t k = 1 + n % 4;
    const index_t t = 8 + 4 * (n % 5);
    const bool ties = n % 2 == 1;
    const matrix_f x = make_activation(t, k * b, b, static_cast<std::uint64_t>(100 + n), ties);
    rotquant::duquant_options opt;
    opt.block_size = b;
    opt.rotation_steps = 10 + 7 * (n % 6);
    opt.permutation_times = n % 3;
    opt.mode = (n % 4 == 3) ? rotquant::duquant_mode::paper : rotquant::duquant_mode::released_code;
    opt.seed = static_cast<std::uint64_t>(n);
    opt.exhaustive = true;
    const auto slow = rotquant::duquant(x, opt);
    opt.exhaustive = false;
    const auto fast = rotquant::duquant(x, opt);
    SCOPED_TRACE(::testing::Message()
                 << "case " << n << " B " << b << " C " << k * b << " T " << t << " ties " << ties);
    expect_identical(fast, slow);
    for (std::size_t i = 0; i < fast.rotations.size(); ++i)
      for (std::size_t s = 0; s < fast.rotations[i].searches.size(); ++s) {
        fast_work += fast.rotations[i].searches[s].row_steps;
        full_work += slow.rotations[i].searches[s].row_steps;
      }
  }
  // The planted outliers dominate: the fast path must skip most row-steps.
  EXPECT_LT(fast_work * 2, full_work) << fast_work << " vs " << full_work;
}

TEST(DuquantSearch, FastEqualsStraightforwardOnGaussianRows) {
  // Rows of similar norm: the bound prunes little and the fast path switches to visiting every
  // row in memory order for such steps; the results must not change.
  const int cases = rotquant_test::scaled(12, 3);
  for (int n = 0; n < cases; ++n) {
    const index_t b = n % 2 == 0 ? 8 : 32;
    matrix_f x =
        rotquant::random_normal_matrix<float>(16 + n, 4 * b, static_cast<std::uint64_t>(n));
    if (n % 3 == 1) x(n % 16, 3) = 25.0f;  // one outlier: pruning first, then bulk steps
    rotquant::duquant_search_options so;
    so.block_size = b;
    so.steps = 48;
    const std::vector<matrix_d> rots{rotquant::duquant_rotation(
        rotquant::duquant_random_q(b - 1, 4, static_cast<std::uint64_t>(n)))};
    const auto fast = rotquant::duquant_rotation_search(x, so, rots);
    so.exhaustive = true;
    const auto slow = rotquant::duquant_rotation_search(x, so, rots);
    SCOPED_TRACE(::testing::Message() << "case " << n);
    expect_identical(fast.searches[0], slow.searches[0]);
  }
}

TEST(DuquantSearch, TiesResolveToFirstOccurrence) {
  // Every view row identical: every step's max and min are tied across all rows, the winner
  // is row 0, so the swap index is always 0 (released code) on both paths.
  const index_t b = 8;
  matrix_f x(6, 4 * b);
  rotquant::rng g(3);
  std::vector<float> row(static_cast<std::size_t>(b));
  for (auto& v : row) v = static_cast<float>(g.normal());
  row[5] = 9.0f;
  for (index_t r = 0; r < 6 * 4; ++r)
    for (index_t c = 0; c < b; ++c) x.data()[r * b + c] = row[static_cast<std::size_t>(c)];
  rotquant::duquant_search_options so;
  so.block_size = b;
  so.steps = 30;
  const std::vector<matrix_d> rots{
      rotquant::duquant_rotation(rotquant::duquant_random_q(b - 1, 9))};
  const auto fast = rotquant::duquant_rotation_search(x, so, rots);
  so.exhaustive = true;
  const auto slow = rotquant::duquant_rotation_search(x, so, rots);
  expect_identical(fast.searches[0], slow.searches[0]);
  for (index_t e : fast.searches[0].swaps) EXPECT_EQ(e, 0);
}

TEST(DuquantSearch, EveryIsaGivesTheSameSearch) {
  const matrix_f x = make_activation(16, 64, 16, 77, false);
  rotquant::duquant_options opt;
  opt.block_size = 16;
  opt.rotation_steps = 40;
  std::vector<rotquant::duquant_result> res;
  for (rotquant::isa i : rotquant_test::isa_paths()) {
    rotquant::scoped_isa guard(i);
    res.push_back(rotquant::duquant(x, opt));
  }
  for (std::size_t i = 1; i < res.size(); ++i) expect_identical(res[i], res[0]);
}

// Theorem 1 of the paper for the implemented criterion: the chosen rotation never increases the
// range (max - min) of its search domain: every block in paper mode, the whole view in the
// released code. Checked on X R computed independently in double.
TEST(DuquantSearch, TheoremOneRangeNeverIncreases) {
  const int cases = rotquant_test::scaled(12, 4);
  for (int n = 0; n < cases; ++n) {
    const index_t b = 16, k = 4, t = 24;
    const matrix_f x = make_activation(t, k * b, b, static_cast<std::uint64_t>(500 + n), false);
    for (auto mode : {rotquant::duquant_mode::paper, rotquant::duquant_mode::released_code}) {
      rotquant::duquant_options opt;
      opt.block_size = b;
      opt.rotation_steps = 64;
      opt.permutation_times = 0;
      opt.mode = mode;
      opt.seed = static_cast<std::uint64_t>(n);
      const auto res = rotquant::duquant(x, opt);
      const matrix_d xd = x.cast<double>();
      const matrix_d y = res.xform.apply(xd);
      double before_all_max = -1e300, before_all_min = 1e300, after_all_max = -1e300,
             after_all_min = 1e300;
      for (index_t blk = 0; blk < k; ++blk) {
        const double bmax = xd.middleCols(blk * b, b).maxCoeff();
        const double bmin = xd.middleCols(blk * b, b).minCoeff();
        const double amax = y.middleCols(blk * b, b).maxCoeff();
        const double amin = y.middleCols(blk * b, b).minCoeff();
        before_all_max = std::max(before_all_max, bmax);
        before_all_min = std::min(before_all_min, bmin);
        after_all_max = std::max(after_all_max, amax);
        after_all_min = std::min(after_all_min, amin);
        if (mode == rotquant::duquant_mode::paper) {
          EXPECT_LE(amax - amin, (bmax - bmin) * (1 + 1e-5)) << "block " << blk;
          const auto& s = res.rotations[0].searches[static_cast<std::size_t>(blk)];
          EXPECT_NEAR(amax - amin, s.peaks[static_cast<std::size_t>(s.chosen)],
                      1e-4 * (bmax - bmin));
        }
      }
      if (mode == rotquant::duquant_mode::released_code) {
        EXPECT_LE(after_all_max - after_all_min, (before_all_max - before_all_min) * (1 + 1e-5));
        const auto& s = res.rotations[0].searches[0];
        EXPECT_NEAR(after_all_max - after_all_min, s.peaks[static_cast<std::size_t>(s.chosen)],
                    1e-4 * (before_all_max - before_all_min));
        EXPECT_EQ(s.peaks.size(), 65u);
      }
    }
  }
}

TEST(DuquantZigzag, DealOrderRepeatsEndBlocks) {
  // C = 12, B = 3, K = 4; m descending by index (channel 0 largest) with a tie.
  rotquant::vector_f m(12);
  for (index_t j = 0; j < 12; ++j) m[j] = static_cast<float>(100 - j);
  m[5] = m[4];  // tie: channel 4 stays before channel 5
  const auto perm = rotquant::duquant_zigzag_from_channel_max(m, 3);
  // Sorted 0..11 dealt to blocks 0,1,2,3,3,2,1,0,0,1,2,3.
  const std::vector<index_t> want{0, 7, 8, 1, 6, 9, 2, 5, 10, 3, 4, 11};
  EXPECT_EQ(perm, want);
}

TEST(DuquantZigzag, BlockMeansWithinTheoremTwoBound) {
  // Sweep s of the deal gives every block one channel of sorted ranks [sK, (s+1)K), so two
  // block means differ by at most sum_s (m_(sK) - m_((s+1)K-1)) / B <= (max m - min m) / B.
  const int cases = rotquant_test::scaled(50, 10);
  rotquant::rng g(42);
  for (int n = 0; n < cases; ++n) {
    const index_t b = 2 + static_cast<index_t>(g.uniform_int(30));
    const index_t k = 1 + static_cast<index_t>(g.uniform_int(12));
    rotquant::vector_f m(b * k);
    for (index_t j = 0; j < m.size(); ++j)
      m[j] = static_cast<float>(std::exp(3.0 * g.normal())) * (g.uniform() < 0.05 ? 100.f : 1.f);
    const auto perm = rotquant::duquant_zigzag_from_channel_max(m, b);
    std::vector<index_t> sorted = perm;
    std::sort(sorted.begin(), sorted.end());
    for (index_t j = 0; j < m.size(); ++j) ASSERT_EQ(sorted[static_cast<std::size_t>(j)], j);
    double lo = 1e300, hi = -1e300;
    for (index_t blk = 0; blk < k; ++blk) {
      double s = 0;
      for (index_t i = 0; i < b; ++i) s += m[perm[static_cast<std::size_t>(blk * b + i)]];
      lo = std::min(lo, s / static_cast<double>(b));
      hi = std::max(hi, s / static_cast<double>(b));
    }
    EXPECT_LE(hi - lo, (m.maxCoeff() - m.minCoeff()) / static_cast<double>(b) * (1 + 1e-6) + 1e-9);
  }
}

TEST(DuquantTransform, FoldInvarianceAndOrthogonality) {
  const index_t b = 16, c = 64, t = 32;
  const matrix_f x = make_activation(t, c, b, 9, false);
  rotquant::rng g(10);
  matrix_f w(24, c);
  for (index_t i = 0; i < w.size(); ++i) w.data()[i] = static_cast<float>(g.normal());
  for (auto mode : {rotquant::duquant_mode::released_code, rotquant::duquant_mode::paper}) {
    rotquant::duquant_options opt;
    opt.block_size = b;
    opt.rotation_steps = 32;
    opt.mode = mode;
    const auto plain = rotquant::duquant(x, opt);
    EXPECT_TRUE(plain.xform.is_orthogonal(1e-6));
    EXPECT_EQ(plain.xform.num_stages(), 3u);  // R1, P, R2
    for (index_t i = 0; i < 2; ++i)
      for (index_t blk = 0; blk < (mode == rotquant::duquant_mode::paper ? c / b : 1); ++blk) {
        const matrix_d& r = plain.rotation(i, blk);
        EXPECT_LE((r.transpose() * r - matrix_d::Identity(b, b)).cwiseAbs().maxCoeff(), 1e-6);
      }
    const auto smoothed = rotquant::duquant(x, w, opt);
    EXPECT_EQ(smoothed.xform.num_stages(), 4u);
    ASSERT_EQ(smoothed.smooth_scales.size(), c);
    for (const auto& tr : {plain.xform, smoothed.xform}) {
      const matrix_d xd = x.cast<double>(), wd = w.cast<double>();
      const matrix_d ref = xd * wd.transpose();
      const matrix_d got = tr.apply(xd) * tr.fold_into_weight(wd).transpose();
      EXPECT_LE((got - ref).cwiseAbs().maxCoeff(), 1e-6 * ref.cwiseAbs().maxCoeff());
    }
  }
}

TEST(DuquantTransform, SmoothingUsesSmoothScalesAndTheSearchSeesXOverS) {
  const index_t b = 8, c = 32, t = 16;
  const matrix_f x = make_activation(t, c, b, 12, false);
  rotquant::vector_d wmax = rotquant::vector_d::Constant(c, 0.25);
  rotquant::duquant_options opt;
  opt.block_size = b;
  opt.rotation_steps = 20;
  opt.permutation_times = 1;
  const auto res = rotquant::duquant_with_weight_absmax(x, wmax, opt);
  const rotquant::vector_d act = x.cwiseAbs().colwise().maxCoeff().transpose().cast<double>();
  rotquant::vector_d want = rotquant::smooth_scales(act, wmax, 0.6);
  for (index_t j = 0; j < c; ++j) EXPECT_EQ(res.smooth_scales[j], std::max(want[j], 1e-2));
  // Same search as running on X / s without smoothing.
  matrix_f xs(t, c);
  for (index_t r = 0; r < t; ++r)
    for (index_t j = 0; j < c; ++j)
      xs(r, j) = static_cast<float>(static_cast<double>(x(r, j)) / res.smooth_scales[j]);
  const auto ref = rotquant::duquant(xs, opt);
  ASSERT_EQ(ref.rotations.size(), 2u);
  expect_identical(res.rotations[0].searches[0], ref.rotations[0].searches[0]);
  expect_identical(res.rotations[1].searches[0], ref.rotations[1].searches[0]);
  EXPECT_EQ(res.perm(), ref.perm());
  // Defaults of the released scripts.
  const rotquant::duquant_options def;
  EXPECT_EQ(def.block_size, 128);
  EXPECT_EQ(def.rotation_steps, 256);
  EXPECT_EQ(def.permutation_times, 1);
  EXPECT_EQ(def.alpha, 0.6);
  EXPECT_EQ(def.mode, rotquant::duquant_mode::released_code);
}

TEST(DuquantTransform, RandomPermutationAblationAndSeeds) {
  const matrix_f x = make_activation(16, 32, 8, 13, false);
  rotquant::duquant_options opt;
  opt.block_size = 8;
  opt.rotation_steps = 16;
  opt.permutation = rotquant::duquant_permutation::random;
  const auto a = rotquant::duquant(x, opt);
  const auto b = rotquant::duquant(x, opt);
  EXPECT_EQ(a.perm(), b.perm());
  EXPECT_EQ(a.perm(), rotquant::random_permutation(32, opt.seed, 0x5045524D00000000ull));
  opt.permutation = rotquant::duquant_permutation::zigzag;
  opt.seed = 1;
  const auto c1 = rotquant::duquant(x, opt);
  opt.seed = 2;
  const auto c2 = rotquant::duquant(x, opt);
  EXPECT_FALSE(c1.rotations[0].searches[0].rot == c2.rotations[0].searches[0].rot);
  // Draw d uses stream d: the second search's Rot comes from stream 1.
  EXPECT_TRUE(c2.rotations[1].searches[0].rot ==
              rotquant::duquant_rotation(rotquant::duquant_random_q(7, 2, 1)));
}

TEST(DuquantTransform, SuppliedQPrimesFollowTheDocumentedDrawOrder) {
  // Paper mode, p = 1, K = 4: draws d = 0..7, search-major then block order, stream d.
  const index_t b = 8, k = 4;
  const matrix_f x = make_activation(12, k * b, b, 21, false);
  rotquant::duquant_options opt;
  opt.block_size = b;
  opt.rotation_steps = 12;
  opt.mode = rotquant::duquant_mode::paper;
  opt.seed = 5;
  const auto drawn = rotquant::duquant(x, opt);
  for (std::uint64_t d = 0; d < 2 * k; ++d)
    opt.q_primes.push_back(rotquant::duquant_random_q(b - 1, 5, d));
  const auto supplied = rotquant::duquant(x, opt);
  expect_identical(supplied, drawn);
  ASSERT_EQ(drawn.rotations.size(), 2u);
  EXPECT_TRUE(drawn.rotations[1].searches[2].rot == rotquant::duquant_rotation(opt.q_primes[6]));
  // Independent blocks: a block's search only sees its own columns.
  matrix_f y = x;
  y.middleCols(b, b).setZero();
  opt.q_primes.clear();
  opt.permutation_times = 0;
  const auto a0 = rotquant::duquant(x, opt);
  const auto a1 = rotquant::duquant(y, opt);
  expect_identical(a0.rotations[0].searches[0], a1.rotations[0].searches[0]);
  expect_identical(a0.rotations[0].searches[2], a1.rotations[0].searches[2]);
}

TEST(DuquantErrors, BadInputsAreRejectedWithClearMessages) {
  const matrix_f x = make_activation(8, 32, 8, 1, false);
  rotquant::duquant_options opt;
  opt.block_size = 12;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "does not divide the channel count C = 32");
  opt.block_size = 1;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "block size must be >= 2, got 1");
  opt.block_size = 8;
  opt.rotation_steps = -1;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "rotation steps N must be >= 0, got -1");
  opt.rotation_steps = 4;
  opt.permutation_times = -2;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "permutation_times must be >= 0, got -2");
  opt.permutation_times = 1;
  matrix_f bad = x;
  bad(3, 5) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(bad, opt), "non-finite value");
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(matrix_f(0, 32), opt), "need T >= 1 tokens");
  opt.q_primes = {matrix_d::Identity(7, 7)};
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "got 1 Q' matrices, need 2");
  opt.q_primes = {matrix_d::Identity(7, 7), matrix_d::Identity(6, 6)};
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, opt), "expected 7 x 7 (B - 1)");
  opt.q_primes.clear();
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, matrix_f(matrix_f::Ones(4, 16)), opt),
                        "input channels");
  opt.alpha = 1.5;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant(x, matrix_f(matrix_f::Ones(4, 32)), opt),
                        "alpha must be in [0, 1]");
  rotquant::duquant_search_options so;
  so.block_size = 8;
  EXPECT_ROTQUANT_ERROR(rotquant::duquant_rotation_search(x, so, {}), "need 1");
  so.mode = rotquant::duquant_mode::paper;
  EXPECT_ROTQUANT_ERROR(
      rotquant::duquant_rotation_search(x, so, {rotquant::duquant_base_rotation(8)}),
      "one per block");
  EXPECT_ROTQUANT_ERROR(rotquant::duquant_zigzag_from_channel_max(rotquant::vector_f::Ones(10), 4),
                        "must be >= 1 and divide C = 10");
  EXPECT_ROTQUANT_ERROR(rotquant::duquant_base_rotation(1), "must be >= 2");
}

}  // namespace
