// SPDX-License-Identifier: Apache-2.0
// gptq.hpp: GPTQ weight quantization (Frantar et al., ICLR 2023) as QuaRot's fake-quant path runs
// it (fake_quant/gptq_utils.py, class GPTQ), for any rotquant quantizer: a streaming Hessian
// accumulator and gptq(W, H, quantizer, options).
//
// The algorithm (W: [rows, C] in nn.Linear layout, H: [C, C]):
//   Hessian   over calibration batches of t rows (the layer's inputs after its online
//             transform): H *= n / (n + t); n += t; H += (2 / n) X^T X, so H = 2/n sum x x^T.
//             QuaRot counts sequences in n, rotquant counts rows; the scale of H changes the
//             reported loss only, never the quantized weight.
//   params    per_tensor / per_row: found once on the weight as given (before dead columns are
//             cleared), like the peer's find_params(W) ahead of the loop.
//   dead      diag(H) == 0: H[d, d] = 1 and W[:, d] = 0.
//   static    static_groups: every group's params found up front on W (dead columns cleared,
//             original column order).
//   act_order columns permuted by descending diag(H) (a stable sort: ties keep column order).
//   damp      percdamp * mean(diag H) added to the diagonal.
//   Hinv      U, the upper Cholesky factor of H^-1 (the peer: cholesky, cholesky_inverse,
//             cholesky upper). rotquant computes the same factor with one Cholesky and one
//             triangular inverse: with J the reversal permutation, J H J = L L^T gives
//             U = J L^-1 J (upper, positive diagonal, U^T U = H^-1), exact in exact arithmetic.
//   loop      blocks of block_size columns [i1, i2): per column i, q = Q(w_i) with the current
//             params; err = (w_i - q) / U[i, i]; the rest of the block -= err U[i, i:];
//             loss += (w_i - q)^2 / (2 U[i, i]^2); after the block W[:, i2:] -= Err U[i1:i2, i2:].
//             Without static groups a group's params are found when column i starts it, on
//             W[:, i : i + group] of the outer W (updated by earlier blocks only).
//   undo      act_order's permutation is undone on the result.
//
// Rows are independent: the work is split into fixed chunks of rows (never by thread count), so
// the result has the same bits for every executor.
#pragma once

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <new>
#include <numeric>
#include <string>
#include <vector>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/quant/pack.hpp"
#include "rotquant/quant/quantizer.hpp"

namespace rotquant {

/// Streaming GPTQ Hessian H = 2/n sum_x x x^T over every row x added (Scalar: float as the
/// peer, or double). add() is the peer's add_batch with a batch of t rows; merge() combines
/// accumulators filled on different threads or shards (the result equals one accumulator fed
/// both, to rounding). Only the lower triangle is stored; hessian() returns the full matrix.
template <class Scalar>
class hessian_accumulator {
  static_assert(std::is_same<Scalar, float>::value || std::is_same<Scalar, double>::value,
                "hessian_accumulator: Scalar must be float or double");

 public:
  /// An empty accumulator for inputs of `cols` features (cols >= 1).
  explicit hessian_accumulator(index_t cols) : cols_(cols) {
    ROTQUANT_CHECK(cols >= 1, "hessian_accumulator: cols must be >= 1 (got " << cols << ")");
    detail::check_alloc(cols, cols, sizeof(Scalar), "hessian_accumulator");
    try {
      lower_ = matrix<Scalar>::Zero(cols, cols);
    } catch (const std::bad_alloc&) {
      ROTQUANT_CHECK(false, "hessian_accumulator: a " << cols << " x " << cols
                                                      << " Hessian cannot be allocated");
    }
  }

  index_t cols() const { return cols_; }
  /// Rows added so far (n).
  long long rows() const { return n_; }

  /// Adds a batch X [t, cols] (finite; t = 0 is a no-op). Work is split into fixed panels of
  /// columns over `ex` (the default executor when null): the same bits on every thread count.
  void add(const_matrix_view<float> X, executor* ex = nullptr) {
    ROTQUANT_CHECK(X.cols() == cols_, "hessian_accumulator::add: the batch has "
                                          << X.cols() << " features, the accumulator " << cols_);
    check_finite(X, "hessian_accumulator::add: X");
    const index_t t = X.rows();
    if (t == 0) return;
    const double shrink = static_cast<double>(n_) / static_cast<double>(n_ + t);
    n_ += t;
    const Scalar alpha = static_cast<Scalar>(2.0 / static_cast<double>(n_));
    matrix<Scalar> xs = X.template cast<Scalar>();
    if (shrink != 1.0) lower_ *= static_cast<Scalar>(shrink);
    // Lower triangle by panels of columns [j0, j1): H[j0:, j0:j1] += alpha X[:, j0:]^T X[:, j0:j1].
    const index_t panel = 128;
    const index_t panels = (cols_ + panel - 1) / panel;
    parallel_for(
        0, panels, 1,
        [&](index_t lo, index_t hi) {
          for (index_t p = lo; p < hi; ++p) {
            const index_t j0 = p * panel, w = std::min(panel, cols_ - j0);
            lower_.block(j0, j0, cols_ - j0, w).noalias() +=
                alpha * (xs.rightCols(cols_ - j0).transpose() * xs.middleCols(j0, w));
          }
        },
        ex);
  }
  void add(const matrix_f& X, executor* ex = nullptr) { add(view(X), ex); }

  /// Folds another accumulator in: H = (n H + n' H') / (n + n').
  void merge(const hessian_accumulator& other) {
    ROTQUANT_CHECK(other.cols_ == cols_, "hessian_accumulator::merge: "
                                             << other.cols_ << " features, this has " << cols_);
    if (other.n_ == 0) return;
    const double total = static_cast<double>(n_ + other.n_);
    const Scalar a = static_cast<Scalar>(static_cast<double>(n_) / total);
    const Scalar b = static_cast<Scalar>(static_cast<double>(other.n_) / total);
    lower_ = a * lower_ + b * other.lower_;
    n_ += other.n_;
  }

  /// The symmetric Hessian [cols, cols] (all zero before the first row).
  matrix<Scalar> hessian() const {
    matrix<Scalar> h = lower_;
    const index_t t = 64;  // mirror the lower triangle by tiles (no transposed copy)
    for (index_t i0 = 0; i0 < cols_; i0 += t)
      for (index_t j0 = 0; j0 <= i0; j0 += t)
        for (index_t i = i0; i < std::min(cols_, i0 + t); ++i)
          for (index_t j = j0; j < std::min(i, j0 + t); ++j) h(j, i) = h(i, j);
    return h;
  }

 private:
  index_t cols_;
  long long n_ = 0;
  matrix<Scalar> lower_;  // rows below the diagonal of each panel hold H; above: unused
};

/// Settings of gptq() (QuaRot's fasterquant arguments).
struct gptq_options {
  index_t block_size = 128;    ///< columns per lazy-update block (>= 1)
  double percdamp = 0.01;      ///< damping: percdamp * mean(diag H) on the diagonal (>= 0)
  bool act_order = false;      ///< process columns by descending diag(H)
  bool static_groups = false;  ///< per_group only: every group's params from the original W
  std::string layer;           ///< name used in error messages ("" = unnamed)
  executor* ex = nullptr;      ///< threads over chunks of rows (null: the default executor)
};

/// What gptq() returns.
struct gptq_result {
  /// The quantized weight (codes, scales) for the packed kernels. Its columns are in the input
  /// order, except with act_order and groups found during the loop (not static), where a group
  /// spans permuted columns: then weight column j holds input column perm[j] (and X must be
  /// permuted the same way: a permutation stage, y[j] = x[perm[j]]).
  quantized_matrix weight;
  std::vector<index_t> perm;  ///< empty: identity (see weight)
  matrix_f dequantized;       ///< the quantized weight's values [rows, C], input column order
  vector_d column_loss;       ///< sum over rows of (w - q)^2 / (2 U_ii^2), input column order
  /// sum of column_loss: 1/2 sum_r dW_r (H' + damp I) dW_r^T, with dW = W' - dequantized where
  /// W' and H' are W and H with dead columns cleared (W'[:, d] = 0, H'[d, d] = 1).
  double loss = 0;
  double damp = 0;           ///< the value added to the diagonal
  index_t dead_columns = 0;  ///< columns with diag(H) == 0 (weights cleared)
};

namespace detail {

inline std::string gptq_who(const gptq_options& o) {
  return o.layer.empty() ? std::string("gptq") : "gptq: layer '" + o.layer + "'";
}

/// In-place inverse of a lower-triangular matrix (recursive 2 x 2 blocking, n^3 / 3 flops). At the
/// top level (ex given) the two half inverses and the off-diagonal products run as two fixed
/// halves each over ex: the same bits for every thread count.
template <class Scalar>
void invert_lower_in_place(Eigen::Ref<matrix<Scalar>, 0, Eigen::OuterStride<>> L,
                           executor* ex = nullptr, bool top = false) {
  const index_t n = L.rows();
  if (n <= 64) {
    matrix<Scalar> id = matrix<Scalar>::Identity(n, n);
    L.template triangularView<Eigen::Lower>().solveInPlace(id);
    L = id;
    return;
  }
  const index_t h = n / 2;
  const auto halves = [&](const std::function<void(index_t)>& f) {
    if (top) {
      parallel_for(
          0, 2, 1,
          [&](index_t lo, index_t hi) {
            for (index_t k = lo; k < hi; ++k) f(k);
          },
          ex);
    } else {
      f(0);
      f(1);
    }
  };
  halves([&](index_t k) {
    if (k == 0) {
      invert_lower_in_place<Scalar>(L.topLeftCorner(h, h));
    } else {
      invert_lower_in_place<Scalar>(L.bottomRightCorner(n - h, n - h));
    }
  });
  // [A 0; B C]^-1 = [A^-1 0; -C^-1 B A^-1  C^-1]: t = B A^-1 by halves of rows, then
  // -C^-1 t by halves of columns.
  matrix<Scalar> t(n - h, h);
  const index_t rh = (n - h) / 2, ch = h / 2;
  halves([&](index_t k) {
    const index_t r0 = k == 0 ? 0 : rh, nr = k == 0 ? rh : n - h - rh;
    t.middleRows(r0, nr).noalias() = L.bottomLeftCorner(n - h, h).middleRows(r0, nr) *
                                     L.topLeftCorner(h, h).template triangularView<Eigen::Lower>();
  });
  halves([&](index_t k) {
    const index_t c0 = k == 0 ? 0 : ch, nc = k == 0 ? ch : h - ch;
    L.bottomLeftCorner(n - h, h).middleCols(c0, nc).noalias() =
        -(L.bottomRightCorner(n - h, n - h).template triangularView<Eigen::Lower>() *
          t.middleCols(c0, nc));
  });
}

/// U: the upper Cholesky factor of H^-1, via the reversed Cholesky (see the file comment).
/// Returns false if H is not positive definite.
template <class Scalar>
bool gptq_inverse_factor_in_place(matrix<Scalar>& h, matrix_f& U, executor* ex = nullptr) {
  const index_t n = h.rows();
  h.reverseInPlace();  // J H J
  const vector<Scalar> diag = h.diagonal();
  Eigen::LLT<Eigen::Ref<matrix<Scalar>>, Eigen::Lower> llt(h);
  bool ok = llt.info() == Eigen::Success;
  for (index_t i = 0; ok && i < n; ++i)
    ok = h(i, i) > Scalar(0) && std::isfinite(static_cast<double>(h(i, i)));
  if (!ok) {
    // The Cholesky wrote the lower triangle only: mirror the upper one back and undo the
    // reversal, so that h is H again for the caller's diagnosis.
    h.diagonal() = diag;
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < i; ++j) h(i, j) = h(j, i);
    h.reverseInPlace();
    return false;
  }
  h.template triangularView<Eigen::StrictlyUpper>().setZero();
  invert_lower_in_place<Scalar>(h, ex, true);
  h.reverseInPlace();  // U = J L^-1 J
  if constexpr (std::is_same<Scalar, float>::value) {
    U.swap(h);
  } else {
    U = h.template cast<float>();
  }
  return U.allFinite();
}

/// As gptq_inverse_factor_in_place, on a copy of H.
template <class Scalar>
bool gptq_inverse_factor(const matrix<Scalar>& H, matrix_f& U, executor* ex = nullptr) {
  matrix<Scalar> h = H;
  return gptq_inverse_factor_in_place(h, U, ex);
}

/// max |H - H^T| by 64 x 64 tiles (no transposed copy).
template <class Scalar>
double max_asymmetry(const matrix<Scalar>& H) {
  const index_t n = H.rows(), t = 64;
  double m = 0;
  for (index_t i0 = 0; i0 < n; i0 += t)
    for (index_t j0 = 0; j0 <= i0; j0 += t)
      for (index_t i = i0; i < std::min(n, i0 + t); ++i)
        for (index_t j = j0; j < std::min(i, j0 + t); ++j)
          m = std::max(m, std::fabs(static_cast<double>(H(i, j)) - static_cast<double>(H(j, i))));
  return m;
}

/// True if H + shift I has a Cholesky factor.
template <class Scalar>
bool gptq_positive_definite(const matrix<Scalar>& H, double shift) {
  matrix<Scalar> t = H;
  t.diagonal().array() += static_cast<Scalar>(shift);
  Eigen::LLT<Eigen::Ref<matrix<Scalar>>, Eigen::Lower> llt(t);
  return llt.info() == Eigen::Success;
}

}  // namespace detail

/// GPTQ: quantizes W [rows, C] with q, minimising the output error on the inputs whose Hessian
/// is H [C, C] (hessian_accumulator). Any rotquant quantizer (INT, FP4, FP8, MXFP4, NVFP4, every
/// granularity, clip search) is the rounding target; its params rule is quantize()'s.
/// Throws rotquant::error for: shapes that disagree, NaN/Inf in W or H, an asymmetric H, bad
/// options, and an H that is not positive definite after damping (the message gives the damp
/// that would be needed). With H = I (and percdamp = 0) the result is quantize(q, W).
/// Cost: O(C^3) for the factor, O(rows C^2) for the updates, O(rows C) quantizations.
template <class Scalar>
gptq_result gptq(const matrix_f& W, const matrix<Scalar>& H, const quantizer& q,
                 const gptq_options& o = {}) {
  const std::string who = detail::gptq_who(o);
  const index_t rows = W.rows(), C = W.cols();
  ROTQUANT_CHECK(rows >= 1 && C >= 1, who << ": W is " << rows << " x " << C
                                          << " (need at least one row and one column)");
  ROTQUANT_CHECK(H.rows() == C && H.cols() == C, who << ": H is " << H.rows() << " x " << H.cols()
                                                     << ", W has " << C << " columns (H must be "
                                                     << C << " x " << C << ")");
  ROTQUANT_CHECK(o.block_size >= 1,
                 who << ": block_size must be >= 1 (got " << o.block_size << ")");
  ROTQUANT_CHECK(std::isfinite(o.percdamp) && o.percdamp >= 0,
                 who << ": percdamp must be finite and >= 0 (got " << o.percdamp << ")");
  ROTQUANT_CHECK(!o.static_groups || q.gran == granularity::per_group,
                 who << ": static_groups needs a per_group quantizer (got " << q.name() << ")");
  q.validate(rows, C);
  check_finite(W, (who + ": W").c_str());
  check_finite(H, (who + ": H").c_str());
  {
    const double scale = std::max(1e-30, static_cast<double>(H.cwiseAbs().maxCoeff()));
    const double asym = detail::max_asymmetry(H);
    ROTQUANT_CHECK(asym <= 1e-5 * scale, who << ": H is not symmetric (max |H - H^T| = " << asym
                                             << " for max |H| = " << scale << ")");
  }

  gptq_result res;
  matrix_f w = W;
  const float ts =
      q.format == element_format::nvfp4 ? detail::nvfp4_ts(detail::global_amax(view(W))) : 1.0f;
  const index_t g = q.group_length(C);
  const index_t gpr = q.groups_per_row(C);
  const bool grouped = q.gran == granularity::per_group;
  // Params found before dead columns are cleared (per_tensor / per_row), as the peer.
  std::vector<detail::quant_params> fixed_params;
  if (q.gran == granularity::per_tensor) {
    fixed_params.push_back(detail::region_params(q, view(W), detail::region{0, rows, 0, C}, ts));
  } else if (!grouped) {
    fixed_params.resize(static_cast<std::size_t>(rows));
    parallel_for(
        0, rows, 16,
        [&](index_t lo, index_t hi) {
          for (index_t r = lo; r < hi; ++r)
            fixed_params[static_cast<std::size_t>(r)] =
                detail::region_params(q, view(W), detail::region{r, r + 1, 0, C}, ts);
        },
        o.ex);
  }

  matrix<Scalar> h = H;
  for (index_t d = 0; d < C; ++d) {
    if (h(d, d) == Scalar(0)) {
      h(d, d) = Scalar(1);
      w.col(d).setZero();
      ++res.dead_columns;
    }
  }
  if (o.static_groups) {
    fixed_params.resize(static_cast<std::size_t>(rows * gpr));
    parallel_for(
        0, rows, 16,
        [&](index_t lo, index_t hi) {
          for (index_t r = lo; r < hi; ++r)
            for (index_t k = 0; k < gpr; ++k)
              fixed_params[static_cast<std::size_t>(r * gpr + k)] = detail::region_params(
                  q, view(static_cast<const matrix_f&>(w)),
                  detail::region{r, r + 1, k * g, std::min(C, (k + 1) * g)}, ts);
        },
        o.ex);
  }
  std::vector<index_t> perm(static_cast<std::size_t>(C));
  std::iota(perm.begin(), perm.end(), index_t{0});
  if (o.act_order) {
    std::stable_sort(perm.begin(), perm.end(),
                     [&](index_t a, index_t b) { return h(a, a) > h(b, b); });
    matrix_f wp(rows, C);
    matrix<Scalar> hp(C, C);
    for (index_t j = 0; j < C; ++j) wp.col(j) = w.col(perm[static_cast<std::size_t>(j)]);
    for (index_t i = 0; i < C; ++i)
      for (index_t j = 0; j < C; ++j)
        hp(i, j) = h(perm[static_cast<std::size_t>(i)], perm[static_cast<std::size_t>(j)]);
    w.swap(wp);
    h.swap(hp);
  }
  const double mean_diag = static_cast<double>(h.diagonal().template cast<double>().mean());
  res.damp = o.percdamp * mean_diag;
  h.diagonal().array() += static_cast<Scalar>(res.damp);
  matrix_f U;
  if (!detail::gptq_inverse_factor_in_place(h, U, o.ex)) {
    h.diagonal().array() -= static_cast<Scalar>(res.damp);
    // The damp that would be needed: the least shift that makes H positive definite, by
    // bisection on Cholesky trials (on this error path only).
    const double scale = std::max(std::fabs(mean_diag), 1e-30);
    double lo = res.damp, hi = std::max(2.0 * res.damp, scale);
    for (int k = 0; k < 60 && !detail::gptq_positive_definite(h, hi); ++k) hi *= 2.0;
    for (int k = 0; k < 20 && hi - lo > 1e-3 * hi; ++k) {
      const double mid = 0.5 * (lo + hi);
      (detail::gptq_positive_definite(h, mid) ? hi : lo) = mid;
    }
    ROTQUANT_CHECK(mean_diag > 0,
                   who << ": the Hessian is not positive definite (its mean diagonal is "
                       << mean_diag << " <= 0, so no percdamp can help: a damp of about " << hi
                       << " would be needed); a GPTQ Hessian is 2/n X^T X");
    ROTQUANT_CHECK(false, who << ": the Hessian is not positive definite after damping by "
                              << res.damp << " (percdamp " << o.percdamp << " x mean diagonal "
                              << mean_diag << "); a damp of about " << hi << " (percdamp "
                              << hi / mean_diag << ") would be needed, or more calibration rows");
  }

  const bool permuted_groups = o.act_order && grouped && !o.static_groups;
  // Output in "result order": permuted when the groups follow the permuted columns.
  quantized_matrix& out = res.weight;
  out.q = q;
  out.rows = rows;
  out.cols = C;
  out.group = g;
  out.groups_per_row = gpr;
  out.row_bytes = q.packs_nibbles() ? packed_nibble_bytes(C) : C;
  out.codes.assign(static_cast<std::size_t>(rows * out.row_bytes), 0);
  const index_t nscales = q.gran == granularity::per_tensor ? 1 : rows * gpr;
  out.scales.assign(static_cast<std::size_t>(nscales), 1.0f);
  if (q.has_zero_point()) out.zero_points.assign(static_cast<std::size_t>(nscales), 0);
  if (q.is_block_format()) out.scale_codes.assign(static_cast<std::size_t>(nscales), 0);
  out.tensor_scale = q.format == element_format::nvfp4 ? ts : 1.0f;
  auto put_params = [&](index_t k, const detail::quant_params& p) {
    out.scales[static_cast<std::size_t>(k)] = p.scale;
    if (q.has_zero_point()) out.zero_points[static_cast<std::size_t>(k)] = p.zero;
    if (q.is_block_format()) out.scale_codes[static_cast<std::size_t>(k)] = p.scale_code;
  };
  if (q.gran == granularity::per_tensor) put_params(0, fixed_params[0]);
  if (q.gran == granularity::per_row)
    for (index_t r = 0; r < rows; ++r) put_params(r, fixed_params[static_cast<std::size_t>(r)]);
  if (o.static_groups)
    for (index_t k = 0; k < rows * gpr; ++k)
      put_params(k, fixed_params[static_cast<std::size_t>(k)]);

  const int qmin = detail::int_qmin(q), qmax = detail::int_qmax(q);
  const float fqmin = static_cast<float>(qmin), fqmax = static_cast<float>(qmax);
  const bool integer = q.format == element_format::integer;
  const bool nibbles = q.packs_nibbles();
  const index_t B = std::min(o.block_size, C);
  // Lazy updates on two levels: after a block, the rest of its super-block; after a
  // super-block, every later column (the same sums as the peer's update after each block, with
  // fewer passes over W). A super-block is a multiple of the block and of the group, so no group
  // starts before a super-block boundary and ends after it.
  index_t S = B;
  for (index_t m = 1; m <= 8; ++m) {
    if (!grouped || (B * m) % g == 0) S = B * m;
    if (S >= 512 && (!grouped || S % g == 0)) break;
  }
  if (grouped && S % g != 0) S = B;
  std::vector<float> udiag(static_cast<std::size_t>(C));
  std::vector<double> half_inv_d2(static_cast<std::size_t>(C));  // 1 / (2 U_ii^2)
  for (index_t i = 0; i < C; ++i) {
    udiag[static_cast<std::size_t>(i)] = U(i, i);
    half_inv_d2[static_cast<std::size_t>(i)] =
        1.0 / (2.0 * static_cast<double>(U(i, i)) * static_cast<double>(U(i, i)));
  }
  const index_t chunk = 256;  // rows per work item: fixed, so threads never change the bits
  const index_t chunks = (rows + chunk - 1) / chunk;
  matrix_d loss_parts = matrix_d::Zero(chunks, C);  // [chunk, permuted column]
  matrix_f qvals(rows, C);                          // quantized values, permuted order
  parallel_for(
      0, chunks, 1,
      [&](index_t lo, index_t hi) {
        std::vector<float> w1(static_cast<std::size_t>(B));
        std::vector<detail::quant_params> cur(static_cast<std::size_t>(chunk));
        matrix_f err(chunk, S);
        for (index_t ck = lo; ck < hi; ++ck) {
          const index_t r0 = ck * chunk, nr = std::min(chunk, rows - r0);
          for (index_t s1 = 0; s1 < C; s1 += S) {
            const index_t s2 = std::min(s1 + S, C);
            for (index_t i1 = s1; i1 < s2; i1 += B) {
              const index_t i2 = std::min(i1 + B, s2), count = i2 - i1;
              for (index_t rr = 0; rr < nr; ++rr) {
                const index_t r = r0 + rr;
                float* wr = w.data() + r * C;
                std::copy(wr + i1, wr + i2, w1.begin());
                detail::quant_params& p = cur[static_cast<std::size_t>(rr)];
                if (q.gran == granularity::per_tensor) p = fixed_params[0];
                if (q.gran == granularity::per_row) p = fixed_params[static_cast<std::size_t>(r)];
                std::uint8_t* code_row = out.codes.data() + r * out.row_bytes;
                float* qrow = qvals.data() + r * C;
                double* lrow = loss_parts.data() + ck * C;
                float* erow = err.data() + rr * S + (i1 - s1);
                for (index_t i = 0; i < count; ++i) {
                  const index_t col = i1 + i;
                  const index_t src = perm[static_cast<std::size_t>(col)];  // input column
                  if (!grouped) {
                    // per_tensor / per_row: set for the row above
                  } else if (o.static_groups) {
                    p = fixed_params[static_cast<std::size_t>(r * gpr + src / g)];
                  } else if (col % g == 0) {
                    p = detail::region_params(q, view(static_cast<const matrix_f&>(w)),
                                              detail::region{r, r + 1, col, std::min(C, col + g)},
                                              ts);
                    put_params(r * gpr + col / g, p);
                  }
                  const float x = w1[static_cast<std::size_t>(i)];
                  std::uint8_t stored;
                  float v;
                  if (integer) {
                    // encode_element / decode_element for INT, without the format switch.
                    const float zf = static_cast<float>(p.zero);
                    const float code = detail::int_code_f(x, p.scale, zf, fqmin, fqmax);
                    stored = static_cast<std::uint8_t>(static_cast<int>(code) & 0xFF);
                    v = (code - zf) * p.scale;
                  } else {
                    stored = detail::encode_element(q, x, p, qmin, qmax);
                    v = detail::decode_element(q, detail::stored_to_code(q, stored), p);
                  }
                  const index_t dst = permuted_groups ? col : src;
                  if (nibbles) {
                    set_nibble(code_row, dst, stored);
                  } else {
                    code_row[dst] = stored;
                  }
                  qrow[col] = v;
                  const float d = udiag[static_cast<std::size_t>(col)];
                  const float e = (x - v) / d;
                  const double dx = static_cast<double>(x) - static_cast<double>(v);
                  lrow[col] += dx * dx * half_inv_d2[static_cast<std::size_t>(col)];
                  erow[i] = e;
                  const float* urow = U.data() + col * C + i1;
                  float* wj = w1.data();
                  for (index_t j = i + 1; j < count; ++j) wj[j] -= e * urow[j];
                }
              }
              if (i2 < s2) {  // the rest of the super-block
                w.block(r0, i2, nr, s2 - i2).noalias() -=
                    err.block(0, i1 - s1, nr, count) * U.block(i1, i2, count, s2 - i2);
              }
            }
            if (s2 < C) {  // every later column
              w.block(r0, s2, nr, C - s2).noalias() -=
                  err.topLeftCorner(nr, s2 - s1) * U.block(s1, s2, s2 - s1, C - s2);
            }
          }
        }
      },
      o.ex);

  // Back to the input column order.
  res.column_loss = vector_d::Zero(C);
  for (index_t col = 0; col < C; ++col) {
    double s = 0;
    for (index_t ck = 0; ck < chunks; ++ck) s += loss_parts(ck, col);
    res.column_loss(perm[static_cast<std::size_t>(col)]) = s;
  }
  if (o.act_order) {
    res.dequantized.resize(rows, C);
    for (index_t r = 0; r < rows; ++r) {
      const float* src = qvals.data() + r * C;
      float* dst = res.dequantized.data() + r * C;
      for (index_t col = 0; col < C; ++col) dst[perm[static_cast<std::size_t>(col)]] = src[col];
    }
  } else {
    res.dequantized = std::move(qvals);
  }
  res.loss = res.column_loss.sum();
  if (permuted_groups) res.perm = perm;
  return res;
}

#if ROTQUANT_EXTERN_TEMPLATES
// Compiled mode (config.hpp): instantiated once in src/calibration_gptq.cpp.
extern template gptq_result gptq<float>(const matrix_f&, const matrix_f&, const quantizer&,
                                        const gptq_options&);
extern template gptq_result gptq<double>(const matrix_f&, const matrix_d&, const quantizer&,
                                         const gptq_options&);
#endif

}  // namespace rotquant
