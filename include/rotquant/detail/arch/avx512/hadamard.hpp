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
  // a - b as -(b * 1) + a: the same rounded result, bit for bit (signed zeros included), but
  // issued to the FMA pipes, so on cores with separate FADD and FMA pipes (Zen) the adds and
  // subtracts of a butterfly run side by side.
  ROTQUANT_TARGET_AVX512 static reg sub(reg a, reg b) {
    return _mm512_fnmadd_ps(b, _mm512_set1_ps(1.0f), a);
  }
  ROTQUANT_TARGET_AVX512 static reg mul(reg a, reg b) { return _mm512_mul_ps(a, b); }
  ROTQUANT_TARGET_AVX512 static reg set1(float s) { return _mm512_set1_ps(s); }
  ROTQUANT_TARGET_AVX512 static reg flip(reg v, reg sign) { return _mm512_xor_ps(v, sign); }
  // Lane i of stride h: (i & h) ? x[i ^ h] - x[i] : x[i] + x[i ^ h], as one FMA per stage:
  // x[i] * (+-1) + x[i ^ h] (the product is exact, so this is the rounded sum or difference).
  ROTQUANT_TARGET_AVX512 static reg inreg(reg v) {
    const reg p1 = _mm512_mask_blend_ps(0xAAAA, _mm512_set1_ps(1.0f), _mm512_set1_ps(-1.0f));
    const reg p2 = _mm512_mask_blend_ps(0xCCCC, _mm512_set1_ps(1.0f), _mm512_set1_ps(-1.0f));
    const reg p4 = _mm512_mask_blend_ps(0xF0F0, _mm512_set1_ps(1.0f), _mm512_set1_ps(-1.0f));
    const reg p8 = _mm512_mask_blend_ps(0xFF00, _mm512_set1_ps(1.0f), _mm512_set1_ps(-1.0f));
    v = _mm512_fmadd_ps(v, p1, _mm512_permute_ps(v, 0xB1));
    v = _mm512_fmadd_ps(v, p2, _mm512_permute_ps(v, 0x4E));
    v = _mm512_fmadd_ps(v, p4, _mm512_shuffle_f32x4(v, v, 0xB1));
    return _mm512_fmadd_ps(v, p8, _mm512_shuffle_f32x4(v, v, 0x4E));
  }
};

template <>
struct hadamard_ops_avx512<double> {
  using reg = __m512d;
  static constexpr index_t width = 8;
  ROTQUANT_TARGET_AVX512 static reg load(const double* p) { return _mm512_loadu_pd(p); }
  ROTQUANT_TARGET_AVX512 static void store(double* p, reg v) { _mm512_storeu_pd(p, v); }
  ROTQUANT_TARGET_AVX512 static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
  ROTQUANT_TARGET_AVX512 static reg sub(reg a, reg b) {
    return _mm512_fnmadd_pd(b, _mm512_set1_pd(1.0), a);  // a - b on the FMA pipes (see float)
  }
  ROTQUANT_TARGET_AVX512 static reg mul(reg a, reg b) { return _mm512_mul_pd(a, b); }
  ROTQUANT_TARGET_AVX512 static reg set1(double s) { return _mm512_set1_pd(s); }
  ROTQUANT_TARGET_AVX512 static reg flip(reg v, reg sign) { return _mm512_xor_pd(v, sign); }
  ROTQUANT_TARGET_AVX512 static reg inreg(reg v) {
    const reg p1 = _mm512_mask_blend_pd(0xAA, _mm512_set1_pd(1.0), _mm512_set1_pd(-1.0));
    const reg p2 = _mm512_mask_blend_pd(0xCC, _mm512_set1_pd(1.0), _mm512_set1_pd(-1.0));
    const reg p4 = _mm512_mask_blend_pd(0xF0, _mm512_set1_pd(1.0), _mm512_set1_pd(-1.0));
    v = _mm512_fmadd_pd(v, p1, _mm512_permute_pd(v, 0x55));
    v = _mm512_fmadd_pd(v, p2, _mm512_shuffle_f64x2(v, v, 0xB1));
    return _mm512_fmadd_pd(v, p4, _mm512_shuffle_f64x2(v, v, 0x4E));
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
