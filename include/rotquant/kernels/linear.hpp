// SPDX-License-Identifier: Apache-2.0
// linear.hpp: w4a4_linear, the deployable W4A4 / W4A8 linear layer an inference engine keeps:
// the online transform M applied to the input, the packed weights Q_w(W M^{-T}), the activation
// format with its options, and an optional bias. Nothing of calibration or reporting (no float
// weight copies, no quantizer search): pipeline::calibrate builds the layer and
// quantized_linear::deployable() hands this part out; an engine may also build one from a
// transform file and packed weights of its own.
//
//   rotquant::w4a4_linear layer(online, rotquant::pack_weights(codes), {act_format::qsi4dx});
//   layer.forward(view(x), view(y));   // y = Q_a(x M) Q_w(W M^-T)^T (+ bias)
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/kernels/gemm.hpp"
#include "rotquant/kernels/packed.hpp"
#include "rotquant/kernels/quantize_activations.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// How a w4a4_linear quantizes its input and what it adds to the output.
struct linear_options {
  /// Activation format (per token or per block; see kernels/packed.hpp).
  act_format activations = act_format::qsi4dx;
  /// clip, group (qsi4dg) and the NVFP4 static tensor scale of the activations. Its executor is
  /// ignored: forward() takes one. With NVFP4 and no static scale (0), the tensor scale comes
  /// from the amax of the whole batch, so a token's result depends on the other tokens; engines
  /// that need per-token independence pass the calibrated scale.
  quantize_options quantize;
  /// Empty, or out_features values added to every output row.
  vector_f bias;
};

namespace detail {

/// transform -> the Rotation concept of quantize_activations_rotated (rows of dim() floats).
/// Runs serially: the caller already splits rows over threads.
struct transform_rows {
  const transform* t;
  index_t size() const { return t->dim(); }
  void apply_rows(float* data, index_t rows, index_t stride) const {
    t->apply_inplace(make_view(data, rows, t->dim(), stride), &serial_default());
  }
};

/// True if every stage maps each row on its own, by the same operations whatever the number of
/// rows (diagonal scale, signs, permutation, fast Hadamard): then rotating a few rows at a time
/// inside the quantizer gives the bits of rotating the whole batch first.
inline bool row_local_stages(const transform& t) {
  for (const auto& s : t.stages()) {
    if (s.kind != stage_kind::scale && s.kind != stage_kind::signs &&
        s.kind != stage_kind::permutation && s.kind != stage_kind::hadamard)
      return false;
  }
  return true;
}

}  // namespace detail

/// The deployable layer: y = Q_a(x M) Q_w(W M^{-T})^T (+ bias) through the packed kernels.
/// Immutable after construction; forward() is const and may run concurrently from several
/// threads (each with its own scratch).
class w4a4_linear {
 public:
  /// `online` is M (dim = weights.k; a transform without stages is the identity), `weights`
  /// the packed W M^{-T} [out, in]. Throws rotquant::error, naming the field, for packed weights
  /// that break their invariants, a transform of another dimension, an activation format or
  /// option the kernels do not take (clip, group, tensor scale), a group or block that cannot
  /// pair with the weights' scale block, or a bias of the wrong size.
  w4a4_linear(transform online, packed_weights weights, linear_options options = {})
      : online_(std::move(online)), weights_(std::move(weights)), options_(std::move(options)) {
    weights_.validate("w4a4_linear");
    ROTQUANT_CHECK(online_.dim() == weights_.k, "w4a4_linear: the transform has dimension "
                                                    << online_.dim()
                                                    << ", the weights K = " << weights_.k);
    ROTQUANT_CHECK(options_.bias.size() == 0 || options_.bias.size() == weights_.n,
                   "w4a4_linear: bias has " << options_.bias.size() << " entries, expected 0 or "
                                            << weights_.n << " (out_features)");
    const act_format f = options_.activations;
    const bool block_format = f == act_format::mxfp4 || f == act_format::nvfp4;
    ROTQUANT_CHECK(!block_format || options_.quantize.clip == 1.0f,
                   "w4a4_linear: activation format "
                       << to_string(f) << " takes no clip ratio (its block scale is the "
                       << "format's rule), got clip = " << options_.quantize.clip
                       << "; clip applies to qsi4dx, qai4dx, qsi4dg, qsi8dx");
    ROTQUANT_CHECK(f == act_format::nvfp4 || options_.quantize.nvfp4_tensor_scale == 0.0f,
                   "w4a4_linear: nvfp4_tensor_scale is set ("
                       << options_.quantize.nvfp4_tensor_scale << ") for activation format "
                       << to_string(f) << "; it applies to nvfp4 only");
    ROTQUANT_CHECK(f == act_format::qsi4dg || options_.quantize.group == 0,
                   "w4a4_linear: group = " << options_.quantize.group << " for activation format "
                                           << to_string(f) << "; a group applies to qsi4dg only");
    // Sizes and validates an empty batch: the format, clip, group and tensor scale are checked
    // here, and the activation block against the weight block, not at the first forward().
    packed_activations probe;
    detail::qact_prepare(0, weights_.k, f, options_.quantize, probe);
    ROTQUANT_CHECK(detail::gemm_blocks_pair(probe.block, weights_.block, weights_.k),
                   "w4a4_linear: activation block " << probe.block << " (" << to_string(f)
                                                    << ") and weight block " << weights_.block
                                                    << " are incompatible; one must divide the "
                                                       "other");
    fused_ = online_.num_stages() > 0 && detail::row_local_stages(online_);
  }

  index_t in_features() const { return weights_.k; }
  index_t out_features() const { return weights_.n; }
  const transform& online() const { return online_; }
  const packed_weights& weights() const { return weights_; }
  const linear_options& options() const { return options_; }
  /// True if forward() rotates inside the activation quantizer (a few rows at a time in a small
  /// buffer) instead of materialising x M: every stage is a scale, signs, permutation or
  /// Hadamard. Both ways give the same bits.
  bool fused_rotation() const { return fused_; }

  /// out [m, out_features] = the layer applied to x [m, in_features] (any row strides).
  /// `scratch` (optional) keeps the packed activations' storage across calls. Throws
  /// rotquant::error for a shape mismatch, a non-finite input (naming its row, which the
  /// transform keeps), or an output that overlaps x, the weights or the bias.
  void forward(const const_matrix_view<float>& x, matrix_view<float> out, executor* ex = nullptr,
               packed_activations* scratch = nullptr) const {
    ROTQUANT_CHECK(x.cols() == in_features(), "w4a4_linear::forward: x has "
                                                  << x.cols() << " features, the layer "
                                                  << in_features());
    ROTQUANT_CHECK(out.rows() == x.rows() && out.cols() == out_features(),
                   "w4a4_linear::forward: output is " << out.rows() << " x " << out.cols()
                                                      << ", expected " << x.rows() << " x "
                                                      << out_features());
    packed_activations local;
    packed_activations& a = scratch ? *scratch : local;
    quantize_options q = options_.quantize;
    q.ex = ex;
    if (online_.num_stages() == 0) {
      quantize_activations(x, options_.activations, a, q);
    } else if (fused_) {
      quantize_activations_rotated(x, detail::transform_rows{&online_}, options_.activations, a, q);
    } else {
      detail::check_input_view(x, "w4a4_linear::forward");
      detail::check_alloc(x.rows(), x.cols(), sizeof(float), "w4a4_linear::forward");
      matrix_f xt = x;
      online_.apply_inplace(view(xt), ex);
      quantize_activations(view(static_cast<const matrix_f&>(xt)), options_.activations, a, q);
    }
    gemm_epilogue ep;
    if (options_.bias.size()) ep = gemm_epilogue::with_bias(options_.bias);
    quantized_matmul(a, weights_, out, ep, ex);
  }

  /// Convenience overload returning a new [m, out_features] matrix.
  matrix_f forward(const matrix_f& x, executor* ex = nullptr) const {
    detail::check_alloc(x.rows(), out_features(), sizeof(float), "w4a4_linear::forward");
    matrix_f out(x.rows(), out_features());
    forward(view(x), view(out), ex);
    return out;
  }

 private:
  transform online_;
  packed_weights weights_;
  linear_options options_;
  bool fused_ = false;
};

}  // namespace rotquant
