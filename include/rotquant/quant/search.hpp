// SPDX-License-Identifier: Apache-2.0
// search.hpp: grid searches of the clip ratio (on MSE or on layer-output error) and HQ-DiT's
// per-layer choice of FP4 format and clipping range (exponent bias).
//
// Clip search (a closed-form stand-in for DuQuant's learnable weight clipping, LWC): for each
// ratio r of a grid, W^_r = fake_quantize(q with clip r, W); the error of output channel o is
//   MSE objective:     ||W^_r[o] - W[o]||^2
//   output objective:  ||X (W^_r[o] - W[o])^T||^2 = e_o^T (X^T X) e_o   (X: calibration inputs)
// Both decompose over output rows for per_row / per_group granularity, so each row takes its
// own best ratio (like LWC's per-channel parameters); per_tensor takes one ratio for all.
// Ties keep the earlier grid point (the grid runs from hi down to lo, so the larger ratio).
//
// HQ-DiT selection (docs/algorithms.md 4.2, our reconstruction): for each FP4 layout in
// {E1M2, E2M1, E3M0} and each clip ratio r of a grid, fake-quantize with maxval = r * absmax
// (per tensor, row or group); equivalently the real-valued exponent bias
// b = 2^E - log2(maxval) + log2(2 - 2^-M) - 1 (docs/algorithms.md 4.1). The pair with the lowest
// error wins (first on ties, in the order E1M2, E2M1, E3M0 and hi -> lo).
#pragma once

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/quant/formats.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace rotquant {

/// Clip ratios hi, hi - step, ..., lo (`steps` points, steps >= 1; one point means just hi).
struct clip_grid {
  float lo = 0.5f;
  float hi = 1.0f;
  int steps = 51;

  /// Throws unless 0 < lo <= hi, both finite, steps >= 1 (and lo == hi when steps == 1).
  void validate() const {
    ROTQUANT_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo > 0 && lo <= hi && steps >= 1,
                   "clip_grid: need finite 0 < lo <= hi and steps >= 1 (got lo "
                       << lo << ", hi " << hi << ", steps " << steps << ")");
  }
  /// The i-th ratio, i in [0, steps).
  float at(int i) const {
    if (steps == 1) return hi;
    return static_cast<float>(static_cast<double>(hi) -
                              (static_cast<double>(hi) - lo) * i / (steps - 1));
  }
};

/// What the clip search chose.
struct clip_search_result {
  std::vector<float> ratios;   ///< per row (per_row / per_group) or one entry (per_tensor)
  quantized_matrix quantized;  ///< W quantized with the chosen ratios (q.clip is meaningless here)
  matrix_f dequantized;        ///< dequantize(quantized)
  double error = 0;            ///< total objective at the chosen ratios
  double error_at_hi = 0;      ///< total objective at the first grid point (usually ratio 1)
};

namespace detail {

inline void check_clip_search_args(const quantizer& q, const matrix_f& W, const clip_grid& grid) {
  grid.validate();
  q.validate(W.rows(), W.cols());
  ROTQUANT_CHECK(
      !q.is_block_format(),
      "search_clip_ratio: " << to_string(q.format) << " has a fixed scale rule (no clip ratio)");
  ROTQUANT_CHECK(q.search == clip_search::none,
                 "search_clip_ratio: the quantizer already has its own clip search; set "
                 "search = clip_search::none");
  check_finite(W, "search_clip_ratio: W");
}

// Per-row objective of E = W^ - W: MSE (H empty) or e^T H e.
inline vector_d row_objective(const matrix_f& W, const matrix_f& Wq, const matrix_d& H) {
  const matrix_d E = Wq.cast<double>() - W.cast<double>();
  if (H.size() == 0) return E.rowwise().squaredNorm();
  const matrix_d EH = E * H;
  return (EH.cwiseProduct(E)).rowwise().sum();
}

inline clip_search_result clip_search_impl(const quantizer& q, const matrix_f& W,
                                           const clip_grid& grid, const matrix_d& H) {
  const index_t rows = W.rows();
  const bool per_tensor = q.gran == granularity::per_tensor;
  clip_search_result res;
  vector_d best = vector_d::Constant(rows, std::numeric_limits<double>::infinity());
  std::vector<int> pick(static_cast<std::size_t>(rows), 0);
  double best_total = std::numeric_limits<double>::infinity();
  int best_tensor = 0;
  std::vector<quantized_matrix> cands;
  cands.reserve(static_cast<std::size_t>(grid.steps));
  for (int i = 0; i < grid.steps; ++i) {
    quantizer qi = q;
    qi.clip = grid.at(i);
    cands.push_back(quantize(qi, W));
    const vector_d err = row_objective(W, dequantize(cands.back()), H);
    if (i == 0) res.error_at_hi = err.sum();
    if (per_tensor) {
      if (err.sum() < best_total) {
        best_total = err.sum();
        best_tensor = i;
      }
    } else {
      for (index_t r = 0; r < rows; ++r) {
        if (err(r) < best(r)) {
          best(r) = err(r);
          pick[static_cast<std::size_t>(r)] = i;
        }
      }
    }
  }
  if (per_tensor) {
    res.ratios = {grid.at(best_tensor)};
    res.quantized = cands[static_cast<std::size_t>(best_tensor)];
    res.error = best_total;
  } else {
    // Storage of per_row / per_group matrices is row-separable: copy each row's codes, scales
    // and zero points from its winning candidate.
    res.quantized = cands[0];
    quantized_matrix& m = res.quantized;
    res.ratios.resize(static_cast<std::size_t>(rows));
    for (index_t r = 0; r < rows; ++r) {
      const auto i = static_cast<std::size_t>(pick[static_cast<std::size_t>(r)]);
      const quantized_matrix& c = cands[i];
      res.ratios[static_cast<std::size_t>(r)] = grid.at(static_cast<int>(i));
      std::copy(c.codes.begin() + r * c.row_bytes, c.codes.begin() + (r + 1) * c.row_bytes,
                m.codes.begin() + r * m.row_bytes);
      const auto g0 = r * c.groups_per_row;
      const auto g1 = g0 + c.groups_per_row;
      std::copy(c.scales.begin() + g0, c.scales.begin() + g1, m.scales.begin() + g0);
      if (!c.zero_points.empty()) {
        std::copy(c.zero_points.begin() + g0, c.zero_points.begin() + g1,
                  m.zero_points.begin() + g0);
      }
    }
    res.error = rows > 0 ? best.sum() : 0.0;
  }
  res.dequantized = dequantize(res.quantized);
  return res;
}

}  // namespace detail

/// Chooses the clip ratio from `grid` minimising the weight MSE ||W^ - W||^2: one ratio per row
/// for per_row / per_group quantizers, one for per_tensor. W: [out, in], finite.
/// Preconditions (rotquant::error): q valid for W, not a block format, q.search == none, grid
/// valid. Cost: grid.steps quantizations of W.
inline clip_search_result search_clip_ratio(const quantizer& q, const matrix_f& W,
                                            const clip_grid& grid = {}) {
  detail::check_clip_search_args(q, W, grid);
  return detail::clip_search_impl(q, W, grid, matrix_d());
}

/// As above but minimising the layer-output error ||X W^T - X W^^T||_F^2 on calibration
/// inputs X: [tokens, in] (X.cols() == W.cols(), finite). Uses H = X^T X (double, in x in) once;
/// cost grid.steps * (quantization + out * in^2).
inline clip_search_result search_clip_ratio(const quantizer& q, const matrix_f& W,
                                            const matrix_f& X, const clip_grid& grid) {
  detail::check_clip_search_args(q, W, grid);
  ROTQUANT_CHECK(X.cols() == W.cols(), "search_clip_ratio: calibration X has "
                                           << X.cols() << " columns, W has " << W.cols()
                                           << " input features (they must match)");
  ROTQUANT_CHECK(X.rows() > 0, "search_clip_ratio: calibration X has no rows");
  check_finite(X, "search_clip_ratio: X");
  const matrix_d Xd = X.cast<double>();
  const matrix_d H = Xd.transpose() * Xd;
  return detail::clip_search_impl(q, W, grid, H);
}

/// One (format, clip) candidate of the HQ-DiT selection.
struct fp4_candidate {
  fp4_kind kind = fp4_kind::e2m1;
  float clip = 1.0f;
  /// Per-tensor selection: maxval = clip * absmax and the equivalent real exponent bias;
  /// NaN for per_row / per_group (each row / group has its own maxval).
  double maxval = std::numeric_limits<double>::quiet_NaN();
  double bias = std::numeric_limits<double>::quiet_NaN();
  double error = 0;  ///< mean squared error (or output error per token) of the fake quant
};

/// Result of select_fp4_format: the winner and every candidate evaluated (kinds x grid).
struct fp4_selection {
  fp4_candidate best;
  std::vector<fp4_candidate> candidates;
  /// The quantizer that reproduces the winner (format fp4_*, granularity, clip).
  quantizer chosen;
};

namespace detail {
inline fp4_selection select_fp4_impl(const matrix_f& T, const matrix_d& H, double denom,
                                     granularity g, index_t group, const clip_grid& grid,
                                     const std::vector<fp4_kind>& kinds) {
  grid.validate();
  ROTQUANT_CHECK(!kinds.empty(), "select_fp4_format: no FP4 layouts to choose from");
  ROTQUANT_CHECK(T.size() > 0,
                 "select_fp4_format: empty calibration data " << T.rows() << " x " << T.cols());
  check_finite(T, "select_fp4_format: data");
  fp4_selection sel;
  sel.best.error = std::numeric_limits<double>::infinity();
  const double amax = static_cast<double>(T.cwiseAbs().maxCoeff());
  for (fp4_kind k : kinds) {
    for (int i = 0; i < grid.steps; ++i) {
      const quantizer q = quantizer::fp4(k, g, group, grid.at(i));
      q.validate(T.rows(), T.cols());
      const matrix_f d = fake_quantize(q, T);
      fp4_candidate c;
      c.kind = k;
      c.clip = q.clip;
      c.error = row_objective(T, d, H).sum() / denom;
      if (g == granularity::per_tensor && amax > 0) {
        c.maxval = amax * static_cast<double>(q.clip);
        c.bias = fp4_format::from_maxval(k, c.maxval).bias();
      }
      sel.candidates.push_back(c);
      if (c.error < sel.best.error) {
        sel.best = c;
        sel.chosen = q;
      }
    }
  }
  return sel;
}
}  // namespace detail

/// HQ-DiT's per-layer FP4 choice on calibration data T (activations [tokens, C] or weights
/// [out, in], finite, non-empty): the layout among `kinds` and the clip ratio (= exponent bias)
/// in `grid` minimising the fake-quantization MSE at granularity g (group size `group` for
/// per_group). Cost: kinds * grid.steps fake quantizations.
inline fp4_selection select_fp4_format(const matrix_f& T, granularity g = granularity::per_tensor,
                                       index_t group = 0,
                                       const clip_grid& grid = clip_grid{0.3f, 1.0f, 36},
                                       const std::vector<fp4_kind>& kinds = {
                                           fp4_kind::e1m2, fp4_kind::e2m1, fp4_kind::e3m0}) {
  return detail::select_fp4_impl(T, matrix_d(), static_cast<double>(T.size()), g, group, grid,
                                 kinds);
}

/// Weight variant minimising the layer-output error ||X (W^ - W)^T||_F^2 / tokens on
/// calibration inputs X [tokens, in] (X.cols() == W.cols()).
inline fp4_selection select_fp4_format(const matrix_f& W, const matrix_f& X,
                                       granularity g = granularity::per_row, index_t group = 0,
                                       const clip_grid& grid = clip_grid{0.3f, 1.0f, 36},
                                       const std::vector<fp4_kind>& kinds = {
                                           fp4_kind::e1m2, fp4_kind::e2m1, fp4_kind::e3m0}) {
  ROTQUANT_CHECK(X.cols() == W.cols() && X.rows() > 0, "select_fp4_format: calibration X is "
                                                           << X.rows() << " x " << X.cols()
                                                           << ", W has " << W.cols()
                                                           << " input features (need X.cols() == "
                                                              "W.cols() and at least one row)");
  check_finite(X, "select_fp4_format: X");
  const matrix_d Xd = X.cast<double>();
  return detail::select_fp4_impl(W, Xd.transpose() * Xd, static_cast<double>(X.rows()), g, group,
                                 grid, kinds);
}

}  // namespace rotquant
