// SPDX-License-Identifier: Apache-2.0
// hadamard_test.cpp: bases (H H^T = K I, QuaRot's tables), factorisation, fast == dense,
// every ISA == scalar bit for bit, inverse, randomized Hadamard, rejected sizes.
#include "rotquant/transforms/hadamard.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;
using imat = Eigen::Matrix<int, Eigen::Dynamic, Eigen::Dynamic>;

const index_t kShipped[] = {12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 148, 156, 172};

imat to_int(const rotquant::detail::sign_matrix& h) {
  imat m(h.order, h.order);
  for (index_t i = 0; i < h.order; ++i)
    for (index_t j = 0; j < h.order; ++j) m(i, j) = h.at(i, j);
  return m;
}

// --- Independent constructions written in the test (docs/algorithms.md section 6). ---------------

// Quadratic residues by listing squares (not Euler's criterion as the library does).
std::vector<int> residue_signs(int q) {
  std::vector<int> chi(static_cast<std::size_t>(q), -1);
  chi[0] = 0;
  for (int x = 1; x < q; ++x) chi[static_cast<std::size_t>((x * x) % q)] = 1;
  return chi;
}

imat test_paley1(int q) {
  const auto chi = residue_signs(q);
  imat h(q + 1, q + 1);
  for (int i = 0; i <= q; ++i)
    for (int j = 0; j <= q; ++j) {
      if (i == 0)
        h(i, j) = j == 0 ? 1 : -1;
      else if (j == 0)
        h(i, j) = 1;
      else if (i == j)
        h(i, j) = 1;
      else
        h(i, j) = chi[static_cast<std::size_t>(((i - j) % q + q) % q)];
    }
  return h;
}

imat test_paley2(int q) {
  const auto chi = residue_signs(q);
  const int c = q + 1;
  imat conf(c, c);
  for (int i = 0; i < c; ++i)
    for (int j = 0; j < c; ++j)
      conf(i, j) = (i == 0 && j == 0)   ? 0
                   : (i == 0 || j == 0) ? 1
                                        : chi[static_cast<std::size_t>(((j - i) % q + q) % q)];
  const imat id = imat::Identity(c, c);
  imat h(2 * c, 2 * c);
  h << conf + id, conf - id, conf - id, -conf - id;
  return h;
}

imat test_circulant(const std::string& row) {
  const int m = static_cast<int>(row.size());
  imat a(m, m);
  for (int i = 0; i < m; ++i)
    for (int j = 0; j < m; ++j)
      a(i, j) = row[static_cast<std::size_t>(((j - i) % m + m) % m)] == '+' ? 1 : -1;
  return a;
}

imat test_williamson(const std::string& ra, const std::string& rb, const std::string& rc,
                     const std::string& rd) {
  const imat a = test_circulant(ra), b = test_circulant(rb), c = test_circulant(rc),
             d = test_circulant(rd);
  const index_t m = a.rows();
  imat h(4 * m, 4 * m);
  h << a, b, c, d, -b, a, -d, c, -c, d, a, -b, -d, -c, b, a;
  return h;
}

imat quarot_table(index_t k) {
  switch (k) {
    case 12:
      return test_paley1(11);
    case 20:
      return test_paley1(19);
    case 28:
      return test_paley2(13);
    case 36:
      return test_paley2(17);
    case 40: {
      const imat h20 = test_paley1(19);
      imat h(40, 40);
      h << h20, h20, h20, -h20;
      return h;
    }
    case 44:
      return test_paley1(43);
    case 52:
      return test_williamson("+-+--++++--+-", "+---++++++---", "++-+--++--+-+", "+----+--+----");
    case 60:
      return test_paley1(59);
    case 108:
      return test_paley1(107);
    case 140:
      return test_paley1(139);
    case 156:
      return test_williamson(
          "+++--+-+-----+--++----++--+-----+-+--++", "++++---+--++----+-+--+-+----++--+---+++",
          "+++--++-+---+-+--+----+--+-+---+-++--++", "+---++-+-+-----+++-++-+++-----+-+-++---");
    case 172:
      return test_williamson("+---++--++++-+-+++-++--++-+++-+-++++--++---",
                             "++-++++++----+-+--++-++-++--+-+----++++++-+",
                             "+++-+-++--+-+-++++-+----+-++++-+-+--++-+-++",
                             "++---++++-+--+--++--------++--+--+-++++---+");
    default:
      return imat();
  }
}

// Plain recursive Sylvester-order FWHT in double, unnormalised (a second reference).
void ref_fwht(std::vector<double>& x) {
  const auto n = static_cast<index_t>(x.size());
  for (index_t h = 1; h < n; h *= 2)
    for (index_t i = 0; i < n; i += 2 * h)
      for (index_t j = i; j < i + h; ++j) {
        const double a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
}

// --- Bases ------------------------------------------------------------------------------------

// Rows packed as bits (1 = -1 entry): <h_i, h_j> = K - 2 popcount(row_i xor row_j).
bool gram_is_k_identity(const rotquant::detail::sign_matrix& h) {
  const index_t k = h.order, words = (k + 63) / 64;
  std::vector<std::uint64_t> bits(static_cast<std::size_t>(k * words), 0);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j)
      if (h.at(i, j) < 0) bits[i * words + j / 64] |= std::uint64_t{1} << (j % 64);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = i; j < k; ++j) {
      index_t differ = 0;
      for (index_t w = 0; w < words; ++w)
        differ += __builtin_popcountll(bits[i * words + w] ^ bits[j * words + w]);
      if (k - 2 * differ != (i == j ? k : 0)) return false;
    }
  return true;
}

TEST(HadamardBases, EveryShippedAndOnDemandBaseIsHadamard) {
  std::vector<index_t> orders(std::begin(kShipped), std::end(kShipped));
  for (index_t k : {1, 2, 4, 8, 16, 32, 76, 68, 84, 124, 180, 252, 684, 924}) orders.push_back(k);
  for (index_t k : orders) {
    const auto h = rotquant::detail::hadamard_base(k);
    ASSERT_EQ(h.order, k);
    bool pm1 = true;
    for (auto e : h.entries) pm1 = pm1 && (e == 1 || e == -1);
    EXPECT_TRUE(pm1) << "K=" << k;
    EXPECT_TRUE(gram_is_k_identity(h)) << "H H^T != K I for K=" << k;
  }
  // The bit check itself fails on a broken matrix.
  auto broken = rotquant::detail::hadamard_base(12);
  broken.at(3, 5) = static_cast<std::int8_t>(-broken.at(3, 5));
  EXPECT_FALSE(gram_is_k_identity(broken));
}

TEST(HadamardBases, QuaRotTablesEntryForEntry) {
  for (index_t k : {12, 20, 28, 36, 40, 44, 52, 60, 108, 140, 156, 172}) {
    const imat want = quarot_table(k);
    const imat got = to_int(rotquant::detail::hadamard_base(k));
    ASSERT_EQ(want.rows(), k);
    EXPECT_TRUE(got == want) << "K=" << k << " differs from QuaRot's construction";
  }
  // Spot rows copied from QuaRot's get_had12 / get_had20 / get_had40 (hadamard_utils.py).
  const int had12_row1[] = {1, 1, -1, 1, -1, -1, -1, 1, 1, 1, -1, 1};
  const int had20_row1[] = {1, 1, -1, 1, 1, -1, -1, -1, -1, 1, -1, 1, -1, 1, 1, 1, 1, -1, -1, 1};
  const auto h12 = rotquant::detail::hadamard_base(12);
  const auto h20 = rotquant::detail::hadamard_base(20);
  const auto h40 = rotquant::detail::hadamard_base(40);
  for (int j = 0; j < 12; ++j) EXPECT_EQ(h12.at(1, j), had12_row1[j]) << j;
  for (int j = 0; j < 20; ++j) EXPECT_EQ(h20.at(1, j), had20_row1[j]) << j;
  for (int j = 0; j < 40; ++j)
    EXPECT_EQ(h40.at(20, j), j == 0 ? 1 : (j < 20 ? -1 : (j == 20 ? -1 : 1)));
}

TEST(HadamardBases, FactorisationFollowsQuaRotAndPaley) {
  struct want_t {
    index_t n, k, m;
    const char* how;
  };
  const want_t cases[] = {
      {11008, 172, 64, "Williamson"}, {5120, 40, 128, "doubling"},   {14336, 28, 512, "Paley II"},
      {13824, 108, 128, "Paley I"},   {18944, 148, 128, "Paley II"}, {4096, 1, 4096, "Sylvester"},
      {28672, 28, 1024, "Paley II"},  {4864, 76, 64, "Paley II"},    {10944, 684, 16, "Paley I"},
      {29568, 924, 32, "Paley II"},   {1, 1, 1, "Sylvester"},        {12, 12, 1, "Paley I"},
      {640, 40, 16, "doubling"},      {6656, 52, 128, "Williamson"}};
  for (const auto& c : cases) {
    rotquant::hadamard_plan p(c.n);
    EXPECT_EQ(p.base_order(), c.k) << c.n;
    EXPECT_EQ(p.block_length(), c.m) << c.n;
    EXPECT_STREQ(p.construction(), c.how) << c.n;
  }
}

TEST(HadamardBases, UnsupportedSizesNameFactorisationAndOptions) {
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(100), "n = 100 = 25 * 2^2");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(100), "block-diagonal Hadamard with block b = 20");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(100), "random_orthogonal(100, seed)");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(6), "n = 6 = 3 * 2^1");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(6), "block b = 2");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(0), "must be >= 1");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_plan(-4), "must be >= 1");
  EXPECT_ROTQUANT_ERROR(rotquant::hadamard_matrix(7 * 9), "never pads");
  EXPECT_FALSE(rotquant::hadamard_size_supported(100));
  EXPECT_TRUE(rotquant::hadamard_size_supported(4864));
}

// --- Fast transform == dense ------------------------------------------------------------------

template <class S>
double max_rel_error_vs_dense(index_t n, index_t rows, index_t stride, bool transposed) {
  rotquant::hadamard_plan p(n);
  const matrix_d t = rotquant::hadamard_matrix(n);
  const matrix_d x = rotquant::random_normal_matrix<double>(rows, n, static_cast<std::uint64_t>(n));
  std::vector<S> buf(static_cast<std::size_t>(rows * stride), S(7));
  for (index_t r = 0; r < rows; ++r)
    for (index_t j = 0; j < n; ++j) buf[r * stride + j] = static_cast<S>(x(r, j));
  if (transposed)
    p.apply_rows_transposed(buf.data(), rows, stride);
  else
    p.apply_rows(buf.data(), rows, stride);
  double worst = 0;
  for (index_t r = 0; r < rows; ++r) {
    // Reference from the rounded input so only the transform's error is measured.
    Eigen::VectorXd in(n);
    for (index_t j = 0; j < n; ++j) in[j] = static_cast<double>(static_cast<S>(x(r, j)));
    const Eigen::VectorXd want =
        transposed ? Eigen::VectorXd(t.transpose() * in) : Eigen::VectorXd(t * in);
    Eigen::VectorXd got(n);
    for (index_t j = 0; j < n; ++j) got[j] = buf[r * stride + j];
    worst = std::max(worst, (got - want).norm() / want.norm());
    for (index_t j = n; j < stride; ++j) EXPECT_EQ(buf[r * stride + j], S(7)) << "pad overwritten";
  }
  return worst;
}

TEST(HadamardFast, EqualsDenseForEveryBaseAndSeveralBlockLengths) {
  for (index_t k : kShipped) {
    for (index_t m : {1, 2, 16, 64}) {
      const index_t n = k * m;
      // The dense reference is O(n^2) memory; larger n are covered against the scalar oracle.
      if (n > rotquant_test::scaled(2200, 400)) continue;
      EXPECT_LE(max_rel_error_vs_dense<float>(n, 3, n + 5, false), 1e-6) << "n=" << n;
      EXPECT_LE(max_rel_error_vs_dense<double>(n, 2, n, false), 1e-12) << "n=" << n;
      EXPECT_LE(max_rel_error_vs_dense<float>(n, 2, n, true), 1e-6) << "n=" << n;
    }
  }
  for (index_t n = 1; n <= 2048; n *= 2) {
    EXPECT_LE(max_rel_error_vs_dense<float>(n, 3, n + 1, false), 1e-6) << "n=" << n;
    EXPECT_LE(max_rel_error_vs_dense<double>(n, 3, n, false), 1e-12) << "n=" << n;
  }
  for (index_t n : {76 * 8, 684 * 2}) {
    EXPECT_LE(max_rel_error_vs_dense<float>(n, 2, n, false), 1e-6) << "n=" << n;
    EXPECT_LE(max_rel_error_vs_dense<double>(n, 2, n, true), 1e-12) << "n=" << n;
  }
}

TEST(HadamardFast, LargePowersOfTwoMatchReferenceAndInvert) {
  const index_t top = rotquant_test::scaled(1 << 16, 1 << 13);
  for (index_t n = 4096; n <= top; n *= 2) {
    const matrix_d x = rotquant::random_normal_matrix<double>(1, n, 3);
    std::vector<double> ref(x.data(), x.data() + n);
    ref_fwht(ref);
    const double s = 1.0 / std::sqrt(static_cast<double>(n));
    matrix_f xf = x.cast<float>();
    rotquant::hadamard_plan p(n);
    p.apply_rows(xf.data(), 1, n);
    double err = 0, norm = 0;
    for (index_t j = 0; j < n; ++j) {
      err += std::pow(xf(0, j) - ref[j] * s, 2);
      norm += std::pow(ref[j] * s, 2);
    }
    const double u = std::ldexp(1.0, -24);
    EXPECT_LE(std::sqrt(err / norm), 2 * (std::log2(static_cast<double>(n)) + 1) * u) << n;
    // Sylvester is symmetric: applying twice is the identity up to rounding.
    p.apply_rows(xf.data(), 1, n);
    EXPECT_LE((xf.cast<double>() - x).norm() / x.norm(), 4 * (std::log2(double(n)) + 1) * u);
  }
}

TEST(HadamardFast, InverseRestoresAndNormIsPreserved) {
  for (index_t n : {12 * 32, 172 * 64, 40 * 128, 28 * 16}) {
    rotquant::hadamard_plan p(n);
    const matrix_d x = rotquant::random_normal_matrix<double>(3, n, 11);
    matrix_d y = x;
    p.apply_rows(y.data(), 3, n);
    for (index_t r = 0; r < 3; ++r)
      EXPECT_NEAR(y.row(r).norm(), x.row(r).norm(), 1e-12 * x.row(r).norm());
    p.apply_rows_transposed(y.data(), 3, n);
    EXPECT_LE((y - x).norm() / x.norm(), 1e-14) << n;
  }
}

TEST(HadamardFast, OneHotGivesAColumnOfT) {
  const index_t n = 20 * 8;
  const matrix_d t = rotquant::hadamard_matrix(n);
  rotquant::hadamard_plan p(n);
  for (index_t c : {0, 7, 63, 159}) {
    std::vector<double> e(n, 0.0);
    e[c] = 1.0;
    p.apply_rows(e.data(), 1, n);
    for (index_t i = 0; i < n; ++i) ASSERT_NEAR(e[i], t(i, c), 1e-15) << i << "," << c;
  }
}

// --- Every ISA against the scalar reference ---------------------------------------------------

template <class S>
void check_paths_bit_exact(index_t n, index_t rows, index_t stride) {
  rotquant::hadamard_plan p(n);
  const matrix_d x =
      rotquant::random_normal_matrix<double>(rows, stride, static_cast<std::uint64_t>(n + rows));
  std::vector<S> ref(static_cast<std::size_t>(rows * stride));
  for (std::size_t i = 0; i < ref.size(); ++i) ref[i] = static_cast<S>(x.data()[i]);
  const std::vector<S> input = ref;
  for (bool tr : {false, true}) {
    std::vector<S> want = input;
    {
      rotquant::scoped_isa force(rotquant::isa::scalar);
      if (tr)
        p.apply_rows_transposed(want.data(), rows, stride);
      else
        p.apply_rows(want.data(), rows, stride);
    }
    for (auto path : rotquant_test::isa_paths()) {
      std::vector<S> got = input;
      rotquant::scoped_isa force(path);
      if (tr)
        p.apply_rows_transposed(got.data(), rows, stride);
      else
        p.apply_rows(got.data(), rows, stride);
      ASSERT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(S)), 0)
          << rotquant::to_string(path) << " n=" << n << " rows=" << rows << " stride=" << stride
          << " transposed=" << tr << " sizeof=" << sizeof(S);
    }
  }
}

TEST(HadamardIsa, EveryPathBitExactWithScalar) {
  std::vector<index_t> sizes;
  for (index_t n = 1; n <= rotquant_test::scaled(1 << 14, 1 << 11); n *= 2) sizes.push_back(n);
  const index_t top_m = rotquant_test::scaled(128, 16);
  for (index_t k : kShipped)
    for (index_t m = 1; m <= top_m; m *= 2) sizes.push_back(k * m);
  sizes.push_back(76 * rotquant_test::scaled(64, 8));
  if (!rotquant_test::small_scale()) {
    for (index_t n : {11008, 18944}) sizes.push_back(n);
  }
  for (index_t n : sizes) {
    for (index_t rows : {1, 3}) {
      check_paths_bit_exact<float>(n, rows, n);
      check_paths_bit_exact<float>(n, rows, n + 3);
      check_paths_bit_exact<double>(n, rows, n + 1);
    }
  }
}

TEST(HadamardIsa, UnalignedBasePointers) {
  for (index_t offset = 0; offset < 16; ++offset) {
    const index_t n = 1024;
    std::vector<float> a(static_cast<std::size_t>(2 * n + 16), 0.f);
    rotquant::rng g(5);
    for (auto& v : a) v = static_cast<float>(g.normal());
    std::vector<float> b = a;
    rotquant::hadamard_plan p(n);
    {
      rotquant::scoped_isa force(rotquant::isa::scalar);
      p.apply_rows(a.data() + offset, 2, n);
    }
    p.apply_rows(b.data() + offset, 2, n);
    ASSERT_EQ(a, b) << offset;
  }
}

// --- Plan API, dense, randomized --------------------------------------------------------------

TEST(HadamardPlan, ToDenseEqualsEntryFormula) {
  for (index_t n : {1, 2, 8, 12, 24, 40, 52, 80}) {
    rotquant::hadamard_plan p(n);
    EXPECT_LE((p.to_dense() - rotquant::hadamard_matrix(n)).cwiseAbs().maxCoeff(), 1e-15) << n;
    const matrix_d t = rotquant::hadamard_matrix(n);
    EXPECT_LE((t * t.transpose() - matrix_d::Identity(n, n)).cwiseAbs().maxCoeff(), 1e-13) << n;
  }
}

TEST(HadamardPlan, ViewApplyRespectsStride) {
  const index_t n = 64;
  matrix_f big = matrix_f::Constant(4, n + 8, 3.0f);
  auto v = rotquant::make_view(big.data(), 4, n, n + 8);
  rotquant::hadamard_plan(n).apply(v);
  // Constant rows: only the first output of each row is non-zero (3 * sqrt(64) = 24).
  for (index_t r = 0; r < 4; ++r) {
    EXPECT_FLOAT_EQ(big(r, 0), 24.0f);
    for (index_t j = 1; j < n; ++j) EXPECT_EQ(big(r, j), 0.0f);
    for (index_t j = n; j < n + 8; ++j) EXPECT_EQ(big(r, j), 3.0f);
  }
}

TEST(HadamardPlan, OutOfPlaceEqualsInPlace) {
  for (index_t n : {64, 40 * 32}) {
    rotquant::hadamard_plan p(n);
    const index_t rows = 37, ss = n + 3, ds = n + 5;
    const matrix_f src = rotquant::random_normal_matrix<float>(rows, ss, 8);
    for (bool tr : {false, true}) {
      matrix_f want = src;
      if (tr)
        p.apply_rows_transposed(want.data(), rows, ss);
      else
        p.apply_rows(want.data(), rows, ss);
      matrix_f dst = matrix_f::Constant(rows, ds, 5.0f);
      p.apply_rows(src.data(), ss, dst.data(), ds, rows, tr);
      EXPECT_TRUE(dst.leftCols(n) == want.leftCols(n)) << n << " " << tr;
      EXPECT_TRUE((dst.rightCols(5).array() == 5.0f).all());
      matrix_f same = src;
      p.apply_rows(same.data(), ss, same.data(), ss, rows, tr);
      EXPECT_TRUE(same == want);
    }
  }
  rotquant::hadamard_plan p(16);
  std::vector<float> buf(64);
  EXPECT_ROTQUANT_ERROR(p.apply_rows(buf.data(), 16, buf.data() + 8, 16, 2), "dst overlaps src");
  EXPECT_ROTQUANT_ERROR(p.apply_rows(buf.data(), 16, buf.data(), 20, 2), "different stride");
  EXPECT_ROTQUANT_ERROR(p.apply_rows(buf.data(), 8, buf.data() + 32, 16, 2), "strides 8 (src)");
}

TEST(HadamardPlan, RandomizedHadamardIsQuaRotForm) {
  const index_t n = 12 * 8;
  const auto d = rotquant::random_signs<double>(n, 42);
  const auto t = rotquant::randomized_hadamard(n, 42);
  // QuaRot: Q = matmul_hadU(diag(d)) = diag(d) T_n^T (row form), applied as X Q.
  const matrix_d q = d.asDiagonal() * rotquant::hadamard_matrix(n).transpose();
  EXPECT_LE((t.to_dense() - q).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_LE((rotquant::randomized_hadamard(d).to_dense() - q).cwiseAbs().maxCoeff(), 1e-15);
  EXPECT_TRUE(t.is_orthogonal(1e-12));
  EXPECT_EQ(t.num_stages(), 2u);
}

TEST(HadamardPlan, BadArgumentsRejected) {
  rotquant::hadamard_plan p(16);
  std::vector<float> x(64);
  EXPECT_ROTQUANT_ERROR(p.apply_rows(x.data(), 2, 15), "row stride 15 is smaller");
  EXPECT_ROTQUANT_ERROR(p.apply_rows(x.data(), -1, 16), "negative row count");
  EXPECT_ROTQUANT_ERROR(p.apply_rows(static_cast<float*>(nullptr), 2, 16), "null data");
  p.apply_rows(static_cast<float*>(nullptr), 0, 16);  // zero rows: nothing to do
  matrix_f m(2, 12);
  EXPECT_ROTQUANT_ERROR(p.apply(rotquant::view(m)), "columns, the plan size is 16");
  EXPECT_ROTQUANT_ERROR(rotquant::randomized_hadamard(100, 1), "n = 100");
}

}  // namespace
