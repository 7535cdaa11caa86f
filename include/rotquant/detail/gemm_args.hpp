// SPDX-License-Identifier: Apache-2.0
// detail/gemm_args.hpp: the argument block every per-ISA W4A4 GEMM kernel receives.
#pragma once

#include <cstdint>

#include "rotquant/core/matrix.hpp"
#include "rotquant/detail/aligned_scratch.hpp"

namespace rotquant {
namespace detail {

/// Everything a kernel needs to compute out[m0..m1) x panels [p0, p1). The K axis is cut in
/// `nkb` blocks of `kb` elements (the last may be shorter; kb is a multiple of 8 when nkb > 1).
/// For block b, with ab = b * kb / a_block and wb = b * kb / w_block:
///   acc = sum_{k in block} u[n, k] * a[m, k] - woff * a_sums[m * nkb + b]   (exact int32)
///   y   = fma(float(acc), a_scales[m * a_blocks + ab] * w_scales[(p, wb, j)], y)
/// starting from y = +0, then out[m, n] = y (+ bias[n]).
struct gemm_args {
  const std::int8_t* a = nullptr;  ///< activation codes, row stride lda
  index_t lda = 0;
  const float* a_scales = nullptr;  ///< m x a_blocks
  index_t a_blocks = 1;
  index_t a_block = 1;
  const std::int32_t* a_sums = nullptr;  ///< m x nkb (sums over each kernel block)
  const std::uint8_t* w = nullptr;       ///< packed panels
  index_t panel_bytes = 0;
  const float* w_scales = nullptr;  ///< [panel][w_blocks][16]
  index_t w_blocks = 1;
  index_t w_block = 1;
  index_t m = 0, n = 0, k = 0;
  index_t kb = 0, nkb = 1;
  int woff = 8;
  bool fp4 = false;
  const float* bias = nullptr;
  float* out = nullptr;
  index_t ldo = 0;
  /// The AMX kernel's copy of the activation codes in tile order (detail/arch/amx/gemm.hpp,
  /// amx_pack_activations); null for the other kernels.
  const std::int8_t* a_tiles = nullptr;
};

/// First and one-past-last 8-chunk of kernel block b.
inline void gemm_block_chunks(const gemm_args& g, index_t b, index_t& c0, index_t& c1) {
  const index_t k0 = b * g.kb;
  const index_t k1 = (b + 1) * g.kb < g.k ? (b + 1) * g.kb : g.k;
  c0 = k0 / 8;
  c1 = (k1 + 7) / 8;
}

/// 2 * E2M1 value + 12 for each nibble code (FP4 weights as unsigned bytes 0..24).
alignas(16) inline constexpr std::uint8_t gemm_fp4_lut[16] = {12, 13, 14, 15, 16, 18, 20, 24,
                                                              12, 11, 10, 9,  8,  6,  4,  0};

}  // namespace detail
}  // namespace rotquant
