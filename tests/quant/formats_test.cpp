// SPDX-License-Identifier: Apache-2.0
// formats_test.cpp: exact decode tables and RNE / saturation encode cases for FP4, FP8, E8M0.
#include "rotquant/quant/formats.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::e2m1_decode;
using rotquant::e2m1_encode;
using rotquant::e4m3_decode;
using rotquant::e4m3_encode;
using rotquant::e5m2_decode;
using rotquant::e5m2_encode;

// Value of a sign-magnitude minifloat code from the format definition, computed in double
// with a different formula (pow of the unbiased exponent) than the library's ldexp path.
double minifloat_value(unsigned code, int ebits, int mbits, int bias) {
  const unsigned mant = code & ((1u << mbits) - 1u);
  const unsigned field = (code >> mbits) & ((1u << ebits) - 1u);
  const bool neg = ((code >> (ebits + mbits)) & 1u) != 0;
  double v = 0;
  if (field == 0) {
    v = static_cast<double>(mant) / std::pow(2.0, mbits) * std::pow(2.0, 1 - bias);
  } else {
    v = (1.0 + static_cast<double>(mant) / std::pow(2.0, mbits)) *
        std::pow(2.0, static_cast<int>(field) - bias);
  }
  return neg ? -v : v;
}

// ---------------------------------------------------------------- E2M1

TEST(E2M1, EveryCodeDecodesExactly) {
  const float want[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                          -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};
  for (unsigned c = 0; c < 16; ++c) {
    const float got = e2m1_decode(static_cast<std::uint8_t>(c));
    EXPECT_EQ(got, want[c]) << "code " << c;
    EXPECT_EQ(std::signbit(got), std::signbit(want[c])) << "code " << c;
    EXPECT_EQ(static_cast<double>(got), minifloat_value(c, 2, 1, 1)) << "code " << c;
    EXPECT_EQ(rotquant::e2m1_to_int_x2(static_cast<std::uint8_t>(c)),
              static_cast<int>(2 * want[c]));
    // Only the low nibble matters.
    EXPECT_EQ(e2m1_decode(static_cast<std::uint8_t>(c | 0xA0u)), got);
  }
}

TEST(E2M1, EncodeRoundTripsEveryCodeExceptNegativeZero) {
  for (unsigned c = 0; c < 16; ++c) {
    const std::uint8_t want = c == 0x8 ? 0x0 : static_cast<std::uint8_t>(c);
    EXPECT_EQ(e2m1_encode(e2m1_decode(static_cast<std::uint8_t>(c))), want) << "code " << c;
  }
}

// docs/testing.md 2.2: every threshold, tie and saturation case.
TEST(E2M1, ThresholdAndTieTable) {
  struct row {
    float x;
    std::uint8_t code;
  };
  const row table[] = {{0.0f, 0x0},
                       {0.1f, 0x0},
                       {0.25f, 0x0},
                       {std::nextafter(0.25f, 1.0f), 0x1},
                       {0.5f, 0x1},
                       {0.74f, 0x1},
                       {std::nextafter(0.75f, 0.0f), 0x1},
                       {0.75f, 0x2},
                       {1.0f, 0x2},
                       {1.25f, 0x2},
                       {std::nextafter(1.25f, 2.0f), 0x3},
                       {1.5f, 0x3},
                       {std::nextafter(1.75f, 0.0f), 0x3},
                       {1.75f, 0x4},
                       {2.0f, 0x4},
                       {2.5f, 0x4},
                       {std::nextafter(2.5f, 3.0f), 0x5},
                       {3.0f, 0x5},
                       {std::nextafter(3.5f, 0.0f), 0x5},
                       {3.5f, 0x6},
                       {4.0f, 0x6},
                       {5.0f, 0x6},
                       {std::nextafter(5.0f, 6.0f), 0x7},
                       {6.0f, 0x7},
                       {7.0f, 0x7},
                       {1e4f, 0x7},
                       {3.4e38f, 0x7},
                       {std::numeric_limits<float>::infinity(), 0x7},
                       {1e-30f, 0x0},
                       {std::numeric_limits<float>::denorm_min(), 0x0}};
  for (const auto& r : table) {
    EXPECT_EQ(e2m1_encode(r.x), r.code) << "x = " << r.x;
    const std::uint8_t neg = r.code == 0 ? 0x0 : static_cast<std::uint8_t>(r.code | 0x8);
    EXPECT_EQ(e2m1_encode(-r.x), neg) << "x = " << -r.x;
  }
  // Negative values rounding to zero and -0 canonicalise to +0.
  EXPECT_EQ(e2m1_encode(-0.0f), 0x0);
  EXPECT_EQ(e2m1_encode(-0.25f), 0x0);
}

// Against an exact-fraction RNE model in double: nearest grid value, ties to the even mantissa.
TEST(E2M1, EncodeMatchesNearestEvenModelOnRandomInputs) {
  const double grid[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
  rotquant::rng g(11);
  const int n = rotquant_test::scaled(200000, 20000);
  for (int i = 0; i < n; ++i) {
    const float x = static_cast<float>(g.normal() * 3.0);
    const double a = std::fabs(static_cast<double>(x));
    int best = 0;
    for (int c = 1; c < 8; ++c) {
      const double d = std::fabs(a - grid[c]);
      const double db = std::fabs(a - grid[best]);
      if (d < db || (d == db && (c & 1) == 0)) best = c;
    }
    const std::uint8_t want = best == 0 ? 0 : static_cast<std::uint8_t>(best | (x < 0 ? 8 : 0));
    ASSERT_EQ(e2m1_encode(x), want) << "x = " << x;
  }
}

// ---------------------------------------------------------------- FP8

TEST(E4M3, All256CodesDecodeExactly) {
  for (unsigned c = 0; c < 256; ++c) {
    const float got = e4m3_decode(static_cast<std::uint8_t>(c));
    if ((c & 0x7F) == 0x7F) {
      EXPECT_TRUE(std::isnan(got)) << "code " << c;
      continue;
    }
    EXPECT_EQ(static_cast<double>(got), minifloat_value(c, 4, 3, 7)) << "code " << c;
    EXPECT_EQ(std::signbit(got), (c & 0x80) != 0) << "code " << c;
  }
  // Hand-pinned anchors.
  EXPECT_EQ(e4m3_decode(0x7E), 448.0f);
  EXPECT_EQ(e4m3_decode(0xFE), -448.0f);
  EXPECT_EQ(e4m3_decode(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_decode(0x08), 0.015625f);  // min normal 2^-6
  EXPECT_EQ(e4m3_decode(0x07), 7.0f * std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_decode(0x38), 1.0f);
  EXPECT_EQ(e4m3_decode(0x7D), 416.0f);
  EXPECT_EQ(e4m3_decode(0x77), 240.0f);
}

TEST(E5M2, All256CodesDecodeExactly) {
  for (unsigned c = 0; c < 256; ++c) {
    const float got = e5m2_decode(static_cast<std::uint8_t>(c));
    const unsigned mag = c & 0x7F;
    if (mag == 0x7C) {
      EXPECT_TRUE(std::isinf(got)) << "code " << c;
      EXPECT_EQ(got < 0, (c & 0x80) != 0);
      continue;
    }
    if (mag > 0x7C) {
      EXPECT_TRUE(std::isnan(got)) << "code " << c;
      continue;
    }
    EXPECT_EQ(static_cast<double>(got), minifloat_value(c, 5, 2, 15)) << "code " << c;
    EXPECT_EQ(std::signbit(got), (c & 0x80) != 0) << "code " << c;
  }
  EXPECT_EQ(e5m2_decode(0x7B), 57344.0f);
  EXPECT_EQ(e5m2_decode(0xFB), -57344.0f);
  EXPECT_EQ(e5m2_decode(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(e5m2_decode(0x04), std::ldexp(1.0f, -14));
  EXPECT_EQ(e5m2_decode(0x3C), 1.0f);
}

TEST(FP8, EveryFiniteCodeRoundTripsInBothModes) {
  for (unsigned c = 0; c < 256; ++c) {
    const auto code = static_cast<std::uint8_t>(c);
    if ((c & 0x7F) != 0x7F) {
      EXPECT_EQ(e4m3_encode(e4m3_decode(code), true), code) << "e4m3 code " << c;
      EXPECT_EQ(e4m3_encode(e4m3_decode(code), false), code) << "e4m3 code " << c;
    }
    if ((c & 0x7F) < 0x7C) {
      EXPECT_EQ(e5m2_encode(e5m2_decode(code), true), code) << "e5m2 code " << c;
      EXPECT_EQ(e5m2_encode(e5m2_decode(code), false), code) << "e5m2 code " << c;
    }
  }
}

// Brute-force RNE model: nearest finite code value (ties to even mantissa = even code), with
// the beyond-max region decided by the tie with the next (unrepresentable) step.
TEST(FP8, EncodeMatchesNearestEvenModelOnRandomInputs) {
  std::vector<double> e4m3_vals;
  std::vector<double> e5m2_vals;
  for (unsigned c = 0; c <= 0x7E; ++c) e4m3_vals.push_back(minifloat_value(c, 4, 3, 7));
  for (unsigned c = 0; c <= 0x7B; ++c) e5m2_vals.push_back(minifloat_value(c, 5, 2, 15));
  auto nearest = [](const std::vector<double>& vals, double a) {
    std::size_t best = 0;
    for (std::size_t c = 1; c < vals.size(); ++c) {
      const double d = std::fabs(a - vals[c]);
      const double db = std::fabs(a - vals[best]);
      if (d < db || (d == db && (c & 1) == 0)) best = c;
    }
    return static_cast<unsigned>(best);
  };
  rotquant::rng g(5);
  const int n = rotquant_test::scaled(20000, 2000);
  for (int i = 0; i < n; ++i) {
    // Log-uniform magnitudes from 2^-20 to 2^8 (E4M3) and to 2^15 (E5M2), random sign.
    const double u = g.uniform();
    const float x4 =
        static_cast<float>(std::ldexp(1.0 + g.uniform(), static_cast<int>(u * 28) - 20));
    const float x5 =
        static_cast<float>(std::ldexp(1.0 + g.uniform(), static_cast<int>(u * 35) - 20));
    const bool neg = g.uniform() < 0.5;
    const float s4 = neg ? -x4 : x4;
    const float s5 = neg ? -x5 : x5;
    if (x4 <= 448.0f) {
      const unsigned want = nearest(e4m3_vals, x4) | (neg ? 0x80u : 0u);
      ASSERT_EQ(e4m3_encode(s4), want) << "x = " << s4;
    }
    if (x5 <= 57344.0f) {
      const unsigned want = nearest(e5m2_vals, x5) | (neg ? 0x80u : 0u);
      ASSERT_EQ(e5m2_encode(s5), want) << "x = " << s5;
    }
  }
}

// docs/testing.md 2.3 golden vectors.
TEST(FP8, GoldenEdgeVectors) {
  EXPECT_EQ(e4m3_encode(448.0f, true), 0x7E);
  EXPECT_EQ(e4m3_encode(448.0f, false), 0x7E);
  EXPECT_EQ(e4m3_encode(464.0f, true), 0x7E);  // tie 448 <-> 480, 448 even
  EXPECT_EQ(e4m3_encode(464.0f, false), 0x7E);
  EXPECT_EQ(e4m3_encode(470.0f, true), 0x7E);   // rounds to 480 = the NaN pattern
  EXPECT_EQ(e4m3_encode(470.0f, false), 0x7F);  // -> NaN
  EXPECT_EQ(e4m3_encode(-470.0f, false), 0xFF);
  EXPECT_EQ(e4m3_encode(61440.0f, true), 0x7E);
  EXPECT_EQ(e4m3_encode(61440.0f, false), 0x7F);
  EXPECT_EQ(e4m3_encode(-1e30f, true), 0xFE);
  EXPECT_EQ(e4m3_encode(std::numeric_limits<float>::infinity(), true), 0x7E);
  EXPECT_EQ(e4m3_encode(std::numeric_limits<float>::infinity(), false), 0x7F);
  EXPECT_EQ(e4m3_encode(std::ldexp(1.0f, -10)), 0x00);   // tie -> even 0
  EXPECT_EQ(e4m3_encode(-std::ldexp(1.0f, -10)), 0x80);  // sign kept: -0
  EXPECT_EQ(e4m3_encode(std::nextafter(std::ldexp(1.0f, -10), 1.0f)), 0x01);
  EXPECT_EQ(e4m3_encode(1.5f * std::ldexp(1.0f, -9)), 0x02);  // tie 0x01 <-> 0x02 -> even
  EXPECT_EQ(e4m3_encode(2.5f * std::ldexp(1.0f, -9)), 0x02);  // tie 0x02 <-> 0x03 -> even
  EXPECT_EQ(e4m3_encode(1e-30f), 0x00);
  EXPECT_EQ(e4m3_encode(0.015625f), 0x08);
  EXPECT_EQ(e4m3_encode(std::nextafter(0.015625f, 0.0f)), 0x08);  // subnormal carries to normal
  EXPECT_TRUE(std::isnan(e4m3_decode(e4m3_encode(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_EQ(e4m3_encode(std::numeric_limits<float>::quiet_NaN()), 0x7F);

  EXPECT_EQ(e5m2_encode(448.0f), 0x5F);
  EXPECT_EQ(e5m2_decode(0x5F), 448.0f);
  EXPECT_EQ(e5m2_encode(57344.0f, false), 0x7B);
  EXPECT_EQ(e5m2_encode(61440.0f, true), 0x7B);   // tie -> 65536 (even) -> saturate
  EXPECT_EQ(e5m2_encode(61440.0f, false), 0x7C);  // -> +Inf
  EXPECT_EQ(e5m2_encode(-61440.0f, false), 0xFC);
  EXPECT_EQ(e5m2_encode(std::nextafter(61440.0f, 0.0f), false), 0x7B);
  EXPECT_EQ(e5m2_encode(std::numeric_limits<float>::infinity(), true), 0x7B);
  EXPECT_EQ(e5m2_encode(-std::numeric_limits<float>::infinity(), false), 0xFC);
  EXPECT_EQ(e5m2_encode(std::ldexp(1.0f, -17)), 0x00);         // tie with 0 -> 0
  EXPECT_EQ(e5m2_encode(1.5f * std::ldexp(1.0f, -16)), 0x02);  // tie -> even
  EXPECT_TRUE(std::isnan(e5m2_decode(e5m2_encode(std::numeric_limits<float>::quiet_NaN()))));
}

// ---------------------------------------------------------------- UE4M3, E8M0

TEST(UE4M3, EncodeDecode) {
  for (unsigned c = 0; c < 0x7F; ++c) {
    const float v = rotquant::ue4m3_decode(static_cast<std::uint8_t>(c));
    EXPECT_EQ(static_cast<double>(v), minifloat_value(c, 4, 3, 7)) << "code " << c;
    EXPECT_EQ(rotquant::ue4m3_encode(v), c) << "code " << c;
    // The sign bit is ignored on decode.
    EXPECT_EQ(rotquant::ue4m3_decode(static_cast<std::uint8_t>(c | 0x80)), v);
  }
  EXPECT_TRUE(std::isnan(rotquant::ue4m3_decode(0x7F)));
  EXPECT_EQ(rotquant::ue4m3_encode(448.0f), 0x7E);
  EXPECT_EQ(rotquant::ue4m3_encode(1e6f), 0x7E);  // saturates
  EXPECT_EQ(rotquant::ue4m3_encode(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(rotquant::ue4m3_encode(0.0f), 0x00);
  EXPECT_EQ(rotquant::ue4m3_encode(-0.0f), 0x00);
  EXPECT_EQ(rotquant::ue4m3_encode(-3.0f), 0x00);
  EXPECT_EQ(rotquant::ue4m3_encode(std::ldexp(1.0f, -10)), 0x00);  // tie -> 0
  EXPECT_EQ(rotquant::ue4m3_encode(std::ldexp(1.0f, -9)), 0x01);
  EXPECT_EQ(rotquant::ue4m3_encode(1.0f / 6.0f), 0x23);  // 11/64 = 0.171875 (0.1666 rounds up)
  EXPECT_EQ(rotquant::ue4m3_decode(0x23), 0.171875f);
  EXPECT_EQ(rotquant::ue4m3_encode(std::numeric_limits<float>::quiet_NaN()), 0x7F);
}

TEST(E8M0, FromExponentAndDecode) {
  for (int e = -127; e <= 127; ++e) {
    const std::uint8_t b = rotquant::e8m0_from_exponent(e);
    EXPECT_EQ(b, e + 127);
    EXPECT_EQ(rotquant::e8m0_decode(b), static_cast<float>(std::pow(2.0, e))) << "e = " << e;
  }
  EXPECT_EQ(rotquant::e8m0_from_exponent(-500), 0x00);
  EXPECT_EQ(rotquant::e8m0_from_exponent(128), 0xFE);
  EXPECT_EQ(rotquant::e8m0_from_exponent(1000), 0xFE);
  EXPECT_EQ(rotquant::e8m0_decode(127), 1.0f);
  EXPECT_EQ(rotquant::e8m0_decode(0xFE), std::ldexp(1.0f, 127));
  EXPECT_GT(rotquant::e8m0_decode(0x00), 0.0f);  // 2^-127, a float subnormal, not zero
  EXPECT_TRUE(std::isnan(rotquant::e8m0_decode(0xFF)));
}

// ---------------------------------------------------------------- FP4 with a real bias

TEST(FP4Format, E2M1WithMaxval6IsOcpE2M1) {
  const auto f = rotquant::fp4_format::from_maxval(rotquant::fp4_kind::e2m1, 6.0);
  EXPECT_DOUBLE_EQ(f.bias(), 1.0);
  EXPECT_EQ(f.maxval(), 6.0);
  for (unsigned c = 0; c < 16; ++c) {
    EXPECT_EQ(f.decode(static_cast<std::uint8_t>(c)), e2m1_decode(static_cast<std::uint8_t>(c)));
  }
  rotquant::rng g(3);
  for (int i = 0; i < rotquant_test::scaled(50000, 5000); ++i) {
    const float x = static_cast<float>(g.normal() * 4.0);
    ASSERT_EQ(f.encode(x), e2m1_encode(x)) << "x = " << x;
  }
  for (float x : {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f, -5.0f, 100.0f}) {
    EXPECT_EQ(f.encode(x), e2m1_encode(x)) << "x = " << x;
  }
}

TEST(FP4Format, GridsOfAlgorithms41) {
  using rotquant::fp4_kind;
  // E1M2, maxval 1: {0, 1/7, ..., 1} (uniform).
  const auto e1m2 = rotquant::fp4_format::from_maxval(fp4_kind::e1m2, 1.0);
  for (unsigned c = 0; c < 8; ++c) {
    EXPECT_NEAR(e1m2.decode(static_cast<std::uint8_t>(c)), c / 7.0, 1e-7) << c;
  }
  // E3M0, maxval 6: {0, 6/64, 6/32, ..., 6} (powers of two).
  const auto e3m0 = rotquant::fp4_format::from_maxval(fp4_kind::e3m0, 6.0);
  EXPECT_EQ(e3m0.decode(0), 0.0f);
  for (unsigned c = 1; c < 8; ++c) {
    EXPECT_EQ(e3m0.decode(static_cast<std::uint8_t>(c)),
              static_cast<float>(6.0 * std::ldexp(1.0, static_cast<int>(c) - 7)));
  }
  // Bias formula: b = 2^E - log2(maxval) + log2(2 - 2^-M) - 1.
  const double maxval = 2.7;
  for (auto k : {fp4_kind::e1m2, fp4_kind::e2m1, fp4_kind::e3m0}) {
    const auto f = rotquant::fp4_format::from_maxval(k, maxval);
    const int e = f.exponent_bits();
    const int m = f.mantissa_bits();
    const double b = std::pow(2.0, e) - std::log2(maxval) + std::log2(2 - std::pow(2.0, -m)) - 1;
    EXPECT_NEAR(f.bias(), b, 1e-12) << rotquant::to_string(k);
    const auto g = rotquant::fp4_format::from_bias(k, b);
    EXPECT_NEAR(g.maxval(), maxval, 1e-12);
    EXPECT_NEAR(f.decode(7), maxval, 1e-6);
  }
}

// The fake quant against the literal formula of docs/algorithms.md 4.1 in double.
TEST(FP4Format, FakeQuantMatchesLiteralFormula) {
  using rotquant::fp4_kind;
  rotquant::rng g(9);
  for (auto k : {fp4_kind::e1m2, fp4_kind::e2m1, fp4_kind::e3m0}) {
    for (double maxval : {0.37, 1.0, 6.0, 11.3}) {
      const auto f = rotquant::fp4_format::from_maxval(k, maxval);
      const int m = f.mantissa_bits();
      const double b = f.bias();
      for (int i = 0; i < 2000; ++i) {
        const float x = static_cast<float>(g.normal() * maxval * 0.7);
        const double xc = std::clamp(static_cast<double>(x), -maxval, maxval);
        double want = 0;
        if (xc != 0) {
          const double p = std::max(std::floor(std::log2(std::fabs(xc)) + b), 1.0);
          const double step = std::pow(2.0, p - m - b);
          want = std::nearbyint(xc / step) * step;
        }
        const float got = f.fake_quantize(x);
        ASSERT_NEAR(got, want, 1e-6 * maxval) << rotquant::to_string(k) << " x=" << x;
        // Codes round trip.
        const std::uint8_t code = f.encode(got);
        ASSERT_EQ(f.decode(code), got);
      }
      // Saturation and zero.
      EXPECT_EQ(f.encode(static_cast<float>(maxval * 10)), 7);
      EXPECT_EQ(f.encode(static_cast<float>(-maxval * 10)), 15);
      EXPECT_EQ(f.encode(0.0f), 0);
      EXPECT_EQ(f.encode(-1e-30f), 0);
    }
  }
}

// The threshold encoder against the defining rule: at every threshold and one ulp either side,
// on random floats of every magnitude, at biases spanning the float range and beyond it.
TEST(FP4Format, ThresholdEncodeEqualsTheReferenceRule) {
  using rotquant::fp4_kind;
  rotquant::rng g(17);
  std::vector<double> biases = {0.0, 1.0, 3.0, -0.37, 2.5, 17.25, -40.0, 120.0, 200.0, -200.0};
  for (int i = 0; i < 20; ++i) biases.push_back(g.uniform() * 60.0 - 30.0);
  for (auto k : {fp4_kind::e1m2, fp4_kind::e2m1, fp4_kind::e3m0}) {
    for (double b : biases) {
      const auto f = rotquant::fp4_format::from_bias(k, b);
      for (int t = 0; t < 7; ++t) {
        const float th = f.threshold(t);
        for (float x : {th, std::nextafter(th, 0.0f), std::nextafter(th, 1e38f)}) {
          ASSERT_EQ(f.encode(x), f.encode_reference(x)) << "x=" << x << " b=" << b;
          ASSERT_EQ(f.encode(-x), f.encode_reference(-x)) << "x=" << -x << " b=" << b;
        }
        if (t > 0) {
          ASSERT_LE(f.threshold(t - 1), th);
        }
      }
      for (int i = 0; i < rotquant_test::scaled(4000, 400); ++i) {
        // Random bit patterns cover every exponent, subnormals, zero and infinities.
        std::uint32_t bits = static_cast<std::uint32_t>(g());
        float x;
        std::memcpy(&x, &bits, sizeof x);
        if (std::isnan(x)) continue;
        ASSERT_EQ(f.encode(x), f.encode_reference(x)) << "x=" << x << " b=" << b;
        const float y = static_cast<float>(g.normal() * f.maxval());
        ASSERT_EQ(f.encode(y), f.encode_reference(y)) << "y=" << y << " b=" << b;
      }
      EXPECT_EQ(f.encode(std::numeric_limits<float>::quiet_NaN()) & 0x7, 7);
    }
  }
}

TEST(FP4Format, RejectsBadParameters) {
  using rotquant::fp4_kind;
  EXPECT_ROTQUANT_ERROR(rotquant::fp4_format::from_maxval(fp4_kind::e2m1, 0.0), "maxval");
  EXPECT_ROTQUANT_ERROR(rotquant::fp4_format::from_maxval(fp4_kind::e2m1, -1.0), "maxval");
  EXPECT_ROTQUANT_ERROR(
      rotquant::fp4_format::from_maxval(fp4_kind::e2m1, std::numeric_limits<double>::infinity()),
      "maxval");
  EXPECT_ROTQUANT_ERROR(
      rotquant::fp4_format::from_bias(fp4_kind::e3m0, std::numeric_limits<double>::quiet_NaN()),
      "bias");
}

}  // namespace
