// SPDX-License-Identifier: Apache-2.0
// detail/arch/neon/hadamard.hpp: NEON (AArch64 Advanced SIMD) lane operations for the fast
// Hadamard driver.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/hadamard.hpp"

#include "rotquant/detail/arch/scalar/hadamard.hpp"

#if ROTQUANT_HAS_NEON
#include <arm_neon.h>

namespace rotquant {
namespace detail {
namespace arch {

template <class S>
struct hadamard_ops_neon;

template <>
struct hadamard_ops_neon<float> {
  using reg = float32x4_t;
  static constexpr index_t width = 4;
  static reg load(const float* p) { return vld1q_f32(p); }
  static void store(float* p, reg v) { vst1q_f32(p, v); }
  static reg add(reg a, reg b) { return vaddq_f32(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f32(a, b); }
  static reg mul(reg a, reg b) { return vmulq_f32(a, b); }
  static reg set1(float s) { return vdupq_n_f32(s); }
  static reg flip(reg v, reg sign) {
    return vreinterpretq_f32_u32(veorq_u32(vreinterpretq_u32_f32(v), vreinterpretq_u32_f32(sign)));
  }
  // Lane i of stride h: (i & h) ? x[i ^ h] - x[i] : x[i] + x[i ^ h], as (-x[i]) + x[i ^ h].
  static reg inreg(reg v) {
    static const std::uint32_t m1[4] = {0u, 0x80000000u, 0u, 0x80000000u};
    static const std::uint32_t m2[4] = {0u, 0u, 0x80000000u, 0x80000000u};
    v = vaddq_f32(flip(v, vreinterpretq_f32_u32(vld1q_u32(m1))), vrev64q_f32(v));
    return vaddq_f32(flip(v, vreinterpretq_f32_u32(vld1q_u32(m2))), vextq_f32(v, v, 2));
  }
};

template <>
struct hadamard_ops_neon<double> {
  using reg = float64x2_t;
  static constexpr index_t width = 2;
  static reg load(const double* p) { return vld1q_f64(p); }
  static void store(double* p, reg v) { vst1q_f64(p, v); }
  static reg add(reg a, reg b) { return vaddq_f64(a, b); }
  static reg sub(reg a, reg b) { return vsubq_f64(a, b); }
  static reg mul(reg a, reg b) { return vmulq_f64(a, b); }
  static reg set1(double s) { return vdupq_n_f64(s); }
  static reg flip(reg v, reg sign) {
    return vreinterpretq_f64_u64(veorq_u64(vreinterpretq_u64_f64(v), vreinterpretq_u64_f64(sign)));
  }
  static reg inreg(reg v) {
    static const std::uint64_t m1[2] = {0u, 0x8000000000000000ull};
    return vaddq_f64(flip(v, vreinterpretq_f64_u64(vld1q_u64(m1))), vextq_f64(v, v, 1));
  }
};

}  // namespace arch
}  // namespace detail
}  // namespace rotquant

#define ROTQUANT_HK_TAG neon
#define ROTQUANT_HK_TARGET
#define ROTQUANT_HK_OPS hadamard_ops_neon
#include "rotquant/detail/hadamard_simd_inl.hpp"
#undef ROTQUANT_HK_TAG
#undef ROTQUANT_HK_TARGET
#undef ROTQUANT_HK_OPS
#endif
