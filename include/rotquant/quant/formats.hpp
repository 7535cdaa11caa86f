// SPDX-License-Identifier: Apache-2.0
// formats.hpp: scalar codecs for the low-precision element and scale formats (FP4, FP8, E8M0).
//
// Every encoder rounds to nearest, ties to even (exact: the rounding is done on an exactly
// scaled value with std::rint in the default rounding mode), with explicit saturation.
// Formats (docs/testing.md section 2.1):
//   E2M1  (OCP FP4)  bias 1, magnitudes {0, .5, 1, 1.5, 2, 3, 4, 6}, no Inf/NaN.
//   E4M3  (OCP "fn") bias 7, max 448, NaN = S.1111.111, no Inf, subnormals down to 2^-9.
//   E5M2  (OCP)      bias 15, max 57344, Inf = S.11111.00, NaN = S.11111.{01,10,11}.
//   UE4M3            E4M3 with the sign bit unused (NVFP4 block scale).
//   E8M0  (MX scale) value 2^(byte - 127), 0xFF = NaN, no zero.
//   fp4_format       E1M2 / E2M1 / E3M0 with a real-valued exponent bias (docs/algorithms.md 4.1).
// These functions are scalar, allocation free and do not validate NaN/Inf: public entry points
// of the quantizers reject non-finite inputs before calling them.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "rotquant/core/error.hpp"

namespace rotquant {

// ------------------------------------------------------------------------------------------
// E2M1 (FP4)
// ------------------------------------------------------------------------------------------

/// Encodes x as an E2M1 code: round to nearest even, saturating at +-6. Code layout: bit3 =
/// sign, bits2..1 = exponent, bit0 = mantissa. Results that round to zero (including -0 and
/// negative values of magnitude <= 0.25) encode as +0 (0x0). Thresholds (docs/testing.md 2.2):
/// |x| <= 0.25 -> 0, < 0.75 -> 0.5, <= 1.25 -> 1, < 1.75 -> 1.5, <= 2.5 -> 2, < 3.5 -> 3,
/// <= 5 -> 4, else 6. Precondition: x is not NaN (NaN encodes as 0x7 or 0xF, unspecified). O(1).
inline std::uint8_t e2m1_encode(float x) {
  const float a = std::fabs(x);
  // The comparison ladder is exact: every threshold is a float, and the closed/open ends are
  // the round-half-to-even decisions (a tie goes to the code with mantissa bit 0).
  std::uint8_t code =
      static_cast<std::uint8_t>((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) +
                                (a > 2.5f) + (a >= 3.5f) + (a > 5.0f));
  if (!(a <= 5.0f)) code = 7;  // saturation, and a deterministic answer for NaN
  if (code != 0 && std::signbit(x)) code = static_cast<std::uint8_t>(code | 0x8u);
  return code;
}

/// Decodes the low nibble of `code` as E2M1: 0x0..0x7 -> {0, .5, 1, 1.5, 2, 3, 4, 6}, 0x8..0xF
/// the same negated (0x8 = -0.0f). Exact. O(1).
inline float e2m1_decode(std::uint8_t code) {
  static constexpr float magnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float m = magnitude[code & 0x7u];
  return (code & 0x8u) ? -m : m;
}

/// Twice the E2M1 value of the low nibble of `code`: an integer in [-12, 12] (for integer dot
/// products; 0x8 gives 0). O(1).
inline int e2m1_to_int_x2(std::uint8_t code) {
  static constexpr int magnitude_x2[8] = {0, 1, 2, 3, 4, 6, 8, 12};
  const int m = magnitude_x2[code & 0x7u];
  return (code & 0x8u) ? -m : m;
}

// ------------------------------------------------------------------------------------------
// FP8 E4M3 / E5M2, UE4M3
// ------------------------------------------------------------------------------------------

namespace detail {

/// Parameters of an 8-bit sign-magnitude minifloat.
struct fp8_spec {
  int mantissa_bits;
  int bias;
  int max_magnitude_code;  ///< 7-bit code of the largest finite magnitude
  int overflow_code;       ///< 7-bit code written for overflow in non-saturating mode
  int nan_code;            ///< 7-bit code written for NaN inputs
};

inline constexpr fp8_spec e4m3_spec{3, 7, 0x7E, 0x7F, 0x7F};
inline constexpr fp8_spec e5m2_spec{2, 15, 0x7B, 0x7C, 0x7F};

/// RNE encode of x into the 8-bit minifloat described by `s`. The sign of x is kept (-0 and
/// negative values rounding to zero give 0x80). Overflow (after rounding) and +-Inf give
/// +-max when `saturate`, otherwise the overflow code (E4M3: NaN, E5M2: Inf).
inline std::uint8_t fp8_encode(float x, const fp8_spec& s, bool saturate) {
  if (std::isnan(x)) return static_cast<std::uint8_t>(s.nan_code);
  const int sign = std::signbit(x) ? 0x80 : 0;
  const float a = std::fabs(x);
  if (std::isinf(a))
    return static_cast<std::uint8_t>(sign | (saturate ? s.max_magnitude_code : s.overflow_code));
  if (a == 0.0f) return static_cast<std::uint8_t>(sign);
  int ex = 0;
  std::frexp(a, &ex);  // a = f * 2^ex, f in [0.5, 1): floor(log2 a) = ex - 1, exact
  const int emin = 1 - s.bias;
  int e = std::max(ex - 1, emin);
  // a / 2^(e - M) is exact (a power-of-two scaling into [0, 2^(M+1))), so rint does the
  // one and only rounding, ties to even.
  const float scaled = std::ldexp(a, s.mantissa_bits - e);
  int k = static_cast<int>(std::rint(scaled));
  const int one = 1 << s.mantissa_bits;
  int code = 0;
  if (k < one) {
    code = k;  // subnormal (only reachable when e == emin), or zero
  } else {
    if (k == 2 * one) {
      ++e;
      k = one;
    }
    code = ((e + s.bias) << s.mantissa_bits) | (k - one);
  }
  if (code > s.max_magnitude_code) code = saturate ? s.max_magnitude_code : s.overflow_code;
  return static_cast<std::uint8_t>(sign | code);
}

/// Decode of the 8-bit minifloat (finite codes only; callers handle the specials).
inline float fp8_decode_finite(std::uint8_t code, const fp8_spec& s) {
  const int m = s.mantissa_bits;
  const int field = (code & 0x7F) >> m;
  const int mant = code & ((1 << m) - 1);
  const float mag = field == 0
                        ? std::ldexp(static_cast<float>(mant), 1 - s.bias - m)
                        : std::ldexp(static_cast<float>((1 << m) | mant), field - s.bias - m);
  return (code & 0x80) ? -mag : mag;
}

}  // namespace detail

/// Encodes x as OCP E4M3 (fn): RNE; |x| beyond 448 after rounding (and +-Inf) gives +-448
/// (0x7E/0xFE) when `saturate`, otherwise NaN (0x7F/0xFF). The sign is kept (-0 -> 0x80).
/// NaN -> 0x7F. Subnormals are encoded (no flush to zero). O(1).
inline std::uint8_t e4m3_encode(float x, bool saturate = true) {
  return detail::fp8_encode(x, detail::e4m3_spec, saturate);
}

/// Decodes an OCP E4M3 code exactly; 0x7F and 0xFF decode to quiet NaN. O(1).
inline float e4m3_decode(std::uint8_t code) {
  if ((code & 0x7F) == 0x7F) return std::numeric_limits<float>::quiet_NaN();
  return detail::fp8_decode_finite(code, detail::e4m3_spec);
}

/// Encodes x as OCP E5M2: RNE; |x| beyond 57344 after rounding (and +-Inf) gives +-57344
/// (0x7B/0xFB) when `saturate`, otherwise +-Inf (0x7C/0xFC). Sign kept; NaN -> 0x7F. O(1).
inline std::uint8_t e5m2_encode(float x, bool saturate = true) {
  return detail::fp8_encode(x, detail::e5m2_spec, saturate);
}

/// Decodes an OCP E5M2 code exactly: 0x7C/0xFC = +-Inf, 0x7D..0x7F / 0xFD..0xFF = NaN. O(1).
inline float e5m2_decode(std::uint8_t code) {
  if ((code & 0x7C) == 0x7C) {
    if ((code & 0x3) != 0) return std::numeric_limits<float>::quiet_NaN();
    return (code & 0x80) ? -std::numeric_limits<float>::infinity()
                         : std::numeric_limits<float>::infinity();
  }
  return detail::fp8_decode_finite(code, detail::e5m2_spec);
}

/// Encodes a non-negative scale as unsigned E4M3 (the NVFP4 block-scale byte, 0x00..0x7E):
/// RNE, saturating at 448 (0x7E); x <= 0 (and -0) gives 0x00; +Inf gives 0x7E; NaN gives 0x7F.
/// O(1).
inline std::uint8_t ue4m3_encode(float x) {
  if (std::isnan(x)) return 0x7F;
  if (!(x > 0.0f)) return 0x00;
  return detail::fp8_encode(x, detail::e4m3_spec, true);
}

/// Decodes the low 7 bits of `code` as unsigned E4M3; 0x7F decodes to NaN. Exact. O(1).
inline float ue4m3_decode(std::uint8_t code) {
  return e4m3_decode(static_cast<std::uint8_t>(code & 0x7F));
}

// ------------------------------------------------------------------------------------------
// E8M0 (MX shared scale)
// ------------------------------------------------------------------------------------------

/// The E8M0 byte for the power of two 2^e: e + 127, with e clamped to [-127, 127] (so the NaN
/// byte 0xFF is never produced). O(1).
inline std::uint8_t e8m0_from_exponent(int e) {
  return static_cast<std::uint8_t>(std::clamp(e, -127, 127) + 127);
}

/// Decodes an E8M0 byte: 2^(b - 127) exactly (2^-127 is a float subnormal); 0xFF -> NaN. O(1).
inline float e8m0_decode(std::uint8_t b) {
  if (b == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, static_cast<int>(b) - 127);
}

// ------------------------------------------------------------------------------------------
// FP4 with a real-valued exponent bias (HQ-DiT / LLM-FP4, docs/algorithms.md 4.1)
// ------------------------------------------------------------------------------------------

/// The three 4-bit minifloat layouts (1 sign bit, E exponent bits, M = 3 - E mantissa bits).
enum class fp4_kind { e1m2, e2m1, e3m0 };

/// Name of the layout, e.g. "E2M1".
inline const char* to_string(fp4_kind k) {
  switch (k) {
    case fp4_kind::e1m2:
      return "E1M2";
    case fp4_kind::e2m1:
      return "E2M1";
    case fp4_kind::e3m0:
      return "E3M0";
  }
  return "?";
}

/// A 4-bit sign-magnitude minifloat with a real-valued exponent bias b (docs/algorithms.md 4.1):
///   maxval = (2 - 2^-M) 2^(2^E - 1 - b);  fake quant: x_c = clamp(x, -maxval, maxval),
///   p = max(floor(log2|x_c| + b), 1), step = 2^(p - M - b), x^ = rint(x_c / step) step.
/// Internally the value is held as unit = 2^-b, so every representable value is
/// (integer grid value of the bias-0 format) * unit, computed in double with one rounding.
/// With E2M1 and maxval 6 (b = 1) the grid is exactly OCP E2M1.
/// Code layout: bit3 = sign, then E exponent bits, then M mantissa bits; exponent field 0 is
/// subnormal (value = mantissa * 2^(1 - M) * unit). Results that round to zero encode as +0.
class fp4_format {
 public:
  /// Format `kind` whose largest magnitude is `maxval` (finite, > 0).
  static fp4_format from_maxval(fp4_kind kind, double maxval) {
    ROTQUANT_CHECK(std::isfinite(maxval) && maxval > 0,
                   "fp4_format: maxval " << maxval << " must be finite and > 0");
    fp4_format f(kind, 1.0);
    f.unit_ = maxval / f.max_grid();
    ROTQUANT_CHECK(f.unit_ > 0 && std::isfinite(f.unit_),
                   "fp4_format: maxval " << maxval << " gives a unit 2^-b that underflows");
    f.set_thresholds();
    return f;
  }
  /// Format `kind` with exponent bias `bias` (finite, |bias| <= 1000).
  static fp4_format from_bias(fp4_kind kind, double bias) {
    ROTQUANT_CHECK(std::isfinite(bias) && std::fabs(bias) <= 1000.0,
                   "fp4_format: bias " << bias << " must be finite with |bias| <= 1000");
    return fp4_format(kind, std::exp2(-bias));
  }

  fp4_kind kind() const { return kind_; }
  int exponent_bits() const {
    return kind_ == fp4_kind::e1m2 ? 1 : kind_ == fp4_kind::e2m1 ? 2 : 3;
  }
  int mantissa_bits() const { return 3 - exponent_bits(); }
  /// The real-valued exponent bias b (unit = 2^-b).
  double bias() const { return -std::log2(unit_); }
  /// 2^-b: the value of grid point 1.
  double unit() const { return unit_; }
  /// Largest representable magnitude.
  double maxval() const { return max_grid() * unit_; }

  /// Encodes x (finite) to a 4-bit code, RNE on the grid, saturating at +-maxval. O(1): seven
  /// comparisons against float thresholds derived from encode_reference at construction (the
  /// smallest float reaching each magnitude code), so the result equals encode_reference(x)
  /// for every float x (NaN gives magnitude code 7, as there).
  std::uint8_t encode(float x) const {
    const float a = std::fabs(x);
    int code = 0;
    for (int i = 0; i < 7; ++i) code += a >= threshold_[i];
    if (!(a < threshold_[6])) code = 7;
    if (code != 0 && std::signbit(x)) code |= 0x8;
    return static_cast<std::uint8_t>(code);
  }
  /// The defining rule, evaluated directly in double (the oracle of encode). O(1).
  std::uint8_t encode_reference(float x) const {
    int field = 0;
    int mant = 0;
    grid_round(x, field, mant);
    if (field == 0 && mant == 0) return 0;
    const int code = (field << mantissa_bits()) | mant;
    return static_cast<std::uint8_t>(std::signbit(x) ? (code | 0x8) : code);
  }
  /// Smallest non-negative float whose magnitude code is i + 1 or more (i = 0..6).
  float threshold(int i) const { return threshold_[i]; }
  /// Decodes the low nibble of `code`. O(1).
  float decode(std::uint8_t code) const {
    // Bias-0 grid values of the magnitude codes: exponent field 0 is subnormal
    // (mantissa * 2^(1 - M)), field f > 0 is (2^M + mantissa) * 2^(f - M).
    static constexpr double grid[3][8] = {
        {0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5}, {0, 1, 2, 3, 4, 6, 8, 12}, {0, 2, 4, 8, 16, 32, 64, 128}};
    const float v = static_cast<float>(grid[exponent_bits() - 1][code & 0x7] * unit_);
    return (code & 0x8) ? -v : v;
  }
  /// decode(encode(x)) computed directly (the formula of docs/algorithms.md 4.1). O(1).
  float fake_quantize(float x) const { return decode(encode(x)); }

 private:
  fp4_format(fp4_kind k, double unit) : kind_(k), unit_(unit) { set_thresholds(); }

  // encode_reference is monotone in |x|, so each magnitude code starts at one float: find it by
  // bisection over the ordered bit patterns of the non-negative floats [0, +inf].
  void set_thresholds() {
    for (int i = 0; i < 7; ++i) {
      std::uint32_t lo = 0, hi = 0x7F800000u;  // code(lo) <= i < code(hi) (inf saturates to 7)
      while (hi - lo > 1) {
        const std::uint32_t mid = lo + (hi - lo) / 2;
        float v;
        std::memcpy(&v, &mid, sizeof v);
        if (encode_reference(v) > i) {
          hi = mid;
        } else {
          lo = mid;
        }
      }
      std::memcpy(&threshold_[i], &hi, sizeof hi);
    }
  }

  double max_grid() const {
    const int e = exponent_bits();
    const int m = mantissa_bits();
    return (2.0 - std::ldexp(1.0, -m)) * std::ldexp(1.0, (1 << e) - 1);
  }

  // Rounds |x| onto the grid; returns the exponent field and mantissa of the result.
  void grid_round(float x, int& field, int& mant) const {
    const int m = mantissa_bits();
    const int max_field = (1 << exponent_bits()) - 1;
    double y = std::fabs(static_cast<double>(x)) / unit_;
    const double top = max_grid();
    if (!(y <= top)) y = top;  // clamp (also catches NaN deterministically)
    // p = max(floor(log2 y), 1) with y <= top < 2^(max_field + 1): exact comparisons against
    // powers of two instead of a libm call.
    static constexpr double pow2[10] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512};
    static constexpr double inv_pow2[10] = {1,       0.5,      0.25,      0.125,      0.0625,
                                            0.03125, 0.015625, 0.0078125, 0.00390625, 0.001953125};
    int p = 1;
    while (p < max_field && y >= pow2[p + 1]) ++p;
    // y * 2^(m - p) is exact (a power-of-two scaling), so rint does the one rounding.
    const double scaled = m >= p ? y * pow2[m - p] : y * inv_pow2[p - m];
    int k = static_cast<int>(std::rint(scaled));
    const int one = 1 << m;
    if (k < one) {  // only when p == 1: subnormal or zero
      field = 0;
      mant = k;
      return;
    }
    if (k == 2 * one) {
      ++p;
      k = one;
    }
    if (p > max_field) {  // unreachable after the clamp; kept as a saturation guard
      p = max_field;
      k = 2 * one - 1;
    }
    field = p;
    mant = k - one;
  }

  fp4_kind kind_;
  double unit_;
  float threshold_[7] = {};
};

}  // namespace rotquant
