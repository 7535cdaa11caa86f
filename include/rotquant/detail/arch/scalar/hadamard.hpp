// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/hadamard.hpp: the reference fast Walsh-Hadamard kernel (the test oracle).
//
// Readers' note: the arithmetic order defined here is the contract every SIMD path follows,
// so that all paths agree bit for bit. For one row of n = K * M elements (M = 2^m):
//  1. each of the K blocks of M gets an unnormalised radix-2 FWHT with strides 1, 2, 4, ...,
//     M/2 in ascending order, butterfly (a, b) -> (a + b, a - b);
//  2. if K > 1 (then K = 4G), column j is combined across blocks in groups of four inputs
//     z0..z3 = z[4g..4g+3]: p = z0 + z1, q = z0 - z1, r = z2 + z3, t = z2 - z3 and the eight
//     signed sums c[0..7] = p + r, p + t, p - t, p - r, q + r, q + t, q - t, q - r (every
//     z0 +- z1 +- z2 +- z3). Output k is then y_k = ((s_0 c_0[i_0]) + s_1 c_1[i_1]) + ... summed
//     over g ascending, with (i_g, s_g) read off row k of H_K (s_g = sign of its entry 4g; the
//     index bits say which of entries 4g+1..4g+3 differ from it), and finally y_k * s. This
//     costs 3K + K^2/4 additions per column instead of K^2.
//     If K == 1 the last FWHT stage multiplies both butterfly outputs by s (M == 1: x * s).
// Only +, -, sign flips and one * by s occur, so FMA contraction cannot change the result.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/hadamard.hpp"

#include <algorithm>
#include <cstdint>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {

/// What a Hadamard kernel needs to transform rows of n = k * m elements in place.
template <class S>
struct hadamard_kernel_args {
  index_t k = 1;                           // base order K
  index_t m = 1;                           // power-of-two block length M
  const std::uint8_t* combo = nullptr;     // K x K/4 signed-sum index i_g (0..7), row-major
  const std::uint8_t* negative = nullptr;  // K x K/4: 1 where s_g = -1
  const std::uint16_t* slot = nullptr;     // K x K/4: g * 16 + i_g + 8 * (s_g < 0) (SIMD paths)
  S scale = S(1);                          // 1/sqrt(n) rounded to S
  S* scratch = nullptr;  // >= 2 K * hadamard_column_chunk and >= 8 K * (SIMD width)
};

/// Columns per chunk in the scalar K-combination (scratch holds 2 K times this many elements).
constexpr index_t hadamard_column_chunk = 64;

namespace arch {

/// Unnormalised FWHT of x[0..m) (m a power of two), strides ascending; the last stage is
/// multiplied by s when scale_last (m == 1: x[0] * s).
template <class S>
inline void fwht_block(scalar, S* x, index_t m, bool scale_last, S s) {
  if (m == 1) {
    if (scale_last) x[0] = x[0] * s;
    return;
  }
  for (index_t h = 1; h < m; h *= 2) {
    const bool last = scale_last && 2 * h == m;
    for (index_t i = 0; i < m; i += 2 * h) {
      for (index_t j = i; j < i + h; ++j) {
        const S a = x[j], b = x[j + h];
        if (last) {
          x[j] = (a + b) * s;
          x[j + h] = (a - b) * s;
        } else {
          x[j] = a + b;
          x[j + h] = a - b;
        }
      }
    }
  }
}

/// The eight signed sums z0 +- z1 +- z2 +- z3 of one group, in the order of the file comment.
template <class S>
ROTQUANT_ALWAYS_INLINE void hadamard_group_sums(S z0, S z1, S z2, S z3, S* c, index_t step) {
  const S p = z0 + z1, q = z0 - z1, r = z2 + z3, t = z2 - z3;
  c[0 * step] = p + r;
  c[1 * step] = p + t;
  c[2 * step] = p - t;
  c[3 * step] = p - r;
  c[4 * step] = q + r;
  c[5 * step] = q + t;
  c[6 * step] = q - t;
  c[7 * step] = q - r;
}

/// The K-point combination across the K blocks of one row, columns [j0, j0 + cols).
template <class S>
inline void hadamard_combine(scalar, const hadamard_kernel_args<S>& a, S* x, index_t j0,
                             index_t cols) {
  const index_t groups = a.k / 4;
  S* c = a.scratch;  // [group][8][cols]
  for (index_t g = 0; g < groups; ++g)
    for (index_t j = 0; j < cols; ++j) {
      const S* z = x + 4 * g * a.m + j0 + j;
      hadamard_group_sums(z[0], z[a.m], z[2 * a.m], z[3 * a.m], c + g * 8 * cols + j, cols);
    }
  for (index_t kk = 0; kk < a.k; ++kk) {
    const std::uint8_t* idx = a.combo + kk * groups;
    const std::uint8_t* neg = a.negative + kk * groups;
    for (index_t j = 0; j < cols; ++j) {
      const S v0 = c[idx[0] * cols + j];
      S acc = neg[0] ? -v0 : v0;
      for (index_t g = 1; g < groups; ++g) {
        const S v = c[(g * 8 + idx[g]) * cols + j];
        acc = neg[g] ? acc - v : acc + v;
      }
      x[kk * a.m + j0 + j] = acc * a.scale;
    }
  }
}

/// T_n x for `rows` rows of n = k * m elements, `stride` elements apart, in place.
template <class S>
inline void hadamard_rows(scalar tag, const hadamard_kernel_args<S>& a, S* data, index_t rows,
                          index_t stride) {
  for (index_t r = 0; r < rows; ++r) {
    S* x = data + r * stride;
    for (index_t b = 0; b < a.k; ++b) fwht_block(tag, x + b * a.m, a.m, a.k == 1, a.scale);
    if (a.k > 1)
      for (index_t j = 0; j < a.m; j += hadamard_column_chunk)
        hadamard_combine(tag, a, x, j, std::min(hadamard_column_chunk, a.m - j));
  }
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
