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

#include <cstdint>
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

/// Rounds k up to the packed K granularity.
constexpr index_t gemm_padded_k(index_t k) {
  return (k + gemm_k_chunk - 1) / gemm_k_chunk * gemm_k_chunk;
}

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
};

}  // namespace rotquant
