// SPDX-License-Identifier: Apache-2.0
#include "rotquant/io/tensor.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::io::detail::bf16_to_float;
using rotquant::io::detail::float_to_bf16;
using rotquant::io::detail::float_to_half;
using rotquant::io::detail::half_to_float;

float from_bits(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

TEST(Tensor, HalfDecodeKnownValues) {
  EXPECT_EQ(half_to_float(0x3C00), 1.0f);
  EXPECT_EQ(half_to_float(0xC000), -2.0f);
  EXPECT_EQ(half_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(half_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(half_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(half_to_float(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::isinf(half_to_float(0x7C00)));
  EXPECT_TRUE(std::isnan(half_to_float(0x7E00)));
  EXPECT_TRUE(std::signbit(half_to_float(0x8000)));
}

TEST(Tensor, EveryHalfRoundTrips) {
  for (std::uint32_t h = 0; h < 65536; ++h) {
    const float f = half_to_float(static_cast<std::uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(float_to_half(f), h) << std::hex << h;
  }
}

// float -> half must pick the nearest half, ties to even: checked against neighbours.
TEST(Tensor, HalfEncodeIsNearestEven) {
  rotquant::rng g(5);
  for (int i = 0; i < rotquant_test::scaled(200000, 20000); ++i) {
    const float x = from_bits(static_cast<std::uint32_t>(g() >> 32) & 0x477FFFFFu);  // |x| < 65536
    if (std::isnan(x) || std::fabs(x) >= 65520.0f) continue;  // those round to Inf
    const std::uint16_t h = float_to_half(x);
    const double got = half_to_float(h);
    const double err = std::fabs(got - x);
    for (int d : {-1, 1}) {
      const int nb = static_cast<int>(h & 0x7FFF) + d;
      if (nb < 0 || nb > 0x7BFF) continue;
      const double other = half_to_float(static_cast<std::uint16_t>((h & 0x8000) | nb));
      const double e2 = std::fabs(other - x);
      ASSERT_TRUE(err < e2 || (err == e2 && (h & 1) == 0)) << x;
    }
  }
  EXPECT_TRUE(std::isinf(half_to_float(float_to_half(65520.0f))));  // tie past max -> Inf
  EXPECT_EQ(half_to_float(float_to_half(65519.0f)), 65504.0f);
  EXPECT_EQ(float_to_half(std::ldexp(1.0f, -25)), 0);  // tie -> even zero
  EXPECT_EQ(float_to_half(std::ldexp(1.5f, -25)), 1);
}

TEST(Tensor, Bfloat16) {
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808000u)), 0x3F80);  // tie -> even
  EXPECT_EQ(float_to_bf16(from_bits(0x3F818000u)), 0x3F82);  // tie -> even (up)
  EXPECT_EQ(float_to_bf16(from_bits(0x3F808001u)), 0x3F81);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(std::nanf("")))));
}

TEST(Tensor, MatrixRoundTripAndChecks) {
  rotquant::matrix_f m(2, 3);
  m << 1, -2, 3.5f, 0, 1e-3f, -7;
  for (auto t : {rotquant::io::dtype::f32, rotquant::io::dtype::f64}) {
    const auto tensor = rotquant::io::tensor::from_matrix(m, t);
    EXPECT_EQ(tensor.numel(), 6);
    EXPECT_EQ(tensor.to_matrix<float>(), m);
  }
  auto ti =
      rotquant::io::tensor::from_matrix(rotquant::matrix_f::Zero(1, 2), rotquant::io::dtype::i8);
  EXPECT_ROTQUANT_ERROR(ti.set_element(0, 128), "not an integer in [-128, 127]");
  EXPECT_ROTQUANT_ERROR(ti.set_element(0, 0.5), "not an integer");
  rotquant::io::tensor scalar;
  scalar.bytes.resize(4);
  EXPECT_ROTQUANT_ERROR(scalar.to_matrix<float>(), "0-d tensor");
}

}  // namespace
