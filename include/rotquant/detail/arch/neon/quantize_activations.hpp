// SPDX-License-Identifier: Apache-2.0
// detail/arch/neon/quantize_activations.hpp: NEON symmetric per-token quantization (bit-exact).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/scalar/quantize_activations.hpp"

#if ROTQUANT_HAS_NEON
#include <arm_neon.h>

#include <algorithm>
#include <cmath>

namespace rotquant {
namespace detail {
namespace arch {

/// NEON qact_abs_bits_max (see the scalar version).
inline std::uint32_t qact_abs_bits_max(neon, const float* x, index_t k) {
  const uint32x4_t mask = vdupq_n_u32(0x7FFFFFFFu);
  uint32x4_t m0 = vdupq_n_u32(0), m1 = m0;
  index_t i = 0;
  for (; i + 8 <= k; i += 8) {
    m0 = vmaxq_u32(m0, vandq_u32(vreinterpretq_u32_f32(vld1q_f32(x + i)), mask));
    m1 = vmaxq_u32(m1, vandq_u32(vreinterpretq_u32_f32(vld1q_f32(x + i + 4)), mask));
  }
  return std::max(vmaxvq_u32(vmaxq_u32(m0, m1)), qact_abs_bits_max(scalar{}, x + i, k - i));
}

/// NEON version of qact_sym_codes(scalar, ...): IEEE division (vdivq), clamp, and
/// round-half-to-even conversion (vcvtnq), so identical codes.
inline std::int32_t qact_sym_codes(neon, const float* x, index_t k, float s, int qmin, int qmax,
                                   std::int8_t* codes) {
  const float32x4_t vs = vdupq_n_f32(s);
  const float32x4_t lo = vdupq_n_f32(static_cast<float>(qmin));
  const float32x4_t hi = vdupq_n_f32(static_cast<float>(qmax));
  int32x4_t acc = vdupq_n_s32(0);
  index_t i = 0;
  for (; i + 16 <= k; i += 16) {
    int32x4_t q[4];
    for (int j = 0; j < 4; ++j) {
      const float32x4_t r = vminq_f32(vmaxq_f32(vdivq_f32(vld1q_f32(x + i + 4 * j), vs), lo), hi);
      q[j] = vcvtnq_s32_f32(r);
      acc = vaddq_s32(acc, q[j]);
    }
    const int16x8_t h0 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    vst1q_s8(codes + i, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
  }
  const std::int32_t sum = vaddvq_s32(acc);
  return sum + qact_sym_codes(scalar{}, x + i, k - i, s, qmin, qmax, codes + i);
}

/// 2 * E2M1 value of e2m1_encode(v) per lane by magic-number rounding (derivation at the
/// AVX-512 version): u = min(|v|, 6) rounded to its binade's E2M1 step by (u + M) - M under the
/// default round-to-nearest-even, doubled (an exact integer), converted, the sign of v put back.
inline int32x4_t qact_e2m1_x2_neon(float32x4_t v) {
  const float32x4_t u = vminq_f32(vabsq_f32(v), vdupq_n_f32(6.0f));
  const int32x4_t ue = vandq_s32(vreinterpretq_s32_f32(u), vdupq_n_s32(0x7F800000));
  const float32x4_t magic = vreinterpretq_f32_s32(
      vaddq_s32(vmaxq_s32(ue, vdupq_n_s32(0x3F800000)), vdupq_n_s32((22 << 23) | 0x400000)));
  const float32x4_t r = vsubq_f32(vaddq_f32(u, magic), magic);
  const int32x4_t m = vcvtq_s32_f32(vaddq_f32(r, r));
  const int32x4_t neg = vshrq_n_s32(vreinterpretq_s32_f32(v), 31);
  return vsubq_s32(veorq_s32(m, neg), neg);
}

/// Stores 16 int32 lanes (int8 range) as 16 bytes; returns their sum.
inline std::int32_t qact_store16_neon(std::int8_t* dst, const int32x4_t q[4]) {
  const int16x8_t h0 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
  const int16x8_t h1 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
  vst1q_s8(dst, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
  return vaddvq_s32(vaddq_s32(vaddq_s32(q[0], q[1]), vaddq_s32(q[2], q[3])));
}

/// NEON MXFP4 of one row (full blocks of 32 in vectors, a partial last block scalar).
inline void qact_mxfp4_row(neon, const float* x, index_t k, std::int8_t* codes, std::uint8_t* bytes,
                           float* scales, std::int32_t* sums) {
  index_t b = 0;
  for (; (b + 1) * 32 <= k; ++b) {
    const float* p = x + 32 * b;
    float32x4_t v[8];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < 8; ++i) {
      v[i] = vld1q_f32(p + 4 * i);
      m = vmaxq_f32(m, vabsq_f32(v[i]));
    }
    const float amax = vmaxvq_f32(m);
    const int e = amax > 0.0f
                      ? std::min(std::max(rotquant::detail::qact_floor_log2(amax) - 2, -127), 127)
                      : -127;
    bytes[b] = e8m0_from_exponent(e);
    scales[b] = rotquant::detail::qact_pow2(e - 1);
    const float32x4_t mul = vdupq_n_f32(rotquant::detail::qact_pow2(-e));
    int32x4_t q[8];
    for (int i = 0; i < 8; ++i) q[i] = qact_e2m1_x2_neon(vmulq_f32(v[i], mul));
    sums[b] = qact_store16_neon(codes + 32 * b, q) + qact_store16_neon(codes + 32 * b + 16, q + 4);
  }
  if (32 * b < k)
    sums[b] = rotquant::detail::qact_mxfp4_block(x + 32 * b, k - 32 * b, codes + 32 * b, bytes + b,
                                                 scales + b);
}

/// NEON asymmetric INT4 of one row (QuaRot rule, zero forced in): exact min / max, the scalar
/// scale and zero point, then rint(x / s) (vrndnq, half to even) + z clamped to [0, 15] and
/// converted exactly, stored as q - z. Same bits as the scalar rule.
inline std::int32_t qact_asym4_row(neon, const float* x, index_t k, float clip, std::int8_t* codes,
                                   float* scale, std::int32_t* zero) {
  float32x4_t vmn = vdupq_n_f32(0.0f), vmx = vmn;
  index_t i = 0;
  for (; i + 4 <= k; i += 4) {
    const float32x4_t v = vld1q_f32(x + i);
    vmn = vminq_f32(vmn, v);
    vmx = vmaxq_f32(vmx, v);
  }
  float mn = vminvq_f32(vmn), mx = vmaxvq_f32(vmx);
  for (index_t j = i; j < k; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  rotquant::detail::qact_asym4_params(mn, mx, clip, scale, zero);
  const float s = *scale;
  const std::int32_t z = *zero;
  const float32x4_t vs = vdupq_n_f32(s), vz = vdupq_n_f32(static_cast<float>(z));
  const float32x4_t lo = vdupq_n_f32(0.0f), hi = vdupq_n_f32(15.0f);
  const int32x4_t iz = vdupq_n_s32(z);
  std::int32_t sum = 0;
  i = 0;
  for (; i + 16 <= k; i += 16) {
    int32x4_t q[4];
    for (int j = 0; j < 4; ++j) {
      const float32x4_t r = vaddq_f32(vrndnq_f32(vdivq_f32(vld1q_f32(x + i + 4 * j), vs)), vz);
      q[j] = vsubq_s32(vcvtq_s32_f32(vminq_f32(vmaxq_f32(r, lo), hi)), iz);
    }
    sum += qact_store16_neon(codes + i, q);
  }
  return sum + rotquant::detail::qact_asym4_codes(x + i, k - i, s, z, codes + i);
}

/// NEON NVFP4 of one row (blocks of 16; IEEE division x / sb with vdivq).
inline void qact_nvfp4_row(neon, const float* x, index_t k, float ts, std::int8_t* codes,
                           std::uint8_t* bytes, float* scales, std::int32_t* sums) {
  index_t b = 0;
  for (; (b + 1) * 16 <= k; ++b) {
    const float* p = x + 16 * b;
    float32x4_t v[4];
    float32x4_t m = vdupq_n_f32(0.0f);
    for (int i = 0; i < 4; ++i) {
      v[i] = vld1q_f32(p + 4 * i);
      m = vmaxq_f32(m, vabsq_f32(v[i]));
    }
    const float amax = vmaxvq_f32(m);
    const std::uint8_t byte = rotquant::detail::qact_ue4m3_encode((amax / 6.0f) / ts);
    const float sb = rotquant::detail::qact_ue4m3_decode(byte) * ts;
    bytes[b] = byte;
    scales[b] = sb * 0.5f;
    int32x4_t q[4];
    for (int i = 0; i < 4; ++i)
      q[i] = sb == 0.0f ? vdupq_n_s32(0) : qact_e2m1_x2_neon(vdivq_f32(v[i], vdupq_n_f32(sb)));
    sums[b] = qact_store16_neon(codes + 16 * b, q);
  }
  if (16 * b < k)
    sums[b] = rotquant::detail::qact_nvfp4_block(x + 16 * b, k - 16 * b, ts, codes + 16 * b,
                                                 bytes + b, scales + b);
}

/// NEON per-token FP4 E2M1 codes of one row (see qact_fp4_row(scalar, ...)): IEEE division
/// x / s, magic-number rounding, 16 elements (8 bytes) per step; same bits as the scalar rule.
inline void qact_fp4_row(neon, const float* x, index_t k, float s, std::uint8_t* packed) {
  const float32x4_t vs = vdupq_n_f32(s);
  // |2 * value| (0, 1, 2, 3, 4, 6, 8, 12) -> magnitude code 0..7.
  static const std::uint8_t lut_bytes[16] = {0, 1, 2, 3, 4, 0, 5, 0, 6, 0, 0, 0, 7, 0, 0, 0};
  const uint8x16_t lut = vld1q_u8(lut_bytes);
  index_t i = 0;
  for (; i + 16 <= k; i += 16) {
    int32x4_t q[4];
    for (int t = 0; t < 4; ++t) q[t] = qact_e2m1_x2_neon(vdivq_f32(vld1q_f32(x + i + 4 * t), vs));
    const int16x8_t h0 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    const int8x16_t b = vcombine_s8(vmovn_s16(h0), vmovn_s16(h1));
    const uint8x16_t mag = vqtbl1q_u8(lut, vreinterpretq_u8_s8(vabsq_s8(b)));
    const uint8x16_t c = vorrq_u8(mag, vandq_u8(vcltzq_s8(b), vdupq_n_u8(8)));
    const uint16x8_t w = vreinterpretq_u16_u8(c);
    const uint16x8_t pr = vorrq_u16(vandq_u16(w, vdupq_n_u16(0x000F)),
                                    vandq_u16(vshrq_n_u16(w, 4), vdupq_n_u16(0x00F0)));
    vst1_u8(packed + i / 2, vmovn_u16(pr));
  }
  if (i < k) qact_fp4_row(scalar{}, x + i, k - i, s, packed + i / 2);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
