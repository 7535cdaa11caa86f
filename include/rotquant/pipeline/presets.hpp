// SPDX-License-Identifier: Apache-2.0
// presets.hpp: the papers' recipes as pipelines, with the authors' defaults.
//
//   rtn          no transform; INT4 sym per-channel weights, INT4 sym per-token activations
//   smoothquant  SmoothQuant scaling (alpha 0.5) then the same quantizers
//   quarot       randomized Hadamard (sizes K 2^m, docs/algorithms.md 3.1/3.3), same quantizers
//   duquant      smoothing 0.6 + rotation / zigzag / rotation (B = 128, N = 256), asymmetric
//                per-token activations clip 0.9 (--lac) and per-channel weights clip 0.8 (--swc)
//   dfrot        randomized Hadamard refined by DFRot (alpha 100, 100 steps), same as quarot
//   hqdit        Hadamard + per-layer FP4 format and clipping selection for weights and
//                activations (per channel / per token)
//   *_gptq       the same with GPTQ weights (quant/gptq.hpp), QuaRot's fasterquant defaults
// The default quantizers are round-to-nearest with clip 1.0 (QuaRot's `--w_rtn` setting); pass
// others to compare. A new recipe is a new stage list: see pipeline.hpp.
#pragma once

#include <algorithm>
#include <cstdint>

#include "rotquant/pipeline/pipeline.hpp"

namespace rotquant {
namespace presets {

/// INT4 symmetric per output channel, round to nearest, clip 1.0 (QuaRot --w_rtn).
inline quantizer w4_per_channel() {
  return quantizer::gptq_weight(4, true, false);
}
/// INT4 symmetric per token, clip 1.0 (QuaRot ActQuantizer).
inline quantizer a4_per_token(float clip = 1.0f) {
  return quantizer::quarot_activation(4, true, clip);
}

inline auto rtn(quantizer w = w4_per_channel(), quantizer a = a4_per_token()) {
  return make_pipeline(stages::quantize<>{{w}, {a}});
}

inline auto smoothquant(double alpha = 0.5, quantizer w = w4_per_channel(),
                        quantizer a = a4_per_token()) {
  return make_pipeline(stages::smooth{alpha}, stages::quantize<>{{w}, {a}});
}

inline auto quarot(std::uint64_t seed = 0, quantizer w = w4_per_channel(),
                   quantizer a = a4_per_token()) {
  return make_pipeline(stages::rotate<stages::hadamard_builder>{{true, seed, 0}},
                       stages::quantize<>{{w}, {a}});
}

/// DuQuant with the released run.sh defaults; `block` must divide every C it is used on.
inline auto duquant(std::uint64_t seed = 0, index_t block = 128) {
  duquant_options o;
  o.seed = seed;
  o.block_size = block;
  return make_pipeline(
      stages::rotate<stages::duquant_builder>{{o}},
      stages::quantize<>{{quantizer::duquant(4, 0.8f)}, {quantizer::duquant(4, 0.9f)}});
}

inline auto dfrot(std::uint64_t seed = 0, quantizer w = w4_per_channel(),
                  quantizer a = a4_per_token()) {
  return make_pipeline(stages::rotate<stages::hadamard_builder>{{true, seed, 0}}, stages::refine{},
                       stages::quantize<>{{w}, {a}});
}

inline auto hqdit() {
  return make_pipeline(stages::rotate<stages::hadamard_builder>{{false, 0, 0}},
                       stages::quantize<stages::hqdit_fp4, stages::hqdit_fp4>{});
}

/// The "-GPTQ" rows: the same recipes with GPTQ weights (quant/gptq.hpp; QuaRot's fasterquant
/// defaults: block 128, percdamp 0.01, no act-order). Pass hessian_x to calibrate() for the
/// sequential model-level calibration.
inline auto quarot_gptq(std::uint64_t seed = 0, quantizer w = w4_per_channel(),
                        quantizer a = a4_per_token(), gptq_options g = {}) {
  return make_pipeline(stages::rotate<stages::hadamard_builder>{{true, seed, 0}},
                       stages::quantize<stages::gptq_weights<>>{{{w}, g}, {a}});
}
inline auto rtn_gptq(quantizer w = w4_per_channel(), quantizer a = a4_per_token(),
                     gptq_options g = {}) {
  return make_pipeline(stages::quantize<stages::gptq_weights<>>{{{w}, g}, {a}});
}
inline auto dfrot_gptq(std::uint64_t seed = 0, quantizer w = w4_per_channel(),
                       quantizer a = a4_per_token(), gptq_options g = {}) {
  return make_pipeline(stages::rotate<stages::hadamard_builder>{{true, seed, 0}}, stages::refine{},
                       stages::quantize<stages::gptq_weights<>>{{{w}, g}, {a}});
}
inline auto duquant_gptq(std::uint64_t seed = 0, index_t block = 128, gptq_options g = {}) {
  duquant_options o;
  o.seed = seed;
  o.block_size = block;
  return make_pipeline(stages::rotate<stages::duquant_builder>{{o}},
                       stages::quantize<stages::gptq_weights<>>{{{quantizer::duquant(4, 0.8f)}, g},
                                                                {quantizer::duquant(4, 0.9f)}});
}
/// HQ-DiT with GPTQ on the FP4 grid HQ-DiT's selection chose for the weight.
inline auto hqdit_gptq(gptq_options g = {}) {
  return make_pipeline(
      stages::rotate<stages::hadamard_builder>{{false, 0, 0}},
      stages::quantize<stages::gptq_weights<stages::hqdit_fp4>, stages::hqdit_fp4>{{{}, g}, {}});
}

/// QuaRot's rotation with MXFP4 (E2M1, E8M0 per 32) or NVFP4 (E2M1, UE4M3 per 16) on both sides.
inline auto quarot_mxfp4(std::uint64_t seed = 0) {
  return quarot(seed, quantizer::mxfp4(), quantizer::mxfp4());
}
inline auto quarot_nvfp4(std::uint64_t seed = 0) {
  return quarot(seed, quantizer::nvfp4(), quantizer::nvfp4());
}

}  // namespace presets
}  // namespace rotquant
