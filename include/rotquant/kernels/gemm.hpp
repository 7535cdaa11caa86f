// SPDX-License-Identifier: Apache-2.0
// kernels/gemm.hpp: packed W4A4 / W4A8 GEMM: pack_weights, quantized_matmul, linear_w4a4.
//
// Y[m, n] = sum over K blocks of (sum_k qa[m, k] qw[n, k]) * sa[m, block] * sw[n, block] (+ bias)
// with exact int32 dot products (u8 x s8 with an offset, see kernels/packed.hpp) and a fixed
// float epilogue (explicit fma), so every ISA path and every thread count give the same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <new>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/reduce.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/detail/arch/amx/gemm.hpp"
#include "rotquant/detail/arch/avx512/gemm.hpp"
#include "rotquant/detail/arch/neon/gemm.hpp"
#include "rotquant/detail/gemm_args.hpp"
#include "rotquant/kernels/packed.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace rotquant {

/// Optional epilogue work after the scales: out[m, n] = y + bias[n].
struct gemm_epilogue {
  const float* bias = nullptr;  ///< N floats, or null
  index_t bias_size = 0;        ///< must equal N when bias is set
  /// Epilogue adding `b` (kept by pointer: `b` must outlive the call).
  static gemm_epilogue with_bias(const vector_f& b) {
    gemm_epilogue e;
    e.bias = b.data();
    e.bias_size = b.size();
    return e;
  }
};

namespace detail {

/// Shapes, blocks and zero-filled storage of a packed_weights.
inline packed_weights gemm_weights_layout(index_t n, index_t k, weight_format format, index_t group,
                                          const char* who) {
  ROTQUANT_CHECK(n >= 1 && k >= 1, who << ": W must be non-empty, got " << n << " x " << k);
  ROTQUANT_CHECK(k <= gemm_max_k,
                 who << ": K = " << k << " exceeds the int32-exact bound " << gemm_max_k);
  if (format == weight_format::qsi4cg)
    ROTQUANT_CHECK(
        group >= 8 && group % 8 == 0,
        who << ": qsi4cg group must be a positive multiple of 8 (e.g. 32, 64, 128), got " << group);
  const auto f = static_cast<int>(format);
  ROTQUANT_CHECK(f >= 0 && f <= 3,
                 who << ": weight format " << f << " is not one of qsi4cx, qsi4cg, mxfp4, nvfp4");
  packed_weights pw;
  pw.format = format;
  pw.n = n;
  pw.k = k;
  pw.kp = gemm_padded_k(k);
  pw.block = format == weight_format::qsi4cx   ? k
             : format == weight_format::qsi4cg ? group
             : format == weight_format::mxfp4  ? 32
                                               : 16;
  pw.blocks = packed_ceil_div(k, pw.block);
  pw.panels = packed_ceil_div(n, gemm_panel_cols);
  // Both buffers are checked before either is allocated (n may come from a size argument).
  check_alloc(pw.panels, pw.panel_bytes(), 1, who);
  check_alloc(pw.panels, pw.blocks * 16, sizeof(float), who);
  // Zero weight in every padding slot: offset-binary 8 for INT4, E2M1 code 0 for FP4.
  const std::uint8_t zero_nib = pw.fp4() ? 0x0 : 0x8;
  try {
    pw.data.assign(static_cast<std::size_t>(pw.panels * pw.panel_bytes()),
                   static_cast<std::uint8_t>(zero_nib | (zero_nib << 4)));
    pw.scales.assign(static_cast<std::size_t>(pw.panels * pw.blocks * 16), 0.0f);
  } catch (const std::bad_alloc&) {
    allocation_failed(pw.panels, pw.panel_bytes(), 1, who);
  }
  return pw;
}

/// The fields of a quantized_matrix that pack_weights reads, checked against its quantizer
/// and shape (it may be built or edited by hand). O(1).
inline void check_kernel_codes(const quantized_matrix& q, const char* who) {
  q.q.validate(q.rows, q.cols);
  ROTQUANT_CHECK(q.rows >= 1 && q.cols >= 1, who << ": quantized_matrix is " << q.rows << " x "
                                                 << q.cols << ", must be non-empty");
  ROTQUANT_CHECK(q.q.packs_nibbles() && q.q.gran != granularity::per_tensor,
                 who << ": quantizer '" << q.q.name()
                     << "' has no GEMM kernel; accepted: symmetric int4 per_row or per_group, "
                        "mxfp4, nvfp4");
  ROTQUANT_CHECK(q.group == q.q.group_length(q.cols),
                 who << ": quantized_matrix.group = " << q.group << ", must be "
                     << q.q.group_length(q.cols) << " for " << q.q.name());
  ROTQUANT_CHECK(q.groups_per_row == q.q.groups_per_row(q.cols),
                 who << ": quantized_matrix.groups_per_row = " << q.groups_per_row << ", must be "
                     << q.q.groups_per_row(q.cols) << " for " << q.cols << " columns");
  ROTQUANT_CHECK(q.row_bytes == packed_nibble_bytes(q.cols),
                 who << ": quantized_matrix.row_bytes = " << q.row_bytes << ", must be "
                     << packed_nibble_bytes(q.cols) << " (two 4-bit codes per byte)");
  ROTQUANT_CHECK(packed_size_is(q.codes.size(), q.rows, q.row_bytes),
                 who << ": quantized_matrix.codes.size() = " << q.codes.size()
                     << ", must be rows * row_bytes = " << q.rows << " * " << q.row_bytes);
  ROTQUANT_CHECK(packed_size_is(q.scales.size(), q.rows, q.groups_per_row),
                 who << ": quantized_matrix.scales.size() = " << q.scales.size()
                     << ", must be rows * groups_per_row = " << q.rows << " * "
                     << q.groups_per_row);
  ROTQUANT_CHECK(std::isfinite(q.tensor_scale), who << ": quantized_matrix.tensor_scale = "
                                                    << q.tensor_scale << ", must be finite");
}

/// True if an activation scale block and a weight scale block can share one K loop over rows
/// of k: the smaller (each capped at k) divides the larger, or the larger spans all of K.
inline bool gemm_blocks_pair(index_t a_block, index_t w_block, index_t k) {
  const index_t ab = std::min(a_block, k), wb = std::min(w_block, k);
  const index_t kb = std::min(ab, wb);
  return (ab % kb == 0 || ab >= k) && (wb % kb == 0 || wb >= k);
}

/// Throws unless the output view `out` is well formed (data for a non-empty shape, a row stride
/// >= cols when it has several rows) and shares no memory with the inputs of the GEMM.
inline void gemm_check_output(const packed_activations& A, const packed_weights& W,
                              const matrix_view<float>& out, const gemm_epilogue& ep,
                              const char* who) {
  ROTQUANT_CHECK(out.data() != nullptr || out.size() == 0,
                 who << ": output view has null data for " << out.rows() << " x " << out.cols());
  ROTQUANT_CHECK(out.rows() <= 1 || out.outerStride() >= out.cols(),
                 who << ": output row stride " << out.outerStride() << " is smaller than its "
                     << out.cols() << " columns");
  const std::size_t ob = view_bytes(out);
  const char* hit = first_overlap(out.data(), ob, "A.codes", A.codes, "A.scales", A.scales,
                                  "A.sums", A.sums, "W.data", W.data, "W.scales", W.scales);
  if (hit == nullptr && ep.bias != nullptr &&
      ranges_overlap(out.data(), ob, ep.bias, static_cast<std::size_t>(W.n) * sizeof(float)))
    hit = "the bias";
  ROTQUANT_CHECK(hit == nullptr, who << ": the output overlaps " << (hit ? hit : "")
                                     << "; it must not alias an input");
}

/// Writes row r's stored nibbles (offset-binary INT4 or E2M1 codes, k of them) into its panel.
inline void gemm_store_row(packed_weights& pw, index_t r, const std::uint8_t* nibbles) {
  std::uint8_t* panel = pw.data.data() + (r / 16) * pw.panel_bytes();
  const index_t j = r % 16;
  for (index_t i = 0; i < pw.k; ++i) {
    std::uint8_t& byte = panel[(i >> 3) * 64 + j * 4 + (i & 3)];
    const std::uint8_t v = static_cast<std::uint8_t>(nibbles[i] & 0x0F);
    byte = (i & 4) ? static_cast<std::uint8_t>((byte & 0x0F) | (v << 4))
                   : static_cast<std::uint8_t>((byte & 0xF0) | v);
  }
}

/// Which task grid gemm_execute lays out (see there).
enum class gemm_grid { vnni, amx, amx_always };

/// Runs kernel(g, m0, m1, p0, p1) over the task grid of out = A W^T (inputs already checked by
/// quantized_matmul). Tasks are row blocks of mc rows x chunks of pc panels. The grid of the
/// AMX tile kernel (taller row blocks: its per-task weight widening is amortised over more
/// rows, and the activations copied in tile order) is used when `grid` is amx and the tile
/// kernel takes the shape (arch::amx_takes), or always when it is amx_always. Every output is
/// computed by exactly one task, so the bits do not depend on the grid or the thread count.
template <class Kernel>
void gemm_execute(const packed_activations& A, const packed_weights& W, matrix_view<float> out,
                  const gemm_epilogue& ep, executor* ex, gemm_grid grid, const Kernel& kernel) {
  const index_t k = W.k;
  const index_t kb = std::min(std::min(A.block, k), std::min(W.block, k));
  gemm_args g;
  g.a = A.codes.data();
  g.lda = A.stride;
  g.a_scales = A.scales.data();
  g.a_blocks = A.blocks;
  g.a_block = A.block;
  g.w = W.data.data();
  g.panel_bytes = W.panel_bytes();
  g.w_scales = W.scales.data();
  g.w_blocks = W.blocks;
  g.w_block = W.block;
  g.m = A.m;
  g.n = W.n;
  g.k = k;
  g.kb = kb;
  g.nkb = (k + kb - 1) / kb;
  g.woff = W.offset();
  g.fp4 = W.fp4();
  g.bias = ep.bias;
  g.out = out.data();
  g.ldo = out.outerStride();
  std::vector<std::int32_t> sums;
  if (g.nkb == A.blocks) {
    g.a_sums = A.sums.data();
  } else {
    // Activation code sums at the kernel block granularity (finer than the activation blocks).
    sums.resize(static_cast<std::size_t>(A.m * g.nkb));
    for (index_t m = 0; m < A.m; ++m) {
      const std::int8_t* c = A.codes.data() + m * A.stride;
      for (index_t b = 0; b < g.nkb; ++b) {
        std::int32_t s = 0;
        for (index_t i = b * kb; i < std::min(k, (b + 1) * kb); ++i) s += c[i];
        sums[static_cast<std::size_t>(m * g.nkb + b)] = s;
      }
    }
    g.a_sums = sums.data();
  }
  const index_t panels = W.panels;
  const bool tiles = grid == gemm_grid::amx_always ||
                     (grid == gemm_grid::amx && arch::amx_takes(A.m, g.kb, g.nkb));
  index_t mc = 0, pc = 0;
  if (tiles) {
    // The tile kernel reads the activation codes in tile order, copied once per call into the
    // calling thread's scratch (row tiles in parallel).
    const arch::amx_plan P = arch::amx_plan_for(g);
    std::int8_t* at = arch::amx_thread_scratch().a.reserve(arch::amx_activation_bytes(P, A.m));
    const index_t row_tiles = (A.m + 15) / 16;
    parallel_for(
        0, row_tiles, std::max<index_t>(1, 65536 / std::max<index_t>(1, 16 * P.kpad)),
        [&](index_t lo, index_t hi) {
          arch::amx_pack_activations(g, P, at, lo * 16, std::min(A.m, hi * 16));
        },
        ex);
    g.a_tiles = at;
    // Up to 256 rows (a multiple of the 32-row output block) x 8 panels per task.
    mc = std::min<index_t>(256, (A.m + 31) / 32 * 32);
    pc = 8;
  } else {
    // An L2-sized slice of A x 8 panels (4 for decode).
    mc = A.m <= 4 ? A.m : std::max<index_t>(8, (262144 / W.kp) / 8 * 8);
    pc = A.m <= 4 ? 4 : 8;
  }
  const index_t nm = (A.m + mc - 1) / mc, np = (panels + pc - 1) / pc;
  // At least ~2^20 multiply-adds per chunk: a waking thread costs more than a smaller task (an
  // M = 1 GEMV of a few hundred rows runs inline).
  const index_t task_macs = std::min(A.m, mc) * pc * gemm_panel_cols * W.kp;
  const index_t grain = std::max<index_t>(1, (index_t{1} << 20) / std::max<index_t>(1, task_macs));
  parallel_for(
      0, nm * np, grain,
      [&](index_t lo, index_t hi) {
        for (index_t t = lo; t < hi; ++t) {
          const index_t mi = t / np, pi = t % np;
          kernel(g, mi * mc, std::min(A.m, (mi + 1) * mc), pi * pc,
                 std::min(panels, (pi + 1) * pc));
        }
      },
      ex);
}

}  // namespace detail

/// Packs already-quantized weights: `codes` [n, k] row-major (INT4 formats: integers in
/// [-8, 7]; FP4 formats: E2M1 codes 0..15), `scales` [n, blocks] row-major with blocks =
/// ceil(k / block) (block: k for qsi4cx, `group` for qsi4cg, 32 for mxfp4, 16 for nvfp4); each
/// scale is the real value of one unit of the code (FP4: of one E2M1 step 1.0, i.e. the block
/// scale times the tensor scale). w[n, k] = code * scale. Use this for GPTQ-style weights
/// quantized elsewhere. O(n k). Throws rotquant::error for a code out of range, a non-finite or
/// negative scale, or a bad shape / group.
inline packed_weights pack_weight_codes(const std::int8_t* codes, const float* scales, index_t n,
                                        index_t k, weight_format format, index_t group = 0) {
  packed_weights pw = detail::gemm_weights_layout(n, k, format, group, "pack_weight_codes");
  ROTQUANT_CHECK(codes != nullptr && scales != nullptr, "pack_weight_codes: null codes or scales");
  std::vector<std::uint8_t> row(static_cast<std::size_t>(k));
  for (index_t r = 0; r < n; ++r) {
    for (index_t i = 0; i < k; ++i) {
      const int c = codes[r * k + i];
      if (pw.fp4()) {
        ROTQUANT_CHECK(c >= 0 && c <= 15, "pack_weight_codes: E2M1 code " << c << " at (" << r
                                                                          << ", " << i
                                                                          << ") is not in 0..15");
        row[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(c);
      } else {
        ROTQUANT_CHECK(c >= -8 && c <= 7, "pack_weight_codes: INT4 code " << c << " at (" << r
                                                                          << ", " << i
                                                                          << ") is not in -8..7");
        row[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(c + 8);
      }
    }
    detail::gemm_store_row(pw, r, row.data());
    for (index_t b = 0; b < pw.blocks; ++b) {
      const float s = scales[r * pw.blocks + b];
      ROTQUANT_CHECK(std::isfinite(s) && s >= 0.0f, "pack_weight_codes: scale "
                                                        << s << " at (" << r << ", " << b
                                                        << ") must be finite and >= 0");
      // FP4 kernels multiply 2 * E2M1 value, so the unit is half the block scale (exact).
      pw.scales[static_cast<std::size_t>(((r / 16) * pw.blocks + b) * 16 + r % 16)] =
          pw.fp4() ? s * 0.5f : s;
    }
  }
  return pw;
}

/// Packs the result of rotquant::quantize (quant/quantizer.hpp) for the GEMM: symmetric INT4
/// per row (-> qsi4cx) or per group (-> qsi4cg, group a multiple of 8), MXFP4, NVFP4. Codes and
/// scales are taken as they are (e.g. GPTQ or clip-searched weights). Throws rotquant::error for
/// any other quantizer (asymmetric weights are not supported by the kernels). O(n k).
inline packed_weights pack_weights(const quantized_matrix& q) {
  const quantizer& z = q.q;
  detail::check_kernel_codes(q, "pack_weights");
  weight_format f = weight_format::qsi4cx;
  index_t group = 0;
  if (z.format == element_format::integer && z.bits == 4 && z.signed_int_codes() &&
      z.gran == granularity::per_row) {
    f = weight_format::qsi4cx;
  } else if (z.format == element_format::integer && z.bits == 4 && z.signed_int_codes() &&
             z.gran == granularity::per_group) {
    f = weight_format::qsi4cg;
    group = q.group;
  } else if (z.format == element_format::mxfp4) {
    f = weight_format::mxfp4;
  } else if (z.format == element_format::nvfp4) {
    f = weight_format::nvfp4;
  } else {
    ROTQUANT_CHECK(false, "pack_weights: quantizer '"
                              << z.name()
                              << "' has no GEMM kernel; accepted: symmetric int4 per_row or "
                                 "per_group, mxfp4, nvfp4");
  }
  std::vector<std::int8_t> codes(static_cast<std::size_t>(q.rows * q.cols));
  for (index_t r = 0; r < q.rows; ++r)
    for (index_t c = 0; c < q.cols; ++c)
      codes[static_cast<std::size_t>(r * q.cols + c)] = static_cast<std::int8_t>(q.code(r, c));
  const index_t block = f == weight_format::qsi4cx   ? q.cols
                        : f == weight_format::qsi4cg ? group
                        : f == weight_format::mxfp4  ? 32
                                                     : 16;
  const index_t blocks = (q.cols + block - 1) / block;
  std::vector<float> scales(static_cast<std::size_t>(q.rows * blocks));
  for (index_t r = 0; r < q.rows; ++r)
    for (index_t b = 0; b < blocks; ++b)
      scales[static_cast<std::size_t>(r * blocks + b)] = q.scales[q.scale_index(r, b * block)];
  packed_weights pw = pack_weight_codes(codes.data(), scales.data(), q.rows, q.cols, f, group);
  pw.tensor_scale = q.tensor_scale;
  return pw;
}

/// Quantizes weights W [n, k] (PyTorch [out, in], row-major, any stride) and packs them into the
/// panel layout of kernels/packed.hpp. Rules (quant/formats.hpp, clip 1): qsi4cx: per output
/// channel s = absmax / 7 (1 if 0), q = clamp(rint(w / s), -8, 7); qsi4cg: the same per group
/// of `group` elements along K (group a positive multiple of 8; the last group may be partial);
/// mxfp4: blocks of 32, E8M0 scales; nvfp4: blocks of 16, UE4M3 block scales times a tensor scale
/// from the amax of all of W. O(n * k). Throws rotquant::error for an empty or non-finite W,
/// k > gemm_max_k, or a bad group.
inline packed_weights pack_weights(const const_matrix_view<float>& W, weight_format format,
                                   index_t group = 0) {
  const index_t n = W.rows(), k = W.cols();
  packed_weights pw = detail::gemm_weights_layout(n, k, format, group, "pack_weights");
  detail::check_input_view(W, "pack_weights");
  check_finite(W, "pack_weights: W");
  if (format == weight_format::nvfp4) {
    float amax = 0.0f;
    for (index_t r = 0; r < n; ++r)
      amax = std::max(amax, absmax(W.data() + r * W.outerStride(), k));
    pw.tensor_scale = detail::nvfp4_tensor_scale(amax);
  }
  std::vector<std::int8_t> q(static_cast<std::size_t>(k));
  std::vector<std::uint8_t> raw(static_cast<std::size_t>(k));
  for (index_t r = 0; r < n; ++r) {
    const float* x = W.data() + r * W.outerStride();
    for (index_t b = 0; b < pw.blocks; ++b) {
      const index_t k0 = b * pw.block, len = std::min(pw.block, k - k0);
      float s = 0.0f;
      std::uint8_t byte = 0;
      if (format == weight_format::mxfp4) {
        detail::qact_mxfp4_block(x + k0, len, q.data() + k0, &byte, &s, raw.data() + k0);
      } else if (format == weight_format::nvfp4) {
        detail::qact_nvfp4_block(x + k0, len, pw.tensor_scale, q.data() + k0, &byte, &s,
                                 raw.data() + k0);
      } else {
        s = detail::qact_sym_scale(absmax(x + k0, len), 1.0f, 7);
        detail::arch::qact_sym_codes(detail::arch::scalar{}, x + k0, len, s, -8, 7, q.data() + k0);
        for (index_t i = k0; i < k0 + len; ++i)
          raw[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(q[i] + 8);
      }
      pw.scales[static_cast<std::size_t>(((r / 16) * pw.blocks + b) * 16 + r % 16)] = s;
    }
    detail::gemm_store_row(pw, r, raw.data());
  }
  return pw;
}

/// Convenience overload for a whole row-major matrix.
inline packed_weights pack_weights(const matrix_f& W, weight_format format, index_t group = 0) {
  return pack_weights(view(W), format, group);
}

/// The weight values the kernels multiply with, [n, k]: integer unit times its scale. O(n k).
inline matrix_f dequantize_weights(const packed_weights& w) {
  w.validate("dequantize_weights");
  matrix_f out(w.n, w.k);
  detail::gemm_args g;
  g.fp4 = w.fp4();
  for (index_t r = 0; r < w.n; ++r) {
    const std::uint8_t* panel = w.data.data() + (r / 16) * w.panel_bytes();
    for (index_t c = 0; c < w.k; ++c) {
      const int u = detail::arch::gemm_weight_unit(g, panel, r % 16, c) - w.offset();
      out(r, c) =
          static_cast<float>(u) *
          w.scales[static_cast<std::size_t>(((r / 16) * w.blocks + c / w.block) * 16 + r % 16)];
    }
  }
  return out;
}

namespace detail {

/// The checks of quantized_matmul (see there). O(1) plus the overlap test.
inline void quantized_matmul_check(const packed_activations& A, const packed_weights& W,
                                   const matrix_view<float>& out, const gemm_epilogue& ep) {
  A.validate("quantized_matmul");
  W.validate("quantized_matmul");
  ROTQUANT_CHECK(A.k == W.k, "quantized_matmul: activations have K = "
                                 << A.k << " but weights have K = " << W.k << "; they must match");
  ROTQUANT_CHECK(out.rows() == A.m && out.cols() == W.n,
                 "quantized_matmul: output is " << out.rows() << " x " << out.cols()
                                                << ", expected " << A.m << " x " << W.n);
  ROTQUANT_CHECK(ep.bias == nullptr || ep.bias_size == W.n,
                 "quantized_matmul: bias has " << ep.bias_size << " entries, expected N = " << W.n);
  detail::gemm_check_output(A, W, out, ep, "quantized_matmul");
  ROTQUANT_CHECK(A.codes.size() == static_cast<std::size_t>(A.m * A.stride) && A.stride == W.kp,
                 "quantized_matmul: packed activations are inconsistent (stride "
                     << A.stride << ", expected " << W.kp << ")");
  ROTQUANT_CHECK(detail::gemm_blocks_pair(A.block, W.block, W.k),
                 "quantized_matmul: activation block " << A.block << " and weight block " << W.block
                                                       << " are incompatible; one must divide "
                                                          "the other");
}

}  // namespace detail

/// out [m, n] = A [m, k] (packed activations) times W^T (packed weights [n, k]), int32-exact
/// integer products per K block and the epilogue of detail/gemm_args.hpp:
///   y = sum over blocks (fma chain) float(int dot) * (sa * sw), out = y (+ bias[n]).
/// The block is the smaller of the activation and weight scale blocks (each must be a multiple
/// of the other, or span all of K). Work is split over N panels (and M blocks) through `ex`
/// (default executor); results do not depend on the ISA path or the thread count.
/// Cost O(m n k) integer multiply-adds. Throws rotquant::error, before any kernel runs, for a
/// packed_activations or packed_weights that breaks its invariants (validate(): fields and
/// buffer sizes, O(1)), mismatched shapes, an incompatible block pair, a bias of the wrong
/// size, or an output that overlaps an input.
inline void quantized_matmul(const packed_activations& A, const packed_weights& W,
                             matrix_view<float> out, const gemm_epilogue& ep = {},
                             executor* ex = nullptr) {
  detail::quantized_matmul_check(A, W, out, ep);
  if (A.m == 0) return;
  detail::gemm_execute(
      A, W, out, ep, ex,
      active_isa() == isa::amx ? detail::gemm_grid::amx : detail::gemm_grid::vnni,
      [](const detail::gemm_args& g, index_t m0, index_t m1, index_t p0, index_t p1) {
        dispatch([&](auto tag) { detail::arch::gemm_range(tag, g, m0, m1, p0, p1); });
      });
}

/// Convenience overload returning out as a new matrix [m, n].
inline matrix_f quantized_matmul(const packed_activations& A, const packed_weights& W,
                                 const gemm_epilogue& ep = {}, executor* ex = nullptr) {
  A.validate("quantized_matmul");
  W.validate("quantized_matmul");
  detail::check_alloc(A.m, W.n, sizeof(float), "quantized_matmul");
  matrix_f out(A.m, W.n);
  quantized_matmul(A, W, view(out), ep, ex);
  return out;
}

namespace detail {

/// quantized_matmul through the AMX tile kernel run on the scalar model of the tile unit
/// (detail/arch/amx/tiles.hpp), every task on the tile kernel whatever its rows: the kernel's
/// tiling, layouts and epilogue, checked on any CPU. Same checks and result as quantized_matmul.
inline matrix_f quantized_matmul_amx_model(const packed_activations& A, const packed_weights& W,
                                           const gemm_epilogue& ep = {}, executor* ex = nullptr) {
  A.validate("quantized_matmul");
  W.validate("quantized_matmul");
  matrix_f out(A.m, W.n);
  quantized_matmul_check(A, W, view(out), ep);
  if (A.m == 0) return out;
  gemm_execute(A, W, view(out), ep, ex, gemm_grid::amx_always,
               [](const gemm_args& g, index_t m0, index_t m1, index_t p0, index_t p1) {
                 arch::gemm_range_amx_model(g, m0, m1, p0, p1);
               });
  return out;
}

}  // namespace detail

/// Quantized linear layer: quantizes X [m, k] (float, per token, `format`) into `scratch`
/// (reused across calls when given), then out = quantized_matmul(., W, ep). See
/// quantize_activations and quantized_matmul for rules, errors and cost.
inline void linear_w4a4(const const_matrix_view<float>& X, const packed_weights& W,
                        matrix_view<float> out, act_format format = act_format::qsi4dx,
                        const gemm_epilogue& ep = {}, executor* ex = nullptr, float clip = 1.0f,
                        index_t group = 0, packed_activations* scratch = nullptr) {
  W.validate("linear_w4a4");
  ROTQUANT_CHECK(X.cols() == W.k,
                 "linear_w4a4: X has " << X.cols() << " columns but weights have K = " << W.k);
  packed_activations local;
  packed_activations& a = scratch ? *scratch : local;
  quantize_activations(X, format, a, clip, group, ex);
  quantized_matmul(a, W, out, ep, ex);
}

/// Convenience overload returning a new [m, n] matrix.
inline matrix_f linear_w4a4(const matrix_f& X, const packed_weights& W,
                            act_format format = act_format::qsi4dx, const gemm_epilogue& ep = {},
                            executor* ex = nullptr) {
  W.validate("linear_w4a4");
  detail::check_alloc(X.rows(), W.n, sizeof(float), "linear_w4a4");
  matrix_f out(X.rows(), W.n);
  linear_w4a4(view(X), W, view(out), format, ep, ex);
  return out;
}

}  // namespace rotquant
