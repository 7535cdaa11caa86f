// SPDX-License-Identifier: Apache-2.0
// transforms/hadamard.hpp: the fast normalised Hadamard transform T_n = kron(H_K, S_2^m)/sqrt(n)
// over rows (hadamard_plan) and dense T_n for checks (QuaRot's randomized Hadamard as a
// transform: transforms/randomized_hadamard.hpp).
//
// Readers' note. Index convention (QuaRot, docs/algorithms.md 3.1): a row x of n = K * 2^m elements
// is viewed as a K x 2^m matrix X (x[k * 2^m + j]) and mapped to vec(H_K X S) / sqrt(n), with S
// the natural-order Sylvester matrix. K is chosen like QuaRot's get_hadK; other K that a Paley
// construction reaches are built on demand; every other n is an error, never padded.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <new>
#include <string>
#include <type_traits>
#include <vector>

#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/detail/arch/avx512/hadamard.hpp"
#include "rotquant/detail/arch/neon/hadamard.hpp"
#include "rotquant/detail/arch/scalar/hadamard.hpp"
#include "rotquant/detail/hadamard_bases.hpp"

namespace rotquant {

/// A prepared Hadamard transform of one size n: T_n = kron(H_K, S_{n/K}) / sqrt(n).
///
/// Construction factors n (O(K^2) to build H_K) and throws rotquant::error for a size with no
/// construction, naming the factorisation and the nearest options. The plan is immutable and
/// may be shared between threads. apply_rows costs n log2(n/K) + n (K/4 + 3) additions per row
/// and, when K > 1, allocates one workspace of 2 K * 64 elements per call.
class hadamard_plan {
 public:
  /// n >= 1 of the form K * 2^m (K = 1, a QuaRot/SpinQuant/DFRot base, or a Paley order).
  explicit hadamard_plan(index_t n) : n_(n) {
    const auto f = detail::factor_hadamard(n, "hadamard_plan");
    ROTQUANT_CHECK(f.k < 16384, "hadamard_plan: n = " << n << " needs a base of order K = " << f.k
                                                      << "; bases above 16380 are not supported");
    k_ = f.k;
    m_ = f.m;
    construction_ = detail::construction_for(k_);
    h_ = detail::hadamard_base(k_);
    ht_ = h_.transposed();
    const double s = 1.0 / std::sqrt(static_cast<double>(n));
    scale_d_ = s;
    scale_f_ = static_cast<float>(s);
    if (k_ > 1) {
      tables_[0] = combination_tables(h_);
      tables_[1] = combination_tables(ht_);
    }
  }

  /// n.
  index_t size() const { return n_; }
  /// K, the order of the non-power-of-two base (1 for powers of two).
  index_t base_order() const { return k_; }
  /// 2^m = n / K.
  index_t block_length() const { return m_; }
  /// Name of the rule that generated H_K ("Sylvester", "Paley I", ...).
  const char* construction() const { return detail::to_string(construction_); }
  /// H_K as +-1 entries.
  const detail::sign_matrix& base() const { return h_; }

  /// In place x -> T_n x for each of `rows` rows of n elements starting `stride` elements apart
  /// (row form: X -> X T_n^T). S is float or double. Requires stride >= n; data may be null
  /// only if rows == 0. Every ISA path gives identical bits (scalar/arch header contract).
  template <class S>
  void apply_rows(S* data, index_t rows, index_t stride) const {
    run(data, rows, stride, false, "hadamard_plan::apply_rows");
  }

  /// In place x -> T_n^T x (the inverse), same contract as apply_rows.
  template <class S>
  void apply_rows_transposed(S* data, index_t rows, index_t stride) const {
    run(data, rows, stride, true, "hadamard_plan::apply_rows_transposed");
  }

  /// Out of place: dst row r = T_n (src row r) (or T_n^T when transposed), rows of n elements,
  /// src_stride / dst_stride >= n. dst may be src itself (same stride: in place) but must not
  /// otherwise overlap it. Rows are copied and transformed in chunks that stay in cache, so a
  /// batch beyond the caches is read and written once. Same bits as the in-place form.
  template <class S>
  void apply_rows(const S* src, index_t src_stride, S* dst, index_t dst_stride, index_t rows,
                  bool transposed = false) const {
    const char* who = "hadamard_plan::apply_rows (out of place)";
    ROTQUANT_CHECK(rows >= 0, who << ": negative row count " << rows);
    ROTQUANT_CHECK(src_stride >= n_ && dst_stride >= n_,
                   who << ": strides " << src_stride << " (src) and " << dst_stride
                       << " (dst) must be >= the transform size " << n_);
    ROTQUANT_CHECK((src != nullptr && dst != nullptr) || rows == 0,
                   who << ": null data with " << rows << " rows");
    if (rows == 0) return;
    if (src == dst) {
      ROTQUANT_CHECK(src_stride == dst_stride, who << ": dst aliases src with a different stride");
      run(dst, rows, dst_stride, transposed, who);
      return;
    }
    const S* src_end = src + (rows - 1) * src_stride + n_;
    const S* dst_end = dst + (rows - 1) * dst_stride + n_;
    ROTQUANT_CHECK(src_end <= dst || dst_end <= src, who << ": dst overlaps src");
    const index_t chunk = n_ >= 16384 ? 4 : 65536 / n_;
    for (index_t r0 = 0; r0 < rows; r0 += chunk) {
      const index_t cnt = rows - r0 < chunk ? rows - r0 : chunk;
      for (index_t r = r0; r < r0 + cnt; ++r)
        std::copy(src + r * src_stride, src + r * src_stride + n_, dst + r * dst_stride);
      run(dst + r0 * dst_stride, cnt, dst_stride, transposed, who);
    }
  }

  /// Same as apply_rows / apply_rows_transposed on a strided view (X: [rows, n]).
  template <class S>
  void apply(matrix_view<S> x, bool transposed = false) const {
    ROTQUANT_CHECK(x.cols() == n_, "hadamard_plan::apply: the view has " << x.cols()
                                                                         << " columns, the plan "
                                                                            "size is "
                                                                         << n_);
    run(x.data(), x.rows(), x.outerStride(), transposed, "hadamard_plan::apply");
  }

  /// Dense T_n (n x n, double): column form y = T_n x. O(n^2) memory; for checks. Throws
  /// rotquant::error when n x n doubles cannot be allocated. (A template only so that the
  /// double-precision kernels are instantiated where it is called.)
  template <class Deferred = void>
  matrix_d to_dense() const {
    detail::check_alloc(n_, n_, sizeof(double), "hadamard_plan::to_dense");
    matrix_d t;
    try {
      t = matrix_d::Identity(n_, n_);
    } catch (const std::bad_alloc&) {
      detail::allocation_failed(n_, n_, sizeof(double), "hadamard_plan::to_dense");
    }
    // Row i of T_n^T = T_n applied to e_i, so transform the identity's rows and transpose.
    apply_rows(t.data(), n_, n_);
    return t.transpose();
  }

 private:
  template <class S>
  void run(S* data, index_t rows, index_t stride, bool transposed, const char* who) const {
    static_assert(std::is_same<S, float>::value || std::is_same<S, double>::value,
                  "hadamard_plan: the element type must be float or double");
    ROTQUANT_CHECK(rows >= 0, who << ": negative row count " << rows);
    ROTQUANT_CHECK(stride >= n_, who << ": row stride " << stride
                                     << " is smaller than the transform size " << n_);
    ROTQUANT_CHECK(data != nullptr || rows == 0, who << ": null data with " << rows << " rows");
    if (rows == 0) return;
    detail::hadamard_kernel_args<S> a;
    a.k = k_;
    a.m = m_;
    const auto& tab = tables_[transposed ? 1 : 0];
    a.combo = tab.combo.data();
    a.negative = tab.negative.data();
    a.slot = tab.slot.data();
    a.scale = scale<S>();
    // Uninitialised on purpose: every element is written before it is read.
    std::unique_ptr<S[]> scratch(
        k_ > 1 ? new S[static_cast<std::size_t>(2 * k_ * detail::hadamard_column_chunk)] : nullptr);
    a.scratch = scratch.get();
    dispatch([&](auto tag) { detail::arch::hadamard_rows(tag, a, data, rows, stride); });
  }

  // Per output row k and group g of four base columns: which signed sum (0..7) and its sign.
  struct combination {
    std::vector<std::uint8_t> combo, negative;
    std::vector<std::uint16_t> slot;
  };

  static combination combination_tables(const detail::sign_matrix& h) {
    const index_t k = h.order, groups = k / 4;
    combination t;
    for (index_t r = 0; r < k; ++r)
      for (index_t g = 0; g < groups; ++g) {
        const int lead = h.at(r, 4 * g);
        int idx = 0;
        for (int i = 1; i < 4; ++i) idx = 2 * idx + (h.at(r, 4 * g + i) != lead ? 1 : 0);
        t.combo.push_back(static_cast<std::uint8_t>(idx));
        t.negative.push_back(lead < 0 ? 1 : 0);
        t.slot.push_back(static_cast<std::uint16_t>(g * 16 + idx + (lead < 0 ? 8 : 0)));
      }
    return t;
  }

  template <class S>
  S scale() const;

  index_t n_ = 0, k_ = 1, m_ = 1;
  detail::base_construction construction_ = detail::base_construction::sylvester;
  detail::sign_matrix h_, ht_;
  double scale_d_ = 1.0;
  float scale_f_ = 1.0f;
  combination tables_[2];  // for H_K and H_K^T
};

template <>
inline float hadamard_plan::scale<float>() const {
  return scale_f_;
}
template <>
inline double hadamard_plan::scale<double>() const {
  return scale_d_;
}

/// Dense normalised T_n = kron(H_K, S_{n/K}) / sqrt(n) built entry by entry (O(n^2)), the
/// reference the fast transform is tested against. Throws like hadamard_plan for bad n, and
/// rotquant::error when n x n doubles cannot be allocated.
inline matrix_d hadamard_matrix(index_t n) {
  const auto f = detail::factor_hadamard(n, "hadamard_matrix");
  detail::check_alloc(n, n, sizeof(double), "hadamard_matrix");
  const auto h = detail::hadamard_base(f.k);
  const double s = 1.0 / std::sqrt(static_cast<double>(n));
  matrix_d t;
  try {
    t.resize(n, n);
  } catch (const std::bad_alloc&) {
    detail::allocation_failed(n, n, sizeof(double), "hadamard_matrix");
  }
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < n; ++j) {
      index_t v = (i % f.m) & (j % f.m);
      int parity = 0;
      for (; v; v &= v - 1) parity ^= 1;
      t(i, j) = h.at(i / f.m, j / f.m) * (parity ? -s : s);
    }
  return t;
}

/// True if hadamard_plan(n) can be built (no exception).
inline bool hadamard_size_supported(index_t n) {
  detail::hadamard_factorization f;
  return detail::try_factor_hadamard(n, f);
}

}  // namespace rotquant
