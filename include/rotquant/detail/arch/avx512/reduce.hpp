// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx512/reduce.hpp: AVX-512 reductions (compiled with target attributes).
#pragma once
// IWYU pragma: private, include "rotquant/core/reduce.hpp"

#include "rotquant/detail/arch/avx2/reduce.hpp"

#if ROTQUANT_HAS_AVX512
#include <immintrin.h>

ROTQUANT_AVX512_BEGIN
namespace rotquant {
namespace detail {
namespace arch {

ROTQUANT_TARGET_AVX512 inline float absmax(avx512, const float* x, index_t n) {
  __m512 m0 = _mm512_setzero_ps(), m1 = m0;
  index_t i = 0;
  for (; i + 32 <= n; i += 32) {
    m0 = _mm512_max_ps(m0, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    m1 = _mm512_max_ps(m1, _mm512_abs_ps(_mm512_loadu_ps(x + i + 16)));
  }
  if (i + 16 <= n) {
    m0 = _mm512_max_ps(m0, _mm512_abs_ps(_mm512_loadu_ps(x + i)));
    i += 16;
  }
  if (i < n) {
    // Masked load for the tail: lanes past n read as 0 and never touch memory.
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    m1 = _mm512_max_ps(m1, _mm512_abs_ps(_mm512_maskz_loadu_ps(tail, x + i)));
  }
  // Horizontal max by lane shuffles (GCC 12's _mm512_reduce_max_ps trips -Wuninitialized).
  __m512 m = _mm512_max_ps(m0, m1);
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0x4E));
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0xB1));
  __m128 h = _mm512_castps512_ps128(m);
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
ROTQUANT_AVX512_END
#endif
