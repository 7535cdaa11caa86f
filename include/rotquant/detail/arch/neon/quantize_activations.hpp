// SPDX-License-Identifier: Apache-2.0
// detail/arch/neon/quantize_activations.hpp: NEON symmetric per-token quantization (bit-exact).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/scalar/quantize_activations.hpp"

#if ROTQUANT_HAS_NEON
#include <arm_neon.h>

namespace rotquant {
namespace detail {
namespace arch {

/// NEON version of qact_sym_codes(scalar, ...): IEEE division (vdivq), clamp, and
/// round-half-to-even conversion (vcvtnq), so identical codes.
inline std::int32_t qact_sym_codes(neon, const float* x, index_t k, float s, int qmin, int qmax,
                                   std::int8_t* codes) {
  const float32x4_t vs = vdupq_n_f32(s);
  const float32x4_t lo = vdupq_n_f32(static_cast<float>(qmin));
  const float32x4_t hi = vdupq_n_f32(static_cast<float>(qmax));
  int32x4_t acc = vdupq_n_s32(0);
  index_t i = 0;
  for (; i + 16 <= k; i += 16) {
    int32x4_t q[4];
    for (int j = 0; j < 4; ++j) {
      const float32x4_t r = vminq_f32(vmaxq_f32(vdivq_f32(vld1q_f32(x + i + 4 * j), vs), lo), hi);
      q[j] = vcvtnq_s32_f32(r);
      acc = vaddq_s32(acc, q[j]);
    }
    const int16x8_t h0 = vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1]));
    const int16x8_t h1 = vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]));
    vst1q_s8(codes + i, vcombine_s8(vmovn_s16(h0), vmovn_s16(h1)));
  }
  const std::int32_t sum = vaddvq_s32(acc);
  return sum + qact_sym_codes(scalar{}, x + i, k - i, s, qmin, qmax, codes + i);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
#endif
