// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx2/hadamard.hpp: AVX2 lane operations for the fast Hadamard driver.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/hadamard.hpp"

#include "rotquant/detail/arch/scalar/hadamard.hpp"

#if ROTQUANT_HAS_AVX2
#include <immintrin.h>

namespace rotquant {
namespace detail {
namespace arch {

template <class S>
struct hadamard_ops_avx2;

template <>
struct hadamard_ops_avx2<float> {
  using reg = __m256;
  static constexpr index_t width = 8;
  ROTQUANT_TARGET_AVX2 static reg load(const float* p) { return _mm256_loadu_ps(p); }
  ROTQUANT_TARGET_AVX2 static void store(float* p, reg v) { _mm256_storeu_ps(p, v); }
  ROTQUANT_TARGET_AVX2 static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
  // a - b as -(b * 1) + a: bit-identical, issued to the FMA pipes (see the AVX-512 ops).
  ROTQUANT_TARGET_AVX2 static reg sub(reg a, reg b) {
    return _mm256_fnmadd_ps(b, _mm256_set1_ps(1.0f), a);
  }
  ROTQUANT_TARGET_AVX2 static reg mul(reg a, reg b) { return _mm256_mul_ps(a, b); }
  ROTQUANT_TARGET_AVX2 static reg set1(float s) { return _mm256_set1_ps(s); }
  ROTQUANT_TARGET_AVX2 static reg flip(reg v, reg sign) { return _mm256_xor_ps(v, sign); }
  // Lane i of stride h: (i & h) ? x[i ^ h] - x[i] : x[i] + x[i ^ h], as (-x[i]) + x[i ^ h].
  ROTQUANT_TARGET_AVX2 static reg inreg(reg v) {
    const __m256 m1 = _mm256_castsi256_ps(
        _mm256_setr_epi32(0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN, 0, INT32_MIN));
    const __m256 m2 = _mm256_castsi256_ps(
        _mm256_setr_epi32(0, 0, INT32_MIN, INT32_MIN, 0, 0, INT32_MIN, INT32_MIN));
    const __m256 m4 = _mm256_castsi256_ps(
        _mm256_setr_epi32(0, 0, 0, 0, INT32_MIN, INT32_MIN, INT32_MIN, INT32_MIN));
    // (-x[i]) + x[i ^ h] as one FMA: x[i] * (+-1) + x[i ^ h] (exact product, same rounding).
    const __m256 one = _mm256_set1_ps(1.0f);
    v = _mm256_fmadd_ps(v, _mm256_xor_ps(one, m1), _mm256_permute_ps(v, 0xB1));
    v = _mm256_fmadd_ps(v, _mm256_xor_ps(one, m2), _mm256_permute_ps(v, 0x4E));
    return _mm256_fmadd_ps(v, _mm256_xor_ps(one, m4), _mm256_permute2f128_ps(v, v, 0x01));
  }
};

template <>
struct hadamard_ops_avx2<double> {
  using reg = __m256d;
  static constexpr index_t width = 4;
  ROTQUANT_TARGET_AVX2 static reg load(const double* p) { return _mm256_loadu_pd(p); }
  ROTQUANT_TARGET_AVX2 static void store(double* p, reg v) { _mm256_storeu_pd(p, v); }
  ROTQUANT_TARGET_AVX2 static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
  ROTQUANT_TARGET_AVX2 static reg sub(reg a, reg b) {
    return _mm256_fnmadd_pd(b, _mm256_set1_pd(1.0), a);  // a - b on the FMA pipes
  }
  ROTQUANT_TARGET_AVX2 static reg mul(reg a, reg b) { return _mm256_mul_pd(a, b); }
  ROTQUANT_TARGET_AVX2 static reg set1(double s) { return _mm256_set1_pd(s); }
  ROTQUANT_TARGET_AVX2 static reg flip(reg v, reg sign) { return _mm256_xor_pd(v, sign); }
  ROTQUANT_TARGET_AVX2 static reg inreg(reg v) {
    const __m256d m1 = _mm256_castsi256_pd(_mm256_setr_epi64x(0, INT64_MIN, 0, INT64_MIN));
    const __m256d m2 = _mm256_castsi256_pd(_mm256_setr_epi64x(0, 0, INT64_MIN, INT64_MIN));
    const __m256d one = _mm256_set1_pd(1.0);
    v = _mm256_fmadd_pd(v, _mm256_xor_pd(one, m1), _mm256_permute_pd(v, 0x5));
    return _mm256_fmadd_pd(v, _mm256_xor_pd(one, m2), _mm256_permute2f128_pd(v, v, 0x01));
  }
};

}  // namespace arch
}  // namespace detail
}  // namespace rotquant

#define ROTQUANT_HK_TAG avx2
#define ROTQUANT_HK_TARGET ROTQUANT_TARGET_AVX2
#define ROTQUANT_HK_OPS hadamard_ops_avx2
#include "rotquant/detail/hadamard_simd_inl.hpp"
#undef ROTQUANT_HK_TAG
#undef ROTQUANT_HK_TARGET
#undef ROTQUANT_HK_OPS
#endif
