// SPDX-License-Identifier: Apache-2.0
// metrics.hpp: quantization error metrics: MSE, SQNR (dB), max abs error, per-row error.
//
// All sums are accumulated in double. Both arguments must have the same shape and finite
// entries (rotquant::error otherwise, naming the first bad entry), so a metric never hides a
// NaN produced upstream.
#pragma once

#include <cmath>
#include <limits>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"

namespace rotquant {

namespace detail {
inline void check_metric_args(const char* fn, const_matrix_view<float> ref,
                              const_matrix_view<float> approx) {
  ROTQUANT_CHECK(ref.rows() == approx.rows() && ref.cols() == approx.cols(),
                 fn << ": shapes differ: reference " << ref.rows() << " x " << ref.cols()
                    << ", approximation " << approx.rows() << " x " << approx.cols());
  check_finite(ref, "metrics: reference");
  check_finite(approx, "metrics: approximation");
}
inline double row_sq_error(const_matrix_view<float> a, const_matrix_view<float> b, index_t r) {
  double s = 0;
  for (index_t c = 0; c < a.cols(); ++c) {
    const double d = static_cast<double>(a(r, c)) - static_cast<double>(b(r, c));
    s += d * d;
  }
  return s;
}
}  // namespace detail

/// Mean squared error between ref and approx (same shape, finite); 0 for an empty matrix.
/// O(rows * cols).
inline double mse(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("mse", ref, approx);
  if (ref.size() == 0) return 0.0;
  double s = 0;
  for (index_t r = 0; r < ref.rows(); ++r) s += detail::row_sq_error(ref, approx, r);
  return s / static_cast<double>(ref.size());
}

/// Signal-to-quantization-noise ratio 10 log10(sum ref^2 / sum (ref - approx)^2) in dB;
/// +inf when the error is zero, -inf when the reference is zero and the error is not.
/// O(rows * cols).
inline double sqnr_db(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("sqnr_db", ref, approx);
  double sig = 0;
  double err = 0;
  for (index_t r = 0; r < ref.rows(); ++r) {
    err += detail::row_sq_error(ref, approx, r);
    for (index_t c = 0; c < ref.cols(); ++c) sig += static_cast<double>(ref(r, c)) * ref(r, c);
  }
  if (err == 0) return std::numeric_limits<double>::infinity();
  if (sig == 0) return -std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(sig / err);
}

/// max |ref - approx| over all entries (0 for an empty matrix). O(rows * cols).
inline double max_abs_error(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("max_abs_error", ref, approx);
  double m = 0;
  for (index_t r = 0; r < ref.rows(); ++r) {
    for (index_t c = 0; c < ref.cols(); ++c) {
      m = std::max(m,
                   std::fabs(static_cast<double>(ref(r, c)) - static_cast<double>(approx(r, c))));
    }
  }
  return m;
}

/// Per-row MSE (length rows): a massive-activation token shows as one large entry. O(rows * cols).
inline vector_d per_row_mse(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("per_row_mse", ref, approx);
  vector_d out(ref.rows());
  for (index_t r = 0; r < ref.rows(); ++r) {
    out(r) = ref.cols() == 0
                 ? 0.0
                 : detail::row_sq_error(ref, approx, r) / static_cast<double>(ref.cols());
  }
  return out;
}

/// Per-row L2 error ||ref_r - approx_r|| (length rows), the quantity DFRot thresholds to find
/// massive-activation tokens. O(rows * cols).
inline vector_d per_row_l2_error(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("per_row_l2_error", ref, approx);
  vector_d out(ref.rows());
  for (index_t r = 0; r < ref.rows(); ++r) out(r) = std::sqrt(detail::row_sq_error(ref, approx, r));
  return out;
}

/// Per-row SQNR in dB (length rows), conventions as sqnr_db. O(rows * cols).
inline vector_d per_row_sqnr_db(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  detail::check_metric_args("per_row_sqnr_db", ref, approx);
  vector_d out(ref.rows());
  for (index_t r = 0; r < ref.rows(); ++r) {
    const double err = detail::row_sq_error(ref, approx, r);
    double sig = 0;
    for (index_t c = 0; c < ref.cols(); ++c) sig += static_cast<double>(ref(r, c)) * ref(r, c);
    out(r) = err == 0   ? std::numeric_limits<double>::infinity()
             : sig == 0 ? -std::numeric_limits<double>::infinity()
                        : 10.0 * std::log10(sig / err);
  }
  return out;
}

/// All metrics at once.
struct error_report {
  double mse = 0;
  double sqnr_db = 0;
  double max_abs_error = 0;
  vector_d row_mse;        ///< per-row MSE
  index_t worst_row = -1;  ///< row with the largest MSE (-1 when there are no rows)
};

/// Computes error_report for ref vs approx. O(rows * cols).
inline error_report compare(const_matrix_view<float> ref, const_matrix_view<float> approx) {
  error_report e;
  e.mse = mse(ref, approx);
  e.sqnr_db = sqnr_db(ref, approx);
  e.max_abs_error = max_abs_error(ref, approx);
  e.row_mse = per_row_mse(ref, approx);
  if (e.row_mse.size() > 0) e.row_mse.maxCoeff(&e.worst_row);
  return e;
}

// Convenience overloads for whole matrices.
inline double mse(const matrix_f& a, const matrix_f& b) {
  return mse(view(a), view(b));
}
inline double sqnr_db(const matrix_f& a, const matrix_f& b) {
  return sqnr_db(view(a), view(b));
}
inline double max_abs_error(const matrix_f& a, const matrix_f& b) {
  return max_abs_error(view(a), view(b));
}
inline vector_d per_row_mse(const matrix_f& a, const matrix_f& b) {
  return per_row_mse(view(a), view(b));
}
inline vector_d per_row_l2_error(const matrix_f& a, const matrix_f& b) {
  return per_row_l2_error(view(a), view(b));
}
inline vector_d per_row_sqnr_db(const matrix_f& a, const matrix_f& b) {
  return per_row_sqnr_db(view(a), view(b));
}
inline error_report compare(const matrix_f& a, const matrix_f& b) {
  return compare(view(a), view(b));
}

}  // namespace rotquant
