// SPDX-License-Identifier: Apache-2.0
// kernels/packed.hpp: packed weight / activation formats consumed by the W4A4 GEMM kernels.
//
// Readers' note. Every format is reduced to the same integer dot-product unit:
//   * activations become int8 "effective codes" a[m, k] (INT4 sym: q in [-8, 7]; INT4 asym: q - z
//     in [-15, 15]; INT8 sym: q in [-128, 127]; FP4: 2 * E2M1 value in [-12, 12]) with one float
//     multiplier per (row, block) and the int32 sum of the codes of each (row, block);
//   * weights become 4-bit nibbles in a panel layout of 16 output columns (see below) with one
//     float multiplier per (column, block): INT4 stored offset-binary (w + 8 in 0..15), FP4 as
//     the E2M1 code, widened in registers to 2 * value + 12 in 0..24.
// The kernels multiply the UNSIGNED weight byte u = w + off (off = 8 or 12) with the SIGNED
// activation byte, so sum_k u * a = sum_k w * a + off * sum_k a: the exact integer dot product
// is recovered by subtracting off * (code sum of the row block), precomputed when activations are
// quantized. This is the operand order of vpdpbusd (u8 x s8) and keeps every vpmaddubsw pair sum
// tiny (see detail/arch/avx2/gemm.hpp).
//
// Weight panel layout: columns are grouped in panels of 16; K is padded to kp = round_up(K, 8)
// (padding codes are the zero weight; padding activations are 0). For panel p and k-chunk c
// (8 values of k), 64 bytes: byte 4 * j + b (j = column in panel, b = 0..3) holds
// w[16p + j][8c + b] in its low nibble and w[16p + j][8c + 4 + b] in its high nibble. So one
// 64-byte load, masked, gives 16 lanes x 4 consecutive k values (the vpdpbusd lane shape), and
// the shifted copy the next 4 k values. Columns past N in the last panel hold zero weights and
// zero scales.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// Weight formats (KleidiAI-style names): qsi4cx = symmetric INT4 per output channel;
/// qsi4cg = symmetric INT4 per group of G along K; mxfp4 = E2M1 in blocks of 32 with E8M0
/// scales; nvfp4 = E2M1 in blocks of 16 with UE4M3 scales and an fp32 tensor scale.
enum class weight_format { qsi4cx, qsi4cg, mxfp4, nvfp4 };

/// Activation formats (per token = per row): qsi4dx symmetric INT4, qai4dx asymmetric INT4
/// (QuaRot rule, zero forced in), qsi4dg symmetric INT4 per group of G, qsi8dx symmetric INT8
/// (W4A8), mxfp4, nvfp4 (tensor scale from the amax of the whole call's activations).
enum class act_format { qsi4dx, qai4dx, qsi4dg, qsi8dx, mxfp4, nvfp4 };

inline const char* to_string(weight_format f) {
  switch (f) {
    case weight_format::qsi4cx:
      return "qsi4cx";
    case weight_format::qsi4cg:
      return "qsi4cg";
    case weight_format::mxfp4:
      return "mxfp4";
    case weight_format::nvfp4:
      return "nvfp4";
  }
  return "unknown";
}

inline const char* to_string(act_format f) {
  switch (f) {
    case act_format::qsi4dx:
      return "qsi4dx";
    case act_format::qai4dx:
      return "qai4dx";
    case act_format::qsi4dg:
      return "qsi4dg";
    case act_format::qsi8dx:
      return "qsi8dx";
    case act_format::mxfp4:
      return "mxfp4";
    case act_format::nvfp4:
      return "nvfp4";
  }
  return "unknown";
}

/// Columns per weight panel.
constexpr index_t gemm_panel_cols = 16;
/// K granularity of the packed layouts (one 64-byte weight chunk covers 8 k values).
constexpr index_t gemm_k_chunk = 8;
/// Largest K the kernels accept: |u * a| <= 24 * 128 per k, so int32 is exact up to
/// floor(2^31 / 3072) = 699,050 (docs/testing.md 3.1).
constexpr index_t gemm_max_k = 699050;

/// Rounds k up to the packed K granularity.
constexpr index_t gemm_padded_k(index_t k) {
  return (k + gemm_k_chunk - 1) / gemm_k_chunk * gemm_k_chunk;
}

namespace detail {

/// ceil(a / b) for a >= 0, b >= 1, without the overflow of (a + b - 1) / b.
constexpr index_t packed_ceil_div(index_t a, index_t b) {
  return a / b + (a % b != 0 ? 1 : 0);
}

/// True when size == a * b exactly (a, b >= 0), decided without forming the product. O(1).
inline bool packed_size_is(std::size_t size, index_t a, index_t b) {
  if (a < 0 || b < 0) return false;
  if (a == 0 || b == 0) return size == 0;
  const auto ub = static_cast<std::size_t>(b);
  return size % ub == 0 && size / ub == static_cast<std::size_t>(a);
}

/// True when the byte ranges [a, a + an) and [b, b + bn) share a byte (empty ranges never do).
inline bool ranges_overlap(const void* a, std::size_t an, const void* b, std::size_t bn) {
  if (an == 0 || bn == 0 || a == nullptr || b == nullptr) return false;
  const auto x = reinterpret_cast<std::uintptr_t>(a), y = reinterpret_cast<std::uintptr_t>(b);
  return x < y + bn && y < x + an;
}

/// Bytes a row-major view spans: (rows - 1) * stride + cols elements (0 when empty).
template <class V>
std::size_t view_bytes(const V& v) {
  if (v.rows() == 0 || v.cols() == 0) return 0;
  return static_cast<std::size_t>((v.rows() - 1) * v.outerStride() + v.cols()) *
         sizeof(typename V::Scalar);
}

/// The name of the first (name, vector) pair whose storage overlaps [p, p + n), or nullptr.
inline const char* first_overlap(const void*, std::size_t) {
  return nullptr;
}
template <class T, class... Rest>
const char* first_overlap(const void* p, std::size_t n, const char* name, const std::vector<T>& v,
                          const Rest&... rest) {
  if (ranges_overlap(p, n, v.data(), v.size() * sizeof(T))) return name;
  return first_overlap(p, n, rest...);
}

/// Throws rotquant::error naming `fn` unless the input view X is well formed (data for a
/// non-empty shape, a row stride >= its columns when it has several rows). O(1).
template <class V>
void check_input_view(const V& X, const char* fn) {
  ROTQUANT_CHECK(X.data() != nullptr || X.size() == 0,
                 fn << ": X has null data for " << X.rows() << " x " << X.cols());
  ROTQUANT_CHECK(X.rows() <= 1 || X.outerStride() >= X.cols(),
                 fn << ": X row stride " << X.outerStride() << " is smaller than its " << X.cols()
                    << " columns");
}

}  // namespace detail

/// Throws rotquant::error "<fn>: <what>.<field> = <value> ..., must be <rule>" unless ok.
#define ROTQUANT_PACKED_FIELD(ok, fn, what, field, value, rule) \
  ROTQUANT_CHECK(ok, fn << ": " << what << "." << field << " = " << value << ", must be " << rule)

/// Weights packed once for the GEMM (see the file comment for the layout).
struct packed_weights {
  weight_format format = weight_format::qsi4cx;
  index_t n = 0;              ///< output channels (rows of W)
  index_t k = 0;              ///< input features (columns of W)
  index_t kp = 0;             ///< k rounded up to 8
  index_t block = 0;          ///< elements of K per scale (k for qsi4cx)
  index_t blocks = 0;         ///< scales per column: ceil(k / block)
  index_t panels = 0;         ///< ceil(n / 16)
  float tensor_scale = 1.0f;  ///< NVFP4 tensor scale (1 otherwise; already folded into scales)
  /// panels * (kp / 8) * 64 bytes, panel-major.
  std::vector<std::uint8_t> data;
  /// Multiplier of the integer weight unit, [panel][block][16] (padding columns 0).
  /// INT4: the scale s; FP4: block scale / 2 (the integer unit is 2 * E2M1 value).
  std::vector<float> scales;
  /// Bytes of one panel.
  index_t panel_bytes() const { return kp / gemm_k_chunk * 64; }
  /// True for E2M1 element codes (FP4 formats).
  bool fp4() const { return format == weight_format::mxfp4 || format == weight_format::nvfp4; }
  /// Offset added to each integer weight unit in the kernels (u = w + offset, u >= 0).
  int offset() const { return fp4() ? 12 : 8; }

  /// Throws rotquant::error naming `fn`, the field, its value and the rule unless every
  /// invariant the kernels rely on holds: a known format, 1 <= n, 1 <= k <= gemm_max_k,
  /// kp = round_up(k, 8), the format's block (qsi4cx: k; qsi4cg: a positive multiple of 8;
  /// mxfp4: 32; nvfp4: 16), blocks = ceil(k / block), panels = ceil(n / 16), data of
  /// panels * panel_bytes() bytes, scales of panels * blocks * 16 floats, a finite tensor
  /// scale. Reads sizes only: O(1). Every entry point taking a packed_weights calls it first.
  void validate(const char* fn) const {
    const char* w = "packed_weights";
    const auto f = static_cast<int>(format);
    ROTQUANT_PACKED_FIELD(f >= 0 && f <= 3, fn, w, "format", f,
                          "one of qsi4cx, qsi4cg, mxfp4, nvfp4 (0..3)");
    ROTQUANT_PACKED_FIELD(n >= 1, fn, w, "n", n, ">= 1");
    ROTQUANT_PACKED_FIELD(k >= 1 && k <= gemm_max_k, fn, w, "k", k,
                          "in 1.." << gemm_max_k << " (the int32-exact bound)");
    ROTQUANT_PACKED_FIELD(kp == gemm_padded_k(k), fn, w, "kp", kp,
                          gemm_padded_k(k) << " (k = " << k << " rounded up to 8)");
    switch (format) {
      case weight_format::qsi4cx:
        ROTQUANT_PACKED_FIELD(block == k, fn, w, "block", block, "k = " << k << " for qsi4cx");
        break;
      case weight_format::qsi4cg:
        ROTQUANT_PACKED_FIELD(block >= 8 && block % 8 == 0, fn, w, "block", block,
                              "a positive multiple of 8 for qsi4cg");
        break;
      case weight_format::mxfp4:
        ROTQUANT_PACKED_FIELD(block == 32, fn, w, "block", block, "32 for mxfp4");
        break;
      case weight_format::nvfp4:
        ROTQUANT_PACKED_FIELD(block == 16, fn, w, "block", block, "16 for nvfp4");
        break;
    }
    const index_t want_blocks = detail::packed_ceil_div(k, block);
    ROTQUANT_PACKED_FIELD(
        blocks == want_blocks, fn, w, "blocks", blocks,
        want_blocks << " = ceil(k / block) = ceil(" << k << " / " << block << ")");
    const index_t want_panels = detail::packed_ceil_div(n, gemm_panel_cols);
    ROTQUANT_PACKED_FIELD(panels == want_panels, fn, w, "panels", panels,
                          want_panels << " = ceil(n / 16) for n = " << n);
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(data.size(), panels, panel_bytes()), fn, w,
                          "data.size()", data.size(),
                          "panels * panel_bytes() = " << panels << " * " << panel_bytes());
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(scales.size(), panels, blocks * gemm_panel_cols),
                          fn, w, "scales.size()", scales.size(),
                          "panels * blocks * 16 = " << panels << " * " << blocks << " * 16");
    ROTQUANT_PACKED_FIELD(std::isfinite(tensor_scale), fn, w, "tensor_scale", tensor_scale,
                          "finite");
  }
};

/// Activations quantized per call into the kernels' layout.
struct packed_activations {
  act_format format = act_format::qsi4dx;
  index_t m = 0;              ///< rows (tokens)
  index_t k = 0;              ///< columns
  index_t stride = 0;         ///< bytes between rows of `codes`: round_up(k, 8)
  index_t block = 0;          ///< elements per scale (k for per-token formats)
  index_t blocks = 0;         ///< scales per row: ceil(k / block)
  float tensor_scale = 1.0f;  ///< NVFP4 tensor scale (1 otherwise)
  /// Effective signed integer codes, m x stride, padding 0 (see the file comment).
  std::vector<std::int8_t> codes;
  /// Float multiplier of the codes, m x blocks (FP4: block scale / 2).
  std::vector<float> scales;
  /// Sum of the codes of each (row, block), m x blocks.
  std::vector<std::int32_t> sums;
  /// Zero points (qai4dx only, m entries): stored code = q - z with q in 0..15.
  std::vector<std::int32_t> zero_points;
  /// Raw scale bytes for block formats (E8M0 or UE4M3), m x blocks; empty otherwise.
  std::vector<std::uint8_t> scale_bytes;

  /// Throws rotquant::error naming `fn`, the field, its value and the rule unless every
  /// invariant the kernels and dequantize_activations rely on holds: a known format, m >= 0,
  /// k >= 1, stride = round_up(k, 8), the format's block (per-token formats: k; qsi4dg: a
  /// positive multiple of 8; mxfp4: 32; nvfp4: 16), blocks = ceil(k / block), codes of
  /// m * stride, scales and sums of m * blocks, zero_points of m (qai4dx) or none,
  /// scale_bytes of m * blocks (mxfp4, nvfp4) or none, a finite tensor scale. Reads sizes
  /// only: O(1). Every entry point taking a packed_activations as input calls it first.
  void validate(const char* fn) const {
    const char* a = "packed_activations";
    const auto f = static_cast<int>(format);
    ROTQUANT_PACKED_FIELD(f >= 0 && f <= 5, fn, a, "format", f,
                          "one of qsi4dx, qai4dx, qsi4dg, qsi8dx, mxfp4, nvfp4 (0..5)");
    ROTQUANT_PACKED_FIELD(m >= 0, fn, a, "m", m, ">= 0");
    ROTQUANT_PACKED_FIELD(k >= 1 && k <= std::numeric_limits<index_t>::max() / 2, fn, a, "k", k,
                          ">= 1");
    ROTQUANT_PACKED_FIELD(stride == gemm_padded_k(k), fn, a, "stride", stride,
                          gemm_padded_k(k) << " (k = " << k << " rounded up to 8)");
    switch (format) {
      case act_format::qsi4dx:
      case act_format::qai4dx:
      case act_format::qsi8dx:
        ROTQUANT_PACKED_FIELD(block == k, fn, a, "block", block,
                              "k = " << k << " for the per-token format " << to_string(format));
        break;
      case act_format::qsi4dg:
        ROTQUANT_PACKED_FIELD(block >= 8 && block % 8 == 0, fn, a, "block", block,
                              "a positive multiple of 8 for qsi4dg");
        break;
      case act_format::mxfp4:
        ROTQUANT_PACKED_FIELD(block == 32, fn, a, "block", block, "32 for mxfp4");
        break;
      case act_format::nvfp4:
        ROTQUANT_PACKED_FIELD(block == 16, fn, a, "block", block, "16 for nvfp4");
        break;
    }
    const index_t want_blocks = detail::packed_ceil_div(k, block);
    ROTQUANT_PACKED_FIELD(
        blocks == want_blocks, fn, a, "blocks", blocks,
        want_blocks << " = ceil(k / block) = ceil(" << k << " / " << block << ")");
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(codes.size(), m, stride), fn, a, "codes.size()",
                          codes.size(), "m * stride = " << m << " * " << stride);
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(scales.size(), m, blocks), fn, a, "scales.size()",
                          scales.size(), "m * blocks = " << m << " * " << blocks);
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(sums.size(), m, blocks), fn, a, "sums.size()",
                          sums.size(), "m * blocks = " << m << " * " << blocks);
    const bool zp = format == act_format::qai4dx;
    ROTQUANT_PACKED_FIELD(detail::packed_size_is(zero_points.size(), zp ? m : 0, 1), fn, a,
                          "zero_points.size()", zero_points.size(),
                          (zp ? "m = " : "0 for ") << (zp ? std::to_string(m) : to_string(format)));
    const bool sb = format == act_format::mxfp4 || format == act_format::nvfp4;
    ROTQUANT_PACKED_FIELD(
        detail::packed_size_is(scale_bytes.size(), sb ? m : 0, blocks), fn, a, "scale_bytes.size()",
        scale_bytes.size(),
        (sb ? "m * blocks = " : "0 for ")
            << (sb ? std::to_string(m) + " * " + std::to_string(blocks) : to_string(format)));
    ROTQUANT_PACKED_FIELD(std::isfinite(tensor_scale), fn, a, "tensor_scale", tensor_scale,
                          "finite");
  }
};

}  // namespace rotquant

#undef ROTQUANT_PACKED_FIELD
