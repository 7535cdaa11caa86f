// SPDX-License-Identifier: Apache-2.0
// detail/arch/amx/gemm_kernel-inl.hpp: the AMX W4A4 GEMM kernel body, written once over a tile
// interface (detail/arch/amx/tiles.hpp). Included twice by detail/arch/amx/gemm.hpp: once in
// namespace amx_model_impl with no target attribute (the scalar tile model: runs everywhere),
// once in namespace amx_hw_impl under ROTQUANT_TARGET_AMX (the instructions). A function with a
// target attribute cannot be inlined into one without, so the body cannot be one template for
// both; the same text compiled twice keeps the tested logic and the fast one identical.
//
// No include guard: the includer defines ROTQUANT_AMX_NS and ROTQUANT_AMX_ATTR around it.
// IWYU pragma: private, include "rotquant/kernels/gemm.hpp"

namespace ROTQUANT_AMX_NS {

/// Steps [s0, s1) of one output block of MB x 16 rows and NB panels (MB, NB in {1, 2}), within
/// one K chunk: C tiles 0..3 (C[i][j] = tile 2i + j), A tiles 4, 5, B tiles 6, 7. `a` is the
/// block's first row tile of the tile-ordered activations, `b` its first panel in the chunk's
/// widened weights (`b_panel` bytes per panel, step s0 first), `s_chunk` the chunk's first step.
/// The int32 accumulators live in c (row stride ldc floats) between chunks and the float
/// epilogue sums in y; a kernel block's epilogue step runs when its last step is done. `m` / `p`
/// are the global row and panel, `rv` the rows that exist (the copied rows past them are zero).
template <int MB, int NB, class Tiles>
ROTQUANT_AMX_ATTR inline void amx_block(Tiles& t, const gemm_args& g, const amx_plan& P,
                                        const std::int8_t* a, const std::int8_t* b, index_t b_panel,
                                        index_t s_chunk, index_t s0, index_t s1, std::int32_t* c,
                                        float* y, index_t ldc, index_t m, index_t rv, index_t p) {
  const index_t a_tile = 16 * P.kpad;  // bytes of one row tile over all steps
  const index_t ldcb = ldc * 4;
  for (index_t s = s0; s < s1;) {
    const index_t kb = s / P.steps;
    const index_t seg_end = (kb + 1) * P.steps < s1 ? (kb + 1) * P.steps : s1;
    if (s % P.steps == 0) {
      t.template zero<0>();
      if constexpr (NB == 2) t.template zero<1>();
      if constexpr (MB == 2) t.template zero<2>();
      if constexpr (MB == 2 && NB == 2) t.template zero<3>();
    } else {
      t.template load<0>(c, ldcb);
      if constexpr (NB == 2) t.template load<1>(c + 16, ldcb);
      if constexpr (MB == 2) t.template load<2>(c + 16 * ldc, ldcb);
      if constexpr (MB == 2 && NB == 2) t.template load<3>(c + 16 * ldc + 16, ldcb);
    }
    for (; s < seg_end; ++s) {
      const std::int8_t* as = a + s * 16 * P.kt;
      const std::int8_t* bs = b + (s - s_chunk) * 16 * P.kt;
      t.template load<4>(as, P.kt);
      if constexpr (MB == 2) t.template load<5>(as + a_tile, P.kt);
      t.template load<6>(bs, 64);
      if constexpr (NB == 2) t.template load<7>(bs + b_panel, 64);
      t.template dpbssd<0, 4, 6>();
      if constexpr (NB == 2) t.template dpbssd<1, 4, 7>();
      if constexpr (MB == 2) t.template dpbssd<2, 5, 6>();
      if constexpr (MB == 2 && NB == 2) t.template dpbssd<3, 5, 7>();
    }
    t.template store<0>(c, ldcb);
    if constexpr (NB == 2) t.template store<1>(c + 16, ldcb);
    if constexpr (MB == 2) t.template store<2>(c + 16 * ldc, ldcb);
    if constexpr (MB == 2 && NB == 2) t.template store<3>(c + 16 * ldc + 16, ldcb);
    if (s % P.steps != 0) continue;  // the block goes on in the next chunk
    // The block's epilogue step, exactly that of gemm_args: y = fma(float(acc), sa * sw, y).
    const index_t k0 = kb * g.kb;
    for (index_t i = 0; i < rv; ++i) {
      const float sa = g.a_scales[(m + i) * g.a_blocks + k0 / g.a_block];
      for (int j = 0; j < NB; ++j)
        Tiles::scale16(c + i * ldc + 16 * j, sa,
                       g.w_scales + ((p + j) * g.w_blocks + k0 / g.w_block) * 16,
                       y + i * ldc + 16 * j);
    }
  }
}

/// Rows [m0, m1) (m0 a multiple of 16) x panels [p0, p1) through tiles `t`. K runs in chunks
/// of about amx_chunk_k values: the chunk's weights of every panel are widened to int8 tile
/// rows (kernels/packed.hpp's nibbles split: the low nibbles of packed chunk c are tile row 2c,
/// the high ones row 2c + 1), then each panel pair (its chunk stays in L1) meets every 32-row
/// block of the tile-ordered activations g.a_tiles; accumulators go through the per-thread
/// scratch between chunks, and the outputs are written once the task's last chunk is done.
template <class Tiles>
ROTQUANT_AMX_ATTR inline void amx_gemm_range(Tiles& t, const gemm_args& g, index_t m0, index_t m1,
                                             index_t p0, index_t p1) {
  const amx_plan P = amx_plan_for(g);
  const index_t rows = m1 - m0, np = p1 - p0;
  const index_t total_steps = g.nkb * P.steps;
  const index_t chunk_steps = amx_chunk_k / P.kt;
  const index_t b_panel = chunk_steps * 16 * P.kt;  // bytes of one panel's widened chunk
  const index_t ldc = np * 16;
  amx_scratch& sc = amx_thread_scratch();
  std::int8_t* b = sc.b.reserve(np * b_panel);
  const index_t rows32 = (rows + 31) / 32 * 32;  // the tile stores write whole 16-row tiles
  std::int32_t* c = sc.c.reserve(rows32 * ldc);
  float* y = sc.y.reserve(rows32 * ldc);
  for (index_t i = 0; i < rows32 * ldc; ++i) y[i] = 0.0f;
  const std::int8_t* values = g.fp4 ? amx_fp4_values : amx_int4_values;
  const index_t kp = g.lda;
  amx_tile_config cfg;
  for (int i = 0; i < 4; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = 64;
  }
  for (int i = 4; i < 6; ++i) {
    cfg.rows[i] = 16;
    cfg.colsb[i] = static_cast<std::uint16_t>(P.kt);
  }
  for (int i = 6; i < 8; ++i) {
    cfg.rows[i] = static_cast<std::uint8_t>(P.kt / 4);
    cfg.colsb[i] = 64;
  }
  t.configure(cfg);
  for (index_t s0 = 0; s0 < total_steps; s0 += chunk_steps) {
    const index_t s1 = s0 + chunk_steps < total_steps ? s0 + chunk_steps : total_steps;
    // Widen the chunk's weights; tile rows past a block's end (or past kp) are zeroed.
    for (index_t s = s0; s < s1; ++s) {
      const index_t kb = s / P.steps;
      const index_t k_lo = kb * g.kb + (s % P.steps) * P.kt;
      const index_t k_end = kb * g.kb + g.kb < kp ? kb * g.kb + g.kb : kp;
      const index_t k_hi = k_lo + P.kt < k_end ? k_lo + P.kt : k_end;
      for (index_t q = 0; q < np; ++q) {
        const std::uint8_t* panel = g.w + (p0 + q) * g.panel_bytes;
        std::int8_t* dst = b + q * b_panel + (s - s0) * 16 * P.kt;
        index_t k = k_lo;
        for (; k < k_hi; k += 8, dst += 128)
          Tiles::widen64(panel + (k / 8) * 64, values, dst, dst + 64);
        if (k < k_lo + P.kt) std::memset(dst, 0, static_cast<std::size_t>((k_lo + P.kt - k) * 16));
      }
    }
    Tiles::fence();
    for (index_t q = 0; q < np; q += 2) {
      const bool two_panels = q + 1 < np;
      const std::int8_t* bq = b + q * b_panel;
      for (index_t r = 0; r < rows; r += 32) {
        const index_t rv = rows - r < 32 ? rows - r : 32;
        const std::int8_t* ar = g.a_tiles + (m0 + r) * P.kpad;
        std::int32_t* cr = c + r * ldc + q * 16;
        float* yr = y + r * ldc + q * 16;
        if (rv > 16) {
          if (two_panels)
            amx_block<2, 2>(t, g, P, ar, bq, b_panel, s0, s0, s1, cr, yr, ldc, m0 + r, rv, p0 + q);
          else
            amx_block<2, 1>(t, g, P, ar, bq, b_panel, s0, s0, s1, cr, yr, ldc, m0 + r, rv, p0 + q);
        } else {
          if (two_panels)
            amx_block<1, 2>(t, g, P, ar, bq, b_panel, s0, s0, s1, cr, yr, ldc, m0 + r, rv, p0 + q);
          else
            amx_block<1, 1>(t, g, P, ar, bq, b_panel, s0, s0, s1, cr, yr, ldc, m0 + r, rv, p0 + q);
        }
      }
    }
  }
  t.release();
  // The task's outputs row by row (np * 16 contiguous floats per row: scattering 64-byte pieces
  // down 16 KiB-strided rows from each block cost a third of the time at N = 4096).
  const index_t n0 = p0 * 16, cols = (g.n < p1 * 16 ? g.n : p1 * 16) - n0;
  for (index_t i = 0; i < rows; ++i) {
    float* o = g.out + (m0 + i) * g.ldo + n0;
    const float* yi = y + i * ldc;
    if (g.bias) {
      for (index_t x = 0; x < cols; ++x) o[x] = yi[x] + g.bias[n0 + x];
    } else {
      std::memcpy(o, yi, static_cast<std::size_t>(cols) * sizeof(float));
    }
  }
}

}  // namespace ROTQUANT_AMX_NS
