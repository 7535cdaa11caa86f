// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/quantize_activations.hpp: reference row quantizers (the contract rules).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>

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

/// Asymmetric INT4 of one row, QuaRot rule (zero forced in): writes q - z (in [-15, 15]) to
/// codes, returns the sum of the stored codes; scale and zero point through the pointers.
inline std::int32_t qact_asym4_row(const float* x, index_t k, float clip, std::int8_t* codes,
                                   float* scale, std::int32_t* zero) {
  float mn = 0.0f, mx = 0.0f;
  for (index_t i = 0; i < k; ++i) {
    mn = std::min(mn, x[i]);
    mx = std::max(mx, x[i]);
  }
  float xmin = mn * clip, xmax = mx * clip;
  if (xmin == 0.0f && xmax == 0.0f) {
    xmin = -1.0f;
    xmax = 1.0f;
  }
  const float s = (xmax - xmin) / 15.0f;
  const int z = static_cast<int>(std::nearbyint(-xmin / s));
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    float r = std::nearbyint(x[i] / s) + static_cast<float>(z);
    r = std::min(std::max(r, 0.0f), 15.0f);
    const int c = static_cast<int>(r) - z;
    codes[i] = static_cast<std::int8_t>(c);
    sum += c;
  }
  *scale = s;
  *zero = z;
  return sum;
}

/// MXFP4 of one block of k <= 32 floats: writes 2 * E2M1 value of each code (in [-12, 12]),
/// returns the code sum; the E8M0 byte and the multiplier 2^(e - 1) through the pointers.
/// `raw` (optional) receives the E2M1 codes.
inline std::int32_t qact_mxfp4_block(const float* x, index_t k, std::int8_t* codes,
                                     std::uint8_t* scale_byte, float* scale,
                                     std::uint8_t* raw = nullptr) {
  float amax = 0.0f;
  for (index_t i = 0; i < k; ++i) amax = std::fmax(amax, std::fabs(x[i]));
  int e = -127;
  if (amax > 0.0f) {
    int ex = 0;
    (void)std::frexp(amax, &ex);  // amax = f * 2^ex, f in [0.5, 1): floor(log2(amax)) = ex - 1
    e = std::min(std::max(ex - 1 - 2, -127), 127);
  }
  *scale_byte = e8m0_from_exponent(e);
  *scale = std::ldexp(1.0f, e - 1);
  std::int32_t sum = 0;
  for (index_t i = 0; i < k; ++i) {
    const std::uint8_t c = amax > 0.0f ? e2m1_encode(std::ldexp(x[i], -e)) : 0;
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
  const std::uint8_t byte = ue4m3_encode((amax / 6.0f) / ts);
  const float sb = ue4m3_decode(byte) * ts;
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

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
