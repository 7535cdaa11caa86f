// SPDX-License-Identifier: Apache-2.0
// detail/arch/amx/tiles.hpp: the tile operations the AMX GEMM uses, behind one thin interface
// with two implementations:
//   * amx_tiles_model: a bit-exact scalar model of LDTILECFG / TILEZERO / TILELOADD /
//     TILESTORED / TDPBSSD (Intel SDM, palette 1: 8 tiles of at most 16 rows x 64 bytes), so
//     every machine runs the AMX kernel's tiling, layout and epilogue logic in the tests;
//   * amx_tiles_hw: the instructions themselves (only where ROTQUANT_HAS_AMX).
// Both also carry the two row helpers of the kernel (nibble widening, the block epilogue), the
// model in portable C++, the hardware one with AVX-512; each is specified exactly below, so the
// two give the same bytes and bits.
//
// TDPBSSD C, A, B (signed x signed, int32 accumulate, no saturation): for m < rows(C),
// n < colsb(C) / 4, k < colsb(A) / 4:
//   C.i32[m][n] += sum_{i<4} A.i8[m][4k + i] * B.i8[k][4n + i]
// TILELOADD / TILESTORED move rows(t) rows of colsb(t) bytes with a byte stride; a load zeroes
// the bytes past colsb and the rows past rows(t).
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

#if ROTQUANT_HAS_AMX
#include <immintrin.h>
#endif

namespace rotquant {
namespace detail {
namespace arch {

/// The 64-byte operand of LDTILECFG (palette 1).
struct alignas(64) amx_tile_config {
  std::uint8_t palette = 1;
  std::uint8_t start_row = 0;
  std::uint8_t reserved[14] = {};
  std::uint16_t colsb[16] = {};  ///< bytes per row of tile t
  std::uint8_t rows[16] = {};    ///< rows of tile t
};
static_assert(sizeof(amx_tile_config) == 64, "LDTILECFG takes 64 bytes");

/// Palette 1 limits.
constexpr int amx_max_rows = 16;
constexpr int amx_max_colsb = 64;

/// 16 signed weight values per nibble code: INT4 offset-binary (code - 8), FP4 2 * E2M1 value.
alignas(16) inline constexpr std::int8_t amx_int4_values[16] = {-8, -7, -6, -5, -4, -3, -2, -1,
                                                                0,  1,  2,  3,  4,  5,  6,  7};
alignas(16) inline constexpr std::int8_t amx_fp4_values[16] = {0, 1,  2,  3,  4,  6,  8,  12,
                                                               0, -1, -2, -3, -4, -6, -8, -12};

/// Scalar model of the AMX tile unit. Checks every operation against the configuration
/// (rotquant::error on a shape the hardware would fault on or compute differently).
class amx_tiles_model {
 public:
  void configure(const amx_tile_config& c) {
    ROTQUANT_CHECK(c.palette == 1, "amx model: palette " << int{c.palette} << ", expected 1");
    for (int t = 0; t < 8; ++t) {
      ROTQUANT_CHECK(c.rows[t] <= amx_max_rows && c.colsb[t] <= amx_max_colsb,
                     "amx model: tile " << t << " is " << int{c.rows[t]} << " x " << c.colsb[t]
                                        << " bytes, palette 1 allows 16 x 64");
    }
    cfg_ = c;
    std::memset(tiles_, 0, sizeof(tiles_));  // LDTILECFG zeroes every tile
  }
  void release() { std::memset(tiles_, 0, sizeof(tiles_)); }

  template <int T>
  void zero() {
    std::memset(tiles_[T], 0, sizeof(tiles_[T]));
  }
  template <int T>
  void load(const void* p, index_t stride) {
    const auto* src = static_cast<const std::uint8_t*>(p);
    std::memset(tiles_[T], 0, sizeof(tiles_[T]));
    for (int r = 0; r < cfg_.rows[T]; ++r)
      std::memcpy(tiles_[T][r], src + r * stride, cfg_.colsb[T]);
  }
  template <int T>
  void store(void* p, index_t stride) const {
    auto* dst = static_cast<std::uint8_t*>(p);
    for (int r = 0; r < cfg_.rows[T]; ++r)
      std::memcpy(dst + r * stride, tiles_[T][r], cfg_.colsb[T]);
  }
  template <int C, int A, int B>
  void dpbssd() {
    ROTQUANT_CHECK(cfg_.rows[C] == cfg_.rows[A] && cfg_.colsb[A] % 4 == 0 &&
                       cfg_.colsb[A] / 4 == cfg_.rows[B] && cfg_.colsb[C] == cfg_.colsb[B] &&
                       cfg_.colsb[C] % 4 == 0,
                   "amx model: TDPBSSD shapes disagree (C "
                       << int{cfg_.rows[C]} << "x" << cfg_.colsb[C] << ", A " << int{cfg_.rows[A]}
                       << "x" << cfg_.colsb[A] << ", B " << int{cfg_.rows[B]} << "x"
                       << cfg_.colsb[B] << ")");
    for (int m = 0; m < cfg_.rows[C]; ++m)
      for (int n = 0; n < cfg_.colsb[C] / 4; ++n) {
        std::int32_t c;
        std::memcpy(&c, &tiles_[C][m][4 * n], 4);
        auto acc = static_cast<std::uint32_t>(c);  // wraps like the hardware, no UB
        for (int k = 0; k < cfg_.colsb[A] / 4; ++k)
          for (int i = 0; i < 4; ++i)
            acc += static_cast<std::uint32_t>(
                static_cast<std::int32_t>(static_cast<std::int8_t>(tiles_[A][m][4 * k + i]) *
                                          static_cast<std::int8_t>(tiles_[B][k][4 * n + i])));
        c = static_cast<std::int32_t>(acc);
        std::memcpy(&tiles_[C][m][4 * n], &c, 4);
      }
  }
  static void fence() {}

  /// lo[x] = values[src[x] & 15], hi[x] = values[src[x] >> 4] for x < 64.
  static void widen64(const std::uint8_t* src, const std::int8_t* values, std::int8_t* lo,
                      std::int8_t* hi) {
    for (int x = 0; x < 64; ++x) {
      lo[x] = values[src[x] & 0x0F];
      hi[x] = values[src[x] >> 4];
    }
  }
  /// y[j] = fma(float(c[j]), sa * sw[j], y[j]) for j < 16 (the gemm_args epilogue step).
  static void scale16(const std::int32_t* c, float sa, const float* sw, float* y) {
    for (int j = 0; j < 16; ++j) y[j] = std::fma(static_cast<float>(c[j]), sa * sw[j], y[j]);
  }

 private:
  amx_tile_config cfg_;
  std::uint8_t tiles_[8][amx_max_rows][amx_max_colsb] = {};
};

#if ROTQUANT_HAS_AMX
ROTQUANT_AVX512_BEGIN
// The GCC intrinsics paste the tile number into the assembly text, so each takes a literal.
#define ROTQUANT_AMX_FOR_TILE(T, OP) \
  if constexpr (T == 0) {            \
    OP(0);                           \
  } else if constexpr (T == 1) {     \
    OP(1);                           \
  } else if constexpr (T == 2) {     \
    OP(2);                           \
  } else if constexpr (T == 3) {     \
    OP(3);                           \
  } else if constexpr (T == 4) {     \
    OP(4);                           \
  } else if constexpr (T == 5) {     \
    OP(5);                           \
  } else if constexpr (T == 6) {     \
    OP(6);                           \
  } else {                           \
    OP(7);                           \
  }

/// The AMX instructions. Every member is always_inline: they are meant to be inlined into a
/// function compiled with ROTQUANT_TARGET_AMX (gemm_range(amx, ...)).
struct amx_tiles_hw {
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void configure(const amx_tile_config& c) {
    _tile_loadconfig(&c);
  }
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void release() { _tile_release(); }
  template <int T>
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void zero() {
#define ROTQUANT_AMX_OP(t) _tile_zero(t)
    ROTQUANT_AMX_FOR_TILE(T, ROTQUANT_AMX_OP)
#undef ROTQUANT_AMX_OP
  }
  template <int T>
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void load(const void* p, index_t stride) {
#define ROTQUANT_AMX_OP(t) _tile_loadd(t, p, stride)
    ROTQUANT_AMX_FOR_TILE(T, ROTQUANT_AMX_OP)
#undef ROTQUANT_AMX_OP
  }
  template <int T>
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void store(void* p, index_t stride) const {
#define ROTQUANT_AMX_OP(t) _tile_stored(t, p, stride)
    ROTQUANT_AMX_FOR_TILE(T, ROTQUANT_AMX_OP)
#undef ROTQUANT_AMX_OP
  }
  template <int C, int A, int B>
  ROTQUANT_TARGET_AMX ROTQUANT_ALWAYS_INLINE void dpbssd() {
    static_assert(C < 4 && (A == 4 || A == 5) && (B == 6 || B == 7), "tile roles of the kernel");
    if constexpr (C == 0) {
      _tile_dpbssd(0, 4, 6);
    } else if constexpr (C == 1) {
      _tile_dpbssd(1, 4, 7);
    } else if constexpr (C == 2) {
      _tile_dpbssd(2, 5, 6);
    } else {
      _tile_dpbssd(3, 5, 7);
    }
  }
  /// GCC's tile loads are asm statements without a memory operand: make the scratch stores
  /// before them visible (a compiler barrier; the hardware orders them itself).
  static ROTQUANT_ALWAYS_INLINE void fence() {
    __asm__ volatile("" ::: "memory");
  }

  ROTQUANT_TARGET_AMX static ROTQUANT_ALWAYS_INLINE void widen64(const std::uint8_t* src,
                                                                 const std::int8_t* values,
                                                                 std::int8_t* lo, std::int8_t* hi) {
    const __m512i lut =
        _mm512_broadcast_i32x4(_mm_load_si128(reinterpret_cast<const __m128i*>(values)));
    const __m512i nib = _mm512_set1_epi8(0x0F);
    const __m512i v = _mm512_loadu_si512(src);
    _mm512_storeu_si512(lo, _mm512_shuffle_epi8(lut, _mm512_and_si512(v, nib)));
    _mm512_storeu_si512(hi,
                        _mm512_shuffle_epi8(lut, _mm512_and_si512(_mm512_srli_epi16(v, 4), nib)));
  }
  ROTQUANT_TARGET_AMX static ROTQUANT_ALWAYS_INLINE void scale16(const std::int32_t* c, float sa,
                                                                 const float* sw, float* y) {
    const __m512 s = _mm512_mul_ps(_mm512_set1_ps(sa), _mm512_loadu_ps(sw));
    const __m512 t = _mm512_cvtepi32_ps(_mm512_loadu_si512(c));
    _mm512_storeu_ps(y, _mm512_fmadd_ps(t, s, _mm512_loadu_ps(y)));
  }
};
#undef ROTQUANT_AMX_FOR_TILE
ROTQUANT_AVX512_END
#endif

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
