// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx512/gemm.hpp: AVX-512 VNNI W4A4 GEMM micro-kernels (vpdpbusd, u8 x s8).
//
// Register tile: MR rows x NP panels of 16 columns, one zmm accumulator each. Per 8 values of k:
// one 64-byte load per panel gives 16 columns x 8 nibbles; AND 0x0F and (>> 4) AND 0x0F give the
// two u8 operands (k..k+3 and k+4..k+7 per lane; FP4 goes through a vpshufb table to 2 * value +
// 12). The s8 operand is 4 activation bytes of one row broadcast to every lane. vpdpbusd sums
// four u8 x s8 products into int32 with no intermediate saturation, so the accumulators are
// exact: |u * a| <= 24 * 128 = 3072 per k, so int32 cannot overflow for K <= 699,050 (the
// public entry rejects K > gemm_max_k).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <cstring>

#include "rotquant/detail/arch/avx2/gemm.hpp"

#if ROTQUANT_HAS_AVX512
#include <immintrin.h>

ROTQUANT_AVX512_BEGIN
namespace rotquant {
namespace detail {
namespace arch {

/// Prefill tile rows: 8 rows x 2 panels = 16 zmm accumulators + 4 unpacked weight registers
/// (12 rows spilled and measured slower on Zen 4).
constexpr int gemm_avx512_mr = 8;

ROTQUANT_TARGET_AVX512 inline __m512i gemm_bcast4(const std::int8_t* p) {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return _mm512_set1_epi32(v);
}

/// Widens panels [p, p + np) (np = 1 or 2) to unsigned bytes: for 8-k chunk c and panel j,
/// dst[(c * np + j) * 128 ..] holds the 64 low-nibble units (k = 8c..8c+3 per lane) then the 64
/// high-nibble ones (FP4: 2 * value + 12 through gemm_fp4_lut), the operands vpdpbusd takes.
template <bool FP4>
ROTQUANT_TARGET_AVX512 inline void gemm_unpack_avx512(const gemm_args& g, index_t p, int np,
                                                      std::uint8_t* dst) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const __m512i lut = _mm512_broadcast_i32x4(
      _mm_load_si128(reinterpret_cast<const __m128i*>(detail::gemm_fp4_lut)));
  const index_t chunks = (g.k + 7) / 8;
  for (int j = 0; j < np; ++j) {
    const std::uint8_t* w = g.w + (p + j) * g.panel_bytes;
    std::uint8_t* d = dst + j * 128;
    for (index_t c = 0; c < chunks; ++c, w += 64, d += np * 128) {
      const __m512i v = _mm512_loadu_si512(w);
      __m512i lo = _mm512_and_si512(v, nib), hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
      if (FP4) {
        lo = _mm512_shuffle_epi8(lut, lo);
        hi = _mm512_shuffle_epi8(lut, hi);
      }
      _mm512_store_si512(d, lo);
      _mm512_store_si512(d + 64, hi);
    }
  }
}

/// MR x NP tile at rows m0.., panels p0.. (all rows and panels exist; columns may end early),
/// written to out (row stride ldo) where out points at output (m0, 16 p0).
/// UNPACKED: the weights come from `up`, panels p0.. widened by gemm_unpack_avx512 (no nibble
/// work in the loop, which would compete with vpdpbusd for the two vector ports).
template <int MR, int NP, bool FP4, bool PREFETCH = false, bool UNPACKED = false>
ROTQUANT_TARGET_AVX512 ROTQUANT_SCHED_PRESSURE inline void gemm_tile_avx512(
    const gemm_args& g, index_t m0, index_t p0, float* out, index_t ldo,
    const std::uint8_t* up = nullptr) {
  const __m512i nib = _mm512_set1_epi8(0x0F);
  const __m512i lut = _mm512_broadcast_i32x4(
      _mm_load_si128(reinterpret_cast<const __m128i*>(detail::gemm_fp4_lut)));
  // The float sums live in memory between blocks: 16 more zmm beside the 16 accumulators made
  // GCC spill accumulators inside the k loop (55% of the vpdpbusd rate instead of 70%+).
  alignas(64) float y[MR][NP][16];
  for (index_t b = 0; b < g.nkb; ++b) {
    index_t c0, c1;
    gemm_block_chunks(g, b, c0, c1);
    __m512i acc[MR][NP];
    ROTQUANT_UNROLL for (int r = 0; r < MR; ++r) ROTQUANT_UNROLL for (int j = 0; j < NP; ++j)
        acc[r][j] = _mm512_setzero_si512();
    const std::uint8_t* wp = g.w + p0 * g.panel_bytes + c0 * 64;
    const std::uint8_t* uq = UNPACKED ? up + c0 * NP * 128 : nullptr;
    const std::int8_t* ap = g.a + m0 * g.lda + c0 * 8;
    for (index_t c = c0; c < c1; ++c, wp += 64, ap += 8) {
      __m512i lo[NP], hi[NP];
      if constexpr (UNPACKED) {
        ROTQUANT_UNROLL for (int j = 0; j < NP; ++j) {
          lo[j] = _mm512_load_si512(uq + j * 128);
          hi[j] = _mm512_load_si512(uq + j * 128 + 64);
        }
        uq += NP * 128;
      } else {
        ROTQUANT_UNROLL for (int j = 0; j < NP; ++j) {
          // Decode streams each weight byte once: ask L2 for the line 2 KiB ahead of every panel
          // stream (measured against 1 KiB into L1, 2-4 KiB, NTA, and 2 or 8 panels per step on
          // Zen 4: this is the one that matches a plain sequential read of the same bytes).
          if (PREFETCH)
            _mm_prefetch(reinterpret_cast<const char*>(wp + j * g.panel_bytes + 2048), _MM_HINT_T1);
          const __m512i v = _mm512_loadu_si512(wp + j * g.panel_bytes);
          lo[j] = _mm512_and_si512(v, nib);
          hi[j] = _mm512_and_si512(_mm512_srli_epi16(v, 4), nib);
          if (FP4) {
            lo[j] = _mm512_shuffle_epi8(lut, lo[j]);
            hi[j] = _mm512_shuffle_epi8(lut, hi[j]);
          }
        }
      }
      ROTQUANT_UNROLL for (int r = 0; r < MR; ++r) {
        const __m512i a0 = gemm_bcast4(ap + r * g.lda);
        const __m512i a1 = gemm_bcast4(ap + r * g.lda + 4);
        ROTQUANT_UNROLL for (int j = 0; j < NP; ++j) {
          acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], lo[j], a0);
          acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], hi[j], a1);
        }
      }
    }
    const index_t k0 = b * g.kb;
    ROTQUANT_UNROLL for (int r = 0; r < MR; ++r) {
      const index_t m = m0 + r;
      const __m512i corr = _mm512_set1_epi32(g.woff * g.a_sums[m * g.nkb + b]);
      const __m512 sa = _mm512_set1_ps(g.a_scales[m * g.a_blocks + k0 / g.a_block]);
      ROTQUANT_UNROLL for (int j = 0; j < NP; ++j) {
        const __m512 sw =
            _mm512_loadu_ps(g.w_scales + ((p0 + j) * g.w_blocks + k0 / g.w_block) * 16);
        const __m512 t = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc[r][j], corr));
        const __m512 prev = b == 0 ? _mm512_setzero_ps() : _mm512_load_ps(y[r][j]);
        _mm512_store_ps(y[r][j], _mm512_fmadd_ps(t, _mm512_mul_ps(sa, sw), prev));
      }
    }
  }
  ROTQUANT_UNROLL for (int j = 0; j < NP; ++j) {
    const index_t n0 = (p0 + j) * 16;
    const index_t cols = g.n - n0 < 16 ? g.n - n0 : 16;
    const __mmask16 mask = static_cast<__mmask16>((1u << cols) - 1u);
    const __m512 bias = g.bias ? _mm512_maskz_loadu_ps(mask, g.bias + n0) : _mm512_setzero_ps();
    ROTQUANT_UNROLL for (int r = 0; r < MR; ++r) {
      const __m512 yv = _mm512_load_ps(y[r][j]);
      const __m512 v = g.bias ? _mm512_add_ps(yv, bias) : yv;
      _mm512_mask_storeu_ps(out + r * ldo + j * 16, mask, v);
    }
  }
}

template <int NP, bool FP4, int MR = 1, int MAXR = 8, bool PREFETCH = false, bool UNPACKED = false>
ROTQUANT_TARGET_AVX512 inline void gemm_tile_avx512_mr(int mr, const gemm_args& g, index_t m0,
                                                       index_t p0, float* out, index_t ldo,
                                                       const std::uint8_t* up = nullptr) {
  if constexpr (MR < MAXR) {
    if (mr != MR)
      return gemm_tile_avx512_mr<NP, FP4, MR + 1, MAXR, PREFETCH, UNPACKED>(mr, g, m0, p0, out, ldo,
                                                                            up);
  }
  gemm_tile_avx512<MR, NP, FP4, PREFETCH, UNPACKED>(g, m0, p0, out, ldo, up);
}

/// The calling thread's widened panels (gemm_unpack_avx512) and staged outputs.
struct gemm_avx512_buffers {
  aligned_scratch<std::uint8_t> panels;
  aligned_scratch<float> out;
};
inline gemm_avx512_buffers& gemm_avx512_scratch() {
  thread_local gemm_avx512_buffers s;
  return s;
}

template <bool FP4>
ROTQUANT_TARGET_AVX512 inline void gemm_range_avx512(const gemm_args& g, index_t m0, index_t m1,
                                                     index_t p0, index_t p1) {
  const index_t rows = m1 - m0;
  if (rows <= 4) {
    // Decode: stream the weights once, four panels per step to keep several loads in flight.
    const int mr = static_cast<int>(rows);
    index_t p = p0;
    for (; p + 4 <= p1; p += 4)
      gemm_tile_avx512_mr<4, FP4, 1, 4, true>(mr, g, m0, p, g.out + m0 * g.ldo + p * 16, g.ldo);
    for (; p < p1; ++p)
      gemm_tile_avx512_mr<1, FP4, 1, 4>(mr, g, m0, p, g.out + m0 * g.ldo + p * 16, g.ldo);
    return;
  }
  // Prefill: a panel pair, widened to bytes once, stays in L1/L2 while the row blocks stream
  // past it. Blocked formats keep a float tile as well, so they use fewer rows. The tiles write
  // a staging block that goes out row by row at the end (64-byte pieces down rows 16 KiB apart
  // cost a tenth of the time at N = 4096).
  const bool blocked = g.nkb > 1;
  const index_t MRmax = blocked ? 4 : gemm_avx512_mr;
  gemm_avx512_buffers& buf = gemm_avx512_scratch();
  std::uint8_t* up = buf.panels.reserve((g.k + 7) / 8 * 256);
  const index_t lds = (p1 - p0) * 16;
  float* stage = buf.out.reserve(rows * lds);
  index_t p = p0;
  for (; p + 2 <= p1; p += 2) {
    gemm_unpack_avx512<FP4>(g, p, 2, up);
    for (index_t m = m0; m < m1; m += MRmax) {
      const int mr = static_cast<int>(m1 - m < MRmax ? m1 - m : MRmax);
      float* o = stage + (m - m0) * lds + (p - p0) * 16;
      if (blocked)
        gemm_tile_avx512_mr<2, FP4, 1, 4, false, true>(mr, g, m, p, o, lds, up);
      else
        gemm_tile_avx512_mr<2, FP4, 1, gemm_avx512_mr, false, true>(mr, g, m, p, o, lds, up);
    }
  }
  for (; p < p1; ++p) {
    gemm_unpack_avx512<FP4>(g, p, 1, up);
    for (index_t m = m0; m < m1; m += 4) {
      const int mr = static_cast<int>(m1 - m < 4 ? m1 - m : 4);
      gemm_tile_avx512_mr<1, FP4, 1, 4, false, true>(
          mr, g, m, p, stage + (m - m0) * lds + (p - p0) * 16, lds, up);
    }
  }
  const index_t n0 = p0 * 16, cols = (g.n < p1 * 16 ? g.n : p1 * 16) - n0;
  for (index_t r = 0; r < rows; ++r)
    std::memcpy(g.out + (m0 + r) * g.ldo + n0, stage + r * lds,
                static_cast<std::size_t>(cols) * sizeof(float));
}

/// AVX-512 VNNI kernel: same results as gemm_range(scalar, ...) bit for bit.
ROTQUANT_TARGET_AVX512 inline void gemm_range(avx512, const gemm_args& g, index_t m0, index_t m1,
                                              index_t p0, index_t p1) {
  if (g.fp4)
    gemm_range_avx512<true>(g, m0, m1, p0, p1);
  else
    gemm_range_avx512<false>(g, m0, m1, p0, p1);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
ROTQUANT_AVX512_END
#endif
