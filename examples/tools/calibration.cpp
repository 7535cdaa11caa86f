// SPDX-License-Identifier: Apache-2.0
// calibration.cpp: see calibration.hpp. The one translation unit of the tools that includes the
// pipeline and the presets.
#include "calibration.hpp"

#include "layers.hpp"
#include "rotquant/pipeline/presets.hpp"
#include "rotquant/quant/metrics.hpp"
#include "rotquant/transforms/duquant.hpp"

namespace rqtool {

namespace {

rotquant::quantized_linear calibrate_preset(const std::string& p, std::uint64_t seed,
                                            const matrix_f& x, const matrix_f& w) {
  namespace pr = rotquant::presets;
  if (p == "rtn") return pr::rtn().calibrate(x, w);
  if (p == "smoothquant") return pr::smoothquant().calibrate(x, w);
  if (p == "quarot") return pr::quarot(seed).calibrate(x, w);
  if (p == "duquant") return pr::duquant(seed, duquant_block(x.cols())).calibrate(x, w);
  if (p == "dfrot") return pr::dfrot(seed).calibrate(x, w);
  if (p == "hqdit") return pr::hqdit().calibrate(x, w);
  if (p == "quarot-mxfp4") return pr::quarot_mxfp4(seed).calibrate(x, w);
  if (p == "quarot-nvfp4") return pr::quarot_nvfp4(seed).calibrate(x, w);
  throw rotquant::error("unknown preset '" + p + "' (expected " + preset_list() + ")");
}

// The same recipes with GPTQ weights: the presets' *_gptq forms; smoothquant and the
// quarot-mxfp4 / quarot-nvfp4 variants (no *_gptq preset) as their stages with
// stages::gptq_weights on the same weight quantizer. GPTQ's Hessian is taken on the calibration
// activations after the transform (gptq_options defaults: block 128, percdamp 0.01).
rotquant::quantized_linear calibrate_preset_gptq(const std::string& p, std::uint64_t seed,
                                                 const matrix_f& x, const matrix_f& w) {
  namespace pr = rotquant::presets;
  namespace st = rotquant::stages;
  using rotquant::quantizer;
  if (p == "rtn") return pr::rtn_gptq().calibrate(x, w);
  if (p == "smoothquant")
    return rotquant::make_pipeline(
               st::smooth{0.5},
               st::quantize<st::gptq_weights<>>{{{pr::w4_per_channel()}, {}}, {pr::a4_per_token()}})
        .calibrate(x, w);
  if (p == "quarot") return pr::quarot_gptq(seed).calibrate(x, w);
  if (p == "duquant") return pr::duquant_gptq(seed, duquant_block(x.cols())).calibrate(x, w);
  if (p == "dfrot") return pr::dfrot_gptq(seed).calibrate(x, w);
  if (p == "hqdit") return pr::hqdit_gptq().calibrate(x, w);
  if (p == "quarot-mxfp4")
    return pr::quarot_gptq(seed, quantizer::mxfp4(), quantizer::mxfp4()).calibrate(x, w);
  if (p == "quarot-nvfp4")
    return pr::quarot_gptq(seed, quantizer::nvfp4(), quantizer::nvfp4()).calibrate(x, w);
  if (!is_preset(p))
    throw rotquant::error("unknown preset '" + p + "' (expected " + preset_list() + ")");
  // A preset added to preset_names() without a GPTQ form above.
  throw rotquant::error("preset '" + p +
                        "' has no GPTQ form (--weights gptq accepts the presets rtn, "
                        "smoothquant, quarot, duquant, dfrot, hqdit, quarot-mxfp4, quarot-nvfp4)");
}

}  // namespace

calibrated_layer calibrate_layer(const std::string& preset, std::uint64_t seed, const matrix_f& x,
                                 const matrix_f& w, const calibrate_options& options) {
  const rotquant::quantized_linear q = options.gptq ? calibrate_preset_gptq(preset, seed, x, w)
                                                    : calibrate_preset(preset, seed, x, w);
  calibrated_layer out;
  out.online = q.online();
  out.weight_quantizer = q.weight_quantizer().name();
  out.activation_quantizer = q.activation_quantizer().name();
  out.has_kernel = q.has_kernel();
  if (q.has_kernel()) {
    const rotquant::quantized_matrix& c = q.weight_codes();
    out.packed_format = rotquant::to_string(q.packed().format);
    out.codes.rows = c.rows;
    out.codes.cols = c.cols;
    out.codes.row_bytes = c.row_bytes;
    out.codes.group = c.group;
    out.codes.groups_per_row = c.groups_per_row;
    out.codes.codes = c.codes;
    out.codes.scales = c.scales;
    out.codes.zero_points = c.zero_points;
    out.codes.scale_codes = c.scale_codes;
    out.codes.tensor_scale = c.tensor_scale;
  } else {
    out.weight_dequantized = q.weight_dequantized();
  }
  if (options.report) out.report = q.report(x, options.massive_factor);
  if (options.token_errors) {
    const matrix_f y_ref = x * w.transpose();
    const matrix_f y = q.forward(x, rotquant::execution::fake_quant);
    const rotquant::vector_d e = rotquant::per_row_mse(y_ref, y);
    out.token_mse.assign(e.data(), e.data() + e.size());
  }
  return out;
}

duquant_trace duquant_peaks(const matrix_f& x, const matrix_f& w, std::uint64_t seed) {
  rotquant::duquant_options o;  // as presets::duquant(seed, duquant_block(C))
  o.seed = seed;
  o.block_size = duquant_block(x.cols());
  const rotquant::duquant_result r = rotquant::duquant(x, w, o);
  duquant_trace t;
  t.block = o.block_size;
  t.steps = o.rotation_steps;
  t.alpha = o.alpha;
  for (const auto& rot : r.rotations) {
    t.peaks.push_back(rot.searches.front().peaks);
    t.chosen.push_back(rot.searches.front().chosen);
  }
  return t;
}

}  // namespace rqtool
