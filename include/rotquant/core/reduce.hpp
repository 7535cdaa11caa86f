// SPDX-License-Identifier: Apache-2.0
// reduce.hpp: row reductions used by quantizers (absolute maximum), one kernel per ISA path.
#pragma once

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/detail/arch/avx512/reduce.hpp"
#include "rotquant/detail/arch/neon/reduce.hpp"

namespace rotquant {

/// max_i |x_i| over n floats (0 for n == 0), on the active ISA path (dispatch.hpp).
/// Every path returns identical bits for finite input. Inputs are not checked for NaN
/// (this sits behind validated entry points); O(n).
inline float absmax(const float* x, index_t n) {
  ROTQUANT_CHECK(n >= 0, "absmax: negative length " << n);
  ROTQUANT_CHECK(x != nullptr || n == 0, "absmax: null data with length " << n);
  return dispatch([&](auto tag) { return detail::arch::absmax(tag, x, n); });
}

/// Per-row max |x| of a row-major matrix view: one value per row (token).
inline vector_f row_absmax(const const_matrix_view<float>& m) {
  vector_f out(m.rows());
  dispatch([&](auto tag) {
    for (index_t r = 0; r < m.rows(); ++r)
      out[r] = detail::arch::absmax(tag, m.data() + r * m.outerStride(), m.cols());
  });
  return out;
}

}  // namespace rotquant
