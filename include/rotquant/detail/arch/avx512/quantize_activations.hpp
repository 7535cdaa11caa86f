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

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
ROTQUANT_AVX512_END
#endif
