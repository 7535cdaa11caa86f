// SPDX-License-Identifier: Apache-2.0
#include "rotquant/core/rng.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "test_util.hpp"

namespace {

// Published test vector of the SplitMix64 reference (seed 1234567).
TEST(Rng, SplitMix64MatchesReference) {
  std::uint64_t s = 1234567;
  const std::uint64_t expected[] = {6457827717110365317ull, 3203168211198807973ull,
                                    9817491932198370423ull, 4593380528125082431ull,
                                    16408922859458223821ull};
  for (auto e : expected) EXPECT_EQ(rotquant::detail::splitmix64(s), e);
}

// xoshiro256** reference outputs from state {1, 2, 3, 4}.
TEST(Rng, Xoshiro256StarStarMatchesReference) {
  auto g = rotquant::rng::from_state(1, 2, 3, 4);
  const std::uint64_t expected[] = {11520ull,
                                    0ull,
                                    1509978240ull,
                                    1215971899390074240ull,
                                    1216172134540287360ull,
                                    607988272756665600ull};
  for (auto e : expected) EXPECT_EQ(g(), e);
  EXPECT_ROTQUANT_ERROR(rotquant::rng::from_state(0, 0, 0, 0), "all-zero state");
}

// Golden values: the same on every compiler, standard library and platform (this test also
// runs on AArch64 under qemu in CI). Normals are compared bit for bit.
TEST(Rng, GoldenValuesAreBitExact) {
  rotquant::rng g(42);
  EXPECT_EQ(g(), 13583771085161268ull);
  EXPECT_EQ(g(), 395782336197462635ull);
  EXPECT_EQ(g(), 10113986297222979544ull);
  rotquant::rng h(42);
  const double normals[] = {0.051695300744136807, -0.49993665885829636, -1.3981922011787378,
                            -0.17632929299863304, -1.1373567926787611,  0.075748848568576083};
  for (double e : normals) EXPECT_EQ(h.normal(), e);
  rotquant::rng k(7, 3);
  EXPECT_EQ(k.uniform_int(1000), 820u);
  EXPECT_EQ(k.uniform_int(1000), 882u);
  EXPECT_EQ(k.uniform_int(1000), 694u);
  EXPECT_EQ(rotquant::rng(9).uniform(), 0.45527848569568186);
}

TEST(Rng, StreamsAreIndependentSequences) {
  rotquant::rng a(5, 0), b(5, 1), c(5, 0);
  const auto a0 = a(), b0 = b(), c0 = c();
  EXPECT_NE(a0, b0);
  EXPECT_EQ(a0, c0);
}

TEST(Rng, DeterministicLogWithinTwoUlp) {
  rotquant::rng g(1);
  const int n = rotquant_test::scaled(200000, 20000);
  for (int i = 0; i < n; ++i) {
    const double x = (i % 2) ? g.uniform() + 1e-300 : std::ldexp(g.uniform() + 0.5, i % 200 - 100);
    const double mine = rotquant::detail::deterministic_log(x);
    const double ref = std::log(x);
    const double ulp = std::nextafter(std::fabs(ref), 1e308) - std::fabs(ref);
    ASSERT_LE(std::fabs(mine - ref), 2.0 * ulp) << "x = " << x;
  }
  EXPECT_EQ(rotquant::detail::deterministic_log(1.0), 0.0);
}

TEST(Rng, MillionNormalsHaveUnitMoments) {
  rotquant::rng g(2024);
  const int n = 1000000;
  double sum = 0, sum2 = 0, sum4 = 0;
  for (int i = 0; i < n; ++i) {
    const double x = g.normal();
    sum += x;
    sum2 += x * x;
    sum4 += x * x * x * x;
  }
  const double mean = sum / n, var = sum2 / n - mean * mean, kurt = sum4 / n;
  // Standard errors: mean 1e-3, variance 1.4e-3, fourth moment ~1e-2: bounds at ~5 sigma.
  EXPECT_NEAR(mean, 0.0, 5e-3);
  EXPECT_NEAR(var, 1.0, 7e-3);
  EXPECT_NEAR(kurt, 3.0, 5e-2);
}

TEST(Rng, UniformIntIsUnbiasedAndRejectsZero) {
  rotquant::rng g(3);
  std::vector<int> counts(6, 0);
  const int n = 600000;
  for (int i = 0; i < n; ++i) ++counts[g.uniform_int(6)];
  for (int c : counts) EXPECT_NEAR(c, n / 6, 600);  // ~2.2 sigma = 645
  EXPECT_ROTQUANT_ERROR(g.uniform_int(0), "bound must be positive");
}

TEST(Rng, MatrixAndPermutationHelpers) {
  const auto m1 = rotquant::random_normal_matrix<double>(3, 4, 11);
  const auto m2 = rotquant::random_normal_matrix<double>(3, 4, 11);
  EXPECT_EQ(m1, m2);
  rotquant::rng g(11);
  EXPECT_EQ(m1(0, 0), g.normal());
  const auto f = rotquant::random_normal_matrix<float>(3, 4, 11);
  EXPECT_EQ(f(1, 2), static_cast<float>(m1(1, 2)));
  const auto s = rotquant::random_signs<float>(1000, 1);
  EXPECT_TRUE((s.array().abs() == 1.0f).all());
  EXPECT_GT(s.sum(), -150.0f);
  EXPECT_LT(s.sum(), 150.0f);
  auto p = rotquant::random_permutation(50, 9);
  EXPECT_EQ(p, rotquant::random_permutation(50, 9));
  std::sort(p.begin(), p.end());
  for (int i = 0; i < 50; ++i) EXPECT_EQ(p[i], i);
  EXPECT_ROTQUANT_ERROR(rotquant::random_normal_matrix<float>(-1, 2, 0), "negative shape");
  EXPECT_ROTQUANT_ERROR(rotquant::random_signs<float>(-1, 0), "negative length");
  EXPECT_ROTQUANT_ERROR(rotquant::random_permutation(-2, 0), "negative length");
}

}  // namespace
