// SPDX-License-Identifier: Apache-2.0
// detail/arch/amx/gemm.hpp: AMX-INT8 W4A4 / W4A8 prefill GEMM (TDPBSSD on int8 tiles).
//
// The 4-bit weights of a task's panels are widened once to signed int8 tile rows (INT4: w,
// FP4: 2 * E2M1 value; the VNNI tile layout is the packed panel layout with the nibbles split,
// see kernels/packed.hpp), the activation codes (already int8) are copied into a scratch padded
// to the tile depth, and TDPBSSD accumulates exact int32 dot products per kernel block on four
// 16 x 16 accumulator tiles (a 32 x 32 output block). The block epilogue is the float step of
// detail/gemm_args.hpp, so the results equal the scalar kernel's bit for bit. Signed weights
// give sum w * a directly, the same integer as sum u * a - off * sum a.
//
// Tasks with fewer than amx_min_rows rows (decode) or kernel blocks shorter than amx_min_block
// run the AVX-512 VNNI kernel.
#pragma once
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

#include "rotquant/detail/arch/amx/tiles.hpp"
#include "rotquant/detail/arch/avx512/gemm.hpp"
#include "rotquant/detail/gemm_args.hpp"

namespace rotquant {
namespace detail {
namespace arch {

/// Fewest rows of a task that the tile kernel takes (fewer: the VNNI kernel).
constexpr index_t amx_min_rows = 16;
/// Shortest kernel block the tile kernel takes: each block ends in a tile store and a float
/// epilogue step per output, which below 128 k values costs more than the tiles save
/// (Sapphire Rapids, M = 2048, K = N = 4096, one thread: groups of 32 / 64 / 128 / 256 ran
/// 0.58x / 0.86x / 1.4x / 2.0x the VNNI kernel's rate).
constexpr index_t amx_min_block = 128;

/// True if the tile kernel runs `rows` rows of a GEMM with kernel blocks of kb values (nkb of
/// them); false: the VNNI kernel.
inline bool amx_takes(index_t rows, index_t kb, index_t nkb) {
  return rows >= amx_min_rows && (nkb == 1 || kb >= amx_min_block);
}

/// K layout of the tile kernel for one GEMM: each kernel block padded to kbp (a multiple of
/// the tile depth kt), kpad = nkb * kbp bytes per activation row.
struct amx_plan {
  index_t kt = 64;    ///< k values per TDPBSSD (A tile bytes per row; B tile rows = kt / 4)
  index_t kbp = 64;   ///< one kernel block, padded
  index_t kpad = 64;  ///< nkb * kbp
  index_t steps = 1;  ///< kbp / kt
};

inline amx_plan amx_plan_for(const gemm_args& g) {
  amx_plan p;
  if (g.nkb == 1) {
    p.kt = 64;
  } else {
    // kb is a multiple of 8: the largest power of two <= 64 dividing it (no padded steps).
    p.kt = 64;
    while (g.kb % p.kt != 0) p.kt /= 2;
  }
  p.kbp = (g.kb + p.kt - 1) / p.kt * p.kt;
  p.kpad = g.nkb * p.kbp;
  p.steps = p.kbp / p.kt;
  return p;
}

/// k values per K chunk of the tile kernel: a panel pair's widened chunk (32 x 512 bytes) stays
/// in L1 while the row blocks pass.
constexpr index_t amx_chunk_k = 512;

/// Per-thread scratch of the tile kernel (grows to the largest task seen, kept for reuse).
struct amx_scratch {
  // 64-byte aligned: a tile row straddling two lines halves TILELOADD's throughput.
  aligned_scratch<std::int8_t> a;   ///< tile-ordered activations (calling thread's copy)
  aligned_scratch<std::int8_t> b;   ///< widened weights of a K chunk
  aligned_scratch<std::int32_t> c;  ///< int32 accumulators between K chunks
  aligned_scratch<float> y;         ///< float epilogue sums
};

inline amx_scratch& amx_thread_scratch() {
  thread_local amx_scratch s;
  return s;
}

/// Bytes of the tile-ordered activation copy for m rows.
inline index_t amx_activation_bytes(const amx_plan& P, index_t m) {
  return (m + 15) / 16 * 16 * P.kpad;
}

/// Copies activation rows [r0, r1) (r0 a multiple of 16, r1 <= m) into tile order: row tile rt = r
/// / 16, step st (kt k values of the padded K axis) at dst[(rt * kpad / kt + st) * 16 * kt], 16
/// rows of kt bytes, so each A tile is one contiguous kilobyte (a 4 KiB row stride would put all 16
/// rows of a tile in one L1 set). Each kernel block starts a step; padding bytes and the rows
/// past m are zero.
inline void amx_pack_activations(const gemm_args& g, const amx_plan& P, std::int8_t* dst,
                                 index_t r0, index_t r1) {
  const index_t r1p = (r1 + 15) / 16 * 16;
  std::memset(dst + r0 * P.kpad, 0, static_cast<std::size_t>((r1p - r0) * P.kpad));
  for (index_t r = r0; r < r1; ++r) {
    const std::int8_t* src = g.a + r * g.lda;
    std::int8_t* tile_rows = dst + (r / 16) * 16 * P.kpad + (r % 16) * P.kt;
    for (index_t kb = 0; kb < g.nkb; ++kb) {
      const index_t k0 = kb * g.kb, k1 = k0 + g.kb < g.lda ? k0 + g.kb : g.lda;
      for (index_t k = k0; k < k1; k += P.kt) {
        const index_t st = (kb * P.kbp + (k - k0)) / P.kt;
        const index_t len = k1 - k < P.kt ? k1 - k : P.kt;
        std::memcpy(tile_rows + st * 16 * P.kt, src + k, static_cast<std::size_t>(len));
      }
    }
  }
}

}  // namespace arch
}  // namespace detail
}  // namespace rotquant

// The kernel body twice: the scalar tile model (no target attribute) and the instructions.
namespace rotquant {
namespace detail {
namespace arch {
#define ROTQUANT_AMX_NS amx_model_impl
#define ROTQUANT_AMX_ATTR
#include "rotquant/detail/arch/amx/gemm_kernel-inl.hpp"
#undef ROTQUANT_AMX_NS
#undef ROTQUANT_AMX_ATTR

/// The tile kernel over the scalar model of the AMX unit: same tiling, layouts and epilogue as
/// gemm_range(amx, ...), on any CPU (the tests run it everywhere).
inline void gemm_range_amx_model(const gemm_args& g, index_t m0, index_t m1, index_t p0,
                                 index_t p1) {
  amx_tiles_model t;
  amx_model_impl::amx_gemm_range(t, g, m0, m1, p0, p1);
}

#if ROTQUANT_HAS_AMX
ROTQUANT_AVX512_BEGIN
#define ROTQUANT_AMX_NS amx_hw_impl
#define ROTQUANT_AMX_ATTR ROTQUANT_TARGET_AMX
#include "rotquant/detail/arch/amx/gemm_kernel-inl.hpp"
#undef ROTQUANT_AMX_NS
#undef ROTQUANT_AMX_ATTR

/// AMX kernel: same results as gemm_range(scalar, ...) bit for bit. Tasks the tile kernel
/// does not take (amx_takes: few rows, short blocks) go to the AVX-512 VNNI kernel.
ROTQUANT_TARGET_AMX inline void gemm_range(amx, const gemm_args& g, index_t m0, index_t m1,
                                           index_t p0, index_t p1) {
  // g.a_tiles is set by the tile grid of quantized_matmul (detail::gemm_execute); a caller on
  // the VNNI grid never reaches the tiles.
  if (g.a_tiles == nullptr || !amx_takes(m1 - m0, g.kb, g.nkb))
    return gemm_range(avx512{}, g, m0, m1, p0, p1);
  amx_tiles_hw t;
  amx_hw_impl::amx_gemm_range(t, g, m0, m1, p0, p1);
}
ROTQUANT_AVX512_END
#endif

}  // namespace arch
}  // namespace detail
}  // namespace rotquant
