// SPDX-License-Identifier: Apache-2.0
// detail/arch/neon/reduce.hpp: NEON (AArch64 Advanced SIMD) reductions.
#pragma once
// IWYU pragma: private, include "rotquant/core/reduce.hpp"

#include "rotquant/detail/arch/scalar/reduce.hpp"

#if ROTQUANT_HAS_NEON
#include <arm_neon.h>

namespace rotquant {
namespace detail {
namespace arch {

inline float absmax(neon, const float* x, index_t n) {
  float32x4_t m0 = vdupq_n_f32(0.0f), m1 = m0, m2 = m0, m3 = m0;
  index_t i = 0;
  for (; i + 16 <= n; i += 16) {
    m0 = vmaxq_f32(m0, vabsq_f32(vld1q_f32(x + i)));
    m1 = vmaxq_f32(m1, vabsq_f32(vld1q_f32(x + i + 4)));
    m2 = vmaxq_f32(m2, vabsq_f32(vld1q_f32(x + i + 8)));
    m3 = vmaxq_f32(m3, vabsq_f32(vld1q_f32(x + i + 12)));
  }
  for (; i + 4 <= n; i += 4) m0 = vmaxq_f32(m0, vabsq_f32(vld1q_f32(x + i)));
  float m = vmaxvq_f32(vmaxq_f32(vmaxq_f32(m0, m1), vmaxq_f32(m2, m3)));
  for (; i < n; ++i) {
    const float a = x[i] < 0 ? -x[i] : x[i];
    m = a > m ? a : m;
  }
  return m;
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
