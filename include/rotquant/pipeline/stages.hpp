// SPDX-License-Identifier: Apache-2.0
// stages.hpp: the stage value types a rotquant::pipeline composes (gemmlowp output-stage style):
// smooth, rotate<Builder>, permute, refine, quantize<WeightPolicy, ActivationPolicy>.
//
// Readers' note. Calibration walks the stages in order over a calibration_state: the
// calibration activations X and the weight W, both already transformed by the stages before,
// and the online transform accumulated so far. A stage appends to the transform and updates X
// and W (X <- X M, W <- W M^{-T}), so the next stage sees the data it will act on at inference.
// The last stage is always a quantize<...>: it resolves the weight and activation quantizers
// (policies may search on the data, e.g. HQ-DiT's FP4 format selection). A new recipe is a new
// type list; a new kind of stage is a struct with `name()` and `calibrate(calibration_state&)`.
#pragma once

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/quant/gptq.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/quant/search.hpp"
#include "rotquant/transforms/dfrot.hpp"
#include "rotquant/transforms/duquant.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/smooth.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// What the stages of a pipeline read and update during calibration.
struct calibration_state {
  matrix_f x_input;  ///< calibration activations as given [T, C]
  matrix_f w_input;  ///< weight as given [out, C]
  matrix_f x;        ///< activations after the stages so far
  matrix_f w;        ///< weight [out, C] folded by the stages so far
  transform online;  ///< M so far (applied to X online, folded into W)
  quantizer weight_quantizer;
  quantizer activation_quantizer;
  bool quantizers_set = false;
  std::vector<std::string> stage_names;  ///< one per transform-producing stage
  std::vector<std::size_t> stage_ends;   ///< online.num_stages() after each of them
  /// GPTQ's inputs (pipeline::calibrate's hessian_x) as given and after the stages so far;
  /// empty: GPTQ uses x.
  matrix_f hessian_x_input, hessian_x;
  /// Set by a weight policy that quantizes the weight itself (stages::gptq_weights): the codes
  /// of w, and the column permutation they need on the input (empty: none).
  bool has_weight_codes = false;
  quantized_matrix weight_codes;
  std::vector<index_t> weight_perm;

  calibration_state(matrix_f x_in, matrix_f w_in)
      : x_input(x_in), w_input(w_in), x(std::move(x_in)), w(std::move(w_in)), online(x.cols()) {}

  /// Appends t to the online transform and moves X and W into its frame.
  void push(const transform& t, std::string name) {
    online.append(t);
    x = t.apply(x);
    if (hessian_x.size()) hessian_x = t.apply(hessian_x);
    w = t.fold_into_weight(w);
    stage_names.push_back(std::move(name));
    stage_ends.push_back(online.num_stages());
  }
};

namespace stages {

/// SmoothQuant: s_j = max|X_j|^alpha / max|W_j|^(1 - alpha) (smooth_scales clamps), X / s online
/// (or folded into a preceding norm by model-level code), W * s.
struct smooth {
  double alpha = 0.5;
  std::string name() const { return "smooth"; }
  void calibrate(calibration_state& st) const {
    const vector_d act = st.x.cwiseAbs().colwise().maxCoeff().transpose().cast<double>();
    const vector_d wmax = st.w.cwiseAbs().colwise().maxCoeff().transpose().cast<double>();
    transform t(st.x.cols());
    t.append_scale(smooth_scales(act, wmax, alpha));
    st.push(t, name());
  }
};

/// Rotation builder policies for rotate<Builder>: `transform build(x, w) const`.
/// Randomized (or plain) Hadamard, QuaRot: T_n (n = K 2^m) or block-diagonal T_b.
struct hadamard_builder {
  bool randomized = true;
  std::uint64_t seed = 0;
  index_t block = 0;  ///< 0 = the whole row; else block-diagonal Hadamard of this size
  std::string name() const { return randomized ? "randomized_hadamard" : "hadamard"; }
  transform build(const matrix_f& x, const matrix_f&) const {
    transform t(x.cols());
    if (randomized) t.append_signs(random_signs<double>(x.cols(), seed));
    t.append_hadamard(block);
    return t;
  }
};

/// Haar-random orthogonal C x C (dense stage).
struct random_orthogonal_builder {
  std::uint64_t seed = 0;
  std::string name() const { return "random_orthogonal"; }
  template <class M>
  transform build(const M& x, const M&) const {
    transform t(x.cols());
    t.append_dense(random_orthogonal(x.cols(), seed));
    return t;
  }
};

/// DuQuant: (smoothing, if options.alpha > 0) + rotation / zigzag / rotation from the data.
/// alpha = 0 is the released code run without smoothing: no scale stage at all (SmoothQuant's
/// formula at alpha = 0 would still divide by max |W_j|, which is not "no smoothing").
struct duquant_builder {
  duquant_options options;
  std::string name() const { return "duquant"; }
  template <class M>
  transform build(const M& x, const M& w) const {
    if (options.alpha == 0.0) return duquant(x, options).xform;
    return duquant(x, w, options).xform;
  }
};

/// Rotation stage with a builder policy.
template <class Builder>
struct rotate {
  Builder builder;
  std::string name() const { return builder.name(); }
  void calibrate(calibration_state& st) const { st.push(builder.build(st.x, st.w), name()); }
};

/// Channel permutation: zigzag over blocks of `block` channels (DuQuant's rule) or seeded random.
struct permute {
  index_t block = 128;
  bool zigzag = true;
  std::uint64_t seed = 0;
  std::string name() const { return zigzag ? "zigzag_permutation" : "random_permutation"; }
  void calibrate(calibration_state& st) const {
    transform t(st.x.cols());
    t.append_permutation(zigzag ? duquant_zigzag_permutation(st.x, block)
                                : random_permutation(st.x.cols(), seed));
    st.push(t, name());
  }
};

/// DFRot refinement of the rotation so far: alternating quantizer fits and Procrustes steps on
/// the calibration activations, massive tokens weighted by options.alpha. When the transform
/// so far is orthogonal it is the start and is replaced by one dense stage start * R_opt (as
/// DFRot stores it); otherwise R_opt is appended after it.
struct refine {
  dfrot_options options;
  std::string name() const { return "dfrot_refine"; }
  template <class State>
  void calibrate(State& st) const {
    dfrot_options o = options;
    o.start = dfrot_start::given;
    if (st.online.num_stages() > 0 && st.online.is_orthogonal()) {
      o.start_transform = st.online;
      const dfrot_result r = dfrot(st.x_input, o);
      st.online = transform(st.x.cols());
      st.x = st.x_input;
      st.w = st.w_input;
      st.hessian_x = st.hessian_x_input;
      st.stage_names.clear();
      st.stage_ends.clear();
      st.push(r.rotation, name());  // start * R_opt replaces the start
      return;
    }
    o.start_matrix = matrix_d::Identity(st.x.cols(), st.x.cols());
    st.push(dfrot(st.x, o).rotation, name());
  }
};

/// Quantizer policies for quantize<>: `quantizer resolve(const matrix_f& data) const`, where
/// data is the (transformed) weight for the weight policy and the calibration activations for
/// the activation policy.
struct fixed {
  quantizer q;
  quantizer resolve(const matrix_f&) const { return q; }
};

/// HQ-DiT: per layer, the FP4 layout (E1M2 / E2M1 / E3M0) and clip ratio (= exponent bias)
/// minimising the fake-quantization MSE on the calibration data (select_fp4_format).
struct hqdit_fp4 {
  granularity gran = granularity::per_row;
  index_t group = 0;
  clip_grid grid{0.3f, 1.0f, 36};
  template <class M>
  quantizer resolve(const M& data) const {
    return select_fp4_format(data, gran, group, grid).chosen;
  }
};

/// GPTQ weights (quant/gptq.hpp) with the quantizer an inner policy resolves (fixed, hqdit_fp4,
/// ...): the Hessian (fp32, as QuaRot) of the calibration activations after the stages, or of
/// pipeline::calibrate's hessian_x. Any format the quantizer takes (INT, FP4, FP8, MX, NV).
template <class Inner = fixed>
struct gptq_weights {
  Inner inner;
  gptq_options options;
  quantizer resolve(const matrix_f& w) const { return inner.resolve(w); }
  template <class M>
  gptq_result quantize_weight(const M& w, const M& x, const quantizer& q) const {
    hessian_accumulator<typename M::Scalar> h(w.cols());
    h.add(x, options.ex);
    return gptq(w, h.hessian(), q, options);
  }
};

namespace detail {
template <class P, class = void>
struct quantizes_weight : std::false_type {};
template <class P>
struct quantizes_weight<P, std::void_t<decltype(std::declval<const P&>().quantize_weight(
                               std::declval<const matrix_f&>(), std::declval<const matrix_f&>(),
                               std::declval<const quantizer&>()))>> : std::true_type {};
}  // namespace detail

/// Terminal stage: resolves the weight and activation quantizers (and, for a weight policy with
/// quantize_weight such as gptq_weights, quantizes the weight).
template <class WeightPolicy = fixed, class ActivationPolicy = fixed>
struct quantize {
  WeightPolicy weights;
  ActivationPolicy activations;
  std::string name() const { return "quantize"; }
  void calibrate(calibration_state& st) const {
    st.weight_quantizer = weights.resolve(st.w);
    st.activation_quantizer = activations.resolve(st.x);
    st.quantizers_set = true;
    if constexpr (detail::quantizes_weight<WeightPolicy>::value) {
      gptq_result r = weights.quantize_weight(st.w, st.hessian_x.size() ? st.hessian_x : st.x,
                                              st.weight_quantizer);
      st.weight_codes = std::move(r.weight);
      st.weight_perm = std::move(r.perm);
      st.has_weight_codes = true;
    }
  }
};

template <class T>
struct is_quantize : std::false_type {};
template <class W, class A>
struct is_quantize<quantize<W, A>> : std::true_type {};

}  // namespace stages
}  // namespace rotquant
