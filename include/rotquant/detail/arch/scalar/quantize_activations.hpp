// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/quantize_activations.hpp: reference row quantizers (the contract rules).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/reduce.hpp"
#include "rotquant/quant/formats.hpp"

namespace rotquant {
namespace detail {

/// The integer code of x / s under the contract: clamp(rint(x / s), qmin, qmax), IEEE division,
/// round half to even. Clamping before the conversion is the same as after it for integer
/// bounds, and keeps +-Inf (a subnormal s) well defined.
inline int qact_round_clamp(float x, float s, float qmin, float qmax) {
  float r = std::nearbyint(x / s);
  r = std::min(std::max(r, qmin), qmax);
  return static_cast<int>(r);
}

/// Symmetric scale of a row / group: s = absmax * clip / qmax; 1 if that is 0.
inline float qact_sym_scale(float amax, float clip, int qmax) {
  float s = amax * clip / static_cast<float>(qmax);
  return s == 0.0f ? 1.0f : s;
}

}  // namespace detail

namespace detail {
namespace arch {

/// Largest |x| of x[0..k) as float bits (the sign bit cleared, compared as integers, which
/// orders non-negative floats). A result >= 0x7F800000 means the row holds NaN or +-Inf;
/// otherwise it is the bits of the row's absmax. One pass for both the finiteness check and
/// the absmax; 0 for k = 0.
inline std::uint32_t qact_abs_bits_max(scalar, const float* x, index_t k) {
  std::uint32_t m = 0;
  for (index_t i = 0; i < k; ++i) {
    std::uint32_t b;
    std::memcpy(&b, x + i, sizeof b);
    m = std::max(m, b & 0x7FFFFFFFu);
  }
  return m;
}

/// Symmetric integer quantization of one row (or group) of k floats with scale s (already
/// computed): codes[i] = clamp(rint(x[i] / s), qmin, qmax); returns the sum of the codes.
inline std::int32_t qact_sym_codes(scalar, const float* x, index_t k, float s, int qmin, int qmax,
                                   std::int8_t* codes) {
  std::int32_t sum = 0;
  const float lo = static_cast<float>(qmin), hi = static_cast<float>(qmax);
  for (index_t i = 0; i < k; ++i) {
    const int q = rotquant::detail::qact_round_clamp(x[i], s, lo, hi);
    codes[i] = static_cast<std::int8_t>(q);
    sum += q;
  }
  return sum;
}

}  // namespace arch
}  // namespace detail

namespace detail {

/// Scale and zero point of asymmetric INT4, QuaRot rule (zero forced in), from the row's
/// min (<= 0) and max (>= 0): s = (max - min) * clip / 15 (range [-1, 1] for an all-zero row),
/// z = rint(-min * clip / s).
inline void qact_asym4_params(float mn, float mx, float clip, float* scale, std::int32_t* zero) {
  float xmin = mn * clip, xmax = mx * clip;
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  const float s = (xmax - xmin) / 15.0f;
  *scale = s;
  *zero = static_cast<std::int32_t>(std::nearbyint(-xmin / s));
}

/// Asymmetric INT4 codes of x[0..k) with scale s and zero point z: q = clamp(rint(x / s) + z,
/// 0, 15), stored as q - z; returns the sum of the stored codes (the SIMD paths' tails).
inline std::int32_t qact_asym4_codes(const float* x, index_t k, float s, std::int32_t z,
                                     std::int8_t* codes) {
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    float r = std::nearbyint(x[i] / s) + static_cast<float>(z);
    r = std::min(std::max(r, 0.0f), 15.0f);
    const int c = static_cast<int>(r) - z;
    codes[i] = static_cast<std::int8_t>(c);
    sum += c;
  }
  return sum;
}

/// Asymmetric INT4 of one row, QuaRot rule (zero forced in): writes q - z (in [-15, 15]) to
/// codes, returns the sum of the stored codes; scale and zero point through the pointers.
inline std::int32_t qact_asym4_row(const float* x, index_t k, float clip, std::int8_t* codes,
                                   float* scale, std::int32_t* zero) {
  float mn = 0.0f, mx = 0.0f;
  for (index_t i = 0; i < k; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  qact_asym4_params(mn, mx, clip, scale, zero);
  return qact_asym4_codes(x, k, *scale, *zero, codes);
}

/// 2^p as a float, exact for p in [-149, 127] (bit construction in the normal range, the
/// library call only for subnormal powers).
inline float qact_pow2(int p) {
  if (p >= -126 && p <= 127) {
    const std::uint32_t b = static_cast<std::uint32_t>(p + 127) << 23;
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
  }
  return std::ldexp(1.0f, p);
}

/// floor(log2(a)) for a finite a > 0 (exponent field for normal a, frexp for subnormal a).
inline int qact_floor_log2(float a) {
  std::uint32_t b;
  std::memcpy(&b, &a, sizeof b);
  const int field = static_cast<int>((b >> 23) & 0xFF);
  if (field != 0) return field - 127;
  int ex = 0;
  (void)std::frexp(a, &ex);
  return ex - 1;
}

/// ue4m3_encode (quant/formats.hpp) for finite x, by bit arithmetic instead of library calls:
/// x <= 0 -> 0; below 2^-6 the subnormal step 2^-9 (x * 512 is exact, then round half to even
/// by the 2^23 trick); else round the float mantissa to 3 bits, half to even, and saturate at
/// 0x7E (448). Same bytes as ue4m3_encode (checked exhaustively over a range in the tests).
inline std::uint8_t qact_ue4m3_encode(float x) {
  if (!(x > 0.0f)) return 0x00;
  if (x < 0.015625f) {
    const float t = x * 512.0f;
    const volatile float big = 8388608.0f;  // volatile: keep the rounding add, never fold it
    return static_cast<std::uint8_t>((t + big) - big);
  }
  std::uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  b = (b + 0x7FFFFu + ((b >> 20) & 1u)) & 0xFFF00000u;
  const int e = static_cast<int>(b >> 23) - 127 + 7;
  const int code = (e << 3) | static_cast<int>((b >> 20) & 7u);
  return static_cast<std::uint8_t>(code > 0x7E ? 0x7E : code);
}

/// ue4m3_decode by table (the 128 values computed once from quant/formats.hpp).
inline float qact_ue4m3_decode(std::uint8_t code) {
  static const auto table = [] {
    std::array<float, 128> t{};
    for (int i = 0; i < 128; ++i)
      t[static_cast<std::size_t>(i)] = ue4m3_decode(static_cast<std::uint8_t>(i));
    return t;
  }();
  return table[code & 0x7F];
}

/// MXFP4 of one block of k <= 32 floats: writes 2 * E2M1 value of each code (in [-12, 12]),
/// returns the code sum; the E8M0 byte and the multiplier 2^(e - 1) through the pointers.
/// `raw` (optional) receives the E2M1 codes.
inline std::int32_t qact_mxfp4_block(const float* x, index_t k, std::int8_t* codes,
                                     std::uint8_t* scale_byte, float* scale,
                                     std::uint8_t* raw = nullptr) {
  float amax = 0.0f;
  for (index_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const int e = amax > 0.0f ? std::min(std::max(qact_floor_log2(amax) - 2, -127), 127) : -127;
  *scale_byte = e8m0_from_exponent(e);
  *scale = qact_pow2(e - 1);
  // x * 2^-e is the exact product rounded once, the same as ldexp(x, -e).
  const float mul = qact_pow2(-e);
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    const std::uint8_t c = amax > 0.0f ? e2m1_encode(x[i] * mul) : 0;
    if (raw) raw[i] = c;
    const int v = e2m1_to_int_x2(c);
    codes[i] = static_cast<std::int8_t>(v);
    sum += v;
  }
  return sum;
}

/// NVFP4 tensor scale from the global amax: amax / (448 * 6), 1 when amax == 0.
inline float nvfp4_tensor_scale(float amax) {
  return amax == 0.0f ? 1.0f : amax / (448.0f * 6.0f);
}

/// NVFP4 of one block of k <= 16 floats with tensor scale ts (see qact_mxfp4_block).
inline std::int32_t qact_nvfp4_block(const float* x, index_t k, float ts, std::int8_t* codes,
                                     std::uint8_t* scale_byte, float* scale,
                                     std::uint8_t* raw = nullptr) {
  float amax = 0.0f;
  for (index_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  const std::uint8_t byte = qact_ue4m3_encode((amax / 6.0f) / ts);
  const float sb = qact_ue4m3_decode(byte) * ts;
  *scale_byte = byte;
  *scale = sb * 0.5f;
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    const std::uint8_t c = sb == 0.0f ? 0 : e2m1_encode(x[i] / sb);
    if (raw) raw[i] = c;
    const int v = e2m1_to_int_x2(c);
    codes[i] = static_cast<std::int8_t>(v);
    sum += v;
  }
  return sum;
}

}  // namespace detail

namespace detail {
namespace arch {

/// Asymmetric INT4 of one row (QuaRot rule), see rotquant::detail::qact_asym4_row.
inline std::int32_t qact_asym4_row(scalar, const float* x, index_t k, float clip,
                                   std::int8_t* codes, float* scale, std::int32_t* zero) {
  return rotquant::detail::qact_asym4_row(x, k, clip, codes, scale, zero);
}

/// MXFP4 of one row (blocks of 32, the last may be partial): codes, E8M0 bytes, multipliers
/// 2^(e - 1) and code sums per block.
inline void qact_mxfp4_row(scalar, const float* x, index_t k, std::int8_t* codes,
                           std::uint8_t* bytes, float* scales, std::int32_t* sums) {
  for (index_t b = 0; 32 * b < k; ++b)
    sums[b] = rotquant::detail::qact_mxfp4_block(x + 32 * b, std::min<index_t>(32, k - 32 * b),
                                                 codes + 32 * b, bytes + b, scales + b);
}

/// NVFP4 of one row (blocks of 16) with tensor scale ts.
inline void qact_nvfp4_row(scalar, const float* x, index_t k, float ts, std::int8_t* codes,
                           std::uint8_t* bytes, float* scales, std::int32_t* sums) {
  for (index_t b = 0; 16 * b < k; ++b)
    sums[b] = rotquant::detail::qact_nvfp4_block(x + 16 * b, std::min<index_t>(16, k - 16 * b), ts,
                                                 codes + 16 * b, bytes + b, scales + b);
}

/// Per-token FP4 E2M1 codes of one row with scale s: nibble i is e2m1_encode(x[i] / s), element
/// 2j in the low nibble of byte j; ceil(k / 2) bytes written (an odd k leaves the last high
/// nibble 0).
inline void qact_fp4_row(scalar, const float* x, index_t k, float s, std::uint8_t* packed) {
  index_t i = 0;
  for (; i + 1 < k; i += 2)
    packed[i / 2] =
        static_cast<std::uint8_t>(e2m1_encode(x[i] / s) | (e2m1_encode(x[i + 1] / s) << 4));
  if (i < k) packed[i / 2] = e2m1_encode(x[i] / s);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
