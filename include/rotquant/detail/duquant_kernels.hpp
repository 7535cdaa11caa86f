// SPDX-License-Identifier: Apache-2.0
// detail/duquant_kernels.hpp: the DuQuant greedy step on one row (x -> (x E) Rot E) per ISA path.
//
// Readers' note. The greedy search of DuQuant (transforms/duquant.hpp) multiplies rows of B
// floats by a B x B float rotation at every step, and its fast path must reproduce the
// straightforward path bit for bit. Both call these kernels, and every path computes each output
// with the same sequence of IEEE operations: acc = 0; for k = 0..B-1: acc = fma(x'[k],
// Rot[k][c], acc) (x' = x with entries 0 and e swapped), one rounding per step. Explicit fused
// multiply-adds leave nothing to compiler contraction, so scalar, AVX2, AVX-512 and NEON give
// identical bits.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/duquant.hpp"

#include <cmath>
#include <utility>

#include "rotquant/config.hpp"
#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"

#if ROTQUANT_HAS_AVX2 || ROTQUANT_HAS_AVX512
#include <immintrin.h>
#endif
#if ROTQUANT_HAS_NEON
#include <arm_neon.h>
#endif

namespace rotquant {
namespace detail {
namespace arch {

/// Scalar reference. row: B floats, replaced by ((row E) rot) E where E swaps entries 0 and e.
/// rot: B x B row-major floats. scratch: 2 * B floats. O(B^2).
inline void duquant_rotate_row(scalar, const float* rot, index_t b, index_t e, float* row,
                               float* scratch) {
  float* xs = scratch;
  float* acc = scratch + b;
  for (index_t c = 0; c < b; ++c) {
    xs[c] = row[c];
    acc[c] = 0.0f;
  }
  std::swap(xs[0], xs[e]);
  for (index_t k = 0; k < b; ++k) {
    const float xk = xs[k];
    const float* r = rot + k * b;
    for (index_t c = 0; c < b; ++c) acc[c] = std::fma(xk, r[c], acc[c]);
  }
  for (index_t c = 0; c < b; ++c) row[c] = acc[c];
  std::swap(row[0], row[e]);
}

#if ROTQUANT_HAS_AVX2
ROTQUANT_TARGET_AVX2 inline void duquant_rotate_row(avx2, const float* rot, index_t b, index_t e,
                                                    float* row, float* scratch) {
  float* xs = scratch;
  for (index_t c = 0; c < b; ++c) xs[c] = row[c];
  std::swap(xs[0], xs[e]);
  index_t c0 = 0;
  // Passes of 64 columns: eight independent accumulator chains hide the FMA latency.
  for (; c0 + 64 <= b; c0 += 64) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (index_t k = 0; k < b; ++k) {
      const __m256 x = _mm256_broadcast_ss(xs + k);
      const float* r = rot + k * b + c0;
      a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r), a0);
      a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 8), a1);
      a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 16), a2);
      a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 24), a3);
      a4 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 32), a4);
      a5 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 40), a5);
      a6 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 48), a6);
      a7 = _mm256_fmadd_ps(x, _mm256_loadu_ps(r + 56), a7);
    }
    _mm256_storeu_ps(row + c0, a0);
    _mm256_storeu_ps(row + c0 + 8, a1);
    _mm256_storeu_ps(row + c0 + 16, a2);
    _mm256_storeu_ps(row + c0 + 24, a3);
    _mm256_storeu_ps(row + c0 + 32, a4);
    _mm256_storeu_ps(row + c0 + 40, a5);
    _mm256_storeu_ps(row + c0 + 48, a6);
    _mm256_storeu_ps(row + c0 + 56, a7);
  }
  for (; c0 + 8 <= b; c0 += 8) {
    __m256 a0 = _mm256_setzero_ps();
    for (index_t k = 0; k < b; ++k)
      a0 = _mm256_fmadd_ps(_mm256_broadcast_ss(xs + k), _mm256_loadu_ps(rot + k * b + c0), a0);
    _mm256_storeu_ps(row + c0, a0);
  }
  for (; c0 < b; ++c0) {
    float a = 0.0f;
    for (index_t k = 0; k < b; ++k) a = std::fma(xs[k], rot[k * b + c0], a);
    row[c0] = a;
  }
  std::swap(row[0], row[e]);
}
#endif

#if ROTQUANT_HAS_AVX512
ROTQUANT_AVX512_BEGIN
ROTQUANT_TARGET_AVX512 inline void duquant_rotate_row(avx512, const float* rot, index_t b,
                                                      index_t e, float* row, float* scratch) {
  float* xs = scratch;
  for (index_t c = 0; c < b; ++c) xs[c] = row[c];
  std::swap(xs[0], xs[e]);
  index_t c0 = 0;
  // Passes of 128 columns (eight zmm chains), then 16-wide passes with a masked tail.
  for (; c0 + 128 <= b; c0 += 128) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    for (index_t k = 0; k < b; ++k) {
      const __m512 x = _mm512_set1_ps(xs[k]);
      const float* r = rot + k * b + c0;
      a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 48), a3);
      a4 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 64), a4);
      a5 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 80), a5);
      a6 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 96), a6);
      a7 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 112), a7);
    }
    _mm512_storeu_ps(row + c0, a0);
    _mm512_storeu_ps(row + c0 + 16, a1);
    _mm512_storeu_ps(row + c0 + 32, a2);
    _mm512_storeu_ps(row + c0 + 48, a3);
    _mm512_storeu_ps(row + c0 + 64, a4);
    _mm512_storeu_ps(row + c0 + 80, a5);
    _mm512_storeu_ps(row + c0 + 96, a6);
    _mm512_storeu_ps(row + c0 + 112, a7);
  }
  for (; c0 + 64 <= b; c0 += 64) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (index_t k = 0; k < b; ++k) {
      const __m512 x = _mm512_set1_ps(xs[k]);
      const float* r = rot + k * b + c0;
      a0 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r), a0);
      a1 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 16), a1);
      a2 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 32), a2);
      a3 = _mm512_fmadd_ps(x, _mm512_loadu_ps(r + 48), a3);
    }
    _mm512_storeu_ps(row + c0, a0);
    _mm512_storeu_ps(row + c0 + 16, a1);
    _mm512_storeu_ps(row + c0 + 32, a2);
    _mm512_storeu_ps(row + c0 + 48, a3);
  }
  for (; c0 < b; c0 += 16) {
    const index_t w = b - c0 < 16 ? b - c0 : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << w) - 1u);
    __m512 a0 = _mm512_setzero_ps();
    for (index_t k = 0; k < b; ++k)
      a0 = _mm512_fmadd_ps(_mm512_set1_ps(xs[k]), _mm512_maskz_loadu_ps(m, rot + k * b + c0), a0);
    _mm512_mask_storeu_ps(row + c0, m, a0);
  }
  std::swap(row[0], row[e]);
}
ROTQUANT_AVX512_END
#endif

#if ROTQUANT_HAS_NEON
inline void duquant_rotate_row(neon, const float* rot, index_t b, index_t e, float* row,
                               float* scratch) {
  float* xs = scratch;
  for (index_t c = 0; c < b; ++c) xs[c] = row[c];
  std::swap(xs[0], xs[e]);
  index_t c0 = 0;
  for (; c0 + 32 <= b; c0 += 32) {
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
                a7 = a0;
    for (index_t k = 0; k < b; ++k) {
      const float32x4_t x = vdupq_n_f32(xs[k]);
      const float* r = rot + k * b + c0;
      a0 = vfmaq_f32(a0, x, vld1q_f32(r));
      a1 = vfmaq_f32(a1, x, vld1q_f32(r + 4));
      a2 = vfmaq_f32(a2, x, vld1q_f32(r + 8));
      a3 = vfmaq_f32(a3, x, vld1q_f32(r + 12));
      a4 = vfmaq_f32(a4, x, vld1q_f32(r + 16));
      a5 = vfmaq_f32(a5, x, vld1q_f32(r + 20));
      a6 = vfmaq_f32(a6, x, vld1q_f32(r + 24));
      a7 = vfmaq_f32(a7, x, vld1q_f32(r + 28));
    }
    vst1q_f32(row + c0, a0);
    vst1q_f32(row + c0 + 4, a1);
    vst1q_f32(row + c0 + 8, a2);
    vst1q_f32(row + c0 + 12, a3);
    vst1q_f32(row + c0 + 16, a4);
    vst1q_f32(row + c0 + 20, a5);
    vst1q_f32(row + c0 + 24, a6);
    vst1q_f32(row + c0 + 28, a7);
  }
  for (; c0 + 4 <= b; c0 += 4) {
    float32x4_t a0 = vdupq_n_f32(0.0f);
    for (index_t k = 0; k < b; ++k)
      a0 = vfmaq_f32(a0, vdupq_n_f32(xs[k]), vld1q_f32(rot + k * b + c0));
    vst1q_f32(row + c0, a0);
  }
  for (; c0 < b; ++c0) {
    float a = 0.0f;
    for (index_t k = 0; k < b; ++k) a = std::fma(xs[k], rot[k * b + c0], a);
    row[c0] = a;
  }
  std::swap(row[0], row[e]);
}
#endif

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
