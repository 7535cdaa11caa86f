// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx512/quantize_activations.hpp: AVX-512 symmetric per-token quantization.
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/avx2/quantize_activations.hpp"

#if ROTQUANT_HAS_AVX512
#include <immintrin.h>

ROTQUANT_AVX512_BEGIN
namespace rotquant {
namespace detail {
namespace arch {

/// AVX-512 version of qact_sym_codes(scalar, ...): IEEE division, clamp, round-half-to-even
/// conversion, narrowing store (vpmovdb); the tail uses masked loads/stores. Identical codes.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_sym_codes(avx512, const float* x, index_t k,
                                                          float s, int qmin, int qmax,
                                                          std::int8_t* codes) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(qmin));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(qmax));
  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m512 r0 =
        _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(_mm512_loadu_ps(x + i), vs), lo), hi);
    const __m512 r1 =
        _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(_mm512_loadu_ps(x + i + 16), vs), lo), hi);
    const __m512i q0 = _mm512_cvtps_epi32(r0), q1 = _mm512_cvtps_epi32(r1);
    acc0 = _mm512_add_epi32(acc0, q0);
    acc1 = _mm512_add_epi32(acc1, q1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i + 16), _mm512_cvtepi32_epi8(q1));
  }
  for (; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    const __m512 r =
        _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs), lo), hi);
    const __m512i q = _mm512_maskz_mov_epi32(m, _mm512_cvtps_epi32(r));
    acc0 = _mm512_add_epi32(acc0, q);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, m, q);
  }
  const __m512i a = _mm512_add_epi32(acc0, acc1);
  __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// Horizontal max / sum of 16 lanes by shuffles (GCC 12's reduce intrinsics trip warnings).
ROTQUANT_TARGET_AVX512 inline float qact_hmax(__m512 m) {
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0x4E));
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0xB1));
  __m128 h = _mm512_castps512_ps128(m);
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_hsum(__m512i a) {
  __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// 2 * E2M1 value of e2m1_encode(v) per lane: the contract's comparison ladder (|v| > 0.25,
/// >= 0.75, > 1.25, >= 1.75, > 2.5, >= 3.5, > 5) adds the magnitude steps 1,1,1,1,2,2,4 of
/// {0, 1, 2, 3, 4, 6, 8, 12}; negative inputs negate it (a zero result stays 0, like +0 code).
ROTQUANT_TARGET_AVX512 inline __m512i qact_e2m1_x2(__m512 v) {
  const __m512 a = _mm512_abs_ps(v);
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2), four = _mm512_set1_epi32(4),
                zero = _mm512_setzero_si512();
  __m512i m = zero;
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.25f), _CMP_GT_OQ), m, one);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(0.75f), _CMP_GE_OQ), m, one);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(1.25f), _CMP_GT_OQ), m, one);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(1.75f), _CMP_GE_OQ), m, one);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(2.5f), _CMP_GT_OQ), m, two);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(3.5f), _CMP_GE_OQ), m, two);
  m = _mm512_mask_add_epi32(m, _mm512_cmp_ps_mask(a, _mm512_set1_ps(5.0f), _CMP_GT_OQ), m, four);
  const __mmask16 neg = _mm512_movepi32_mask(_mm512_castps_si512(v));
  return _mm512_mask_sub_epi32(m, neg, zero, m);
}

/// AVX-512 asymmetric INT4 of one row (QuaRot rule, zero forced in): exact min / max, the
/// scalar scale and zero point, then rint(x / s) (vrndscaleps, half to even) + z clamped to
/// [0, 15], stored as q - z. Same bits as the scalar rule.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_asym4_row(avx512, const float* x, index_t k,
                                                          float clip, std::int8_t* codes,
                                                          float* scale, std::int32_t* zero) {
  __m512 mn = _mm512_setzero_ps(), mx = mn;
  for (index_t i = 0; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), x + i);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  const float mn_s = -qact_hmax(_mm512_sub_ps(_mm512_setzero_ps(), mn)), mx_s = qact_hmax(mx);
  rotquant::detail::qact_asym4_params(mn_s, mx_s, clip, scale, zero);
  const float s = *scale;
  const std::int32_t z = *zero;
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(static_cast<float>(z));
  const __m512 hi = _mm512_set1_ps(15.0f);
  const __m512i iz = _mm512_set1_epi32(z);
  __m512i acc = _mm512_setzero_si512();
  for (index_t i = 0; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    const __m512 r =
        _mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                      vz);
    const __m512i q = _mm512_maskz_sub_epi32(
        m, _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), hi)), iz);
    acc = _mm512_add_epi32(acc, q);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, m, q);
  }
  return qact_hsum(acc);
}

/// AVX-512 MXFP4 of one row (blocks of 32; a partial last block goes to the scalar rule).
/// Multiplying by the float 2^-e equals ldexp(x, -e): both are the exact product rounded once
/// (2^-e is exactly representable for e in [-127, 127]). Same bits as the scalar rule.
ROTQUANT_TARGET_AVX512 inline void qact_mxfp4_row(avx512, const float* x, index_t k,
                                                  std::int8_t* codes, std::uint8_t* bytes,
                                                  float* scales, std::int32_t* sums) {
  index_t b = 0;
  for (; (b + 1) * 32 <= k; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    const float amax = qact_hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const int e = amax > 0.0f
                      ? std::min(std::max(rotquant::detail::qact_floor_log2(amax) - 2, -127), 127)
                      : -127;
    bytes[b] = e8m0_from_exponent(e);
    scales[b] = rotquant::detail::qact_pow2(e - 1);
    const __m512 mul = _mm512_set1_ps(rotquant::detail::qact_pow2(-e));
    const __m512i q0 = qact_e2m1_x2(_mm512_mul_ps(v0, mul));
    const __m512i q1 = qact_e2m1_x2(_mm512_mul_ps(v1, mul));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 32 * b), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
    sums[b] = qact_hsum(_mm512_add_epi32(q0, q1));
  }
  if (32 * b < k)
    sums[b] = rotquant::detail::qact_mxfp4_block(x + 32 * b, k - 32 * b, codes + 32 * b, bytes + b,
                                                 scales + b);
}

/// ue4m3_encode of 16 finite values >= 0 (the bit arithmetic of qact_ue4m3_encode, per lane).
ROTQUANT_TARGET_AVX512 inline __m512i qact_ue4m3_encode16(__m512 x) {
  const __m512i b0 = _mm512_castps_si512(x);
  const __m512i one = _mm512_set1_epi32(1);
  __m512i b =
      _mm512_add_epi32(b0, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF),
                                            _mm512_and_si512(_mm512_srli_epi32(b0, 20), one)));
  b = _mm512_and_si512(b, _mm512_set1_epi32(static_cast<int>(0xFFF00000u)));
  __m512i normal = _mm512_or_si512(
      _mm512_slli_epi32(_mm512_sub_epi32(_mm512_srli_epi32(b, 23), _mm512_set1_epi32(120)), 3),
      _mm512_and_si512(_mm512_srli_epi32(b, 20), _mm512_set1_epi32(7)));
  normal = _mm512_min_epi32(normal, _mm512_set1_epi32(0x7E));
  const __m512i sub = _mm512_cvtps_epi32(_mm512_mul_ps(x, _mm512_set1_ps(512.0f)));
  const __mmask16 is_sub = _mm512_cmp_ps_mask(x, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_maskz_mov_epi32(pos, _mm512_mask_mov_epi32(normal, is_sub, sub));
}

/// Exact value of 16 UE4M3 codes (0x00..0x7E).
ROTQUANT_TARGET_AVX512 inline __m512 qact_ue4m3_decode16(__m512i c) {
  const __m512i normal = _mm512_or_si512(
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_srli_epi32(c, 3), _mm512_set1_epi32(120)), 23),
      _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(7)), 20));
  const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(1.0f / 512.0f));
  const __mmask16 is_sub = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(8));
  return _mm512_mask_mov_ps(_mm512_castsi512_ps(normal), is_sub, sub);
}

/// AVX-512 NVFP4 of one row (blocks of 16, IEEE division x / sb like the scalar rule). Block
/// scales are computed 16 blocks at a time in vector lanes; same bits as the scalar rule.
ROTQUANT_TARGET_AVX512 inline void qact_nvfp4_row(avx512, const float* x, index_t k, float ts,
                                                  std::int8_t* codes, std::uint8_t* bytes,
                                                  float* scales, std::int32_t* sums) {
  index_t b = 0;
  alignas(64) float amax[16];
  alignas(64) float sb[16];
  const __m512 vts = _mm512_set1_ps(ts);
  for (; (b + 16) * 16 <= k; b += 16) {
    for (int j = 0; j < 16; ++j)
      amax[j] = qact_hmax(_mm512_abs_ps(_mm512_loadu_ps(x + 16 * (b + j))));
    const __m512 t = _mm512_div_ps(_mm512_div_ps(_mm512_load_ps(amax), _mm512_set1_ps(6.0f)), vts);
    const __m512i code = qact_ue4m3_encode16(t);
    const __m512 s = _mm512_mul_ps(qact_ue4m3_decode16(code), vts);
    _mm512_store_ps(sb, s);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + b), _mm512_cvtepi32_epi8(code));
    _mm512_storeu_ps(scales + b, _mm512_mul_ps(s, _mm512_set1_ps(0.5f)));
    for (int j = 0; j < 16; ++j) {
      const __m512i q = sb[j] == 0.0f
                            ? _mm512_setzero_si512()
                            : qact_e2m1_x2(_mm512_div_ps(_mm512_loadu_ps(x + 16 * (b + j)),
                                                         _mm512_set1_ps(sb[j])));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16 * (b + j)), _mm512_cvtepi32_epi8(q));
      sums[b + j] = qact_hsum(q);
    }
  }
  for (; (b + 1) * 16 <= k; ++b) {
    const __m512 v = _mm512_loadu_ps(x + 16 * b);
    const float a = qact_hmax(_mm512_abs_ps(v));
    const std::uint8_t byte = rotquant::detail::qact_ue4m3_encode((a / 6.0f) / ts);
    const float sbb = rotquant::detail::qact_ue4m3_decode(byte) * ts;
    bytes[b] = byte;
    scales[b] = sbb * 0.5f;
    const __m512i q =
        sbb == 0.0f ? _mm512_setzero_si512() : qact_e2m1_x2(_mm512_div_ps(v, _mm512_set1_ps(sbb)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16 * b), _mm512_cvtepi32_epi8(q));
    sums[b] = qact_hsum(q);
  }
  if (16 * b < k)
    sums[b] = rotquant::detail::qact_nvfp4_block(x + 16 * b, k - 16 * b, ts, codes + 16 * b,
                                                 bytes + b, scales + b);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
ROTQUANT_AVX512_END
#endif
