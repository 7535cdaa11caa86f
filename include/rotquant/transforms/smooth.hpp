// SPDX-License-Identifier: Apache-2.0
// transforms/smooth.hpp: SmoothQuant / DuQuant per-channel smoothing scales and the activation
// statistics they are computed from.
#pragma once

#include <algorithm>
#include <cmath>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

/// Accumulates per-channel max |x| over any number of activation batches (rows = tokens).
/// NaN/Inf in a batch are rejected (the message names the entry) before anything is merged.
class smooth_statistics {
 public:
  smooth_statistics() = default;
  /// Fixes the channel count up front (otherwise the first batch does).
  explicit smooth_statistics(index_t channels) : absmax_(vector_d::Zero(channels)) {
    ROTQUANT_CHECK(channels >= 1,
                   "smooth_statistics: channel count must be >= 1, got " << channels);
  }

  /// Merges one batch X: [tokens, C]. C must match earlier batches. O(tokens * C).
  template <class S>
  void add(const_matrix_view<S> x) {
    ROTQUANT_CHECK(x.cols() >= 1, "smooth_statistics::add: batch has no columns");
    if (absmax_.size() == 0) absmax_ = vector_d::Zero(x.cols());
    ROTQUANT_CHECK(x.cols() == absmax_.size(), "smooth_statistics::add: batch has "
                                                   << x.cols() << " channels, earlier batches "
                                                   << absmax_.size());
    check_finite(x, "smooth_statistics::add: batch");
    for (index_t r = 0; r < x.rows(); ++r)
      for (index_t c = 0; c < x.cols(); ++c)
        absmax_[c] = std::max(absmax_[c], std::fabs(static_cast<double>(x(r, c))));
    tokens_ += x.rows();
  }
  void add(const matrix_f& x) { add<float>(view(x)); }
  void add(const matrix_d& x) { add<double>(view(x)); }

  /// Per-channel max |x| so far (length C; empty before the first batch).
  const vector_d& absmax() const { return absmax_; }
  /// Number of rows merged so far.
  index_t tokens() const { return tokens_; }

 private:
  vector_d absmax_;
  index_t tokens_ = 0;
};

/// SmoothQuant scales (DuQuant's rule, docs/algorithms.md 1.2):
///   s_j = max(a_j^alpha / w_j^(1 - alpha), 1e-5), a_j = max(act_absmax_j, 1e-5),
///   w_j = max(weight_absmax_j, 1e-5).
/// Use with transform::append_scale(s) (X / s online, W * s folded). Inputs: equal lengths
/// >= 1, finite and >= 0; alpha in [0, 1]. O(C).
inline vector_d smooth_scales(const vector_d& act_absmax, const vector_d& weight_absmax,
                              double alpha) {
  ROTQUANT_CHECK(act_absmax.size() >= 1 && act_absmax.size() == weight_absmax.size(),
                 "smooth_scales: activation statistics have "
                     << act_absmax.size() << " channels, weight statistics " << weight_absmax.size()
                     << " (need equal and >= 1)");
  ROTQUANT_CHECK(std::isfinite(alpha) && alpha >= 0.0 && alpha <= 1.0,
                 "smooth_scales: alpha must be in [0, 1], got " << alpha);
  vector_d s(act_absmax.size());
  for (index_t j = 0; j < s.size(); ++j) {
    ROTQUANT_CHECK(std::isfinite(act_absmax[j]) && act_absmax[j] >= 0,
                   "smooth_scales: act_absmax[" << j << "] = " << act_absmax[j]
                                                << " (must be finite and >= 0)");
    ROTQUANT_CHECK(std::isfinite(weight_absmax[j]) && weight_absmax[j] >= 0,
                   "smooth_scales: weight_absmax[" << j << "] = " << weight_absmax[j]
                                                   << " (must be finite and >= 0)");
    const double a = std::max(act_absmax[j], 1e-5);
    const double w = std::max(weight_absmax[j], 1e-5);
    s[j] = std::max(std::pow(a, alpha) / std::pow(w, 1.0 - alpha), 1e-5);
  }
  return s;
}

/// Per-input-channel max |W_ij| over the rows of W: [out, in] (length in). W must be finite.
template <class S>
vector_d weight_absmax(const matrix<S>& w) {
  ROTQUANT_CHECK(w.rows() >= 1 && w.cols() >= 1,
                 "weight_absmax: W is " << w.rows() << " x " << w.cols() << ", expected non-empty");
  check_finite(w, "weight_absmax: W");
  return w.template cast<double>().cwiseAbs().colwise().maxCoeff().transpose();
}

}  // namespace rotquant
