// SPDX-License-Identifier: Apache-2.0
// detail/arch/scalar/reduce.hpp: portable reference reductions (the oracle for SIMD paths).
#pragma once
// IWYU pragma: private, include "rotquant/core/reduce.hpp"

#include <cmath>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {
namespace detail {
namespace arch {

/// max_i |x_i| over n floats (0 for n == 0). Exact: max is order independent, so every path
/// returns the same bits for finite inputs.
inline float absmax(scalar, const float* x, index_t n) {
  float m = 0.0f;
  for (index_t i = 0; i < n; ++i) m = std::fmax(m, std::fabs(x[i]));
  return m;
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
