// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx2/quantize_activations.hpp: AVX2 symmetric per-token quantization (bit-exact).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/scalar/quantize_activations.hpp"

#if ROTQUANT_HAS_AVX2
#include <immintrin.h>

namespace rotquant {
namespace detail {
namespace arch {

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

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
