// SPDX-License-Identifier: Apache-2.0
// detail/arch/avx512/quantize_activations.hpp: AVX-512 symmetric per-token quantization.
#pragma once
// IWYU pragma: private, include "rotquant/kernels/quantize_activations.hpp"

#include "rotquant/detail/arch/avx2/quantize_activations.hpp"

#if ROTQUANT_HAS_AVX512
#include <immintrin.h>

#include <cmath>
#include <limits>

ROTQUANT_AVX512_BEGIN
namespace rotquant {
namespace detail {
namespace arch {

/// Horizontal sum of 16 int32 lanes.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_hsum_epi32(__m512i a) {
  __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// Horizontal signed-integer max of 16 lanes.
ROTQUANT_TARGET_AVX512 inline std::uint32_t qact_hmax_epi32(__m512i m) {
  __m256i h8 = _mm256_max_epi32(_mm512_castsi512_si256(m), _mm512_extracti64x4_epi64(m, 1));
  __m128i h = _mm_max_epi32(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
  h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0x4E));
  h = _mm_max_epi32(h, _mm_shuffle_epi32(h, 0xB1));
  return static_cast<std::uint32_t>(_mm_cvtsi128_si32(h));
}

/// AVX-512 qact_abs_bits_max (see the scalar version); the tail by a masked load.
ROTQUANT_TARGET_AVX512 inline std::uint32_t qact_abs_bits_max(avx512, const float* x, index_t k) {
  const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i m0 = _mm512_setzero_si512(), m1 = m0;
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_loadu_si512(x + i), mask));
    m1 = _mm512_max_epi32(m1, _mm512_and_si512(_mm512_loadu_si512(x + i + 16), mask));
  }
  for (; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __mmask16 t = static_cast<__mmask16>((1u << n) - 1u);
    m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_maskz_loadu_epi32(t, x + i), mask));
  }
  return qact_hmax_epi32(_mm512_max_epi32(m0, m1));
}

/// clamp(x / s, lo, hi) for 16 lanes, exactly as the IEEE division would give it, through a
/// multiply: t = x * r with r = RN(1 / s) is within 1.5 * 2^-23 |x / s| of RN(x / s) (two
/// roundings of 2^-24 each), so the two round to the same integer unless a half-integer lies
/// that close to t. `tie_band` = 0.5 - 2^-20 (max |t| + 1) for the row: lanes whose distance to
/// the nearest integer reaches it are recomputed with the division (random data: about one
/// vector in 10^4). vdivps zmm takes 16 cycles a vector on Sapphire Rapids, a quarter of the
/// row's time; the multiply and the check (three operations) do not.
ROTQUANT_TARGET_AVX512 inline __m512 qact_div_clamped(__m512 x, __m512 vs, __m512 vr, __m512 lo,
                                                      __m512 hi, __m512 tie_band) {
  const __m512 t = _mm512_mul_ps(x, vr);
  const __m512 dist = _mm512_abs_ps(
      _mm512_sub_ps(t, _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
  const __mmask16 near_tie = _mm512_cmp_ps_mask(dist, tie_band, _CMP_GE_OQ);
  const __m512 q = near_tie ? _mm512_mask_div_ps(t, near_tie, x, vs) : t;
  return _mm512_min_ps(_mm512_max_ps(q, lo), hi);
}

/// qact_div_clamped when `fast`, the division itself otherwise.
ROTQUANT_TARGET_AVX512 inline __m512 qact_quotient(bool fast, __m512 x, __m512 vs, __m512 vr,
                                                   __m512 lo, __m512 hi, __m512 tie_band) {
  return fast ? qact_div_clamped(x, vs, vr, lo, hi, tie_band)
              : _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(x, vs), lo), hi);
}

/// AVX-512 version of qact_sym_codes(scalar, ...): the quotient of the IEEE division (through
/// qact_div_clamped when 1 / s is a normal float, by vdivps otherwise), clamp,
/// round-half-to-even conversion, narrowing store (vpmovdb); the tail uses masked loads/stores.
/// Identical codes.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_sym_codes(avx512, const float* x, index_t k,
                                                          float s, int qmin, int qmax,
                                                          std::int8_t* codes) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(qmin));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(qmax));
  const float r = 1.0f / s;
  // The error bound needs normal floats: a subnormal or infinite reciprocal takes the division.
  const bool fast = std::isnormal(r);
  const __m512 vr = _mm512_set1_ps(r);
  // Only |t| < -qmin + 1 can round to another code (beyond, both clamp to the same end), and
  // there the product is within 1.5 * 2^-23 (-qmin + 2) of the quotient: a band of
  // 2^-20 (-qmin + 2) around each half-integer covers it with room to spare.
  const __m512 tie_band = _mm512_set1_ps(0.5f - 0x1p-20f * static_cast<float>(-qmin + 2));

  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0;
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    const __m512i q0 =
        _mm512_cvtps_epi32(qact_quotient(fast, _mm512_loadu_ps(x + i), vs, vr, lo, hi, tie_band));
    const __m512i q1 = _mm512_cvtps_epi32(
        qact_quotient(fast, _mm512_loadu_ps(x + i + 16), vs, vr, lo, hi, tie_band));
    acc0 = _mm512_add_epi32(acc0, q0);
    acc1 = _mm512_add_epi32(acc1, q1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i + 16), _mm512_cvtepi32_epi8(q1));
  }
  for (; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    const __m512i q = _mm512_maskz_mov_epi32(
        m, _mm512_cvtps_epi32(
               qact_quotient(fast, _mm512_maskz_loadu_ps(m, x + i), vs, vr, lo, hi, tie_band)));
    acc0 = _mm512_add_epi32(acc0, q);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, m, q);
  }
  return qact_hsum_epi32(_mm512_add_epi32(acc0, acc1));
}

/// qact_sym_codes(avx512, ...) of row x, and in the same loop the absmax bits of the next row
/// `next` (qact_abs_bits_max): the next row streams in from memory while this one (in L1 after
/// its own absmax pass) is quantized, instead of the two alternating. Returns the code sum and
/// stores the next row's bits in *next_bits. Identical results to the two calls.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_sym_codes_and_next_amax(
    avx512, const float* x, const float* next, index_t k, float s, int qmin, int qmax,
    std::int8_t* codes, std::uint32_t* next_bits) {
  const __m512 vs = _mm512_set1_ps(s);
  const __m512 lo = _mm512_set1_ps(static_cast<float>(qmin));
  const __m512 hi = _mm512_set1_ps(static_cast<float>(qmax));
  const float r = 1.0f / s;
  const bool fast = std::isnormal(r);
  const __m512 vr = _mm512_set1_ps(r);
  const __m512 tie_band = _mm512_set1_ps(0.5f - 0x1p-20f * static_cast<float>(-qmin + 2));
  const __m512i mask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i acc0 = _mm512_setzero_si512(), acc1 = acc0, m0 = acc0, m1 = acc0;
  index_t i = 0;
  for (; i + 32 <= k; i += 32) {
    m0 = _mm512_max_epi32(m0, _mm512_and_si512(_mm512_loadu_si512(next + i), mask));
    m1 = _mm512_max_epi32(m1, _mm512_and_si512(_mm512_loadu_si512(next + i + 16), mask));
    const __m512i q0 =
        _mm512_cvtps_epi32(qact_quotient(fast, _mm512_loadu_ps(x + i), vs, vr, lo, hi, tie_band));
    const __m512i q1 = _mm512_cvtps_epi32(
        qact_quotient(fast, _mm512_loadu_ps(x + i + 16), vs, vr, lo, hi, tie_band));
    acc0 = _mm512_add_epi32(acc0, q0);
    acc1 = _mm512_add_epi32(acc1, q1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + i + 16), _mm512_cvtepi32_epi8(q1));
  }
  *next_bits = qact_hmax_epi32(_mm512_max_epi32(
      _mm512_max_epi32(m0, m1), _mm512_set1_epi32(static_cast<int>(
                                    i < k ? qact_abs_bits_max(avx512{}, next + i, k - i) : 0u))));
  const __m512i a = _mm512_add_epi32(acc0, acc1);
  std::int32_t sum = qact_hsum_epi32(a);
  if (i < k) sum += qact_sym_codes(avx512{}, x + i, k - i, s, qmin, qmax, codes + i);
  return sum;
}

/// Horizontal max / sum of 16 lanes by shuffles (GCC 12's reduce intrinsics trip warnings).
ROTQUANT_TARGET_AVX512 inline float qact_hmax(__m512 m) {
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0x4E));
  m = _mm512_max_ps(m, _mm512_shuffle_f32x4(m, m, 0xB1));
  __m128 h = _mm512_castps512_ps128(m);
  h = _mm_max_ps(h, _mm_movehl_ps(h, h));
  h = _mm_max_ss(h, _mm_shuffle_ps(h, h, 1));
  return _mm_cvtss_f32(h);
}
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_hsum(__m512i a) {
  __m256i h = _mm256_add_epi32(_mm512_castsi512_si256(a), _mm512_extracti64x4_epi64(a, 1));
  __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
  s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1));
  return _mm_cvtsi128_si32(s4);
}

/// 2 * E2M1 value of e2m1_encode(w / 2) per lane, for w = 2 * (x / s) (the doubled quotient):
/// with Clamp, w is first clamped to [-12, 12]; without it the caller guarantees |w| <= 13, which
/// rounds to at most 12 anyway. The E2M1 grid in w is step 1 below 4, then 2, then 4, so w is
/// rounded by (w + M) - M with M = 1.5 * 2^(22 + max(e, 1)), e the exponent of w: the sum's ulp
/// is that step, and the hardware's round-half-to-even picks the even grid point on a tie, which
/// is the even E2M1 code: the same decision as the contract's comparison ladder (|v| > 0.25,
/// >= 0.75, > 1.25, >= 1.75, > 2.5, >= 3.5, > 5, saturation at 6). M = 2^max(e, 1) * 1.5 * 2^22 is
/// exact, so the add and the subtract are two FMAs (they run on the multiply pipes, beside the
/// clamp and the conversion). Signed w works as is: |w| < 2^(max(e, 1) + 1) keeps w + M in M's
/// binade.
template <bool Clamp>
ROTQUANT_TARGET_AVX512 inline __m512i qact_e2m1_x2_doubled(__m512 w) {
  if constexpr (Clamp)
    w = _mm512_min_ps(_mm512_max_ps(w, _mm512_set1_ps(-12.0f)), _mm512_set1_ps(12.0f));
  const __m512i ue = _mm512_and_si512(_mm512_castps_si512(w), _mm512_set1_epi32(0x7F800000));
  const __m512 p2 = _mm512_castsi512_ps(_mm512_max_epi32(ue, _mm512_set1_epi32(0x40000000)));
  const __m512 c = _mm512_set1_ps(6291456.0f);  // 1.5 * 2^22
  return _mm512_cvtps_epi32(_mm512_fnmadd_ps(p2, c, _mm512_fmadd_ps(p2, c, w)));
}

/// 2 * E2M1 value of e2m1_encode(v) per lane: qact_e2m1_x2_doubled of v + v (doubling is exact;
/// an overflow to Inf clamps to 12 like any |v| >= 6), so every FP4 kernel rounds one way.
ROTQUANT_TARGET_AVX512 inline __m512i qact_e2m1_x2(__m512 v) {
  return qact_e2m1_x2_doubled<true>(_mm512_add_ps(v, v));
}

/// Prefetch hints (into L2) for n 64-byte lines from p: the row kernels ask for the next row
/// while they compute on this one, so the DRAM stream overlaps the arithmetic.
inline void qact_prefetch_lines(const float* p, int n) {
  for (int i = 0; i < n; ++i) _mm_prefetch(reinterpret_cast<const char*>(p + 16 * i), _MM_HINT_T1);
}

/// Lane j of the result is the signed-integer max over the 16 lanes of v[j] (a transposing
/// reduction tree: 45 shuffles / maxes for 16 horizontal maxima instead of 16 separate
/// reductions). On |x| float bits it is the float max, and NaN / Inf bits win.
ROTQUANT_TARGET_AVX512 inline __m512i qact_hmax16x16(const __m512i* v) {
  __m512i a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = _mm512_max_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_max_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                            _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_max_epi32(_mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0x88),
                            _mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0xDD));
  return _mm512_max_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88),
                          _mm512_shuffle_i32x4(c[0], c[1], 0xDD));
}

/// Lane j of the result is the sum over the 16 lanes of v[j] (the same tree with adds).
ROTQUANT_TARGET_AVX512 inline __m512i qact_hsum16x16(const __m512i* v) {
  __m512i a[8], b[4], c[2];
  for (int i = 0; i < 8; ++i)
    a[i] = _mm512_add_epi32(_mm512_unpacklo_epi32(v[2 * i], v[2 * i + 1]),
                            _mm512_unpackhi_epi32(v[2 * i], v[2 * i + 1]));
  for (int i = 0; i < 4; ++i)
    b[i] = _mm512_add_epi32(_mm512_unpacklo_epi64(a[2 * i], a[2 * i + 1]),
                            _mm512_unpackhi_epi64(a[2 * i], a[2 * i + 1]));
  for (int i = 0; i < 2; ++i)
    c[i] = _mm512_add_epi32(_mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0x88),
                            _mm512_shuffle_i32x4(b[2 * i], b[2 * i + 1], 0xDD));
  return _mm512_add_epi32(_mm512_shuffle_i32x4(c[0], c[1], 0x88),
                          _mm512_shuffle_i32x4(c[0], c[1], 0xDD));
}

/// The dword permutation [0, 4, 8, 12, 1, 5, ...]: lane 4i + g to lane 4g + i.
ROTQUANT_TARGET_AVX512 inline __m512i qact_order16() {
  return _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
}

/// Four vectors of int32 codes (values in int8 range) as 64 bytes in order: two saturating
/// packs (exact here) leave dword 4 * lane + i holding q_i[4 * lane ..], and one vpermd puts
/// them back in element order.
ROTQUANT_TARGET_AVX512 inline __m512i qact_pack64(__m512i q0, __m512i q1, __m512i q2, __m512i q3) {
  const __m512i p = _mm512_packs_epi16(_mm512_packs_epi32(q0, q1), _mm512_packs_epi32(q2, q3));
  return _mm512_permutexvar_epi32(qact_order16(), p);
}

/// qact_pack64 stored to dst.
ROTQUANT_TARGET_AVX512 inline void qact_store64(std::int8_t* dst, __m512i q0, __m512i q1,
                                                __m512i q2, __m512i q3) {
  _mm512_storeu_si512(dst, qact_pack64(q0, q1, q2, q3));
}

/// AVX-512 asymmetric INT4 of one row (QuaRot rule, zero forced in): exact min / max, the
/// scalar scale and zero point, then rint(x / s) (vrndscaleps, half to even) + z clamped to
/// [0, 15], stored as q - z. Same bits as the scalar rule.
ROTQUANT_TARGET_AVX512 inline std::int32_t qact_asym4_row(avx512, const float* x, index_t k,
                                                          float clip, std::int8_t* codes,
                                                          float* scale, std::int32_t* zero) {
  __m512 mn = _mm512_setzero_ps(), mx = mn;
  for (index_t i = 0; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __m512 v = _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), x + i);
    mn = _mm512_min_ps(mn, v);
    mx = _mm512_max_ps(mx, v);
  }
  const float mn_s = -qact_hmax(_mm512_sub_ps(_mm512_setzero_ps(), mn)), mx_s = qact_hmax(mx);
  rotquant::detail::qact_asym4_params(mn_s, mx_s, clip, scale, zero);
  const float s = *scale;
  const std::int32_t z = *zero;
  const __m512 vs = _mm512_set1_ps(s), vz = _mm512_set1_ps(static_cast<float>(z));
  const __m512 hi = _mm512_set1_ps(15.0f);
  const __m512i iz = _mm512_set1_epi32(z);
  __m512i acc = _mm512_setzero_si512();
  for (index_t i = 0; i < k; i += 16) {
    const index_t n = k - i < 16 ? k - i : 16;
    const __mmask16 m = static_cast<__mmask16>((1u << n) - 1u);
    const __m512 r =
        _mm512_add_ps(_mm512_roundscale_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(m, x + i), vs),
                                           _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC),
                      vz);
    const __m512i q = _mm512_maskz_sub_epi32(
        m, _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(r, _mm512_setzero_ps()), hi)), iz);
    acc = _mm512_add_epi32(acc, q);
    _mm512_mask_cvtepi32_storeu_epi8(codes + i, m, q);
  }
  return qact_hsum(acc);
}

/// AVX-512 MXFP4 of one row. Sixteen blocks of 32 at a time: their absolute maxima by one
/// reduction tree, the 16 exponents e = max(floor(log2 amax) - 2, -127) from the float bits in
/// one vector (amax below 2^-126, zero included, gives -127 as the scalar rule does), scales
/// 2^(e-1) and multipliers 2^-e by vscalefps (exact, subnormal 2^-128 included), then the codes
/// of each block and the 16 block sums by a second tree. Remaining whole blocks go one at a
/// time, a partial last block to the scalar rule. Multiplying by the float 2^-e equals
/// ldexp(x, -e) (the exact product rounded once). Same bits as the scalar rule. Returns
/// qact_abs_bits_max of the row, found on the way (the amax pass works on |x| bits): the caller
/// rejects a row whose result is >= 0x7F800000 (NaN / Inf; the codes are then meaningless but
/// computed without undefined behaviour, and a non-finite tail is not processed at all).
ROTQUANT_TARGET_AVX512 inline std::uint32_t qact_mxfp4_row(avx512, const float* x, index_t k,
                                                           std::int8_t* codes, std::uint8_t* bytes,
                                                           float* scales, std::int32_t* sums,
                                                           const float* next = nullptr) {
  index_t b = 0;
  const __m512 one = _mm512_set1_ps(1.0f);
  const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
  __m512i bad = _mm512_setzero_si512();
  for (; (b + 16) * 32 <= k; b += 16) {
    const float* p = x + 32 * b;
    __m512i am[16];
    for (int j = 0; j < 16; ++j)
      am[j] = _mm512_max_epi32(_mm512_and_si512(_mm512_loadu_si512(p + 32 * j), absmask),
                               _mm512_and_si512(_mm512_loadu_si512(p + 32 * j + 16), absmask));
    const __m512i amax = qact_hmax16x16(am);
    bad = _mm512_max_epi32(bad, amax);
    const __m512i e =
        _mm512_max_epi32(_mm512_sub_epi32(_mm512_srli_epi32(amax, 23), _mm512_set1_epi32(129)),
                         _mm512_set1_epi32(-127));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + b),
                     _mm512_cvtepi32_epi8(_mm512_add_epi32(e, _mm512_set1_epi32(127))));
    _mm512_storeu_ps(
        scales + b,
        _mm512_scalef_ps(one, _mm512_cvtepi32_ps(_mm512_sub_epi32(e, _mm512_set1_epi32(1)))));
    const __m512 mul =
        _mm512_scalef_ps(one, _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_setzero_si512(), e)));
    __m512i s[16];
    for (int j = 0; j < 16; j += 2) {
      const __m512 m0 = _mm512_permutexvar_ps(_mm512_set1_epi32(j), mul),
                   m1 = _mm512_permutexvar_ps(_mm512_set1_epi32(j + 1), mul);
      const float* q = p + 32 * j;
      const __m512i c0 = qact_e2m1_x2(_mm512_mul_ps(_mm512_loadu_ps(q), m0));
      const __m512i c1 = qact_e2m1_x2(_mm512_mul_ps(_mm512_loadu_ps(q + 16), m0));
      const __m512i c2 = qact_e2m1_x2(_mm512_mul_ps(_mm512_loadu_ps(q + 32), m1));
      const __m512i c3 = qact_e2m1_x2(_mm512_mul_ps(_mm512_loadu_ps(q + 48), m1));
      qact_store64(codes + 32 * (b + j), c0, c1, c2, c3);
      if (next) qact_prefetch_lines(next + 32 * (b + j), 4);
      s[j] = _mm512_add_epi32(c0, c1);
      s[j + 1] = _mm512_add_epi32(c2, c3);
    }
    _mm512_storeu_si512(sums + b, qact_hsum16x16(s));
  }
  const std::uint32_t rest = qact_abs_bits_max(avx512{}, x + 32 * b, k - 32 * b);
  if (rest >= 0x7F800000u) return rest;
  for (; (b + 1) * 32 <= k; ++b) {
    const __m512 v0 = _mm512_loadu_ps(x + 32 * b), v1 = _mm512_loadu_ps(x + 32 * b + 16);
    const float amax = qact_hmax(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const int e = amax > 0.0f
                      ? std::min(std::max(rotquant::detail::qact_floor_log2(amax) - 2, -127), 127)
                      : -127;
    bytes[b] = e8m0_from_exponent(e);
    scales[b] = rotquant::detail::qact_pow2(e - 1);
    const __m512 m = _mm512_set1_ps(rotquant::detail::qact_pow2(-e));
    const __m512i q0 = qact_e2m1_x2(_mm512_mul_ps(v0, m));
    const __m512i q1 = qact_e2m1_x2(_mm512_mul_ps(v1, m));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 32 * b), _mm512_cvtepi32_epi8(q0));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 32 * b + 16), _mm512_cvtepi32_epi8(q1));
    sums[b] = qact_hsum(_mm512_add_epi32(q0, q1));
  }
  if (32 * b < k)
    sums[b] = rotquant::detail::qact_mxfp4_block(x + 32 * b, k - 32 * b, codes + 32 * b, bytes + b,
                                                 scales + b);
  return std::max(qact_hmax_epi32(bad), rest);
}

/// ue4m3_encode of 16 finite values >= 0 (the bit arithmetic of qact_ue4m3_encode, per lane).
ROTQUANT_TARGET_AVX512 inline __m512i qact_ue4m3_encode16(__m512 x) {
  const __m512i b0 = _mm512_castps_si512(x);
  const __m512i one = _mm512_set1_epi32(1);
  __m512i b =
      _mm512_add_epi32(b0, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF),
                                            _mm512_and_si512(_mm512_srli_epi32(b0, 20), one)));
  b = _mm512_and_si512(b, _mm512_set1_epi32(static_cast<int>(0xFFF00000u)));
  __m512i normal = _mm512_or_si512(
      _mm512_slli_epi32(_mm512_sub_epi32(_mm512_srli_epi32(b, 23), _mm512_set1_epi32(120)), 3),
      _mm512_and_si512(_mm512_srli_epi32(b, 20), _mm512_set1_epi32(7)));
  normal = _mm512_min_epi32(normal, _mm512_set1_epi32(0x7E));
  const __m512i sub = _mm512_cvtps_epi32(_mm512_mul_ps(x, _mm512_set1_ps(512.0f)));
  const __mmask16 is_sub = _mm512_cmp_ps_mask(x, _mm512_set1_ps(0.015625f), _CMP_LT_OQ);
  const __mmask16 pos = _mm512_cmp_ps_mask(x, _mm512_setzero_ps(), _CMP_GT_OQ);
  return _mm512_maskz_mov_epi32(pos, _mm512_mask_mov_epi32(normal, is_sub, sub));
}

/// Exact value of 16 UE4M3 codes (0x00..0x7E).
ROTQUANT_TARGET_AVX512 inline __m512 qact_ue4m3_decode16(__m512i c) {
  const __m512i normal = _mm512_or_si512(
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_srli_epi32(c, 3), _mm512_set1_epi32(120)), 23),
      _mm512_slli_epi32(_mm512_and_si512(c, _mm512_set1_epi32(7)), 20));
  const __m512 sub = _mm512_mul_ps(_mm512_cvtepi32_ps(c), _mm512_set1_ps(1.0f / 512.0f));
  const __mmask16 is_sub = _mm512_cmplt_epi32_mask(c, _mm512_set1_epi32(8));
  return _mm512_mask_mov_ps(_mm512_castsi512_ps(normal), is_sub, sub);
}

/// Codes and block sums of 16 NVFP4 blocks (256 floats at p) given each block's divisor in lane
/// j of d. Fast (Doubled): d = s / 2 (exact), so x / d is the doubled quotient 2 * (x / s) and
/// |x / d| <= 13 is guaranteed by the caller. Otherwise d = s and the quotient is doubled (exact)
/// and clamped. A zero scale comes as d = +Inf, which gives x / d = 0, code 0.
template <bool Doubled>
ROTQUANT_TARGET_AVX512 inline void qact_nvfp4_group16(const float* p, __m512 d, std::int8_t* codes,
                                                      std::int32_t* sums) {
  // Four blocks (64 codes) at a time: codes packed and stored, and their sums started by
  // vpdpbusd (ones x codes: four codes per dword lane), so 128-bit lane i of ps[g] holds the
  // four partial sums of block 4g + i. Lane j of d is broadcast by vpermps (a store and reload
  // would stall on store forwarding).
  __m512i ps[4];
  for (int g = 0; g < 4; ++g) {
    __m512i q[4];
    for (int i = 0; i < 4; ++i) {
      const int j = 4 * g + i;
      const __m512 w = _mm512_div_ps(_mm512_loadu_ps(p + 16 * j),
                                     _mm512_permutexvar_ps(_mm512_set1_epi32(j), d));
      q[i] = Doubled ? qact_e2m1_x2_doubled<false>(w) : qact_e2m1_x2(w);
    }
    const __m512i packed = qact_pack64(q[0], q[1], q[2], q[3]);
    _mm512_storeu_si512(codes + 64 * g, packed);
    ps[g] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_set1_epi8(1), packed);
  }
  const __m512i t0 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(ps[0], ps[1]), _mm512_unpackhi_epi32(ps[0], ps[1]));
  const __m512i t1 =
      _mm512_add_epi32(_mm512_unpacklo_epi32(ps[2], ps[3]), _mm512_unpackhi_epi32(ps[2], ps[3]));
  // Lane 4i + g now holds the sum of block 4g + i; vpermd puts block j in lane j.
  const __m512i u = _mm512_add_epi32(_mm512_unpacklo_epi64(t0, t1), _mm512_unpackhi_epi64(t0, t1));
  _mm512_storeu_si512(sums, _mm512_permutexvar_epi32(qact_order16(), u));
}

/// AVX-512 NVFP4 of one row (blocks of 16, IEEE division x / sb like the scalar rule). Sixteen
/// blocks at a time: their absolute maxima by one reduction tree, the 16 UE4M3 scales in vector
/// lanes, then the codes. When every nonzero scale s of the 16 is at least 2^-125 (so s / 2 is
/// exact) and covers its block with amax <= 6.5 s (always so unless the UE4M3 scale saturated or
/// is subnormal), the elements are divided by s / 2, which gives the doubled quotient with no
/// extra add and needs no clamp; otherwise the clamped path. Same bits as the scalar rule.
/// Returns qact_abs_bits_max of the row, as qact_mxfp4_row does. Software prefetch 4 KiB ahead
/// in the row (into L2) measured 10-15% faster beyond the caches than the hardware prefetcher
/// alone, and than prefetching the whole next row.
ROTQUANT_TARGET_AVX512 inline std::uint32_t qact_nvfp4_row(avx512, const float* x, index_t k,
                                                           float ts, std::int8_t* codes,
                                                           std::uint8_t* bytes, float* scales,
                                                           std::int32_t* sums) {
  index_t b = 0;
  const __m512 vts = _mm512_set1_ps(ts);
  const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
  const __m512 inf = _mm512_set1_ps(std::numeric_limits<float>::infinity());
  __m512i bad = _mm512_setzero_si512();
  for (; (b + 16) * 16 <= k; b += 16) {
    const float* p = x + 16 * b;
    // The lines four groups (4 KiB) ahead into L2; past the row's end this reaches into the
    // next row, or harmlessly past the data (a prefetch never faults; the address is formed as
    // an integer, not as a pointer past the array).
    for (int i = 0; i < 16; ++i)
      _mm_prefetch(
          reinterpret_cast<const char*>(reinterpret_cast<std::uintptr_t>(p) + 4096 + 64 * i),
          _MM_HINT_T1);
    __m512i am[16];
    for (int j = 0; j < 16; ++j) am[j] = _mm512_and_si512(_mm512_loadu_si512(p + 16 * j), absmask);
    const __m512i amax = qact_hmax16x16(am);
    bad = _mm512_max_epi32(bad, amax);
    const __m512 t =
        _mm512_div_ps(_mm512_div_ps(_mm512_castsi512_ps(amax), _mm512_set1_ps(6.0f)), vts);
    const __m512i code = qact_ue4m3_encode16(t);
    const __m512 s = _mm512_mul_ps(qact_ue4m3_decode16(code), vts);
    const __m512 half = _mm512_mul_ps(s, _mm512_set1_ps(0.5f));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(bytes + b), _mm512_cvtepi32_epi8(code));
    _mm512_storeu_ps(scales + b, half);
    const __mmask16 zero = _mm512_cmp_ps_mask(s, _mm512_setzero_ps(), _CMP_EQ_OQ);
    // NaN / Inf amax bits fail the comparison: the clamped path (the row is rejected anyway).
    const __mmask16 fast =
        zero | (_mm512_cmp_ps_mask(s, _mm512_set1_ps(0x1p-125f), _CMP_GE_OQ) &
                _mm512_cmp_ps_mask(_mm512_castsi512_ps(amax),
                                   _mm512_mul_ps(s, _mm512_set1_ps(6.5f)), _CMP_LE_OQ));
    if (fast == 0xFFFF)
      qact_nvfp4_group16<true>(p, _mm512_mask_mov_ps(half, zero, inf), codes + 16 * b, sums + b);
    else
      qact_nvfp4_group16<false>(p, _mm512_mask_mov_ps(s, zero, inf), codes + 16 * b, sums + b);
  }
  const std::uint32_t rest = qact_abs_bits_max(avx512{}, x + 16 * b, k - 16 * b);
  if (rest >= 0x7F800000u) return rest;
  for (; (b + 1) * 16 <= k; ++b) {
    const __m512 v = _mm512_loadu_ps(x + 16 * b);
    const float a = qact_hmax(_mm512_abs_ps(v));
    const std::uint8_t byte = rotquant::detail::qact_ue4m3_encode((a / 6.0f) / ts);
    const float sbb = rotquant::detail::qact_ue4m3_decode(byte) * ts;
    bytes[b] = byte;
    scales[b] = sbb * 0.5f;
    const __m512i q =
        sbb == 0.0f ? _mm512_setzero_si512() : qact_e2m1_x2(_mm512_div_ps(v, _mm512_set1_ps(sbb)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(codes + 16 * b), _mm512_cvtepi32_epi8(q));
    sums[b] = qact_hsum(q);
  }
  if (16 * b < k)
    sums[b] = rotquant::detail::qact_nvfp4_block(x + 16 * b, k - 16 * b, ts, codes + 16 * b,
                                                 bytes + b, scales + b);
  return std::max(qact_hmax_epi32(bad), rest);
}

/// E2M1 nibble codes of 64 bytes holding 2 * value (in [-12, 12]), two per 16-bit lane: the
/// magnitude code by a table lookup on |2 * value| (0, 1, 2, 3, 4, 6, 8, 12 -> 0..7), the sign
/// bit for negative values only (a zero is code 0, as e2m1_encode), then element 2j in the low
/// and 2j + 1 in the high nibble of lane j's low byte.
ROTQUANT_TARGET_AVX512 inline __m512i qact_fp4_nibbles(__m512i v) {
  const __m512i lut =
      _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 2, 3, 4, 0, 5, 0, 6, 0, 0, 0, 7, 0, 0, 0));
  const __m512i mag = _mm512_shuffle_epi8(lut, _mm512_abs_epi8(v));
  const __m512i c = _mm512_mask_add_epi8(mag, _mm512_movepi8_mask(v), mag, _mm512_set1_epi8(8));
  return _mm512_or_si512(_mm512_and_si512(c, _mm512_set1_epi16(0x000F)),
                         _mm512_and_si512(_mm512_srli_epi16(c, 4), _mm512_set1_epi16(0x00F0)));
}

/// AVX-512 per-token FP4 E2M1 codes of one row (see qact_fp4_row(scalar, ...)): IEEE division
/// x / s, magic-number rounding, 64 elements (32 bytes) per step; same bits as the scalar rule.
ROTQUANT_TARGET_AVX512 inline void qact_fp4_row(avx512, const float* x, index_t k, float s,
                                                std::uint8_t* packed) {
  const __m512 vs = _mm512_set1_ps(s);
  index_t i = 0;
  for (; i + 64 <= k; i += 64) {
    const __m512i v = qact_pack64(qact_e2m1_x2(_mm512_div_ps(_mm512_loadu_ps(x + i), vs)),
                                  qact_e2m1_x2(_mm512_div_ps(_mm512_loadu_ps(x + i + 16), vs)),
                                  qact_e2m1_x2(_mm512_div_ps(_mm512_loadu_ps(x + i + 32), vs)),
                                  qact_e2m1_x2(_mm512_div_ps(_mm512_loadu_ps(x + i + 48), vs)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(packed + i / 2),
                        _mm512_cvtepi16_epi8(qact_fp4_nibbles(v)));
  }
  if (i < k) qact_fp4_row(scalar{}, x + i, k - i, s, packed + i / 2);
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
ROTQUANT_AVX512_END
#endif
