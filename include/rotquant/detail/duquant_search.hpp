// SPDX-License-Identifier: Apache-2.0
// detail/duquant_search.hpp: DuQuant's greedy rotation search, straightforward and fast (exact).
//
// Readers' note. The released DuQuant code multiplies the whole (rows x B) matrix by the step
// rotation at each of N steps and takes the first max / min of the signed values. The fast path
// here returns the same bits with far less work: an orthogonal step keeps each row's L2 norm and
// no entry exceeds its row's norm, so a row whose norm bound is below both the current maximum
// and minus the current minimum cannot hold either extreme. Rows are visited in decreasing norm
// order and brought up to date lazily: each row keeps its own progress (how many steps it has
// seen) and, when it becomes a candidate, the pending step rotations are applied to it one by
// one with the same kernel, in the same order, as the straightforward path, so its values are
// identical. The bound accounts for fp32 rounding: ||y_{j+1}|| <= g ||y_j|| with
// g = ||Rot_f||_2 + gamma_B || |Rot_f| ||_2 (gamma_B = B u / (1 - B u), u = 2^-24, the error
// bound of a length-B fused dot product), so |y_j[c]| <= g^j ||y_0||.
#pragma once
// IWYU pragma: private, include "rotquant/transforms/duquant.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/detail/duquant_kernels.hpp"

namespace rotquant {

/// Result of one greedy search (one block rotation R of size B x B).
struct duquant_search {
  /// Rot = R~ diag(1, Q'), the B x B rotation (double) shared by all steps; the steps use its
  /// fp32 rounding, as the released code.
  matrix_d rot;
  /// peaks[j] = max - min of the signed values before step j, j = 0..N (N + 1 values, fp32).
  std::vector<float> peaks;
  /// swaps[j] = index e_j swapped with 0 in step j (E_j Rot E_j), j = 0..N-1.
  std::vector<index_t> swaps;
  /// k = first index of the minimum of peaks; R uses swaps[0..k).
  index_t chosen = 0;
  /// R = prod_{i < k} E_i Rot E_i (double, multiplied on the right in order). k = 0 gives I.
  matrix_d rotation;
  /// Work counter: row-step products the search performed (for the fast path, the rows it
  /// brought up to date; the straightforward path does rows * N).
  std::int64_t row_steps = 0;
};

namespace detail {

/// Which index is swapped with 0 at each step.
enum class duquant_swap_rule {
  row_mod_block,  // released code: (row index of the outlier in the rows x B view) mod B
  column          // paper: the column holding the outlier
};

struct duquant_extreme {
  float v;
  index_t idx;
};

// Updates the running first maximum / first minimum (ties: smaller flat index wins) with one row.
inline void duquant_scan_row(const float* row, index_t b, index_t flat0, duquant_extreme& mx,
                             duquant_extreme& mn) {
  for (index_t c = 0; c < b; ++c) {
    const float v = row[c];
    const index_t f = flat0 + c;
    if (v > mx.v || (v == mx.v && f < mx.idx)) mx = {v, f};
    if (v < mn.v || (v == mn.v && f < mn.idx)) mn = {v, f};
  }
}

// Records peak and swap index of one step from the extremes; returns the swap index.
inline index_t duquant_swap_index(const duquant_extreme& mx, const duquant_extreme& mn, index_t b,
                                  duquant_swap_rule rule) {
  const bool take_max = std::fabs(mx.v) > std::fabs(mn.v);
  const index_t flat = take_max ? mx.idx : mn.idx;
  return rule == duquant_swap_rule::row_mod_block ? (flat / b) % b : flat % b;
}

// Upper bound on ||y_{j+1}|| / ||y_j|| for one fp32 step with rot_f (see the readers' note).
inline double duquant_step_growth(const matrix_f& rot_f) {
  const index_t b = rot_f.rows();
  const matrix_d r = rot_f.cast<double>();
  const double eta =
      (r.transpose() * r - matrix_d::Identity(b, b)).norm() + static_cast<double>(b) * 1e-13;
  const double u = std::ldexp(1.0, -24);
  const double bu = static_cast<double>(b) * u;
  if (bu >= 0.5) return std::numeric_limits<double>::infinity();
  const double gamma = bu / (1.0 - bu);
  const double g = std::sqrt(1.0 + eta) + gamma * std::sqrt(static_cast<double>(b) * (1.0 + eta));
  return g * (1.0 + 1e-12);
}

// R = prod_{i < k} E_i rot E_i.
inline matrix_d duquant_accumulate(const matrix_d& rot, const std::vector<index_t>& swaps,
                                   index_t k) {
  const index_t b = rot.rows();
  matrix_d acc = matrix_d::Identity(b, b);
  matrix_d tmp(b, b);
  for (index_t i = 0; i < k; ++i) {
    const index_t e = swaps[static_cast<std::size_t>(i)];
    acc.col(0).swap(acc.col(e));
    tmp.noalias() = acc * rot;
    acc.swap(tmp);
    acc.col(0).swap(acc.col(e));
  }
  return acc;
}

template <class Tag>
void duquant_greedy_impl(Tag tag, const float* data, index_t rows, index_t stride, index_t b,
                         const matrix_f& rot_f, index_t steps, duquant_swap_rule rule,
                         bool exhaustive, duquant_search& out) {
  std::vector<float> scratch(static_cast<std::size_t>(2 * b));
  matrix_f work(rows, b);
  const auto reset = [](duquant_extreme& mx, duquant_extreme& mn) {
    mx = {-std::numeric_limits<float>::infinity(), std::numeric_limits<index_t>::max()};
    mn = {std::numeric_limits<float>::infinity(), std::numeric_limits<index_t>::max()};
  };
  duquant_extreme mx{}, mn{};
  if (exhaustive) {
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < b; ++c) work(r, c) = data[r * stride + c];
    for (index_t j = 0; j <= steps; ++j) {
      reset(mx, mn);
      for (index_t r = 0; r < rows; ++r) duquant_scan_row(work.data() + r * b, b, r * b, mx, mn);
      out.peaks.push_back(mx.v - mn.v);
      if (j == steps) break;
      const index_t e = duquant_swap_index(mx, mn, b, rule);
      out.swaps.push_back(e);
      for (index_t r = 0; r < rows; ++r)
        arch::duquant_rotate_row(tag, rot_f.data(), b, e, work.data() + r * b, scratch.data());
      out.row_steps += rows;
    }
    return;
  }
  // Fast path: rows in decreasing order of their (exact-input) L2 norm.
  std::vector<double> norm(static_cast<std::size_t>(rows));
  for (index_t r = 0; r < rows; ++r) {
    double s = 0.0;
    for (index_t c = 0; c < b; ++c) {
      const double v = data[r * stride + c];
      s += v * v;
    }
    norm[static_cast<std::size_t>(r)] = std::sqrt(s);
  }
  std::vector<index_t> order(static_cast<std::size_t>(rows));
  std::iota(order.begin(), order.end(), index_t{0});
  std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t c) {
    return norm[static_cast<std::size_t>(a)] > norm[static_cast<std::size_t>(c)];
  });
  std::vector<index_t> progress(static_cast<std::size_t>(rows), -1);
  const double g = duquant_step_growth(rot_f);
  // G_j bounds ||y_j|| / ||y_0||; the factor covers the rounding of the double norm itself.
  // `slack` covers absolute errors from subnormal results (2^-149 per rounding, B per step),
  // which the relative bound does not.
  double growth = 1.0 + 1e-10;
  double slack = 0.0;
  const double subnormal_step = std::ldexp(1.0, -149) * static_cast<double>(2 * b);
  const auto bring_up_to_date = [&](index_t r, index_t j) {
    index_t& p = progress[static_cast<std::size_t>(r)];
    float* row = work.data() + r * b;
    if (p < 0) {
      for (index_t c = 0; c < b; ++c) row[c] = data[r * stride + c];
      p = 0;
    }
    for (; p < j; ++p) {
      arch::duquant_rotate_row(tag, rot_f.data(), b, out.swaps[static_cast<std::size_t>(p)], row,
                               scratch.data());
      ++out.row_steps;
    }
    return row;
  };
  index_t needed = 0;  // rows the last step had to look at
  for (index_t j = 0; j <= steps; ++j) {
    reset(mx, mn);
    if (2 * needed > rows) {
      // The bound prunes little (e.g. Gaussian-like rows of similar norm): visit every row in
      // memory order (same extremes: ties go by flat index), then count the rows the ordered
      // pass would have needed with the final extremes.
      for (index_t r = 0; r < rows; ++r) duquant_scan_row(bring_up_to_date(r, j), b, r * b, mx, mn);
      const double thr = std::min(static_cast<double>(mx.v), -static_cast<double>(mn.v));
      needed = 0;
      while (needed < rows &&
             norm[static_cast<std::size_t>(order[static_cast<std::size_t>(needed)])] * growth +
                     slack >=
                 thr)
        ++needed;
    } else {
      needed = 0;
      for (const index_t r : order) {
        const double bound = norm[static_cast<std::size_t>(r)] * growth + slack;
        if (bound < static_cast<double>(mx.v) && -bound > static_cast<double>(mn.v)) break;
        duquant_scan_row(bring_up_to_date(r, j), b, r * b, mx, mn);
        ++needed;
      }
    }
    out.peaks.push_back(mx.v - mn.v);
    if (j == steps) break;
    out.swaps.push_back(duquant_swap_index(mx, mn, b, rule));
    growth *= g;
    slack = slack * g + subnormal_step;
  }
}

/// One greedy search over `rows` rows of B floats (`stride` floats apart) with rotation `rot`
/// (B x B, double; the steps use its fp32 rounding). N = steps. Returns peaks, swaps, the
/// chosen k and R. exhaustive = true runs the straightforward O(rows * N * B^2) algorithm of
/// the released code; false runs the exact fast path (bit-identical results).
/// Preconditions (checked by the public callers): rows >= 1, b >= 2, steps >= 0, finite data.
inline duquant_search duquant_greedy(const float* data, index_t rows, index_t stride, index_t b,
                                     const matrix_d& rot, index_t steps, duquant_swap_rule rule,
                                     bool exhaustive) {
  duquant_search out;
  out.rot = rot;
  const matrix_f rot_f = rot.cast<float>();
  out.peaks.reserve(static_cast<std::size_t>(steps + 1));
  out.swaps.reserve(static_cast<std::size_t>(steps));
  dispatch([&](auto tag) {
    duquant_greedy_impl(tag, data, rows, stride, b, rot_f, steps, rule, exhaustive, out);
  });
  out.chosen = static_cast<index_t>(std::min_element(out.peaks.begin(), out.peaks.end()) -
                                    out.peaks.begin());
  out.rotation = duquant_accumulate(rot, out.swaps, out.chosen);
  return out;
}

}  // namespace detail
}  // namespace rotquant
