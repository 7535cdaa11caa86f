// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx2/quantize_activations.hpp: AVX2 symmetric per-token quantization (bit-exact).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/scalar/quantize_activations.hpp"

#if ROTQUANT_HAS_AVX2
#include <immintrin.h>

#include <algorithm>
#include <cmath>

namespace rotquant {
namespace detail {
namespace arch {

/// AVX2 qact_abs_bits_max (see the scalar version).
ROTQUANT_TARGET_AVX2 inline std::uint32_t qact_abs_bits_max(avx2, const float* x, index_t k) {
  const __m256i mask = _mm256_set1_epi32(0x7FFFFFFF);
  __m256i m0 = _mm256_setzero_si256(), m1 = m0;
  index_t i = 0;
  for (; i + 16 <= k; i += 16) {
    m0 = _mm256_max_epi32(
        m0, _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)), mask));
    m1 = _mm256_max_epi32(
        m1,
        _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i + 8)), mask));
  }
  m0 = _mm256_max_epi32(m0, m1);
  __m128i h = _mm_max_epi32(_mm256_castsi256_si128(m0), _mm256_extracti128_si256(m0, 1));
  h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0xB1));
  return std::max(static_cast<std::uint32_t>(_mm_cvtsi128_si32(h)),
                  qact_abs_bits_max(scalar{}, x + i, k - i));
}

/// Eight codes clamp(rint(x / s), lo, hi) as int32.
ROTQUANT_TARGET_AVX2 inline __m256i qact_code8(const float* p, __m256 vs, __m256 lo, __m256 hi) {
  return _mm256_cvtps_epi32(
      _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(_mm256_loadu_ps(p), vs), lo), hi));
}

/// AVX2 version of qact_sym_codes(scalar, ...): the same IEEE division, clamp, and
/// round-half-to-even conversion (vcvtps2dq under the default MXCSR), so identical codes.
ROTQUANT_TARGET_AVX2 inline std::int32_t qact_sym_codes(avx2, const float* x, index_t k, float s,
                                                        int qmin, int qmax, std::int8_t* codes) {
  const __m256 vs = _mm256_set1_ps(s);
  const __m256 lo = _mm256_set1_ps(static_cast<float>(qmin));
  const __m256 hi = _mm256_set1_ps(static_cast<float>(qmax));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  __m256i acc = _mm256_setzero_si256();
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m256i q0 = qact_code8(x + i, vs, lo, hi), q1 = qact_code8(x + i + 8, vs, lo, hi),
                  q2 = qact_code8(x + i + 16, vs, lo, hi), q3 = qact_code8(x + i + 24, vs, lo, hi);
    acc =
        _mm256_add_epi32(acc, _mm256_add_epi32(_mm256_add_epi32(q0, q1), _mm256_add_epi32(q2, q3)));
    // packs interleaves 128-bit lanes; the final permute restores element order.
    const __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(q0, q1), _mm256_packs_epi32(q2, q3));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(codes + i),
                        _mm256_permutevar8x32_epi32(b, order));
  }
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(acc), _mm256_extracti128_si256(acc, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  std::int32_t sum = _mm_cvtsi128_si32(s4);
  return sum + qact_sym_codes(scalar{}, x + i, k - i, s, qmin, qmax, codes + i);
}

ROTQUANT_TARGET_AVX2 inline float qact_hmax8(__m256 m) {
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}
ROTQUANT_TARGET_AVX2 inline std::int32_t qact_hsum8(__m256i a) {
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// 2 * E2M1 value of e2m1_encode(v) per lane by magic-number rounding (the derivation is at the
/// AVX-512 version): u = min(|v|, 6) rounded to its binade's E2M1 step by (u + M) - M, doubled,
/// the sign of v put back, converted. Same decisions as the contract's comparison ladder.
ROTQUANT_TARGET_AVX2 inline __m256i qact_e2m1_x2_avx2(__m256 v) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 u = _mm256_min_ps(_mm256_andnot_ps(sign, v), _mm256_set1_ps(6.0f));
  const __m256i ue = _mm256_and_si256(_mm256_castps_si256(u), _mm256_set1_epi32(0x7F800000));
  const __m256 magic =
      _mm256_castsi256_ps(_mm256_add_epi32(_mm256_max_epi32(ue, _mm256_set1_epi32(0x3F800000)),
                                           _mm256_set1_epi32((22 << 23) | 0x400000)));
  const __m256 r = _mm256_sub_ps(_mm256_add_ps(u, magic), magic);
  return _mm256_cvtps_epi32(_mm256_or_ps(_mm256_add_ps(r, r), _mm256_and_ps(sign, v)));
}

/// Stores 16 int32 lanes (values in int8 range) as 16 bytes in order.
ROTQUANT_TARGET_AVX2 inline void qact_store16(std::int8_t* dst, __m256i q0, __m256i q1) {
  const __m256i p = _mm256_packs_epi32(q0, q1);  // lanes: q0[0..3] q1[0..3] | q0[4..7] q1[4..7]
  const __m256i o = _mm256_permute4x64_epi64(p, 0xD8);
  const __m128i b = _mm_packs_epi16(_mm256_castsi256_si128(o), _mm256_extracti128_si256(o, 1));
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), b);
}

/// AVX2 MXFP4 of one row (full blocks of 32 in vectors, a partial last block scalar).
ROTQUANT_TARGET_AVX2 inline void qact_mxfp4_row(avx2, const float* x, index_t k, std::int8_t* codes,
                                                std::uint8_t* bytes, float* scales,
                                                std::int32_t* sums) {
  const __m256 absm = _mm256_set1_ps(-0.0f);
  index_t b = 0;
  for (; (b + 1) * 32 <= k; ++b) {
    const float* p = x + 32 * b;
    __m256 v[4];
    for (int i = 0; i < 4; ++i) v[i] = _mm256_loadu_ps(p + 8 * i);
    const __m256 m01 = _mm256_max_ps(_mm256_andnot_ps(absm, v[0]), _mm256_andnot_ps(absm, v[1]));
    const __m256 m23 = _mm256_max_ps(_mm256_andnot_ps(absm, v[2]), _mm256_andnot_ps(absm, v[3]));
    const float amax = qact_hmax8(_mm256_max_ps(m01, m23));
    const int e = amax > 0.0f
                      ? std::min(std::max(rotquant::detail::qact_floor_log2(amax) - 2, -127), 127)
                      : -127;
    bytes[b] = e8m0_from_exponent(e);
    scales[b] = rotquant::detail::qact_pow2(e - 1);
    const __m256 mul = _mm256_set1_ps(rotquant::detail::qact_pow2(-e));
    __m256i q[4];
    for (int i = 0; i < 4; ++i) q[i] = qact_e2m1_x2_avx2(_mm256_mul_ps(v[i], mul));
    qact_store16(codes + 32 * b, q[0], q[1]);
    qact_store16(codes + 32 * b + 16, q[2], q[3]);
    sums[b] =
        qact_hsum8(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3])));
  }
  if (32 * b < k)
    sums[b] = rotquant::detail::qact_mxfp4_block(x + 32 * b, k - 32 * b, codes + 32 * b, bytes + b,
                                                 scales + b);
}

/// Eight asymmetric codes clamp(rint(x / s) + z, lo, hi) - z as int32.
ROTQUANT_TARGET_AVX2 inline __m256i qact_asym_code8(const float* p, __m256 vs, __m256 vz, __m256 lo,
                                                    __m256 hi, __m256i iz) {
  const __m256 r = _mm256_add_ps(_mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(p), vs),
                                                 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                                 vz);
  return _mm256_sub_epi32(_mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi)), iz);
}

/// AVX2 asymmetric INT4 of one row (QuaRot rule, zero forced in): exact min / max over full
/// vectors and a scalar tail, the scalar scale and zero point, then rint(x / s) (vroundps, half
/// to even, as nearbyint under the default rounding mode) + z clamped to [0, 15], stored as
/// q - z. Same bits as the scalar rule (rotquant::detail::qact_asym4_row).
ROTQUANT_TARGET_AVX2 inline std::int32_t qact_asym4_row(avx2, const float* x, index_t k, float clip,
                                                        std::int8_t* codes, float* scale,
                                                        std::int32_t* zero) {
  __m256 vmn = _mm256_setzero_ps(), vmx = vmn;
  index_t i = 0;
  for (; i + 8 <= k; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    vmn = _mm256_min_ps(vmn, v);
    vmx = _mm256_max_ps(vmx, v);
  }
  float mn = -qact_hmax8(_mm256_sub_ps(_mm256_setzero_ps(), vmn)), mx = qact_hmax8(vmx);
  for (index_t j = i; j < k; ++j) {
    mn = std::min(mn, x[j]);
    mx = std::max(mx, x[j]);
  }
  rotquant::detail::qact_asym4_params(mn, mx, clip, scale, zero);
  const float s = *scale;
  const std::int32_t z = *zero;
  const __m256 vs = _mm256_set1_ps(s), vz = _mm256_set1_ps(static_cast<float>(z));
  const __m256 lo = _mm256_setzero_ps(), hi = _mm256_set1_ps(15.0f);
  const __m256i iz = _mm256_set1_epi32(z);
  __m256i acc = _mm256_setzero_si256();
  i = 0;
  for (; i + 16 <= k; i += 16) {
    const __m256i q0 = qact_asym_code8(x + i, vs, vz, lo, hi, iz),
                  q1 = qact_asym_code8(x + i + 8, vs, vz, lo, hi, iz);
    acc = _mm256_add_epi32(acc, _mm256_add_epi32(q0, q1));
    qact_store16(codes + i, q0, q1);
  }
  return qact_hsum8(acc) + rotquant::detail::qact_asym4_codes(x + i, k - i, s, z, codes + i);
}

/// AVX2 NVFP4 of one row (blocks of 16; IEEE division x / sb).
ROTQUANT_TARGET_AVX2 inline void qact_nvfp4_row(avx2, const float* x, index_t k, float ts,
                                                std::int8_t* codes, std::uint8_t* bytes,
                                                float* scales, std::int32_t* sums) {
  const __m256 absm = _mm256_set1_ps(-0.0f);
  index_t b = 0;
  for (; (b + 1) * 16 <= k; ++b) {
    const __m256 v0 = _mm256_loadu_ps(x + 16 * b), v1 = _mm256_loadu_ps(x + 16 * b + 8);
    const float amax =
        qact_hmax8(_mm256_max_ps(_mm256_andnot_ps(absm, v0), _mm256_andnot_ps(absm, v1)));
    const std::uint8_t byte = rotquant::detail::qact_ue4m3_encode((amax / 6.0f) / ts);
    const float sb = rotquant::detail::qact_ue4m3_decode(byte) * ts;
    bytes[b] = byte;
    scales[b] = sb * 0.5f;
    __m256i q0 = _mm256_setzero_si256(), q1 = q0;
    if (sb != 0.0f) {
      const __m256 d = _mm256_set1_ps(sb);
      q0 = qact_e2m1_x2_avx2(_mm256_div_ps(v0, d));
      q1 = qact_e2m1_x2_avx2(_mm256_div_ps(v1, d));
    }
    qact_store16(codes + 16 * b, q0, q1);
    sums[b] = qact_hsum8(_mm256_add_epi32(q0, q1));
  }
  if (16 * b < k)
    sums[b] = rotquant::detail::qact_nvfp4_block(x + 16 * b, k - 16 * b, ts, codes + 16 * b,
                                                 bytes + b, scales + b);
}

/// AVX2 per-token FP4 E2M1 codes of one row (see qact_fp4_row(scalar, ...)): IEEE division
/// x / s, magic-number rounding, 32 elements (16 bytes) per step; same bits as the scalar rule.
ROTQUANT_TARGET_AVX2 inline void qact_fp4_row(avx2, const float* x, index_t k, float s,
                                              std::uint8_t* packed) {
  const __m256 vs = _mm256_set1_ps(s);
  // |2 * value| (0, 1, 2, 3, 4, 6, 8, 12) -> magnitude code 0..7.
  const __m256i lut = _mm256_setr_epi8(0, 1, 2, 3, 4, 0, 5, 0, 6, 0, 0, 0, 7, 0, 0, 0, 0, 1, 2, 3,
                                       4, 0, 5, 0, 6, 0, 0, 0, 7, 0, 0, 0);
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    __m256i q[4];
    for (int t = 0; t < 4; ++t)
      q[t] = qact_e2m1_x2_avx2(_mm256_div_ps(_mm256_loadu_ps(x + i + 8 * t), vs));
    // Two packs leave dword 4 * lane + t holding q[t][4 * lane ..]; vpermd restores the order.
    const __m256i b = _mm256_permutevar8x32_epi32(
        _mm256_packs_epi16(_mm256_packs_epi32(q[0], q[1]), _mm256_packs_epi32(q[2], q[3])), order);
    const __m256i mag = _mm256_shuffle_epi8(lut, _mm256_abs_epi8(b));
    const __m256i c = _mm256_or_si256(
        mag, _mm256_and_si256(_mm256_cmpgt_epi8(_mm256_setzero_si256(), b), _mm256_set1_epi8(8)));
    const __m256i pr =
        _mm256_or_si256(_mm256_and_si256(c, _mm256_set1_epi16(0x000F)),
                        _mm256_and_si256(_mm256_srli_epi16(c, 4), _mm256_set1_epi16(0x00F0)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(packed + i / 2),
                     _mm_packus_epi16(_mm256_castsi256_si128(pr), _mm256_extracti128_si256(pr, 1)));
  }
  if (i < k) qact_fp4_row(scalar{}, x + i, k - i, s, packed + i / 2);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
