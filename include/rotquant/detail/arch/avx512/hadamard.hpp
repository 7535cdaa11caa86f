// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx512/hadamard.hpp: AVX-512 lane operations for the fast Hadamard driver.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/hadamard.hpp"

#include "rotquant/detail/arch/avx2/hadamard.hpp"

#if ROTQUANT_HAS_AVX512
#include <immintrin.h>

ROTQUANT_AVX512_BEGIN
namespace rotquant {
namespace detail {
namespace arch {

template <class S>
struct hadamard_ops_avx512;

template <>
struct hadamard_ops_avx512<float> {
  using reg = __m512;
  static constexpr index_t width = 16;
  ROTQUANT_TARGET_AVX512 static reg load(const float* p) { return _mm512_loadu_ps(p); }
  ROTQUANT_TARGET_AVX512 static void store(float* p, reg v) { _mm512_storeu_ps(p, v); }
  ROTQUANT_TARGET_AVX512 static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
  ROTQUANT_TARGET_AVX512 static reg sub(reg a, reg b) { return _mm512_sub_ps(a, b); }
  ROTQUANT_TARGET_AVX512 static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  ROTQUANT_TARGET_AVX512 static reg set1(float s) { return _mm512_set1_ps(s); }
  ROTQUANT_TARGET_AVX512 static reg flip(reg v, reg sign) { return _mm512_xor_ps(v, sign); }
  // Lane i of stride h: (i & h) ? x[i ^ h] - x[i] : x[i] + x[i ^ h] (masked subtract).
  ROTQUANT_TARGET_AVX512 static reg inreg(reg v) {
    reg p = _mm512_permute_ps(v, 0xB1);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xAAAA, p, v);
    p = _mm512_permute_ps(v, 0x4E);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xCCCC, p, v);
    p = _mm512_shuffle_f32x4(v, v, 0xB1);
    v = _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xF0F0, p, v);
    p = _mm512_shuffle_f32x4(v, v, 0x4E);
    return _mm512_mask_sub_ps(_mm512_add_ps(v, p), 0xFF00, p, v);
  }
};

template <>
struct hadamard_ops_avx512<double> {
  using reg = __m512d;
  static constexpr index_t width = 8;
  ROTQUANT_TARGET_AVX512 static reg load(const double* p) { return _mm512_loadu_pd(p); }
  ROTQUANT_TARGET_AVX512 static void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  ROTQUANT_TARGET_AVX512 static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  ROTQUANT_TARGET_AVX512 static reg sub(reg a, reg b) { return _mm512_sub_pd(a, b); }
  ROTQUANT_TARGET_AVX512 static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  ROTQUANT_TARGET_AVX512 static reg set1(double s) { return _mm512_set1_pd(s); }
  ROTQUANT_TARGET_AVX512 static reg flip(reg v, reg sign) { return _mm512_xor_pd(v, sign); }
  ROTQUANT_TARGET_AVX512 static reg inreg(reg v) {
    reg p = _mm512_permute_pd(v, 0x55);
    v = _mm512_mask_sub_pd(_mm512_add_pd(v, p), 0xAA, p, v);
    p = _mm512_shuffle_f64x2(v, v, 0xB1);
    v = _mm512_mask_sub_pd(_mm512_add_pd(v, p), 0xCC, p, v);
    p = _mm512_shuffle_f64x2(v, v, 0x4E);
    return _mm512_mask_sub_pd(_mm512_add_pd(v, p), 0xF0, p, v);
  }
};

}  // namespace arch
}  // namespace detail
}  // namespace rotquant

#define ROTQUANT_HK_TAG avx512
#define ROTQUANT_HK_TARGET ROTQUANT_TARGET_AVX512
#define ROTQUANT_HK_OPS hadamard_ops_avx512
#include "rotquant/detail/hadamard_simd_inl.hpp"
#undef ROTQUANT_HK_TAG
#undef ROTQUANT_HK_TARGET
#undef ROTQUANT_HK_OPS
ROTQUANT_AVX512_END
#endif
