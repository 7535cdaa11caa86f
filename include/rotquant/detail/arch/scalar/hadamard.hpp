// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/hadamard.hpp: the reference fast Walsh-Hadamard kernel (the test oracle).
//
// Readers' note: the arithmetic order defined here is the contract every SIMD path follows,
// so that all paths agree bit for bit. For one row of n = K * M elements (M = 2^m):
//  1. each of the K blocks of M gets an unnormalised radix-2 FWHT with strides 1, 2, 4, ...,
//     M/2 in ascending order, butterfly (a, b) -> (a + b, a - b);
//  2. if K > 1, every column j gets y[k*M + j] = (((+-z_0) +- z_1) +- z_2 ...) * s, the signs
//     taken from row k of H_K, summed in ascending order; if K == 1 the last FWHT stage
//     multiplies both butterfly outputs by s instead (M == 1: x * s).
// Only +, - and one * by s occur, so FMA contraction cannot change the result.
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
  index_t k = 1;                   // base order K
  index_t m = 1;                   // power-of-two block length M
  const std::int8_t* h = nullptr;  // K x K signs (+1/-1), row-major; already transposed
  const S* sign_bits = nullptr;    // K x K of +0.0 / -0.0 (XOR masks for SIMD paths)
  S scale = S(1);                  // 1/sqrt(n) rounded to S
  S* scratch = nullptr;            // >= K * 64 elements of workspace
};

/// Columns per chunk in the K-combination step (scratch holds K * this many elements).
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

/// The K-point combination across the K blocks of one row, columns [j0, j0 + cols).
template <class S>
inline void hadamard_combine(scalar, const hadamard_kernel_args<S>& a, S* x, index_t j0,
                             index_t cols) {
  S* z = a.scratch;
  for (index_t kk = 0; kk < a.k; ++kk)
    for (index_t c = 0; c < cols; ++c) z[kk * cols + c] = x[kk * a.m + j0 + c];
  for (index_t kk = 0; kk < a.k; ++kk) {
    const std::int8_t* hrow = a.h + kk * a.k;
    for (index_t c = 0; c < cols; ++c) {
      S acc = hrow[0] > 0 ? z[c] : -z[c];
      for (index_t t = 1; t < a.k; ++t)
        acc = hrow[t] > 0 ? acc + z[t * cols + c] : acc - z[t * cols + c];
      x[kk * a.m + j0 + c] = acc * a.scale;
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
