// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx2/gemm.hpp: AVX2 W4A4 GEMM micro-kernels (vpmaddubsw + vpmaddwd).
//
// Same packed layout and operand roles as the AVX-512 kernel (kernels/packed.hpp): the unsigned
// operand of vpmaddubsw is the weight unit u = w + offset, u in [0, 15] (INT4) or [0, 24] (FP4),
// the signed operand the activation code a in [-128, 127] (INT8; INT4 codes are in [-15, 15],
// FP4 in [-12, 12]).
// Why no int16 saturation can occur (docs/testing.md 3.2): vpmaddubsw forms u0 a0 + u1 a1 per int16
// lane, |u0 a0 + u1 a1| <= 2 * 24 * 128 = 6144; we add the results of the low-nibble and the
// high-nibble halves of one 8-k chunk in int16 before widening, |sum| <= 2 * 6144 = 12288
// < 32767. (For the W4A4 formats the bounds are far smaller: 2 * 2 * 15 * 15 = 900.) The pair
// sums are then widened exactly by vpmaddwd with ones into int32 accumulators.
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <cstring>

#include "rotquant/detail/arch/scalar/gemm.hpp"

#if ROTQUANT_HAS_AVX2
#include <immintrin.h>

namespace rotquant {
namespace detail {
namespace arch {

ROTQUANT_TARGET_AVX2 inline __m256i gemm_bcast4_avx2(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm256_set1_epi32(v);
}

/// MR rows x one panel (two ymm halves of 8 columns).
template <int MR, bool FP4>
ROTQUANT_TARGET_AVX2 inline void gemm_tile_avx2(const gemm_args& g, index_t m0, index_t p0) {
  const __m256i nib = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  const __m256i lut = _mm256_broadcastsi128_si256(
      _mm_load_si128(reinterpret_cast<const __m128i*>(detail::gemm_fp4_lut)));
  __m256 y[MR][2];
  for (int r = 0; r < MR; ++r) y[r][0] = y[r][1] = _mm256_setzero_ps();
  for (index_t b = 0; b < g.nkb; ++b) {
    index_t c0, c1;
    gemm_block_chunks(g, b, c0, c1);
    __m256i acc[MR][2];
    for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const std::uint8_t* wp = g.w + p0 * g.panel_bytes + c0 * 64;
    const std::int8_t* ap = g.a + m0 * g.lda + c0 * 8;
    for (index_t c = c0; c < c1; ++c, wp += 64, ap += 8) {
      __m256i lo[2], hi[2];
      for (int h = 0; h < 2; ++h) {
        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wp + 32 * h));
        lo[h] = _mm256_and_si256(v, nib);
        hi[h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), nib);
        if (FP4) {
          lo[h] = _mm256_shuffle_epi8(lut, lo[h]);
          hi[h] = _mm256_shuffle_epi8(lut, hi[h]);
        }
      }
      for (int r = 0; r < MR; ++r) {
        const __m256i a0 = gemm_bcast4_avx2(ap + r * g.lda);
        const __m256i a1 = gemm_bcast4_avx2(ap + r * g.lda + 4);
        for (int h = 0; h < 2; ++h) {
          const __m256i s16 =
              _mm256_add_epi16(_mm256_maddubs_epi16(lo[h], a0), _mm256_maddubs_epi16(hi[h], a1));
          acc[r][h] = _mm256_add_epi32(acc[r][h], _mm256_madd_epi16(s16, ones));
        }
      }
    }
    const index_t k0 = b * g.kb;
    for (int r = 0; r < MR; ++r) {
      const index_t m = m0 + r;
      const __m256i corr = _mm256_set1_epi32(g.woff * g.a_sums[m * g.nkb + b]);
      const __m256 sa = _mm256_set1_ps(g.a_scales[m * g.a_blocks + k0 / g.a_block]);
      const float* sw = g.w_scales + (p0 * g.w_blocks + k0 / g.w_block) * 16;
      for (int h = 0; h < 2; ++h) {
        const __m256 t = _mm256_cvtepi32_ps(_mm256_sub_epi32(acc[r][h], corr));
        y[r][h] = _mm256_fmadd_ps(t, _mm256_mul_ps(sa, _mm256_loadu_ps(sw + 8 * h)), y[r][h]);
      }
    }
  }
  const index_t n0 = p0 * 16;
  const index_t cols = g.n - n0 < 16 ? g.n - n0 : 16;
  for (int r = 0; r < MR; ++r) {
    float* o = g.out + (m0 + r) * g.ldo + n0;
    if (cols == 16) {
      for (int h = 0; h < 2; ++h) {
        __m256 v = y[r][h];
        if (g.bias) v = _mm256_add_ps(v, _mm256_loadu_ps(g.bias + n0 + 8 * h));
        _mm256_storeu_ps(o + 8 * h, v);
      }
    } else {
      alignas(32) float tmp[16];
      _mm256_store_ps(tmp, y[r][0]);
      _mm256_store_ps(tmp + 8, y[r][1]);
      for (index_t j = 0; j < cols; ++j) o[j] = g.bias ? tmp[j] + g.bias[n0 + j] : tmp[j];
    }
  }
}

template <bool FP4, int MR = 1, int MAXR = 4>
ROTQUANT_TARGET_AVX2 inline void gemm_tile_avx2_mr(int mr, const gemm_args& g, index_t m0,
                                                   index_t p0) {
  if constexpr (MR < MAXR) {
    if (mr != MR) return gemm_tile_avx2_mr<FP4, MR + 1, MAXR>(mr, g, m0, p0);
  }
  gemm_tile_avx2<MR, FP4>(g, m0, p0);
}

template <bool FP4>
ROTQUANT_TARGET_AVX2 inline void gemm_range_avx2(const gemm_args& g, index_t m0, index_t m1,
                                                 index_t p0, index_t p1) {
  // Blocked formats also hold a float tile, so they use fewer rows per tile.
  const index_t MRmax = g.nkb > 1 ? 2 : 4;
  for (index_t p = p0; p < p1; ++p)
    for (index_t m = m0; m < m1; m += MRmax) {
      const int mr = static_cast<int>(m1 - m < MRmax ? m1 - m : MRmax);
      gemm_tile_avx2_mr<FP4>(mr, g, m, p);
    }
}

/// AVX2 kernel: same results as gemm_range(scalar, ...) bit for bit.
ROTQUANT_TARGET_AVX2 inline void gemm_range(avx2, const gemm_args& g, index_t m0, index_t m1,
                                            index_t p0, index_t p1) {
  if (g.fp4)
    gemm_range_avx2<true>(g, m0, m1, p0, p1);
  else
    gemm_range_avx2<false>(g, m0, m1, p0, p1);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
