// SPDX-License-Identifier: Apache-2.0
// detail/arch/neon/gemm.hpp: NEON W4A4 GEMM micro-kernels: sdot when the CPU has the dot-product
// extension (compiled with target "+dotprod", chosen at run time), else smull + sadalp.
//
// Same packed layout as the x86 kernels (kernels/packed.hpp): a 64-byte chunk is four q
// registers of 4 columns x 4 k values. The weight unit u = w + offset is in [0, 24], so it is
// also a valid *signed* byte and sdot (s8 x s8 -> int32, no intermediate rounding) is exact.
// The fallback multiplies with smull into int16 (|u * a| <= 24 * 128 = 3072, no wrap) and
// pairwise-accumulates into int32 with sadalp; exact as well.
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <atomic>
#include <cstring>

#include "rotquant/core/cpu.hpp"
#include "rotquant/detail/arch/scalar/gemm.hpp"

#if ROTQUANT_HAS_NEON
#include <arm_neon.h>
// GCC 12 does not make the dot-product intrinsics inlinable under target("+dotprod") (the
// config.hpp macro); naming the architecture level does work.
#define ROTQUANT_GEMM_TARGET_DOTPROD __attribute__((target("arch=armv8.2-a+dotprod")))
#endif

namespace rotquant {
namespace detail {

/// Test hook: -1 = use sdot when the CPU has it (default), 0 = force the smull fallback.
inline std::atomic<int>& gemm_neon_dotprod_override() {
  static std::atomic<int> v{-1};
  return v;
}

}  // namespace detail
}  // namespace rotquant

#if ROTQUANT_HAS_NEON
namespace rotquant {
namespace detail {
namespace arch {

/// The epilogue of one kernel block for one row: y += float(acc - corr) * (sa * sw).
inline void gemm_neon_block_epilogue(const gemm_args& g, index_t m, index_t b, index_t p0,
                                     const int32x4_t acc[4], float32x4_t y[4]) {
  const index_t k0 = b * g.kb;
  const int32x4_t corr = vdupq_n_s32(g.woff * g.a_sums[m * g.nkb + b]);
  const float32x4_t sa = vdupq_n_f32(g.a_scales[m * g.a_blocks + k0 / g.a_block]);
  const float* sw = g.w_scales + (p0 * g.w_blocks + k0 / g.w_block) * 16;
  for (int i = 0; i < 4; ++i) {
    const float32x4_t t = vcvtq_f32_s32(vsubq_s32(acc[i], corr));
    y[i] = vfmaq_f32(y[i], t, vmulq_f32(sa, vld1q_f32(sw + 4 * i)));
  }
}

inline void gemm_neon_store(const gemm_args& g, index_t m, index_t p0, const float32x4_t y[4]) {
  const index_t n0 = p0 * 16;
  const index_t cols = g.n - n0 < 16 ? g.n - n0 : 16;
  float tmp[16];
  for (int i = 0; i < 4; ++i) vst1q_f32(tmp + 4 * i, y[i]);
  float* o = g.out + m * g.ldo + n0;
  for (index_t j = 0; j < cols; ++j) o[j] = g.bias ? tmp[j] + g.bias[n0 + j] : tmp[j];
}

inline void gemm_neon_unpack(const std::uint8_t* wp, bool fp4, int8x16_t lo[4], int8x16_t hi[4]) {
  const uint8x16_t nib = vdupq_n_u8(0x0F);
  const uint8x16_t lut = vld1q_u8(detail::gemm_fp4_lut);
  for (int i = 0; i < 4; ++i) {
    const uint8x16_t v = vld1q_u8(wp + 16 * i);
    uint8x16_t l = vandq_u8(v, nib), h = vshrq_n_u8(v, 4);
    if (fp4) {
      l = vqtbl1q_u8(lut, l);
      h = vqtbl1q_u8(lut, h);
    }
    lo[i] = vreinterpretq_s8_u8(l);
    hi[i] = vreinterpretq_s8_u8(h);
  }
}

/// sdot tile: MR rows x one panel.
template <int MR>
ROTQUANT_GEMM_TARGET_DOTPROD inline void gemm_tile_neon_dot(const gemm_args& g, index_t m0,
                                                            index_t p0) {
  float32x4_t y[MR][4];
  for (int r = 0; r < MR; ++r)
    for (int i = 0; i < 4; ++i) y[r][i] = vdupq_n_f32(0.0f);
  for (index_t b = 0; b < g.nkb; ++b) {
    index_t c0, c1;
    gemm_block_chunks(g, b, c0, c1);
    int32x4_t acc[MR][4];
    for (int r = 0; r < MR; ++r)
      for (int i = 0; i < 4; ++i) acc[r][i] = vdupq_n_s32(0);
    const std::uint8_t* wp = g.w + p0 * g.panel_bytes + c0 * 64;
    const std::int8_t* ap = g.a + m0 * g.lda + c0 * 8;
    for (index_t c = c0; c < c1; ++c, wp += 64, ap += 8) {
      int8x16_t lo[4], hi[4];
      gemm_neon_unpack(wp, g.fp4, lo, hi);
      for (int r = 0; r < MR; ++r) {
        const int8x8_t a = vld1_s8(ap + r * g.lda);
        for (int i = 0; i < 4; ++i) {
          acc[r][i] = vdotq_lane_s32(acc[r][i], lo[i], a, 0);
          acc[r][i] = vdotq_lane_s32(acc[r][i], hi[i], a, 1);
        }
      }
    }
    for (int r = 0; r < MR; ++r) gemm_neon_block_epilogue(g, m0 + r, b, p0, acc[r], y[r]);
  }
  for (int r = 0; r < MR; ++r) gemm_neon_store(g, m0 + r, p0, y[r]);
}

/// Plain NEON tile (no dot-product extension): one row x one panel.
inline void gemm_tile_neon_plain(const gemm_args& g, index_t m, index_t p0) {
  float32x4_t y[4];
  for (int i = 0; i < 4; ++i) y[i] = vdupq_n_f32(0.0f);
  for (index_t b = 0; b < g.nkb; ++b) {
    index_t c0, c1;
    gemm_block_chunks(g, b, c0, c1);
    // pacc[2i] holds columns 4i, 4i+1 as pairs of partial sums, pacc[2i+1] columns 4i+2, 4i+3.
    int32x4_t pacc[8];
    for (int i = 0; i < 8; ++i) pacc[i] = vdupq_n_s32(0);
    const std::uint8_t* wp = g.w + p0 * g.panel_bytes + c0 * 64;
    const std::int8_t* ap = g.a + m * g.lda + c0 * 8;
    for (index_t c = c0; c < c1; ++c, wp += 64, ap += 8) {
      int8x16_t lo[4], hi[4];
      gemm_neon_unpack(wp, g.fp4, lo, hi);
      std::int32_t w0, w1;
      std::memcpy(&w0, ap, 4);
      std::memcpy(&w1, ap + 4, 4);
      const int8x16_t a0 = vreinterpretq_s8_s32(vdupq_n_s32(w0));
      const int8x16_t a1 = vreinterpretq_s8_s32(vdupq_n_s32(w1));
      for (int i = 0; i < 4; ++i) {
        pacc[2 * i] = vpadalq_s16(pacc[2 * i], vmull_s8(vget_low_s8(lo[i]), vget_low_s8(a0)));
        pacc[2 * i + 1] = vpadalq_s16(pacc[2 * i + 1], vmull_high_s8(lo[i], a0));
        pacc[2 * i] = vpadalq_s16(pacc[2 * i], vmull_s8(vget_low_s8(hi[i]), vget_low_s8(a1)));
        pacc[2 * i + 1] = vpadalq_s16(pacc[2 * i + 1], vmull_high_s8(hi[i], a1));
      }
    }
    int32x4_t acc[4];
    for (int i = 0; i < 4; ++i) acc[i] = vpaddq_s32(pacc[2 * i], pacc[2 * i + 1]);
    gemm_neon_block_epilogue(g, m, b, p0, acc, y);
  }
  gemm_neon_store(g, m, p0, y);
}

template <int MR = 1>
inline void gemm_tile_neon_dot_mr(int mr, const gemm_args& g, index_t m0, index_t p0) {
  if constexpr (MR < 4) {
    if (mr != MR) return gemm_tile_neon_dot_mr<MR + 1>(mr, g, m0, p0);
  }
  gemm_tile_neon_dot<MR>(g, m0, p0);
}

/// NEON kernel: same results as gemm_range(scalar, ...) bit for bit.
inline void gemm_range(neon, const gemm_args& g, index_t m0, index_t m1, index_t p0, index_t p1) {
  const bool dot = cpu().neon_dotprod && gemm_neon_dotprod_override().load() != 0;
  for (index_t p = p0; p < p1; ++p) {
    if (dot) {
      for (index_t m = m0; m < m1; m += 4)
        gemm_tile_neon_dot_mr(static_cast<int>(m1 - m < 4 ? m1 - m : 4), g, m, p);
    } else {
      for (index_t m = m0; m < m1; ++m) gemm_tile_neon_plain(g, m, p);
    }
  }
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
