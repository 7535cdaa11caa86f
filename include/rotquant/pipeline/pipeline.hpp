// SPDX-License-Identifier: Apache-2.0
// pipeline.hpp: rotquant::pipeline<Stage...> composes stage value types (stages.hpp) into a
// recipe; calibrate(X, W) turns calibration activations and a weight into a quantized_linear.
//
//   auto p =
//   rotquant::make_pipeline(rotquant::stages::rotate<rotquant::stages::hadamard_builder>{},
//                                    rotquant::stages::quantize<>{{w4}, {a4}});
//   rotquant::quantized_linear layer = p.calibrate(x_calib, w);
//   matrix_f y = layer.forward(x);           // (X M) quantized, times (W M^-T) quantized
//   std::cout << layer.report(x).to_string();
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/kernels/gemm.hpp"
#include "rotquant/kernels/linear.hpp"
#include "rotquant/pipeline/report.hpp"
#include "rotquant/pipeline/stages.hpp"
#include "rotquant/quant/metrics.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// How quantized_linear::forward computes: through the packed kernels when the quantizer pair
/// has one (automatic), or always by fake quantization in float.
enum class execution { automatic, fake_quant, kernel };

namespace detail {

/// The kernels' activation format for an activation quantizer, if there is one.
inline bool kernel_act_format(const quantizer& q, act_format& f) {
  if (q.format == element_format::mxfp4) return f = act_format::mxfp4, true;
  if (q.format == element_format::nvfp4) return f = act_format::nvfp4, true;
  if (q.format != element_format::integer || q.search != clip_search::none) return false;
  if (q.rule != range_rule::quarot) return false;
  if (q.bits == 4 && q.symmetric && q.gran == granularity::per_row)
    return f = act_format::qsi4dx, true;
  if (q.bits == 4 && !q.symmetric && q.gran == granularity::per_row)
    return f = act_format::qai4dx, true;
  if (q.bits == 4 && q.symmetric && q.gran == granularity::per_group && q.group_size % 8 == 0)
    return f = act_format::qsi4dg, true;
  if (q.bits == 8 && q.symmetric && q.gran == granularity::per_row)
    return f = act_format::qsi8dx, true;
  return false;
}

/// True if the kernels can run weights quantized by q (pack_weights(quantized_matrix)).
inline bool kernel_weight_format(const quantizer& q, index_t cols) {
  if (q.format == element_format::mxfp4 || q.format == element_format::nvfp4) return true;
  return q.format == element_format::integer && q.bits == 4 && q.signed_int_codes() &&
         (q.gran == granularity::per_row ||
          (q.gran == granularity::per_group && q.group_size % 8 == 0 && cols % q.group_size == 0));
}

}  // namespace detail

/// A calibrated linear layer Y = X W^T: owns the online part M of the transform, the folded and
/// quantized weight W M^{-T}, and the activation quantizer.
class quantized_linear {
 public:
  quantized_linear(transform online, const matrix_f& weight, quantizer wq, quantizer aq,
                   std::vector<std::string> stage_names = {},
                   std::vector<std::size_t> stage_ends = {})
      : online_(std::move(online)),
        weight_quantizer_(std::move(wq)),
        activation_quantizer_(std::move(aq)),
        stage_names_(std::move(stage_names)),
        stage_ends_(std::move(stage_ends)),
        in_(weight.cols()),
        out_(weight.rows()) {
    check_weight(weight);
    const matrix_f folded = online_.num_stages() ? online_.fold_into_weight(weight) : weight;
    finish(rotquant::quantize(weight_quantizer_, folded));
  }

  /// A layer whose folded weight W M^{-T} was quantized already (e.g. by gptq(): `codes`
  /// [out, in] in the frame of `online`, its quantizer the weight quantizer). `weight` is the
  /// float weight as given, kept for report().
  quantized_linear(transform online, const matrix_f& weight, quantized_matrix codes, quantizer aq,
                   std::vector<std::string> stage_names = {},
                   std::vector<std::size_t> stage_ends = {})
      : online_(std::move(online)),
        weight_quantizer_(codes.q),
        activation_quantizer_(std::move(aq)),
        stage_names_(std::move(stage_names)),
        stage_ends_(std::move(stage_ends)),
        in_(weight.cols()),
        out_(weight.rows()) {
    check_weight(weight);
    ROTQUANT_CHECK(codes.rows == out_ && codes.cols == in_,
                   "quantized_linear: the quantized weight is " << codes.rows << " x " << codes.cols
                                                                << ", the weight " << out_ << " x "
                                                                << in_);
    finish(std::move(codes));
  }

  /// True if forward() runs the packed W4A4 / W4A8 kernels (kernels/gemm.hpp).
  bool has_kernel() const { return has_kernel_; }
  /// The packed weights (has_kernel() only; throws rotquant::error otherwise).
  const packed_weights& packed() const { return deployable().weights(); }
  /// The deployable part an inference engine keeps (online transform, packed weights,
  /// activation format and options; none of the float weights or reports). has_kernel() only;
  /// throws rotquant::error otherwise.
  const w4a4_linear& deployable() const {
    ROTQUANT_CHECK(deployed_ != nullptr, "quantized_linear: no kernel for weights '"
                                             << weight_quantizer_.name() << "' x activations '"
                                             << activation_quantizer_.name()
                                             << "', so no deployable layer");
    return *deployed_;
  }

  index_t in_features() const { return in_; }
  index_t out_features() const { return out_; }
  const transform& online() const { return online_; }
  const quantizer& weight_quantizer() const { return weight_quantizer_; }
  const quantizer& activation_quantizer() const { return activation_quantizer_; }
  /// The quantized weight (codes, scales) of W M^{-T}.
  const quantized_matrix& weight_codes() const { return weight_codes_; }
  /// dequantize(weight_codes()): the weight the layer multiplies by, [out, in].
  const matrix_f& weight_dequantized() const { return weight_dequantized_; }

  /// X M (the online transform), X: [T, in].
  matrix_f transform_input(const matrix_f& x) const {
    ROTQUANT_CHECK(x.cols() == in_,
                   "quantized_linear: input has " << x.cols() << " features, the layer " << in_);
    return online_.num_stages() ? online_.apply(x) : x;
  }

  /// Y = Q_a(X M) (Q_w(W M^{-T}))^T, [T, out]. With execution::automatic the packed kernels
  /// run when has_kernel() (integer products exact, float epilogue: results agree with the
  /// fake-quant path to float rounding of the accumulation order), else fake quantization in
  /// float. execution::kernel throws rotquant::error when there is no kernel for the quantizers.
  matrix_f forward(const matrix_f& x, execution how = execution::automatic,
                   executor* ex = nullptr) const {
    if (how == execution::kernel)
      ROTQUANT_CHECK(has_kernel_, "quantized_linear: no kernel for weights '"
                                      << weight_quantizer_.name() << "' x activations '"
                                      << activation_quantizer_.name() << "'");
    if (has_kernel_ && how != execution::fake_quant) {
      ROTQUANT_CHECK(x.cols() == in_,
                     "quantized_linear: input has " << x.cols() << " features, the layer " << in_);
      check_finite(x, "quantized_linear::forward: X");  // positions as the caller gave them
      return deployed_->forward(x, ex);  // the rotation fused into the quantizer when it can be
    }
    const matrix_f xt = transform_input(x);
    const matrix_f xq = fake_quantize(activation_quantizer_, xt);
    return xq * weight_dequantized_.transpose();
  }

  /// Output error against the float layer X W^T, error on massive vs normal tokens (max |x| above
  /// `massive_factor` times the median token's), and activation statistics after every stage.
  linear_report report(const matrix_f& x, double massive_factor = 20.0) const {
    check_finite(x, "quantized_linear::report: X");
    linear_report r;
    const matrix_f y_ref = x * reference_weight_.transpose();
    const matrix_f y = forward(x, execution::fake_quant);
    r.output_mse = mse(y_ref, y);
    r.output_sqnr_db = sqnr_db(y_ref, y);
    r.output_max_abs_error = max_abs_error(y_ref, y);
    const auto mask = massive_tokens_by_magnitude(x, massive_factor);
    const vector_d row_err = per_row_mse(y_ref, y);
    double sm = 0, sn = 0;
    for (std::size_t t = 0; t < mask.size(); ++t) {
      if (mask[t]) {
        ++r.massive_tokens;
        sm += row_err[static_cast<index_t>(t)];
      } else {
        ++r.normal_tokens;
        sn += row_err[static_cast<index_t>(t)];
      }
    }
    r.massive_token_mse = r.massive_tokens ? sm / static_cast<double>(r.massive_tokens) : 0.0;
    r.normal_token_mse = r.normal_tokens ? sn / static_cast<double>(r.normal_tokens) : 0.0;
    r.stages.push_back(activation_statistics(x, "input"));
    std::size_t begin = 0;
    matrix_f cur = x;
    for (std::size_t i = 0; i < stage_names_.size(); ++i) {
      transform part(in_);
      for (std::size_t k = begin; k < stage_ends_[i]; ++k) part.append_stage(online_.stages()[k]);
      if (part.num_stages()) cur = part.apply(cur);
      r.stages.push_back(activation_statistics(cur, stage_names_[i]));
      begin = stage_ends_[i];
    }
    return r;
  }

 private:
  void check_weight(const matrix_f& weight) {
    ROTQUANT_CHECK(online_.dim() == weight.cols(), "quantized_linear: the transform has dimension "
                                                       << online_.dim() << ", the weight "
                                                       << weight.cols() << " input features");
    check_finite(weight, "quantized_linear: weight");
    reference_weight_ = weight;
  }
  void finish(quantized_matrix codes) {
    weight_codes_ = std::move(codes);
    weight_dequantized_ = dequantize(weight_codes_);
    if (detail::kernel_act_format(activation_quantizer_, act_format_) &&
        detail::kernel_weight_format(weight_quantizer_, in_)) {
      linear_options o;
      o.activations = act_format_;
      o.quantize.clip = activation_quantizer_.clip;
      if (act_format_ == act_format::qsi4dg) o.quantize.group = activation_quantizer_.group_size;
      try {
        deployed_ =
            std::make_shared<const w4a4_linear>(online_, pack_weights(weight_codes_), std::move(o));
        has_kernel_ = true;
      } catch (const rotquant::error&) {
        // e.g. incompatible scale blocks, or a clip the block format cannot take: the layer
        // runs by fake quantization only (has_kernel() false).
        deployed_.reset();
        has_kernel_ = false;
      }
    }
  }

  transform online_;
  quantizer weight_quantizer_, activation_quantizer_;
  std::vector<std::string> stage_names_;
  std::vector<std::size_t> stage_ends_;
  index_t in_, out_;
  matrix_f reference_weight_;
  quantized_matrix weight_codes_;
  matrix_f weight_dequantized_;
  bool has_kernel_ = false;
  act_format act_format_ = act_format::qsi4dx;
  std::shared_ptr<const w4a4_linear> deployed_;  // shared by copies: immutable
};

/// A recipe: stages applied in order during calibration; the last must be stages::quantize<...>.
template <class... Stage>
class pipeline {
  static_assert(sizeof...(Stage) >= 1, "a pipeline needs at least a quantize stage");
  static_assert(
      stages::is_quantize<std::tuple_element_t<sizeof...(Stage) - 1, std::tuple<Stage...>>>::value,
      "the last stage of a pipeline must be stages::quantize<...>");

 public:
  pipeline() = default;
  explicit pipeline(Stage... s) : stages_(std::move(s)...) {}

  std::tuple<Stage...>& stages() { return stages_; }
  const std::tuple<Stage...>& stages() const { return stages_; }

  /// Calibrates on activations X [T, C] (finite, T >= 1) and weight W [out, C] (finite).
  /// Throws rotquant::error for mismatched or empty shapes and non-finite values.
  quantized_linear calibrate(const matrix_f& x, const matrix_f& w) const {
    return calibrate(x, w, matrix_f());
  }

  /// As calibrate(x, w), with the rows a GPTQ weight policy collects its Hessian on given apart
  /// (hessian_x [T', C], e.g. the layer's inputs in a model whose earlier layers are quantized
  /// already; they pass through the same online transform). Empty: x.
  quantized_linear calibrate(const matrix_f& x, const matrix_f& w,
                             const matrix_f& hessian_x) const {
    ROTQUANT_CHECK(x.rows() >= 1 && x.cols() >= 1, "pipeline::calibrate: calibration X is "
                                                       << x.rows() << " x " << x.cols()
                                                       << " (need at least one token)");
    ROTQUANT_CHECK(w.rows() >= 1 && w.cols() == x.cols(),
                   "pipeline::calibrate: W is " << w.rows() << " x " << w.cols() << ", X has "
                                                << x.cols() << " features");
    check_finite(x, "pipeline::calibrate: X");
    check_finite(w, "pipeline::calibrate: W");
    if (hessian_x.size()) {
      ROTQUANT_CHECK(hessian_x.cols() == x.cols(), "pipeline::calibrate: hessian_x has "
                                                       << hessian_x.cols() << " features, X "
                                                       << x.cols());
      check_finite(hessian_x, "pipeline::calibrate: hessian_x");
    }
    calibration_state st(x, w);
    st.hessian_x_input = hessian_x;
    st.hessian_x = hessian_x;
    std::apply([&](const auto&... s) { (s.calibrate(st), ...); }, stages_);
    if (st.has_weight_codes) {
      if (!st.weight_perm.empty()) {
        // GPTQ with act-order and groups: its codes follow the permuted columns.
        transform p(x.cols());
        p.append_permutation(st.weight_perm);
        st.online.append(p);
        if (!st.stage_ends.empty()) st.stage_ends.back() = st.online.num_stages();
      }
      return quantized_linear(st.online, w, std::move(st.weight_codes), st.activation_quantizer,
                              st.stage_names, st.stage_ends);
    }
    return quantized_linear(st.online, w, st.weight_quantizer, st.activation_quantizer,
                            st.stage_names, st.stage_ends);
  }

 private:
  std::tuple<Stage...> stages_;
};

/// Deduces the stage types: make_pipeline(stages::smooth{0.5}, stages::quantize<>{...}).
template <class... Stage>
pipeline<Stage...> make_pipeline(Stage... s) {
  return pipeline<Stage...>(std::move(s)...);
}

}  // namespace rotquant
