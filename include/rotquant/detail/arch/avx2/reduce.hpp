// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx2/reduce.hpp: AVX2 reductions (compiled with target attributes).
#pragma once
// IWYU pragma: private, include "rotquant/core/reduce.hpp"

#include "rotquant/detail/arch/scalar/reduce.hpp"

#if ROTQUANT_HAS_AVX2
#include <immintrin.h>

namespace rotquant {
namespace detail {
namespace arch {

ROTQUANT_TARGET_AVX2 inline float absmax(avx2, const float* x, index_t n) {
  const __m256 sign_off = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  // Four independent accumulators hide the latency of vmaxps.
  __m256 m0 = _mm256_setzero_ps(), m1 = m0, m2 = m0, m3 = m0;
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(x + i), sign_off));
    m1 = _mm256_max_ps(m1, _mm256_and_ps(_mm256_loadu_ps(x + i + 8), sign_off));
    m2 = _mm256_max_ps(m2, _mm256_and_ps(_mm256_loadu_ps(x + i + 16), sign_off));
    m3 = _mm256_max_ps(m3, _mm256_and_ps(_mm256_loadu_ps(x + i + 24), sign_off));
  }
  for (; i + 8 <= n; i += 8)
    m0 = _mm256_max_ps(m0, _mm256_and_ps(_mm256_loadu_ps(x + i), sign_off));
  m0 = _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3));
  __m128 h = _mm_max_ps(_mm256_castps256_ps128(m0), _mm256_extractf128_ps(m0, 1));
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  float m = _mm_cvtss_f32(h);
  for (; i < n; ++i) {
    const float a = x[i] < 0 ? -x[i] : x[i];
    m = a > m ? a : m;
  }
  return m;
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
