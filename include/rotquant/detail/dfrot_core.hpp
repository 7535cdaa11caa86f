// SPDX-License-Identifier: Apache-2.0
// dfrot_core.hpp: DFRot internals on plain matrices: the per-token fake quantizer, blocked
// parallel GEMMs, the Procrustes polar factor, LAPACK-convention QR and the alternating loop.
//
// Readers' note. Everything here works on a dense start rotation that has already been applied
// to the rows; transforms/dfrot.hpp adds detection, sampling, transforms and reporting on top.
// Work split (for the executor): products with a C x C rotation split over row blocks; the
// cross-product A^T B splits over column blocks of the result, so every entry is computed by
// one task with one summation order and the result has the same bits for any thread count.
// The SVD and the QR run on the calling thread (Eigen without OpenMP is single-threaded).
#pragma once

#include <Eigen/Householder>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <vector>

#include "rotquant/config.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/threading.hpp"

namespace rotquant {

/// Symmetric per-token (per-row) fake quantizer of QuaRot's ActQuantizer (docs/algorithms.md 3.5),
/// the quantizer DFRot optimises against. For each row x:
///   s = max|x| * clip / (2^(bits-1) - 1)   (s = 1 if that is 0),
///   q = clamp(rint(x / s), -2^(bits-1), 2^(bits-1) - 1),  out = q * s,
/// in the arithmetic of the scalar type (fp32 for float rows, IEEE division, rint = round half
/// to even). With clip = 1 the code -2^(bits-1) never occurs (pitfall 6). Scale-equivariant:
/// Q(w x) = w Q(x) for w > 0 up to rounding, which the weighted and subsampled objectives of
/// DFRot rely on. O(C) per row.
struct dfrot_sym_quantizer {
  int bits = 4;       ///< 2..8
  double clip = 1.0;  ///< clip ratio in (0, 1]

  /// Checks bits and clip; throws rotquant::error naming the bad value.
  void validate() const {
    ROTQUANT_CHECK(bits >= 2 && bits <= 8,
                   "dfrot_sym_quantizer: bits = " << bits << " is not supported (accepted: 2..8)");
    ROTQUANT_CHECK(std::isfinite(clip) && clip > 0.0 && clip <= 1.0,
                   "dfrot_sym_quantizer: clip ratio " << clip << " is outside (0, 1]");
  }

  /// Fake-quantizes every row of `in` into the same row of `out` (same shape; may alias).
  template <class S>
  void operator()(const_matrix_view<S> in, matrix_view<S> out) const {
    static_assert(std::is_floating_point<S>::value, "dfrot_sym_quantizer needs float or double");
    const S qmax = static_cast<S>((1 << (bits - 1)) - 1);
    const S qmin = -qmax - S(1);
    const S c = static_cast<S>(clip);
    for (index_t r = 0; r < in.rows(); ++r) {
      const S absmax = in.row(r).cwiseAbs().maxCoeff();
      S s = absmax * c / qmax;
      if (s == S(0)) s = S(1);
      out.row(r) = ((in.row(r).array() / s).rint().max(qmin).min(qmax) * s).matrix();
    }
  }
};

/// One step of DFRot's alternating loop, as recorded in the result.
struct dfrot_step_record {
  int step = 0;                 ///< 1-based step number
  double loss_before = 0.0;     ///< objective at the current rotation
  double loss_candidate = 0.0;  ///< objective at the candidate rotation
  bool accepted = false;
};

/// DFRot's acceptance rule: the released one (docs/algorithms.md 2.3) generalised by two
/// parameters: with best = loss_cur + slack, accept iff loss_cand <= best && best - loss_cand >
/// min_decrease. slack = 100, min_decrease = 0.1 is the released code; slack = 0,
/// min_decrease = 0 accepts only strict decreases.
inline bool dfrot_accept(double loss_cur, double loss_cand, double slack, double min_decrease) {
  const double best = loss_cur + slack;
  return loss_cand <= best && best - loss_cand > min_decrease;
}

namespace detail {

/// Rows per task for the quantization; rows per task for products with a C x C matrix (each
/// task re-packs that matrix, so tasks are coarse); columns per task of the cross product (each
/// task re-packs all of A). Fixed numbers, so results never depend on the thread count.
constexpr index_t dfrot_row_grain = 256;
constexpr index_t dfrot_gemm_row_grain = 1024;
constexpr index_t dfrot_col_grain = 512;

template <class S>
const_matrix_view<S> rows_view(const matrix<S>& m, index_t lo, index_t hi) {
  return const_matrix_view<S>(m.data() + lo * m.cols(), hi - lo, m.cols(),
                              Eigen::OuterStride<>(m.cols()));
}
template <class S>
matrix_view<S> rows_view(matrix<S>& m, index_t lo, index_t hi) {
  return matrix_view<S>(m.data() + lo * m.cols(), hi - lo, m.cols(),
                        Eigen::OuterStride<>(m.cols()));
}

/// out = Q(in) row by row, in parallel over row blocks. `out` is resized to in's shape.
template <class S, class Quantizer>
void fake_quantize_rows(const matrix<S>& in, matrix<S>& out, const Quantizer& q, executor* ex) {
  out.resize(in.rows(), in.cols());
  parallel_for(
      0, in.rows(), dfrot_row_grain,
      [&](index_t lo, index_t hi) { q(rows_view(in, lo, hi), rows_view(out, lo, hi)); }, ex);
}

/// Per-row L2 quantization error ||x_t - Q(x_t)||_2 (accumulated in double), parallel.
template <class S, class Quantizer>
vector_d row_quant_errors(const matrix<S>& x, const Quantizer& q, executor* ex) {
  vector_d err(x.rows());
  parallel_for(
      0, x.rows(), dfrot_row_grain,
      [&](index_t lo, index_t hi) {
        matrix<S> block(hi - lo, x.cols());
        q(rows_view(x, lo, hi), view(block));
        for (index_t r = lo; r < hi; ++r) {
          double acc = 0.0;
          for (index_t c = 0; c < x.cols(); ++c) {
            const double d = static_cast<double>(x(r, c)) - static_cast<double>(block(r - lo, c));
            acc += d * d;
          }
          err[r] = std::sqrt(acc);
        }
      },
      ex);
  return err;
}

/// Per-row quantization error of x * rot (rot: C x C in S), block by block so the rotated rows
/// are never stored whole. Parallel over row blocks.
template <class S, class Quantizer>
vector_d rotated_row_errors(const matrix<S>& x, const matrix<S>& rot, const Quantizer& q,
                            executor* ex) {
  vector_d err(x.rows());
  parallel_for(
      0, x.rows(), dfrot_row_grain,
      [&](index_t lo, index_t hi) {
        const matrix<S> block = x.middleRows(lo, hi - lo) * rot;
        serial_executor serial;  // never nest into the caller's executor
        err.segment(lo, hi - lo) = row_quant_errors(block, q, &serial);
      },
      ex);
  return err;
}

/// out = a * b (a: T x C, b: C x C), parallel over row blocks of a.
template <class S>
void multiply_rows(const matrix<S>& a, const matrix<S>& b, matrix<S>& out, executor* ex) {
  out.resize(a.rows(), b.cols());
  parallel_for(
      0, a.rows(), dfrot_gemm_row_grain,
      [&](index_t lo, index_t hi) {
        out.middleRows(lo, hi - lo).noalias() = a.middleRows(lo, hi - lo) * b;
      },
      ex);
}

/// a^T b (a, b: T x C) in double, parallel over column blocks of the C x C result. The product
/// itself runs in S (fp32 for float rows, as the released code does on the GPU).
template <class S>
matrix_d cross_product(const matrix<S>& a, const matrix<S>& b, executor* ex) {
  const index_t c = a.cols();
  matrix_d m(c, c);
  parallel_for(
      0, c, dfrot_col_grain,
      [&](index_t lo, index_t hi) {
        const matrix<S> part = a.transpose() * b.middleCols(lo, hi - lo);
        m.middleCols(lo, hi - lo) = part.template cast<double>();
      },
      ex);
  return m;
}

/// max |M^T M - I| over all entries (0 for an exactly orthogonal M). O(C^3).
inline double orthogonality_error(const matrix_d& m) {
  if (m.rows() == 0) return 0.0;
  const matrix_d g = m.transpose() * m;
  return (g - matrix_d::Identity(m.rows(), m.cols())).cwiseAbs().maxCoeff();
}

/// Orthogonal polar factor U V^T of a square M from its SVD in double (BDCSVD; Eigen switches
/// to JacobiSVD below 16 x 16). For a rank-deficient M the factor on the null space is the
/// SVD's completion, still orthogonal. O(C^3).
/// (A template so that Eigen's SVD is instantiated only where it is called.)
template <class Derived>
matrix_d polar_factor(const Eigen::MatrixBase<Derived>& m) {
  using col_major = Eigen::MatrixXd;
  const col_major cm = m.template cast<double>();
  Eigen::BDCSVD<col_major> svd(cm, Eigen::ComputeFullU | Eigen::ComputeFullV);
  ROTQUANT_CHECK(svd.info() == Eigen::Success, "dfrot: the SVD of the "
                                                   << m.rows() << " x " << m.cols()
                                                   << " Procrustes matrix did not converge");
  matrix_d p = svd.matrixU() * svd.matrixV().transpose();
  return p;
}

/// Q factor of the Householder QR of a square matrix, with LAPACK's (and torch's) sign
/// convention: R_ii = -sign(pivot) * ||sub-column|| while the part below the pivot is non-zero,
/// R_ii = pivot otherwise (Eigen's makeHouseholder follows the same rule). For an orthogonal
/// input P this returns P diag(sign R_ii) re-orthonormalised to working precision; for a
/// near-identity P it negates every column but the last (docs/algorithms.md 2.3). O(C^3).
template <class Derived>
matrix_d householder_q(const Eigen::MatrixBase<Derived>& p) {
  using col_major = Eigen::MatrixXd;
  Eigen::HouseholderQR<col_major> qr(p.template cast<double>());
  col_major q = col_major::Identity(p.rows(), p.cols());
  q.applyOnTheLeft(qr.householderQ());
  return q;
}

struct refine_output {
  matrix_d rotation;  // R_opt
  std::vector<double> loss_trace;
  std::vector<dfrot_step_record> steps;
  int accepted_steps = 0;
  bool stopped_early = false;
};

/// The alternating loop of docs/algorithms.md 2.4 on already rotated, already weighted rows `a`
/// (n x C), starting from R = I. Per step: M = (A R)^T Q(A R) in double, P = polar(M),
/// candidate R' = householder_q(R P), loss(R') = ||A R' - Q(A R')||_F; R <- R' if
/// dfrot_accept. A rejected step leaves R unchanged, so every later step would repeat it:
/// the loop stops.
template <class S, class Quantizer>
refine_output refine_rotation(const matrix<S>& a, int steps, double slack, double min_decrease,
                              const Quantizer& q, executor* ex) {
  const index_t c = a.cols();
  refine_output out;
  out.rotation = matrix_d::Identity(c, c);

  auto loss_of = [](const matrix<S>& x, const matrix<S>& qx) {
    double acc = 0.0;
    for (index_t r = 0; r < x.rows(); ++r)
      acc += static_cast<double>((x.row(r) - qx.row(r)).squaredNorm());
    return std::sqrt(acc);
  };

  matrix<S> cur = a;  // A R with R = I
  matrix<S> cur_q;
  fake_quantize_rows(cur, cur_q, q, ex);
  double loss_cur = loss_of(cur, cur_q);
  out.loss_trace.push_back(loss_cur);

  matrix<S> cand, cand_q, rot_s;
  for (int k = 1; k <= steps; ++k) {
    const matrix_d m = cross_product(cur, cur_q, ex);
    // The released script also replaces P by the Q factor of its QR before forming R P. For an
    // orthogonal P that is P D (D = column signs) re-orthonormalised, and Householder reflectors
    // do not change when columns change sign (v -> -v), so qr_q(R P D) = qr_q(R P): that QR
    // changes nothing but rounding and is skipped (one C^3 factorisation less per step).
    const matrix_d p = polar_factor(m);
    // R P in double, parallel over row blocks of R.
    matrix_d rp(c, c);
    parallel_for(
        0, c, dfrot_col_grain,
        [&](index_t lo, index_t hi) {
          rp.middleRows(lo, hi - lo).noalias() = out.rotation.middleRows(lo, hi - lo) * p;
        },
        ex);
    matrix_d r_cand = householder_q(rp);
    rot_s = r_cand.template cast<S>();
    multiply_rows(a, rot_s, cand, ex);
    fake_quantize_rows(cand, cand_q, q, ex);
    const double loss_cand = loss_of(cand, cand_q);

    dfrot_step_record rec;
    rec.step = k;
    rec.loss_before = loss_cur;
    rec.loss_candidate = loss_cand;
    rec.accepted = ::rotquant::dfrot_accept(loss_cur, loss_cand, slack, min_decrease);
    out.steps.push_back(rec);
    if (!rec.accepted) {
      out.stopped_early = k < steps;
      break;
    }
    ++out.accepted_steps;
    out.rotation.swap(r_cand);
    cur.swap(cand);
    cur_q.swap(cand_q);
    loss_cur = loss_cand;
    out.loss_trace.push_back(loss_cur);
  }
  return out;
}

#if ROTQUANT_EXTERN_TEMPLATES
// Compiled mode (config.hpp): instantiated once in src/calibration_linalg.cpp.
extern template matrix_d polar_factor<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
extern template matrix_d householder_q<matrix_d>(const Eigen::MatrixBase<matrix_d>&);
#endif

}  // namespace detail
}  // namespace rotquant
