// SPDX-License-Identifier: Apache-2.0
// kernels/quantize_activations.hpp: per-token activation quantize + pack for the GEMM kernels.
//
// The rules are the fixed shared rules of quant/formats.hpp (INT per token / per group, MXFP4,
// NVFP4): fp32 arithmetic, IEEE division x / s, round half to even. Every ISA path produces the
// same codes, scales and sums bit for bit. Output layout: see kernels/packed.hpp.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <tuple>
#include <type_traits>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/reduce.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/detail/aligned_scratch.hpp"
#include "rotquant/detail/arch/avx512/quantize_activations.hpp"
#include "rotquant/detail/arch/neon/quantize_activations.hpp"
#include "rotquant/kernels/packed.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace rotquant {

/// Options of quantize_activations / quantize_activations_rotated (the positional overloads
/// below forward to the overloads taking this struct).
struct quantize_options {
  /// Clip ratio of the INT formats (the range is clip * absmax, or clip * min/max); > 0.
  float clip = 1.0f;
  /// Group size of qsi4dg (a positive multiple of 8).
  index_t group = 0;
  /// NVFP4 only: a calibrated (static) fp32 tensor scale, e.g. nvfp4_tensor_scale() of the
  /// calibration activations, as engines that calibrate the activations' global scale offline
  /// use. 0 (the default) computes it from the amax of this X, which costs a second pass over
  /// X (and, for the fused rotation, materialising X T). With a static scale, values above its
  /// range saturate (block scale UE4M3 448, element E2M1 6). Must be finite and >= 0.
  float nvfp4_tensor_scale = 0.0f;
  /// Rows are split over this executor (nullptr: the default executor).
  executor* ex = nullptr;
};

namespace detail {

/// Block size (elements per scale) of an activation format for rows of k elements.
inline index_t qact_block(act_format f, index_t k, index_t group) {
  switch (f) {
    case act_format::qsi4dg:
      return group;
    case act_format::mxfp4:
      return 32;
    case act_format::nvfp4:
      return 16;
    default:
      return k > 0 ? k : 1;
  }
}

/// A prefetch of p's cache line into L2 (a hint: no effect on results, never faults).
inline void qact_prefetch_l2(const float* p) {
#if ROTQUANT_GNU_LIKE
  __builtin_prefetch(p, 0, 2);
#else
  (void)p;
#endif
}

/// Throws unless `bits` (a row's qact_abs_bits_max) is the bit pattern of a finite float,
/// naming `fn` and the row.
inline void qact_require_finite(std::uint32_t bits, index_t r, const char* fn) {
  ROTQUANT_CHECK(bits < 0x7F800000u,
                 fn << ": row " << r << " holds NaN or Inf; activations must be finite");
}

/// max |x[0..k)| of row r in one pass (qact_abs_bits_max on path `tag`); throws naming the row
/// (and `fn`) if the row holds NaN or Inf.
template <class Tag>
float qact_checked_amax(Tag tag, const float* x, index_t k, index_t r, const char* fn) {
  const std::uint32_t bits = arch::qact_abs_bits_max(tag, x, k);
  qact_require_finite(bits, r, fn);
  float amax;
  std::memcpy(&amax, &bits, sizeof amax);
  return amax;
}

/// Quantizes one row x (k floats) into row r of `out` (already sized) on arch path `tag`.
template <class Tag>
void qact_row(Tag tag, const float* x, index_t r, float clip, packed_activations& out,
              const float* next = nullptr) {
  const index_t k = out.k, stride = out.stride, nb = out.blocks, bs = out.block;
  constexpr bool fused_check = std::is_base_of_v<arch::avx512, Tag>;  // avx512 and amx
  const bool block_fmt = out.format == act_format::mxfp4 || out.format == act_format::nvfp4;
  // One pass gives the finiteness check and (for per-token INT) the absmax; the AVX-512 block
  // kernels check inside their own amax pass.
  const float amax =
      fused_check && block_fmt ? 0.0f : qact_checked_amax(tag, x, k, r, "quantize_activations");
  std::int8_t* c = out.codes.data() + r * stride;
  float* sc = out.scales.data() + r * nb;
  std::int32_t* su = out.sums.data() + r * nb;
  switch (out.format) {
    case act_format::qsi4dx:
    case act_format::qsi8dx: {
      const int qmax = out.format == act_format::qsi4dx ? 7 : 127;
      const float s = qact_sym_scale(amax, clip, qmax);
      sc[0] = s;
      su[0] = arch::qact_sym_codes(tag, x, k, s, -qmax - 1, qmax, c);
      break;
    }
    case act_format::qsi4dg:
      for (index_t b = 0; b < nb; ++b) {
        const index_t n = std::min(bs, k - b * bs);
        const float s = qact_sym_scale(arch::absmax(tag, x + b * bs, n), clip, 7);
        sc[b] = s;
        su[b] = arch::qact_sym_codes(tag, x + b * bs, n, s, -8, 7, c + b * bs);
      }
      break;
    case act_format::qai4dx:
      su[0] = arch::qact_asym4_row(tag, x, k, clip, c, sc, out.zero_points.data() + r);
      break;
    case act_format::mxfp4:
      if constexpr (fused_check)
        qact_require_finite(
            arch::qact_mxfp4_row(tag, x, k, c, out.scale_bytes.data() + r * nb, sc, su, next), r,
            "quantize_activations");
      else
        arch::qact_mxfp4_row(tag, x, k, c, out.scale_bytes.data() + r * nb, sc, su);
      break;
    case act_format::nvfp4:
      if constexpr (fused_check)
        qact_require_finite(arch::qact_nvfp4_row(tag, x, k, out.tensor_scale, c,
                                                 out.scale_bytes.data() + r * nb, sc, su),
                            r, "quantize_activations");
      else
        arch::qact_nvfp4_row(tag, x, k, out.tensor_scale, c, out.scale_bytes.data() + r * nb, sc,
                             su);
      break;
  }
  for (index_t i = k; i < stride; ++i) c[i] = 0;
}

#if ROTQUANT_HAS_AVX512
/// Per-token symmetric INT rows [lo, hi) on AVX-512 (qsi4dx, qsi8dx): the absmax pass of row
/// r + 1 runs inside row r's quantization loop (qact_sym_codes_and_next_amax), so the memory
/// stream never waits for the arithmetic. Same results and errors as qact_row row by row (a
/// row with NaN or Inf throws before its codes are written).
template <class Tag>
void qact_sym_rows(Tag tag, const const_matrix_view<float>& X, index_t lo, index_t hi, float clip,
                   packed_activations& out) {
  const index_t k = out.k, stride = out.stride;
  const int qmax = out.format == act_format::qsi4dx ? 7 : 127;
  std::uint32_t bits = arch::qact_abs_bits_max(tag, X.data() + lo * X.outerStride(), k);
  for (index_t r = lo; r < hi; ++r) {
    qact_require_finite(bits, r, "quantize_activations");
    float amax;
    std::memcpy(&amax, &bits, sizeof amax);
    const float s = qact_sym_scale(amax, clip, qmax);
    const float* x = X.data() + r * X.outerStride();
    std::int8_t* c = out.codes.data() + r * stride;
    out.scales[static_cast<std::size_t>(r)] = s;
    if (r + 1 < hi)
      out.sums[static_cast<std::size_t>(r)] = arch::qact_sym_codes_and_next_amax(
          tag, x, x + X.outerStride(), k, s, -qmax - 1, qmax, c, &bits);
    else
      out.sums[static_cast<std::size_t>(r)] =
          arch::qact_sym_codes(tag, x, k, s, -qmax - 1, qmax, c);
    for (index_t i = k; i < stride; ++i) c[i] = 0;
  }
}
#endif

/// Throws rotquant::error naming `fn` unless the input view X is well formed (data for a
/// non-empty shape, a row stride >= its columns when it has several rows) and shares no memory
/// with the buffers of `out`, which are resized (and so may move) before X is read. O(1).
inline void qact_check_input(const const_matrix_view<float>& X, const packed_activations& out,
                             const char* fn) {
  check_input_view(X, fn);
  const char* hit =
      first_overlap(X.data(), view_bytes(X), "codes", out.codes, "scales", out.scales, "sums",
                    out.sums, "zero_points", out.zero_points, "scale_bytes", out.scale_bytes);
  ROTQUANT_CHECK(hit == nullptr, fn << ": X overlaps out." << (hit ? hit : "")
                                    << "; the input must not alias the output");
}

/// Validates and sizes `out` for an m x k input (no allocation when capacity suffices).
inline void qact_prepare(index_t m, index_t k, act_format format, const quantize_options& opt,
                         packed_activations& out) {
  const float clip = opt.clip;
  const index_t group = opt.group;
  ROTQUANT_CHECK(k >= 1, "quantize_activations: need at least one column, got " << k);
  const auto f = static_cast<int>(format);
  ROTQUANT_CHECK(f >= 0 && f <= 5, "quantize_activations: activation format "
                                       << f
                                       << " is not one of qsi4dx, qai4dx, qsi4dg, qsi8dx, "
                                          "mxfp4, nvfp4");
  ROTQUANT_CHECK(std::isfinite(opt.nvfp4_tensor_scale) && opt.nvfp4_tensor_scale >= 0.0f,
                 "quantize_activations: nvfp4_tensor_scale must be finite and >= 0 (0 = from "
                 "the amax of X), got "
                     << opt.nvfp4_tensor_scale);
  ROTQUANT_CHECK(std::isfinite(clip) && clip > 0.0f,
                 "quantize_activations: clip ratio must be finite and > 0, got " << clip);
  if (format == act_format::qsi4dg)
    ROTQUANT_CHECK(group >= 8 && group % 8 == 0,
                   "quantize_activations: qsi4dg group must be a positive multiple of 8 (e.g. "
                   "32, 64, 128), got "
                       << group);
  out.format = format;
  out.m = m;
  out.k = k;
  out.stride = gemm_padded_k(k);
  out.block = qact_block(format, k, group);
  out.blocks = (k + out.block - 1) / out.block;
  out.tensor_scale = 1.0f;
  out.codes.resize(static_cast<std::size_t>(m * out.stride));
  out.scales.resize(static_cast<std::size_t>(m * out.blocks));
  out.sums.resize(static_cast<std::size_t>(m * out.blocks));
  out.zero_points.assign(format == act_format::qai4dx ? static_cast<std::size_t>(m) : 0, 0);
  const bool block_fmt = format == act_format::mxfp4 || format == act_format::nvfp4;
  out.scale_bytes.resize(block_fmt ? static_cast<std::size_t>(m * out.blocks) : 0);
}

/// NVFP4 tensor scale of the rows of X (checks finiteness).
inline float qact_nvfp4_ts(const const_matrix_view<float>& X, executor* ex) {
  const index_t m = X.rows(), k = X.cols();
  std::vector<float> row_amax(static_cast<std::size_t>(m));
  dispatch([&](auto tag) {
    parallel_for(
        0, m, std::max<index_t>(1, 16384 / k),
        [&](index_t lo, index_t hi) {
          for (index_t r = lo; r < hi; ++r) {
            row_amax[static_cast<std::size_t>(r)] = qact_checked_amax(
                tag, X.data() + r * X.outerStride(), k, r, "quantize_activations");
          }
        },
        ex);
  });
  float amax = 0.0f;
  for (float a : row_amax) amax = std::max(amax, a);
  return nvfp4_tensor_scale(amax);
}

}  // namespace detail

/// Quantizes float activations X [m, k] (row = token, any row stride) into the GEMM layout of
/// kernels/packed.hpp, reusing `out`'s storage when it is large enough (no allocation on
/// repeated calls with the same shape).
///
/// Formats and rules (quant/formats.hpp, fixed): qsi4dx / qsi8dx: s = absmax * clip / qmax
/// (1 if 0), q = clamp(rint(x / s), qmin, qmax); qsi4dg: the same per group of `group` columns
/// (group a multiple of 8, the last group may be partial); qai4dx: QuaRot asymmetric (zero forced
/// in), stored as q - z; mxfp4 (blocks of 32) and nvfp4 (blocks of 16, tensor scale from the
/// amax of all of X, or opt.nvfp4_tensor_scale when given: one pass). `clip` applies to the INT
/// formats only. Every ISA path gives identical bits; rows are split over `ex` (default executor)
/// and the result does not depend on the thread count. O(m * k). Throws rotquant::error for k < 1,
/// a bad clip, a bad group, or a non-finite element.
inline void quantize_activations(const const_matrix_view<float>& X, act_format format,
                                 packed_activations& out, const quantize_options& opt) {
  const index_t m = X.rows(), k = X.cols();
  detail::qact_check_input(X, out, "quantize_activations");
  detail::qact_prepare(m, k, format, opt, out);
  if (m == 0) return;
  // NVFP4 with a dynamic tensor scale reads X twice: first for its amax (front to back), then
  // to quantize. The second pass takes blocks of rows (about 256 KiB each) from the last block
  // to the first, each front to back, so it starts on the rows the first pass read last, which
  // a large last-level cache still holds. Rows are independent, so the order changes no bits.
  const bool second_pass = format == act_format::nvfp4 && !(opt.nvfp4_tensor_scale > 0.0f);
  if (format == act_format::nvfp4)
    out.tensor_scale = second_pass ? detail::qact_nvfp4_ts(X, opt.ex) : opt.nvfp4_tensor_scale;
  const index_t grain = std::max<index_t>(1, (second_pass ? 65536 : 16384) / k);
  dispatch([&](auto tag) {
    parallel_for(
        0, m, grain,
        [&](index_t lo, index_t hi) {
          if (second_pass) std::tie(lo, hi) = std::make_pair(m - hi, m - lo);
#if ROTQUANT_HAS_AVX512
          if constexpr (std::is_base_of_v<detail::arch::avx512, decltype(tag)>) {
            if (format == act_format::qsi4dx || format == act_format::qsi8dx) {
              detail::qact_sym_rows(tag, X, lo, hi, opt.clip, out);
              return;
            }
          }
#endif
          for (index_t r = lo; r < hi; ++r)
            detail::qact_row(tag, X.data() + r * X.outerStride(), r, opt.clip, out,
                             r + 1 < hi ? X.data() + (r + 1) * X.outerStride() : nullptr);
        },
        opt.ex);
  });
}

/// Positional form of the above: quantize_options{clip, group, 0, ex}.
inline void quantize_activations(const const_matrix_view<float>& X, act_format format,
                                 packed_activations& out, float clip = 1.0f, index_t group = 0,
                                 executor* ex = nullptr) {
  quantize_options opt;
  opt.clip = clip;
  opt.group = group;
  opt.ex = ex;
  quantize_activations(X, format, out, opt);
}

/// Fused online rotation + quantization: quantizes X T (each row, or each block of
/// `rotation.size()` consecutive columns of a row, mapped by rotation.apply_rows) without
/// writing the rotated matrix: a few rows at a time are copied into a small buffer that stays in
/// L1/L2, rotated in place, then quantized. `Rotation` is any type with `index_t size() const`
/// and `apply_rows(float* data, index_t rows, index_t stride) const` (e.g. hadamard_plan).
/// Results equal rotation.apply_rows on a copy of X followed by quantize_activations, bit for
/// bit. NVFP4 with no static tensor scale needs the amax of all of X T first, so it materialises
/// X T (m * k floats); with opt.nvfp4_tensor_scale it is fused like the other formats.
/// Throws rotquant::error if rotation.size() does not divide k, plus the errors above.
template <class Rotation>
void quantize_activations_rotated(const const_matrix_view<float>& X, const Rotation& rotation,
                                  act_format format, packed_activations& out,
                                  const quantize_options& opt) {
  const index_t m = X.rows(), k = X.cols(), n = rotation.size();
  ROTQUANT_CHECK(n >= 1 && k % n == 0, "quantize_activations_rotated: rotation size "
                                           << n << " must divide the row length " << k);
  detail::qact_check_input(X, out, "quantize_activations_rotated");
  detail::qact_prepare(m, k, format, opt, out);
  if (m == 0) return;
  if (format == act_format::nvfp4 && !(opt.nvfp4_tensor_scale > 0.0f)) {
    matrix_f xt = X;
    rotation.apply_rows(xt.data(), m * (k / n), n);
    quantize_activations(view(static_cast<const matrix_f&>(xt)), format, out, opt);
    return;
  }
  if (format == act_format::nvfp4) out.tensor_scale = opt.nvfp4_tensor_scale;
  // Rows per tile: about 16 KiB of floats, so the copy, the rotation and the quantization all
  // work on L1-resident rows (measured faster than 64 KiB tiles on Zen 4).
  const index_t tile = std::max<index_t>(1, 4096 / k);
  dispatch([&](auto tag) {
    parallel_for(
        0, m, tile,
        [&](index_t lo, index_t hi) {
          // One scratch buffer per thread, reused across tiles and calls, on a 64-byte line (a
          // 16-byte aligned one splits every AVX-512 access of the rotation and the quantizer
          // across two lines: 1.2x slower on Sapphire Rapids).
          thread_local detail::aligned_scratch<float> scratch;
          float* buf = scratch.reserve((hi - lo) * k);
          for (index_t r = lo; r < hi; ++r)
            std::copy(X.data() + r * X.outerStride(), X.data() + r * X.outerStride() + k,
                      buf + (r - lo) * k);
          // Ask for the next tile's rows (into L2) while this one is rotated and quantized in
          // L1, so the memory stream runs under the arithmetic.
          if (hi < m)
            for (index_t r = hi; r < std::min(m, hi + (hi - lo)); ++r)
              for (index_t i = 0; i < k; i += 16)
                detail::qact_prefetch_l2(X.data() + r * X.outerStride() + i);
          rotation.apply_rows(buf, (hi - lo) * (k / n), n);
          for (index_t r = lo; r < hi; ++r)
            detail::qact_row(tag, buf + (r - lo) * k, r, opt.clip, out);
        },
        opt.ex);
  });
}

/// Positional form of the above: quantize_options{clip, group, 0, ex}.
template <class Rotation>
void quantize_activations_rotated(const const_matrix_view<float>& X, const Rotation& rotation,
                                  act_format format, packed_activations& out, float clip = 1.0f,
                                  index_t group = 0, executor* ex = nullptr) {
  quantize_options opt;
  opt.clip = clip;
  opt.group = group;
  opt.ex = ex;
  quantize_activations_rotated(X, rotation, format, out, opt);
}

/// Overloads for a mutable view (same contract).
inline void quantize_activations(const matrix_view<float>& X, act_format format,
                                 packed_activations& out, const quantize_options& opt) {
  quantize_activations(
      make_view(static_cast<const float*>(X.data()), X.rows(), X.cols(), X.outerStride()), format,
      out, opt);
}
inline void quantize_activations(const matrix_view<float>& X, act_format format,
                                 packed_activations& out, float clip = 1.0f, index_t group = 0,
                                 executor* ex = nullptr) {
  quantize_activations(
      make_view(static_cast<const float*>(X.data()), X.rows(), X.cols(), X.outerStride()), format,
      out, clip, group, ex);
}

/// Convenience overload returning a new packed_activations (see above).
inline packed_activations quantize_activations(const matrix_f& X, act_format format,
                                               float clip = 1.0f, index_t group = 0,
                                               executor* ex = nullptr) {
  packed_activations out;
  quantize_activations(view(X), format, out, clip, group, ex);
  return out;
}

/// Per-token FP4 E2M1 quantize + pack on the best SIMD path: per row s = absmax * clip / 6
/// (1 if 0), code = e2m1_encode(x / s) with IEEE division, codes packed two per byte (element
/// 2i in the low nibble). The result equals quantize(quantizer::fp4(fp4_kind::e2m1,
/// granularity::per_row, 0, clip), X) bit for bit (codes and scales) on every ISA path and
/// thread count; `out`'s storage is reused when large enough; rows are split over `ex` (default
/// executor). O(m * k). Throws rotquant::error for a non-finite element (naming its row), a clip
/// that is not finite and > 0, or a scale that overflows.
inline void quantize_fp4_e2m1_rows(const const_matrix_view<float>& X, quantized_matrix& out,
                                   float clip = 1.0f, executor* ex = nullptr) {
  detail::check_input_view(X, "quantize_fp4_e2m1_rows");
  const char* hit = detail::first_overlap(X.data(), detail::view_bytes(X), "codes", out.codes,
                                          "scales", out.scales, "zero_points", out.zero_points,
                                          "scale_codes", out.scale_codes);
  ROTQUANT_CHECK(hit == nullptr, "quantize_fp4_e2m1_rows: X overlaps out."
                                     << (hit ? hit : "")
                                     << "; the input must not alias the output");
  out.q = quantizer::fp4(fp4_kind::e2m1, granularity::per_row, 0, clip);
  out.q.validate(X.rows(), X.cols());
  const index_t m = X.rows(), k = X.cols();
  out.rows = m;
  out.cols = k;
  out.group = out.q.group_length(k);
  out.groups_per_row = out.q.groups_per_row(k);
  out.row_bytes = packed_nibble_bytes(k);
  out.codes.resize(static_cast<std::size_t>(m * out.row_bytes));
  out.scales.assign(static_cast<std::size_t>(m * out.groups_per_row), 1.0f);
  out.zero_points.clear();
  out.scale_codes.clear();
  out.tensor_scale = 1.0f;
  if (m == 0 || k == 0) return;
  dispatch([&](auto tag) {
    parallel_for(
        0, m, std::max<index_t>(1, 16384 / k),
        [&](index_t lo, index_t hi) {
          for (index_t r = lo; r < hi; ++r) {
            const float* x = X.data() + r * X.outerStride();
            // The scale by the general quantizer's own rule (absmax * clip / 6, 1 if 0,
            // overflow rejected), so the two cannot drift apart.
            detail::range_stats st;
            st.amax = detail::qact_checked_amax(tag, x, k, r, "quantize_fp4_e2m1_rows");
            float s;
            try {
              s = detail::params_from_stats_unchecked(out.q, st, clip, false, false).scale;
            } catch (const error& e) {
              throw error(std::string("quantize_fp4_e2m1_rows: row ") + std::to_string(r) + ": " +
                          e.what());
            }
            out.scales[static_cast<std::size_t>(r)] = s;
            detail::arch::qact_fp4_row(tag, x, k, s, out.codes.data() + r * out.row_bytes);
          }
        },
        ex);
  });
}
/// Returning form of the above.
inline quantized_matrix quantize_fp4_e2m1_rows(const const_matrix_view<float>& X, float clip = 1.0f,
                                               executor* ex = nullptr) {
  quantized_matrix out;
  quantize_fp4_e2m1_rows(X, out, clip, ex);
  return out;
}
inline quantized_matrix quantize_fp4_e2m1_rows(const matrix_f& X, float clip = 1.0f,
                                               executor* ex = nullptr) {
  return quantize_fp4_e2m1_rows(view(X), clip, ex);
}

/// Dequantizes packed activations back to floats: x^[r, c] = code * scale of its block (the
/// value the GEMM multiplies with). O(m * k). Throws rotquant::error for a packed_activations
/// that breaks its invariants (packed_activations::validate).
inline matrix_f dequantize_activations(const packed_activations& a) {
  a.validate("dequantize_activations");
  matrix_f x(a.m, a.k);
  for (index_t r = 0; r < a.m; ++r)
    for (index_t c = 0; c < a.k; ++c)
      x(r, c) = static_cast<float>(a.codes[static_cast<std::size_t>(r * a.stride + c)]) *
                a.scales[static_cast<std::size_t>(r * a.blocks + c / a.block)];
  return x;
}

}  // namespace rotquant
