// SPDX-License-Identifier: Apache-2.0
// calibration.hpp: the presets run on one layer, behind a light interface. The pipeline headers
// (presets, DFRot, DuQuant, HQ-DiT search, kernels) are compiled once, in calibration.cpp, and
// shared by rotquant-calibrate and rotquant-inspect; the tools themselves only see transforms,
// reports and plain vectors.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rotquant/core/matrix.hpp"
#include "rotquant/pipeline/report.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rqtool {

using rotquant::index_t;
using rotquant::matrix_f;

/// The quantized weight W M^-T as quantize() stores it (rotquant::quantized_matrix): codes
/// row-major with `row_bytes` bytes per row (4-bit formats: element c in nibble c, element 2i
/// in the low nibble of byte i; signed INT as two's complement), one scale (and zero point /
/// scale byte, where the format has them) per (row, group): [rows, groups_per_row], or a single
/// entry for per-tensor quantization.
struct weight_codes {
  index_t rows = 0, cols = 0, row_bytes = 0, group = 0, groups_per_row = 0;
  std::vector<std::uint8_t> codes;
  std::vector<float> scales;
  std::vector<std::int32_t> zero_points;  ///< asymmetric formats only
  std::vector<std::uint8_t> scale_codes;  ///< E8M0 / UE4M3 block scales (MXFP4, NVFP4)
  float tensor_scale = 1.0f;              ///< NVFP4 fp32 tensor scale (1 otherwise)
};

/// What one calibrated layer gives the tools.
struct calibrated_layer {
  rotquant::transform online{1};                       ///< M: applied to X online, folded into W
  std::string weight_quantizer, activation_quantizer;  ///< quantizer::name()
  bool has_kernel = false;                             ///< forward runs the packed W4A4 kernels
  std::string packed_format;       ///< the kernels' weight format (has_kernel only)
  weight_codes codes;              ///< the quantized weight (has_kernel only)
  matrix_f weight_dequantized;     ///< the fake-quantized weight [out, C] (without a kernel)
  rotquant::linear_report report;  ///< quantized_linear::report(X) (when asked for)
  std::vector<double> token_mse;   ///< output MSE per token vs X W^T (when asked for)
};

/// How calibrate_layer quantizes the (transformed) weight: round to nearest, or GPTQ
/// (quant/gptq.hpp) with the Hessian of the layer's calibration activations after the preset's
/// transform (QuaRot's fasterquant defaults: block 128, percdamp 0.01, no act-order).
inline const std::vector<std::string>& weight_methods() {
  static const std::vector<std::string> names = {"rtn", "gptq"};
  return names;
}

/// "rtn|gptq": the accepted weight methods, for messages and --help.
inline std::string weight_method_list() {
  std::string s;
  for (const auto& n : weight_methods()) s += (s.empty() ? "" : "|") + n;
  return s;
}

/// What calibrate_layer computes besides the calibration itself.
struct calibrate_options {
  /// GPTQ weights (weight_methods(): "gptq"), on the same quantizer as the preset's
  /// round-to-nearest form; false: round to nearest ("rtn").
  bool gptq = false;
  bool report = true;            ///< fill calibrated_layer::report (on the calibration X)
  bool token_errors = false;     ///< fill calibrated_layer::token_mse
  double massive_factor = 20.0;  ///< massive token: max |x| above this times the median token's
};

/// Calibrates preset `preset` (layers.hpp: preset_names()) on X [T, C] and W [out, C]; seed
/// drives the randomized rotations (quarot, duquant, dfrot, quarot-mxfp4/nvfp4). DuQuant uses
/// duquant_block(C). options.gptq: the preset's GPTQ form (presets::*_gptq, or the preset's
/// stages with stages::gptq_weights where rotquant has no *_gptq preset: smoothquant,
/// quarot-mxfp4, quarot-nvfp4). Throws rotquant::error for bad shapes, non-finite values,
/// unknown presets, a Hessian that is not positive definite after damping.
calibrated_layer calibrate_layer(const std::string& preset, std::uint64_t seed, const matrix_f& x,
                                 const matrix_f& w, const calibrate_options& options = {});

/// DuQuant's greedy rotation searches on this layer, as the duquant preset runs them.
struct duquant_trace {
  index_t block = 0, steps = 0;
  double alpha = 0;                       ///< smoothing strength
  std::vector<std::vector<float>> peaks;  ///< per search: max - min before each step (N + 1)
  std::vector<index_t> chosen;            ///< per search: the step count kept (first minimum)
};

/// Calls rotquant::duquant(X, W, options of the duquant preset) and returns its peak traces.
duquant_trace duquant_peaks(const matrix_f& x, const matrix_f& w, std::uint64_t seed);

}  // namespace rqtool
