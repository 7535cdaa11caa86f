// SPDX-License-Identifier: Apache-2.0
// llama_recipes.hpp: the W4A4 recipes of the example engine (rtn, smoothquant, quarot, duquant,
// dfrot, hqdit, the MX/NV rows and the *-gptq variants) applied to a whole LLaMA model, shared
// by rotquant-llama-eval (the perplexity table) and rotquant-llama-generate (text). The recipes
// and the calibration compile once, in llama_recipes.cpp: this header pulls in no calibration
// code, so the two command-line mains stay light.
//
// How the presets map onto the model (the library's model-level helpers do the cross-layer work):
//   rtn, smoothquant, duquant   per-linear pipelines on the model as trained (norm weights kept)
//   quarot, dfrot, *-mxfp4/nvfp4 RMSNorm weights fused into the following linears, residual
//                                stream rotated offline by a randomized Hadamard (quarot) or by
//                                DFRot's refinement of one (calibrated on all norm outputs),
//                                online randomized Hadamards before o_proj and down_proj
//   hqdit                        norms fused, a Hadamard on every linear input, per-layer FP4
//                                format and clip selection for weights and activations
// The KV cache (QuaRot's rules): the rotation presets quarot, dfrot and duquant also fold the
// per-head Hadamard R2 into v_proj's output rows and o_proj's input columns (exact in float) and,
// when the cache is quantized, apply the online per-head Hadamard to Q and K after RoPE.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "llama_model.hpp"

namespace llama {

/// Settings shared by every recipe (the command-line flags of rotquant-llama-eval).
struct recipe_options {
  int seeds = 1;       // seeded presets get one row per seed: "quarot/s0", "quarot/s1", ...
  bool w_clip = true;  // QuaRot/DFRot weights with QuaRot's --w_clip MSE search (false: clip 1)
  double dfrot_alpha = 100.0;           // DFRot's massive-token weight (dfrot_options::alpha)
  int dfrot_steps = 100;                // DFRot's alternating steps
  std::string dfrot_rule = "released";  // massive-token rule: released, mistral or magnitude
  bool verbose = false;                 // DFRot's report on stderr
};

/// The calibration sequences: the model's calib/tokens.npy (rotations and quantizer fits) and,
/// for GPTQ's Hessians, those followed by windows of BOS + 255 bytes spread over `text_path`
/// (`gptq_seqs` in all).
struct calibration_set {
  std::vector<std::vector<int>> seqs, gptq_seqs;
  static calibration_set load(const std::string& model_dir, const std::string& text_path,
                              int gptq_seqs, int bos);
};

/// One recipe's row name (with "/sN" for seeded ones) and description.
struct recipe_info {
  std::string name, bits;
  bool gptq = false;
  bool head_rotations = false;  // R2 folded into v/o; the Q/K Hadamard when the cache is quantized
  /// The method: the name before "/" ("quarot/s1" -> "quarot").
  std::string method() const { return name.substr(0, name.find('/')); }
};

/// Every recipe, in table order.
std::vector<recipe_info> list_recipes(const recipe_options& o);

/// A calibrated model. Every quantized linear reads `*kernels`: true runs the packed W4A4 kernels
/// (when every layer has one), false fake quantization in float.
struct quantized_model {
  recipe_info recipe;
  model m;
  std::shared_ptr<bool> kernels = std::make_shared<bool>(false);
  bool has_kernels = false;
  double weight_bytes = 0;  // packed weights (codes + scales), or codes + scales + zero points
  double calib_s = 0;

  void use_kernels(bool on) { *kernels = on && has_kernels; }
  /// The KV cache: 16 = float32, 8 or 4 = QuaRot's INT8/INT4 rules at clip `clip` (0.95 in
  /// QuaRot's scripts). `k_hadamard` false drops the Q/K Hadamard (the ablation).
  void set_kv(int bits, float clip = 0.95f, bool k_hadamard = true) {
    m.kv.bits = bits;
    m.kv.k_clip = m.kv.v_clip = bits < 16 ? clip : 1.0f;
    m.set_k_hadamard(bits < 16 && k_hadamard && recipe.head_rotations);
  }
};

/// Calibrates recipe `name` (a name from list_recipes) on `base`; "float32" gives the float model.
/// Throws std::invalid_argument naming the accepted recipes for an unknown name.
quantized_model quantize_model(const std::string& name, const weights& base,
                               const calibration_set& calib, const recipe_options& o);

}  // namespace llama
