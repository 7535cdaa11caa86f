// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/gemm.hpp: reference W4A4 GEMM kernel over the packed layouts (the oracle).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <cmath>
#include <cstdint>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/detail/gemm_args.hpp"

namespace rotquant {
namespace detail {
namespace arch {

/// Unsigned weight unit u = w + offset of column j (in its panel) at k, read from a panel.
inline int gemm_weight_unit(const gemm_args& g, const std::uint8_t* panel, index_t j, index_t k) {
  const std::uint8_t byte = panel[(k >> 3) * 64 + j * 4 + (k & 3)];
  const std::uint8_t nib = static_cast<std::uint8_t>((k & 4) ? (byte >> 4) : (byte & 0x0F));
  return g.fp4 ? gemm_fp4_lut[nib] : nib;
}

/// Reference kernel: rows [m0, m1) x panels [p0, p1), exactly the formula of gemm_args.
inline void gemm_range(scalar, const gemm_args& g, index_t m0, index_t m1, index_t p0, index_t p1) {
  for (index_t p = p0; p < p1; ++p) {
    const std::uint8_t* panel = g.w + p * g.panel_bytes;
    for (index_t j = 0; j < 16; ++j) {
      const index_t n = p * 16 + j;
      if (n >= g.n) break;
      for (index_t m = m0; m < m1; ++m) {
        const std::int8_t* a = g.a + m * g.lda;
        float y = 0.0f;
        for (index_t b = 0; b < g.nkb; ++b) {
          const index_t k0 = b * g.kb, k1 = k0 + g.kb < g.k ? k0 + g.kb : g.k;
          std::int32_t acc = 0;
          for (index_t k = k0; k < k1; ++k) acc += gemm_weight_unit(g, panel, j, k) * a[k];
          acc -= g.woff * g.a_sums[m * g.nkb + b];
          const float sa = g.a_scales[m * g.a_blocks + k0 / g.a_block];
          const float sw = g.w_scales[(p * g.w_blocks + k0 / g.w_block) * 16 + j];
          y = std::fma(static_cast<float>(acc), sa * sw, y);
        }
        g.out[m * g.ldo + n] = g.bias ? y + g.bias[n] : y;
      }
    }
  }
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
