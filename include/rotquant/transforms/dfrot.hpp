// SPDX-License-Identifier: Apache-2.0
// dfrot.hpp: DFRot (arXiv 2412.00648): refine a start rotation by alternating per-token
// quantizer fits and orthogonal Procrustes updates, weighting massive-activation tokens.
//
// Readers' note (docs/algorithms.md section 2). Given calibration rows X (T x C, e.g. RMSNorm
// outputs of every decoder layer), a start rotation S (randomized Hadamard by default) and a set M
// of massive-activation tokens, DFRot minimises ||A R - Q(A R)||_F over orthogonal R, where
// A = X S with the rows in M multiplied by alpha and Q is the 4-bit symmetric per-token
// quantizer. It alternates B = Q(A R) (quantizer parameters re-derived on the rotated rows)
// with the Procrustes update P = U V^T from svd((A R)^T B), re-orthonormalised by QR exactly
// as the released script does. The result is one dense orthogonal stage S R.
//
// What runs where: the products with a C x C matrix and the per-row quantization split over
// row blocks, the cross-product over column blocks of the result, all through the executor;
// the SVD and QR of the C x C matrices run on the calling thread.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/detail/dfrot_core.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "rotquant/transforms/hadamard.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// How massive-activation tokens are found (docs/algorithms.md 2.2).
enum class massive_rule {
  /// Released LLaMA/Qwen rule: err0_t = ||x_t - Q(x_t)||_2 on the un-rotated row is below a
  /// threshold (a token with its norm in 1-2 channels rounds the rest to ~0 and has a small
  /// absolute error).
  released,
  /// Released Mistral rule: a random orthogonal rotation does not reduce the token's error,
  /// err(x_t G) >= err0_t.
  mistral,
  /// max_c |x_tc| > factor * (median over tokens of max_c |x_tc|).
  magnitude,
  /// The caller's mask.
  mask,
};

/// Options of the massive-token detection.
struct massive_token_options {
  massive_rule rule = massive_rule::released;
  /// released: absolute per-token L2 error threshold; 0 selects dfrot_released_threshold(C),
  /// which assumes RMS-normalised rows (row norm sqrt(C)). Give it explicitly for other data.
  double threshold = 0.0;
  /// magnitude: the multiple of the median token's max |x|. After RMSNorm a massive token keeps
  /// most of its norm sqrt(C) in 1-2 channels (max ~ sqrt(C/2)), ordinary LLaMA tokens have max
  /// values several times smaller; tune it for other data.
  double magnitude_factor = 3.0;
  /// mistral: seed of the random orthogonal rotation (random_orthogonal(C, seed)).
  std::uint64_t seed = 0;
  /// mask: one entry per row of X, non-zero = massive.
  std::vector<std::uint8_t> mask;
};

/// The released threshold 8.5 is an absolute per-token L2 error for C = 4096 on rows of norm
/// sqrt(C) (pitfall 10). The error of a row whose energy is spread over C channels grows as
/// sqrt(C) (C entries, each with a rounding error ~ s / sqrt(12), s set by a max that grows only
/// like sqrt(log C)), so the threshold is scaled the same way: 8.5 * sqrt(C / 4096), i.e. a
/// relative error of 8.5 / 64 = 0.133 of the row norm sqrt(C). C = 4096 gives 8.5 exactly,
/// C = 128 gives 1.50. Throws rotquant::error if C < 1.
inline double dfrot_released_threshold(index_t c) {
  ROTQUANT_CHECK(c >= 1, "dfrot_released_threshold: hidden size " << c << " must be >= 1");
  return 8.5 * std::sqrt(static_cast<double>(c) / 4096.0);
}

/// Where the alternating loop starts.
enum class dfrot_start {
  randomized_hadamard,  ///< randomized_hadamard(C, seed) (released default, --rotate_mode hadamard)
  random_orthogonal,    ///< random_orthogonal(C, seed) (--rotate_mode random)
  given,                ///< dfrot_options::start_transform or dfrot_options::start_matrix
};

/// Options of dfrot(); the defaults are the released script's.
struct dfrot_options {
  massive_token_options massive;
  /// Rows of massive tokens are multiplied by alpha (their squared error weighted by alpha^2).
  double alpha = 100.0;
  /// Alternating steps (alter_num).
  int steps = 100;
  dfrot_start start = dfrot_start::randomized_hadamard;
  /// Seed of the randomized Hadamard / random orthogonal start (the script uses torch seed 42;
  /// our generator differs from torch's, so only the role of the seed carries over).
  std::uint64_t seed = 42;
  /// start == given: an orthogonal transform of dimension C ...
  std::optional<transform> start_transform;
  /// ... or an orthogonal C x C matrix (row form X -> X M). Exactly one of the two.
  std::optional<matrix_d> start_matrix;
  /// Number of non-massive rows sampled (without replacement, seeded) into the objective, each
  /// weighted sqrt(N / n) so the expected objective equals the full one; 0 = all rows.
  /// Massive rows are always all included.
  index_t sample_rows = 0;
  std::uint64_t sample_seed = 0;
  /// Acceptance (docs/algorithms.md 2.3): with best = loss + slack, a candidate is accepted iff
  /// loss' <= best and best - loss' > min_decrease. The released values are 100 and 0.1
  /// (absolute, so they accept almost every step); slack = 0 and min_decrease = 0 accept only
  /// strict decreases. A rejected step ends the loop (every later step would repeat it).
  double accept_slack = 100.0;
  double accept_min_decrease = 0.1;
  /// Tolerance on max |S^T S - I| of a given start.
  double orthogonality_tol = 1e-6;
};

/// Quantization error of a set of tokens split into massive and normal ones.
struct dfrot_error_split {
  index_t massive_tokens = 0;
  index_t normal_tokens = 0;
  double massive_sq_sum = 0.0;  ///< sum over massive tokens of ||x_t - Q(x_t)||^2
  double normal_sq_sum = 0.0;   ///< sum over normal tokens
  double massive_rms = 0.0;     ///< sqrt(massive_sq_sum / massive_tokens), 0 if none
  double normal_rms = 0.0;      ///< sqrt(normal_sq_sum / normal_tokens), 0 if none
  double massive_max = 0.0;     ///< largest per-token error among massive tokens
  /// sqrt(alpha^2 massive_sq_sum + normal_sq_sum): DFRot's objective on these rows.
  double weighted_loss = 0.0;
};

/// The paper's central observation in numbers: error split for the start and the refined
/// rotation on the full data.
struct dfrot_report {
  dfrot_error_split start;
  dfrot_error_split refined;

  /// A few human-readable lines.
  std::string to_string() const {
    std::ostringstream out;
    out << std::setprecision(6);
    out << "tokens: " << start.massive_tokens << " massive, " << start.normal_tokens << " normal\n";
    out << "rms per-token error   massive        normal         weighted loss\n";
    out << "start:                " << start.massive_rms << "  " << start.normal_rms << "  "
        << start.weighted_loss << '\n';
    out << "refined:              " << refined.massive_rms << "  " << refined.normal_rms << "  "
        << refined.weighted_loss << '\n';
    return out.str();
  }
};

/// Result of dfrot().
struct dfrot_result {
  explicit dfrot_result(index_t c) : rotation(c) {}
  /// One dense stage S R_opt (apply: X -> X S R_opt; fold: W -> W S R_opt).
  transform rotation;
  /// S R_opt (C x C, orthogonal to rounding).
  matrix_d matrix;
  /// R_opt (C x C).
  matrix_d refinement;
  /// Massive-token mask over the rows of X (1 = massive) and its count.
  std::vector<std::uint8_t> massive;
  index_t massive_count = 0;
  /// Rows in the optimised objective (massive + sampled normal).
  index_t objective_rows = 0;
  /// Objective on the (sampled, weighted) rows: [0] at the start, then after each accepted step.
  std::vector<double> loss_trace;
  /// Every step run, accepted or not.
  std::vector<dfrot_step_record> steps;
  int accepted_steps = 0;
  bool stopped_early = false;
  /// Per-token error ||x_t S - Q(x_t S)|| and ||x_t S R - Q(x_t S R)|| on all rows of X.
  vector_d token_error_start;
  vector_d token_error_refined;
  /// Error split on the full data; report.refined.weighted_loss is the full-data objective.
  dfrot_report report;
};

/// Adapts a rotquant::quantizer (quant/quantizer.hpp) to DFRot's row-quantizer concept
/// (fake_quantize on each block of rows; double rows go through fp32). dfrot() and the other
/// entry points wrap a rotquant::quantizer in it automatically.
struct dfrot_quantizer_adapter {
  quantizer q;

  /// DFRot multiplies rows by weights, which leaves a rule unchanged only if its scales are
  /// per row or per group: per-tensor scales and NVFP4's tensor scale are rejected.
  void validate() const {
    ROTQUANT_CHECK(q.gran != granularity::per_tensor && q.format != element_format::nvfp4,
                   "dfrot: the quantizer (" << to_string(q.format) << ", " << to_string(q.gran)
                                            << ") has a scale shared across rows; DFRot weights "
                                               "rows and needs per-row or per-group scales");
  }

  template <class S>
  void operator()(const_matrix_view<S> in, matrix_view<S> out) const {
    if constexpr (std::is_same<S, float>::value) {
      out = fake_quantize(q, in);
    } else {
      const matrix_f f = in.template cast<float>();
      out = fake_quantize(q, f).template cast<S>();
    }
  }
};

namespace detail {

template <class Q>
const Q& as_row_quantizer(const Q& q) {
  return q;
}
inline dfrot_quantizer_adapter as_row_quantizer(const quantizer& q) {
  return dfrot_quantizer_adapter{q};
}

template <class Q, class = void>
struct has_validate : std::false_type {};
template <class Q>
struct has_validate<Q, std::void_t<decltype(std::declval<const Q&>().validate())>>
    : std::true_type {};

template <class Q>
void validate_quantizer(const Q& q) {
  if constexpr (has_validate<Q>::value) q.validate();
}

template <class S>
void check_dfrot_input(const matrix<S>& x, const char* who) {
  static_assert(std::is_same<S, float>::value || std::is_same<S, double>::value,
                "DFRot works on float or double rows");
  ROTQUANT_CHECK(x.rows() >= 1 && x.cols() >= 1,
                 who << ": X must have at least one row and one column, got " << x.rows() << " x "
                     << x.cols());
  check_finite(x, who);
}

/// Per-row error of x M where M is a transform, block by block (never stores the whole X M).
template <class S, class Quantizer>
vector_d transformed_row_errors(const matrix<S>& x, const transform& t, const Quantizer& q,
                                executor* ex) {
  vector_d err(x.rows());
  parallel_for(
      0, x.rows(), dfrot_row_grain,
      [&](index_t lo, index_t hi) {
        matrix<S> block = x.middleRows(lo, hi - lo);
        serial_executor serial;  // never nest into the caller's executor
        t.apply_inplace(view(block), &serial);
        err.segment(lo, hi - lo) = row_quant_errors(block, q, &serial);
      },
      ex);
  return err;
}

inline dfrot_error_split split_errors(const vector_d& err, const std::vector<std::uint8_t>& mask,
                                      double alpha) {
  dfrot_error_split s;
  for (index_t t = 0; t < err.size(); ++t) {
    const double e2 = err[t] * err[t];
    if (mask[static_cast<std::size_t>(t)]) {
      ++s.massive_tokens;
      s.massive_sq_sum += e2;
      s.massive_max = std::max(s.massive_max, err[t]);
    } else {
      ++s.normal_tokens;
      s.normal_sq_sum += e2;
    }
  }
  if (s.massive_tokens) s.massive_rms = std::sqrt(s.massive_sq_sum / s.massive_tokens);
  if (s.normal_tokens) s.normal_rms = std::sqrt(s.normal_sq_sum / s.normal_tokens);
  s.weighted_loss = std::sqrt(alpha * alpha * s.massive_sq_sum + s.normal_sq_sum);
  return s;
}

inline void check_mask(const std::vector<std::uint8_t>& mask, index_t rows, const char* who) {
  ROTQUANT_CHECK(static_cast<index_t>(mask.size()) == rows,
                 who << ": the massive-token mask has " << mask.size() << " entries but X has "
                     << rows << " rows (one entry per row expected)");
}

}  // namespace detail

/// Finds massive-activation tokens in X (T x C, float or double, finite) by opt.rule; returns
/// one byte per row (1 = massive). `q` is the per-token quantizer of the released and Mistral
/// rules (callable as q(const_matrix_view<S> in, matrix_view<S> out), fake-quantizing each row).
/// Throws rotquant::error on an empty or non-finite X, a threshold or factor that is not
/// finite and positive, or a mask whose length is not T.
/// Cost: released O(T C); mistral O(T C^2 + C^3); magnitude O(T C); mask O(T).
template <class S, class Quantizer = dfrot_sym_quantizer>
std::vector<std::uint8_t> detect_massive_tokens(const matrix<S>& x,
                                                const massive_token_options& opt = {},
                                                const Quantizer& q_in = Quantizer{},
                                                executor* ex = nullptr) {
  detail::check_dfrot_input(x, "detect_massive_tokens");
  const auto& rq = detail::as_row_quantizer(q_in);
  detail::validate_quantizer(rq);
  const index_t t = x.rows(), c = x.cols();
  std::vector<std::uint8_t> mask(static_cast<std::size_t>(t), 0);
  switch (opt.rule) {
    case massive_rule::released: {
      ROTQUANT_CHECK(std::isfinite(opt.threshold) && opt.threshold >= 0.0,
                     "detect_massive_tokens: threshold " << opt.threshold
                                                         << " must be finite and > 0 (0 = auto)");
      const double thr = opt.threshold > 0.0 ? opt.threshold : dfrot_released_threshold(c);
      const vector_d err = detail::row_quant_errors(x, rq, ex);
      for (index_t i = 0; i < t; ++i) mask[static_cast<std::size_t>(i)] = err[i] < thr;
      break;
    }
    case massive_rule::mistral: {
      const vector_d err0 = detail::row_quant_errors(x, rq, ex);
      const matrix<S> g = random_orthogonal(c, opt.seed).template cast<S>();
      const vector_d err_r = detail::rotated_row_errors(x, g, rq, ex);
      for (index_t i = 0; i < t; ++i) mask[static_cast<std::size_t>(i)] = err_r[i] >= err0[i];
      break;
    }
    case massive_rule::magnitude: {
      ROTQUANT_CHECK(std::isfinite(opt.magnitude_factor) && opt.magnitude_factor > 0.0,
                     "detect_massive_tokens: magnitude factor " << opt.magnitude_factor
                                                                << " must be finite and > 0");
      std::vector<double> mx(static_cast<std::size_t>(t));
      for (index_t i = 0; i < t; ++i)
        mx[static_cast<std::size_t>(i)] = static_cast<double>(x.row(i).cwiseAbs().maxCoeff());
      std::vector<double> sorted = mx;
      const auto mid = sorted.begin() + (t - 1) / 2;  // lower median
      std::nth_element(sorted.begin(), mid, sorted.end());
      const double limit = opt.magnitude_factor * *mid;
      for (index_t i = 0; i < t; ++i)
        mask[static_cast<std::size_t>(i)] = mx[static_cast<std::size_t>(i)] > limit;
      break;
    }
    case massive_rule::mask: {
      detail::check_mask(opt.mask, t, "detect_massive_tokens");
      for (index_t i = 0; i < t; ++i)
        mask[static_cast<std::size_t>(i)] = opt.mask[static_cast<std::size_t>(i)] != 0;
      break;
    }
  }
  return mask;
}

/// Quantization error of the rows of X M (M = `rotation`, dimension C) split by `mask`
/// (one entry per row, non-zero = massive); weighted_loss uses `alpha`. Throws rotquant::error
/// on an empty or non-finite X, a dimension mismatch, a mask of the wrong length or alpha not
/// finite and positive. Cost: one application of the rotation to X plus O(T C).
template <class S, class Quantizer = dfrot_sym_quantizer>
dfrot_error_split quantization_error_split(const matrix<S>& x,
                                           const std::vector<std::uint8_t>& mask,
                                           const transform& rotation, double alpha = 100.0,
                                           const Quantizer& q_in = Quantizer{},
                                           executor* ex = nullptr) {
  detail::check_dfrot_input(x, "quantization_error_split");
  const auto& rq = detail::as_row_quantizer(q_in);
  detail::validate_quantizer(rq);
  ROTQUANT_CHECK(rotation.dim() == x.cols(), "quantization_error_split: rotation dimension "
                                                 << rotation.dim() << " does not match X's "
                                                 << x.cols() << " columns");
  detail::check_mask(mask, x.rows(), "quantization_error_split");
  ROTQUANT_CHECK(std::isfinite(alpha) && alpha > 0.0,
                 "quantization_error_split: alpha " << alpha << " must be finite and > 0");
  return detail::split_errors(detail::transformed_row_errors(x, rotation, rq, ex), mask, alpha);
}

/// Orthogonal Procrustes: the orthogonal R minimising ||A R - B||_F, R = U V^T with
/// U S V^T = svd(A^T B), in double. A, B: n x C, finite. For B = A R0 with A of full column
/// rank this is R0 exactly (to rounding). No sign fix is applied (DFRot's loop applies the
/// released QR afterwards). Throws rotquant::error on shape mismatch, empty or non-finite
/// input. Cost: O(n C^2 + C^3).
/// A and B may be any Eigen expressions (float or double); the work is in double.
template <class DerivedA, class DerivedB>
matrix_d procrustes_rotation(const Eigen::MatrixBase<DerivedA>& a_in,
                             const Eigen::MatrixBase<DerivedB>& b_in) {
  const matrix_d a = a_in.template cast<double>();
  const matrix_d b = b_in.template cast<double>();
  ROTQUANT_CHECK(a.rows() == b.rows() && a.cols() == b.cols(),
                 "procrustes_rotation: A is " << a.rows() << " x " << a.cols() << " but B is "
                                              << b.rows() << " x " << b.cols()
                                              << " (same shape expected)");
  ROTQUANT_CHECK(a.rows() >= 1 && a.cols() >= 1,
                 "procrustes_rotation: empty input " << a.rows() << " x " << a.cols());
  check_finite(a, "procrustes_rotation: A");
  check_finite(b, "procrustes_rotation: B");
  const matrix_d m = a.transpose() * b;
  return detail::polar_factor(m);
}

/// DFRot. X: T x C calibration rows (float or double; the released run uses the RMSNorm
/// outputs of every decoder layer, rows of norm sqrt(C)). Steps (docs/algorithms.md 2.2-2.4):
///  1. massive tokens by opt.massive (computed once, on the un-rotated rows);
///  2. start S (opt.start) and A = [rows of massive tokens * alpha; sampled normal rows *
///     sqrt(N / n)] S, in S's scalar type;
///  3. R = I; per step: M = (A R)^T Q(A R) in double, P = U V^T with U S V^T = svd(M),
///     candidate R' = qr_q(R P), loss' = ||A R' - Q(A R')||_F, accepted by the rule of
///     dfrot_options (qr_q: Householder Q with LAPACK's sign convention, as torch.linalg.qr;
///     the script's extra QR of P alone only flips column signs of P, which qr_q(R P) ignores
///     exactly, so it is skipped);
///  4. result S R as one dense transform stage, with the full-data error report.
/// GEMMs with the rows run in the scalar type of X (fp32 for float, like the released GPU run);
/// SVD, QR and the rotation itself in double. `q` fake-quantizes rows (see
/// detect_massive_tokens); it must be scale-equivariant (Q(w x) = w Q(x), w > 0) for the
/// weights to mean what they say, which per-row absmax rules are.
/// Throws rotquant::error on: empty or non-finite X; alpha not finite and > 0; steps < 0;
/// sample_rows < 0; negative or non-finite acceptance parameters; a given start that is
/// missing, doubly given, of the wrong dimension or not orthogonal (max |S^T S - I| >
/// orthogonality_tol); a caller mask of the wrong length, or selecting no token while alpha != 1.
/// Cost per step: 2 n C^2 (two GEMMs with n objective rows) + O(C^3) (one SVD, two QRs, one
/// C x C product); memory 4 n C scalars + O(C^2) doubles. Deterministic for a given seed,
/// whatever the executor.
template <class S, class Quantizer = dfrot_sym_quantizer>
dfrot_result dfrot(const matrix<S>& x, const dfrot_options& opt = {},
                   const Quantizer& q_in = Quantizer{}, executor* ex = nullptr) {
  detail::check_dfrot_input(x, "dfrot");
  const auto& q = detail::as_row_quantizer(q_in);
  detail::validate_quantizer(q);
  const index_t t = x.rows(), c = x.cols();
  ROTQUANT_CHECK(std::isfinite(opt.alpha) && opt.alpha > 0.0,
                 "dfrot: alpha " << opt.alpha << " must be finite and > 0 (released: 100)");
  ROTQUANT_CHECK(opt.steps >= 0, "dfrot: steps " << opt.steps << " must be >= 0");
  ROTQUANT_CHECK(opt.sample_rows >= 0,
                 "dfrot: sample_rows " << opt.sample_rows << " must be >= 0 (0 = all rows)");
  ROTQUANT_CHECK(std::isfinite(opt.accept_slack) && opt.accept_slack >= 0.0 &&
                     std::isfinite(opt.accept_min_decrease) && opt.accept_min_decrease >= 0.0,
                 "dfrot: acceptance slack " << opt.accept_slack << " and min decrease "
                                            << opt.accept_min_decrease
                                            << " must be finite and >= 0");

  // Start rotation.
  transform start(c);
  switch (opt.start) {
    case dfrot_start::randomized_hadamard:
      start = randomized_hadamard(c, opt.seed);
      break;
    case dfrot_start::random_orthogonal:
      start.append_dense(random_orthogonal(c, opt.seed));
      break;
    case dfrot_start::given: {
      ROTQUANT_CHECK(opt.start_transform.has_value() != opt.start_matrix.has_value(),
                     "dfrot: start = given needs exactly one of start_transform and "
                     "start_matrix, got "
                         << (opt.start_transform ? "both" : "neither"));
      if (opt.start_matrix) {
        const matrix_d& m = *opt.start_matrix;
        ROTQUANT_CHECK(m.rows() == c && m.cols() == c, "dfrot: start matrix is "
                                                           << m.rows() << " x " << m.cols()
                                                           << " but X has " << c << " columns ("
                                                           << c << " x " << c << " expected)");
        check_finite(m, "dfrot: start matrix");
        start.append_dense(m);
      } else {
        ROTQUANT_CHECK(opt.start_transform->dim() == c, "dfrot: start transform has dimension "
                                                            << opt.start_transform->dim()
                                                            << " but X has " << c << " columns");
        start = *opt.start_transform;
      }
      break;
    }
  }
  const matrix_d start_dense = start.to_dense();
  {
    const double dev = detail::orthogonality_error(start_dense);
    ROTQUANT_CHECK(dev <= opt.orthogonality_tol,
                   "dfrot: the start rotation is not orthogonal: max |S^T S - I| = "
                       << dev << " exceeds the tolerance " << opt.orthogonality_tol);
  }

  // Massive tokens.
  dfrot_result res(c);
  res.massive = detect_massive_tokens(x, opt.massive, q, ex);
  for (auto m : res.massive) res.massive_count += m ? 1 : 0;
  ROTQUANT_CHECK(
      !(opt.massive.rule == massive_rule::mask && res.massive_count == 0 && opt.alpha != 1.0),
      "dfrot: the caller's mask selects no massive token, so alpha = "
          << opt.alpha << " would weight nothing; mark at least one token or pass alpha = 1");

  // Objective rows: every massive row, plus all or a seeded sample of the others.
  std::vector<index_t> normal_rows, rows;
  std::vector<double> weights;
  for (index_t i = 0; i < t; ++i) {
    if (res.massive[static_cast<std::size_t>(i)]) {
      rows.push_back(i);
      weights.push_back(opt.alpha);
    } else {
      normal_rows.push_back(i);
    }
  }
  const auto n_normal = static_cast<index_t>(normal_rows.size());
  if (opt.sample_rows == 0 || opt.sample_rows >= n_normal) {
    for (index_t i : normal_rows) {
      rows.push_back(i);
      weights.push_back(1.0);
    }
  } else {
    const std::vector<index_t> perm = random_permutation(n_normal, opt.sample_seed);
    std::vector<index_t> pick(perm.begin(), perm.begin() + opt.sample_rows);
    std::sort(pick.begin(), pick.end());
    const double w = std::sqrt(static_cast<double>(n_normal) / opt.sample_rows);
    for (index_t k : pick) {
      rows.push_back(normal_rows[static_cast<std::size_t>(k)]);
      weights.push_back(w);
    }
  }
  res.objective_rows = static_cast<index_t>(rows.size());
  matrix<S> a(res.objective_rows, c);
  for (index_t r = 0; r < res.objective_rows; ++r)
    a.row(r) = x.row(rows[static_cast<std::size_t>(r)]);
  start.apply_inplace(view(a), ex);
  for (index_t r = 0; r < res.objective_rows; ++r)
    a.row(r) *= static_cast<S>(weights[static_cast<std::size_t>(r)]);

  // Alternating loop.
  detail::refine_output ref =
      detail::refine_rotation(a, opt.steps, opt.accept_slack, opt.accept_min_decrease, q, ex);
  a.resize(0, 0);
  res.refinement = std::move(ref.rotation);
  res.loss_trace = std::move(ref.loss_trace);
  res.steps = std::move(ref.steps);
  res.accepted_steps = ref.accepted_steps;
  res.stopped_early = ref.stopped_early;

  // Result and full-data report.
  res.matrix = start_dense * res.refinement;
  res.rotation.append_dense(res.matrix);
  res.token_error_start = detail::transformed_row_errors(x, start, q, ex);
  const matrix<S> final_s = res.matrix.template cast<S>();
  res.token_error_refined = detail::rotated_row_errors(x, final_s, q, ex);
  res.report.start = detail::split_errors(res.token_error_start, res.massive, opt.alpha);
  res.report.refined = detail::split_errors(res.token_error_refined, res.massive, opt.alpha);
  return res;
}

#if ROTQUANT_EXTERN_TEMPLATES
// Compiled mode (config.hpp): instantiated once in src/calibration_dfrot.cpp.
extern template dfrot_result dfrot<float, dfrot_sym_quantizer>(const matrix_f&,
                                                               const dfrot_options&,
                                                               const dfrot_sym_quantizer&,
                                                               executor*);
extern template dfrot_result dfrot<double, dfrot_sym_quantizer>(const matrix_d&,
                                                                const dfrot_options&,
                                                                const dfrot_sym_quantizer&,
                                                                executor*);
extern template matrix_d procrustes_rotation<matrix_d, matrix_d>(
    const Eigen::MatrixBase<matrix_d>&, const Eigen::MatrixBase<matrix_d>&);
#endif

}  // namespace rotquant
