// SPDX-License-Identifier: Apache-2.0
// gptq_test.cpp: the streaming Hessian accumulator; gptq() against round-to-nearest (H = I),
// against RTN's output error on correlated inputs, its loss against the quadratic form, an
// independent reference written from the file comment's rules (with a deliberately wrong
// variant that must not pass), dead columns, error messages and thread-count determinism.
#include "rotquant/quant/gptq.hpp"

#include <gtest/gtest.h>

#include <Eigen/Cholesky>
#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "test_util.hpp"

namespace {

using rotquant::element_format;
using rotquant::fp4_kind;
using rotquant::gptq_options;
using rotquant::gptq_result;
using rotquant::granularity;
using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;
using rotquant::quantized_matrix;
using rotquant::quantizer;
using rotquant_test::scaled;

// ----------------------------------------------------------------- helpers

using rotquant_test::gaussian;

// Correlated calibration inputs [n, cols]: X = Z A with a random mixing A (so the channels
// correlate and H is far from diagonal), plus three outlier channels scaled by 6.
matrix_f correlated_inputs(index_t n, index_t cols, std::uint64_t seed) {
  const matrix_f Z = gaussian(n, cols, seed);
  matrix_f A = gaussian(cols, cols, seed + 1000, 1.0 / std::sqrt(static_cast<double>(cols)));
  A.diagonal().array() += 0.3f;
  matrix_f X = Z * A;
  for (index_t c : {index_t{1}, cols / 3, cols - 2}) X.col(c) *= 6.0f;
  return X;
}

// H = 2/n X^T X in double.
matrix_d hessian_of(const matrix_f& X) {
  const matrix_d x = X.cast<double>();
  return (2.0 / static_cast<double>(X.rows())) * (x.transpose() * x);
}

template <class Scalar>
bool same_bits(const rotquant::matrix<Scalar>& a, const rotquant::matrix<Scalar>& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), sizeof(Scalar) * static_cast<std::size_t>(a.size())) == 0;
}
bool same_bits(const rotquant::vector_d& a, const rotquant::vector_d& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), sizeof(double) * static_cast<std::size_t>(a.size())) == 0;
}
bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof a) == 0;
}

// Every buffer of two quantized matrices is equal (codes, scales, zero points, scale bytes).
void expect_same_quantized(const quantized_matrix& a, const quantized_matrix& b,
                           const std::string& what) {
  EXPECT_EQ(a.rows, b.rows) << what;
  EXPECT_EQ(a.cols, b.cols) << what;
  EXPECT_EQ(a.group, b.group) << what;
  EXPECT_EQ(a.groups_per_row, b.groups_per_row) << what;
  EXPECT_EQ(a.row_bytes, b.row_bytes) << what;
  EXPECT_TRUE(a.codes == b.codes) << what << ": codes differ";
  EXPECT_TRUE(a.scales == b.scales) << what << ": scales differ";
  EXPECT_TRUE(a.zero_points == b.zero_points) << what << ": zero points differ";
  EXPECT_TRUE(a.scale_codes == b.scale_codes) << what << ": scale bytes differ";
  EXPECT_EQ(a.tensor_scale, b.tensor_scale) << what;
}

// Bit-identical gptq results.
void expect_same_result(const gptq_result& a, const gptq_result& b, const std::string& what) {
  expect_same_quantized(a.weight, b.weight, what);
  EXPECT_TRUE(a.perm == b.perm) << what << ": perm differs";
  EXPECT_TRUE(same_bits(a.dequantized, b.dequantized)) << what << ": dequantized differs";
  EXPECT_TRUE(same_bits(a.column_loss, b.column_loss)) << what << ": column_loss differs";
  EXPECT_TRUE(same_bits(a.loss, b.loss)) << what << ": loss " << a.loss << " vs " << b.loss;
  EXPECT_TRUE(same_bits(a.damp, b.damp)) << what;
  EXPECT_EQ(a.dead_columns, b.dead_columns) << what;
}

// The message of the rotquant::error thrown by fn ("" if none is thrown).
std::string error_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const rotquant::error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

// dequantize(result.weight) in input column order (weight column j is input column perm[j]).
matrix_f weight_in_input_order(const gptq_result& r) {
  const matrix_f d = rotquant::dequantize(r.weight);
  if (r.perm.empty()) return d;
  matrix_f out(d.rows(), d.cols());
  for (index_t j = 0; j < d.cols(); ++j) out.col(r.perm[static_cast<std::size_t>(j)]) = d.col(j);
  return out;
}

struct named_quantizer {
  std::string name;
  quantizer q;
};

// ----------------------------------------------------------------- 1. Hessian accumulator

template <class Scalar>
class HessianAccumulatorTest : public ::testing::Test {};
using HessianScalars = ::testing::Types<float, double>;
TYPED_TEST_SUITE(HessianAccumulatorTest, HessianScalars);

// Tolerance of the accumulated H against the double reference, relative to max |H|: float
// accumulation over a few hundred rows (products and the n / (n + t) rescaling round at 2^-24).
template <class Scalar>
double hessian_tolerance() {
  return std::is_same<Scalar, float>::value ? 1e-5 : 1e-12;
}

TYPED_TEST(HessianAccumulatorTest, StreamingEqualsTwoOverNXtX) {
  using Scalar = TypeParam;
  const index_t C = 150;  // two column panels of 128
  const matrix_f X = correlated_inputs(260, C, 11);
  rotquant::hessian_accumulator<Scalar> acc(C);
  EXPECT_EQ(acc.cols(), C);
  EXPECT_EQ(acc.rows(), 0);
  EXPECT_TRUE((acc.hessian().array() == Scalar(0)).all());  // empty: all zero
  // Batches of different sizes, including an empty one and a single row.
  const index_t sizes[] = {1, 37, 0, 100, 62, 60};
  index_t r0 = 0;
  for (index_t t : sizes) {
    acc.add(matrix_f(X.middleRows(r0, t)));
    r0 += t;
    EXPECT_EQ(acc.rows(), r0);
  }
  ASSERT_EQ(r0, X.rows());
  const matrix_d want = hessian_of(X);
  const matrix_d got = acc.hessian().template cast<double>();
  const double err = (got - want).cwiseAbs().maxCoeff() / want.cwiseAbs().maxCoeff();
  EXPECT_LE(err, hessian_tolerance<Scalar>()) << "max relative deviation " << err;
  // hessian() is exactly symmetric.
  const rotquant::matrix<Scalar> h = acc.hessian();
  EXPECT_TRUE((h.array() == h.transpose().array()).all());
  // After the first batch alone H = 2 x^T x of that row.
  rotquant::hessian_accumulator<Scalar> one(C);
  one.add(matrix_f(X.topRows(1)));
  const matrix_d want1 = hessian_of(matrix_f(X.topRows(1)));
  EXPECT_LE((one.hessian().template cast<double>() - want1).cwiseAbs().maxCoeff(),
            hessian_tolerance<Scalar>() * want1.cwiseAbs().maxCoeff());
}

TYPED_TEST(HessianAccumulatorTest, MergeEqualsOneAccumulatorFedBoth) {
  using Scalar = TypeParam;
  const index_t C = 40;
  const matrix_f X1 = correlated_inputs(90, C, 21);
  const matrix_f X2 = correlated_inputs(35, C, 22);
  rotquant::hessian_accumulator<Scalar> a(C), b(C), both(C), empty(C);
  a.add(X1);
  b.add(X2);
  both.add(X1);
  both.add(X2);
  a.merge(b);
  EXPECT_EQ(a.rows(), 125);
  const matrix_d ha = a.hessian().template cast<double>();
  const matrix_d hb = both.hessian().template cast<double>();
  matrix_f X12(125, C);
  X12 << X1, X2;
  const matrix_d want = hessian_of(X12);
  const double scale = want.cwiseAbs().maxCoeff();
  EXPECT_LE((ha - hb).cwiseAbs().maxCoeff(), hessian_tolerance<Scalar>() * scale);
  EXPECT_LE((ha - want).cwiseAbs().maxCoeff(), hessian_tolerance<Scalar>() * scale);
  // Merging an empty accumulator changes nothing; merging into an empty one copies.
  const rotquant::matrix<Scalar> before = a.hessian();
  a.merge(empty);
  EXPECT_TRUE(same_bits(a.hessian(), before));
  EXPECT_EQ(a.rows(), 125);
  empty.merge(both);
  EXPECT_EQ(empty.rows(), 125);
  EXPECT_TRUE(same_bits(empty.hessian(), both.hessian()));
}

TYPED_TEST(HessianAccumulatorTest, SameBitsOnTwoThreads) {
  using Scalar = TypeParam;
  const index_t C = 300;  // three panels
  const matrix_f X1 = correlated_inputs(70, C, 31), X2 = correlated_inputs(45, C, 32);
  rotquant::serial_executor serial;
  rotquant::thread_pool_executor pool(2);
  rotquant::hessian_accumulator<Scalar> s(C), p(C);
  s.add(X1, &serial);
  s.add(X2, &serial);
  p.add(X1, &pool);
  p.add(X2, &pool);
  EXPECT_TRUE(same_bits(s.hessian(), p.hessian()));
}

TYPED_TEST(HessianAccumulatorTest, BadInputThrows) {
  using Scalar = TypeParam;
  EXPECT_ROTQUANT_ERROR(rotquant::hessian_accumulator<Scalar>(0), "cols must be >= 1");
  EXPECT_ROTQUANT_ERROR(rotquant::hessian_accumulator<Scalar>(-3), "cols must be >= 1");
  rotquant::hessian_accumulator<Scalar> acc(8);
  acc.add(gaussian(5, 8, 41));
  const rotquant::matrix<Scalar> before = acc.hessian();
  EXPECT_ROTQUANT_ERROR(acc.add(gaussian(5, 7, 42)), "the batch has 7 features, the accumulator 8");
  matrix_f bad = gaussian(5, 8, 43);
  bad(2, 3) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(acc.add(bad), "non-finite value");
  bad(2, 3) = std::numeric_limits<float>::infinity();
  EXPECT_ROTQUANT_ERROR(acc.add(bad), "at (2, 3)");
  rotquant::hessian_accumulator<Scalar> other(9);
  EXPECT_ROTQUANT_ERROR(acc.merge(other), "9 features, this has 8");
  // A rejected batch leaves the accumulator as it was.
  EXPECT_EQ(acc.rows(), 5);
  EXPECT_TRUE(same_bits(acc.hessian(), before));
}

// ----------------------------------------------------------------- 2. H = I is RTN

std::vector<named_quantizer> rtn_quantizers() {
  return {
      {"gptq int4 sym per_row", quantizer::gptq_weight(4, true, false)},
      {"gptq int4 asym per_row", quantizer::gptq_weight(4, false, false)},
      {"gptq int4 sym per_row mse", quantizer::gptq_weight(4, true, true)},
      {"gptq int4 asym per_row mse", quantizer::gptq_weight(4, false, true)},
      {"gptq int4 sym g16", quantizer::gptq_weight(4, true, false, 16)},
      {"gptq int4 asym g32", quantizer::gptq_weight(4, false, false, 32)},
      {"gptq int4 asym g48", quantizer::gptq_weight(4, false, false, 48)},
      {"gptq int4 asym g32 mse", quantizer::gptq_weight(4, false, true, 32)},
      {"quarot int4 sym per_row", quantizer::int_sym(4)},
      {"quarot int4 asym g16", quantizer::int_asym(4, granularity::per_group, 16)},
      {"int4 sym per_tensor", quantizer::int_sym(4, granularity::per_tensor)},
      {"int4 asym per_tensor", quantizer::int_asym(4, granularity::per_tensor)},
      {"gptq int8 sym per_row", quantizer::gptq_weight(8, true, false)},
      {"gptq int8 asym g32", quantizer::gptq_weight(8, false, false, 32)},
      {"fp4 e2m1 per_row", quantizer::fp4(fp4_kind::e2m1)},
      {"fp4 e2m1 g32", quantizer::fp4(fp4_kind::e2m1, granularity::per_group, 32)},
      {"fp8 e4m3 per_row", quantizer::fp8(true, granularity::per_row)},
      {"mxfp4", quantizer::mxfp4()},
      {"mxint8", quantizer::mxint8()},
      {"nvfp4", quantizer::nvfp4()},
      {"duquant int4 per_row clip 0.9", quantizer::duquant(4, 0.9f)},
      {"duquant int4 g16", quantizer::duquant(4, 1.0f, granularity::per_group, 16)},
  };
}

TEST(GptqIdentityHessian, EqualsRoundToNearestForEveryQuantizer) {
  const index_t rows = 24, C = 96;  // groups of 16 / 32 / 48; blocks of 128 (> C), 20 and 7
  const matrix_f W = gaussian(rows, C, 51, 0.05);
  const matrix_d I = matrix_d::Identity(C, C);
  const matrix_f If = matrix_f::Identity(C, C);
  for (const auto& nq : rtn_quantizers()) {
    const quantized_matrix rtn = rotquant::quantize(nq.q, W);
    const matrix_f rtn_deq = rotquant::dequantize(rtn);
    for (double percdamp : {0.0, 0.01}) {
      for (index_t block : {128, 20, 7}) {
        for (bool act : {false, true}) {
          const std::string what = nq.name + " percdamp " + std::to_string(percdamp) + " block " +
                                   std::to_string(block) + (act ? " act_order" : "");
          gptq_options o;
          o.percdamp = percdamp;
          o.block_size = block;
          o.act_order = act;
          const gptq_result r = rotquant::gptq(W, I, nq.q, o);
          expect_same_quantized(r.weight, rtn, what);
          EXPECT_TRUE(same_bits(r.dequantized, rtn_deq)) << what;
          EXPECT_TRUE(same_bits(rotquant::dequantize(r.weight), rtn_deq)) << what;
          // Equal diagonals: act_order's stable sort keeps the column order.
          if (!r.perm.empty()) {
            std::vector<index_t> id(static_cast<std::size_t>(C));
            std::iota(id.begin(), id.end(), index_t{0});
            EXPECT_TRUE(r.perm == id) << what;
          }
          EXPECT_EQ(r.dead_columns, 0) << what;
          EXPECT_DOUBLE_EQ(r.damp, percdamp) << what;
          // U = I / sqrt(1 + damp): loss = (1 + damp) / 2 ||W - Q||^2 (fp32 U_ii: 1e-6).
          const double want =
              0.5 * (1.0 + percdamp) * (W.cast<double>() - rtn_deq.cast<double>()).squaredNorm();
          EXPECT_NEAR(r.loss, want, 1e-6 * want) << what;
        }
      }
    }
    // A float H takes the same path.
    const gptq_result rf = rotquant::gptq(W, If, nq.q);
    expect_same_quantized(rf.weight, rtn, nq.name + " float H");
  }
  // Block formats on a row length that is not a multiple of the block (short last block).
  const matrix_f W40 = gaussian(8, 40, 52);
  for (const quantizer& q : {quantizer::mxfp4(), quantizer::nvfp4()}) {
    gptq_options o;
    o.block_size = 12;
    const gptq_result r = rotquant::gptq(W40, matrix_d(matrix_d::Identity(40, 40)), q, o);
    expect_same_quantized(r.weight, rotquant::quantize(q, W40), q.name() + " 8 x 40");
  }
}

// ----------------------------------------------------------------- 3. below RTN's error

// ||X (W - Q)^T||_F in double.
double output_error(const matrix_f& X, const matrix_f& W, const matrix_f& Q) {
  const matrix_d dW = W.cast<double>() - Q.cast<double>();
  return (X.cast<double>() * dW.transpose()).norm();
}

struct gptq_config {
  std::string name;
  quantizer q;
  bool act_order;
  bool static_groups;
};

std::vector<gptq_config> error_configs() {
  std::vector<gptq_config> out;
  for (bool sym : {true, false}) {
    for (index_t group : {0, 16}) {
      for (bool act : {false, true}) {
        for (bool stat : {false, true}) {
          if (stat && group == 0) continue;
          std::string name = std::string("int4 ") + (sym ? "sym" : "asym") +
                             (group ? " g16" : " per_row") + (act ? " act_order" : "") +
                             (stat ? " static" : "");
          out.push_back({name, quantizer::gptq_weight(4, sym, false, group), act, stat});
        }
      }
    }
  }
  for (bool act : {false, true}) {
    const std::string a = act ? " act_order" : "";
    out.push_back({"fp4 e2m1 per_row" + a, quantizer::fp4(fp4_kind::e2m1), act, false});
    out.push_back({"mxfp4" + a, quantizer::mxfp4(), act, false});
    out.push_back({"mxfp4 static" + a, quantizer::mxfp4(), act, true});
    out.push_back({"nvfp4" + a, quantizer::nvfp4(), act, false});
  }
  return out;
}

TEST(GptqCorrelatedInputs, OutputErrorBelowRoundToNearest) {
  const index_t n = scaled(512, 256), C = 64, rows = 48;
  const matrix_f X = correlated_inputs(n, C, 61);
  const matrix_d H = hessian_of(X);
  const matrix_f W = gaussian(rows, C, 62, 0.02);
  for (const auto& cfg : error_configs()) {
    const double rtn = output_error(X, W, rotquant::fake_quantize(cfg.q, W));
    for (index_t block : {128, 24, 5}) {
      gptq_options o;
      o.block_size = block;
      o.act_order = cfg.act_order;
      o.static_groups = cfg.static_groups;
      const gptq_result r = rotquant::gptq(W, H, cfg.q, o);
      const double err = output_error(X, W, r.dequantized);
      EXPECT_LT(err, 0.9 * rtn) << cfg.name << " block " << block << ": gptq " << err << ", rtn "
                                << rtn;
    }
  }
}

// ----------------------------------------------------------------- 4. loss

TEST(GptqLoss, EqualsDampedQuadraticFormAndOutputError) {
  const index_t n = scaled(384, 192), C = 64, rows = 40;
  const matrix_f X = correlated_inputs(n, C, 71);
  const matrix_d H = hessian_of(X);
  const matrix_f W = gaussian(rows, C, 72, 0.02);
  // Also the accumulator's float H (the loss is then checked against that H).
  rotquant::hessian_accumulator<float> acc(C);
  acc.add(X);
  const rotquant::matrix<float> Hf = acc.hessian();
  for (const auto& cfg : error_configs()) {
    for (double percdamp : {0.01, 0.1}) {
      gptq_options o;
      o.block_size = percdamp == 0.01 ? 24 : 5;
      o.percdamp = percdamp;
      o.act_order = cfg.act_order;
      o.static_groups = cfg.static_groups;
      for (bool float_h : {false, true}) {
        const std::string what =
            cfg.name + " percdamp " + std::to_string(percdamp) + (float_h ? " float H" : "");
        const gptq_result r =
            float_h ? rotquant::gptq(W, Hf, cfg.q, o) : rotquant::gptq(W, H, cfg.q, o);
        const matrix_d Hd = float_h ? matrix_d(Hf.cast<double>()) : H;
        EXPECT_NEAR(r.damp, percdamp * Hd.diagonal().mean(), 1e-12 * r.damp) << what;
        const matrix_d dW = W.cast<double>() - r.dequantized.cast<double>();
        matrix_d Hdamp = Hd;
        Hdamp.diagonal().array() += r.damp;
        const double quad = 0.5 * (dW * Hdamp * dW.transpose()).trace();
        EXPECT_NEAR(r.loss, quad, 1e-4 * quad) << what;
        if (!float_h) {
          const double out =
              (X.cast<double>() * dW.transpose()).squaredNorm() / static_cast<double>(n) +
              0.5 * r.damp * dW.squaredNorm();
          EXPECT_NEAR(r.loss, out, 1e-4 * out) << what;
        }
        ASSERT_EQ(r.column_loss.size(), C) << what;
        EXPECT_NEAR(r.column_loss.sum(), r.loss, 1e-12 * r.loss) << what;
        EXPECT_GE(r.column_loss.minCoeff(), 0.0) << what;
        // The packed weight holds the same values (permuted groups: column j is input perm[j]).
        const bool permuted =
            cfg.act_order && !cfg.static_groups && cfg.q.gran == granularity::per_group;
        EXPECT_EQ(r.perm.empty(), !permuted) << what;
        EXPECT_TRUE(same_bits(weight_in_input_order(r), r.dequantized)) << what;
        if (permuted) {
          // perm sorts diag(H) descending.
          for (index_t j = 1; j < C; ++j)
            EXPECT_GE(Hd(r.perm[static_cast<std::size_t>(j - 1)],
                         r.perm[static_cast<std::size_t>(j - 1)]),
                      Hd(r.perm[static_cast<std::size_t>(j)], r.perm[static_cast<std::size_t>(j)]))
                << what;
        }
      }
    }
  }
}

// ----------------------------------------------------------------- 5. reference

// GPTQ written directly from gptq.hpp's file comment (QuaRot's fasterquant): plain loops in
// fp32 on W, the factor U in double by Cholesky -> inverse -> upper Cholesky of the inverse.
// The element rules (params of a region, encode / decode) are the quantizer's, as pinned to
// quantize() by the H = I test. `wrong` selects a deliberately wrong variant.
enum class ref_variant {
  faithful,
  params_from_block,  // group params found on the in-block-updated W1 (wrong)
  no_lazy_update,     // the block's errors never reach the later blocks (wrong)
};

struct ref_result {
  std::vector<int> codes;  // [rows, C] as quantized_matrix::code, in the result's column order
  std::vector<float> scales;
  std::vector<std::int32_t> zeros;
  std::vector<std::uint8_t> scale_codes;
  matrix_f deq;  // input column order
  double loss = 0;
  rotquant::vector_d column_loss;  // input column order
  std::vector<index_t> perm;       // processing position j holds input column perm[j]
};

ref_result gptq_reference(const matrix_f& W0, const matrix_d& H0, const quantizer& q, index_t block,
                          double percdamp, bool act_order, bool static_groups,
                          ref_variant variant = ref_variant::faithful) {
  namespace d = rotquant::detail;
  const index_t rows = W0.rows(), C = W0.cols();
  const index_t g = q.group_length(C), gpr = q.groups_per_row(C);
  const bool grouped = q.gran == granularity::per_group;
  const float ts = q.format == element_format::nvfp4 ? rotquant::nvfp4_tensor_scale(W0) : 1.0f;
  auto params_of = [&](const matrix_f& M, index_t r0, index_t r1, index_t c0, index_t c1) {
    return d::region_params(q, rotquant::view(M), d::region{r0, r1, c0, c1}, ts);
  };
  // params: per_tensor / per_row on the weight as given.
  std::vector<d::quant_params> fixed;
  if (q.gran == granularity::per_tensor) {
    fixed.push_back(params_of(W0, 0, rows, 0, C));
  } else if (!grouped) {
    for (index_t r = 0; r < rows; ++r) fixed.push_back(params_of(W0, r, r + 1, 0, C));
  }
  // dead columns.
  matrix_f W = W0;
  matrix_d H = H0;
  for (index_t c = 0; c < C; ++c) {
    if (H(c, c) == 0.0) {
      H(c, c) = 1.0;
      W.col(c).setZero();
    }
  }
  // static groups on W (dead cleared, input order).
  std::vector<d::quant_params> stat;
  if (static_groups) {
    for (index_t r = 0; r < rows; ++r)
      for (index_t k = 0; k < gpr; ++k)
        stat.push_back(params_of(W, r, r + 1, k * g, std::min(C, (k + 1) * g)));
  }
  // act_order: descending diag(H), ties in column order.
  ref_result out;
  out.perm.resize(static_cast<std::size_t>(C));
  for (index_t c = 0; c < C; ++c) out.perm[static_cast<std::size_t>(c)] = c;
  if (act_order) {
    for (index_t i = 1; i < C; ++i) {  // insertion sort: stable
      for (index_t j = i; j > 0; --j) {
        const index_t a = out.perm[static_cast<std::size_t>(j - 1)];
        const index_t b = out.perm[static_cast<std::size_t>(j)];
        if (H(b, b) > H(a, a)) {
          std::swap(out.perm[static_cast<std::size_t>(j - 1)],
                    out.perm[static_cast<std::size_t>(j)]);
        } else {
          break;
        }
      }
    }
    matrix_f Wp(rows, C);
    matrix_d Hp(C, C);
    for (index_t i = 0; i < C; ++i) {
      Wp.col(i) = W.col(out.perm[static_cast<std::size_t>(i)]);
      for (index_t j = 0; j < C; ++j)
        Hp(i, j) = H(out.perm[static_cast<std::size_t>(i)], out.perm[static_cast<std::size_t>(j)]);
    }
    W = Wp;
    H = Hp;
  }
  // damp, then Hinv = cholesky(cholesky_inverse(cholesky(H)), upper).
  const double damp = percdamp * H.diagonal().mean();
  for (index_t c = 0; c < C; ++c) H(c, c) += damp;
  const Eigen::LLT<matrix_d> llt(H);
  EXPECT_EQ(llt.info(), Eigen::Success);
  const matrix_d L = llt.matrixL();
  const matrix_d Linv = L.triangularView<Eigen::Lower>().solve(matrix_d::Identity(C, C));
  const matrix_d Hinv = Linv.transpose() * Linv;
  const Eigen::LLT<matrix_d> llt_inv(Hinv);
  EXPECT_EQ(llt_inv.info(), Eigen::Success);
  const matrix_f U = matrix_d(llt_inv.matrixU()).cast<float>();

  const bool permuted_groups = act_order && grouped && !static_groups;
  const index_t nscales = q.gran == granularity::per_tensor ? 1 : rows * gpr;
  out.codes.assign(static_cast<std::size_t>(rows * C), 0);
  out.scales.assign(static_cast<std::size_t>(nscales), 1.0f);
  out.zeros.assign(static_cast<std::size_t>(nscales), 0);
  out.scale_codes.assign(static_cast<std::size_t>(nscales), 0);
  auto put = [&](index_t k, const d::quant_params& p) {
    out.scales[static_cast<std::size_t>(k)] = p.scale;
    out.zeros[static_cast<std::size_t>(k)] = q.has_zero_point() ? p.zero : 0;
    out.scale_codes[static_cast<std::size_t>(k)] = q.is_block_format() ? p.scale_code : 0;
  };
  if (q.gran == granularity::per_tensor) put(0, fixed[0]);
  if (q.gran == granularity::per_row)
    for (index_t r = 0; r < rows; ++r) put(r, fixed[static_cast<std::size_t>(r)]);
  if (static_groups)
    for (index_t k = 0; k < rows * gpr; ++k) put(k, stat[static_cast<std::size_t>(k)]);

  const int qmin = d::int_qmin(q), qmax = d::int_qmax(q);
  matrix_f deq_perm(rows, C);
  rotquant::vector_d loss_perm = rotquant::vector_d::Zero(C);
  std::vector<d::quant_params> cur(static_cast<std::size_t>(rows));
  for (index_t i1 = 0; i1 < C; i1 += block) {
    const index_t i2 = std::min(i1 + block, C), count = i2 - i1;
    matrix_f W1 = W.middleCols(i1, count);
    matrix_f Err1 = matrix_f::Zero(rows, count);
    for (index_t i = 0; i < count; ++i) {
      const index_t col = i1 + i;
      const index_t src = out.perm[static_cast<std::size_t>(col)];
      for (index_t r = 0; r < rows; ++r) {
        d::quant_params p;
        if (q.gran == granularity::per_tensor) {
          p = fixed[0];
        } else if (!grouped) {
          p = fixed[static_cast<std::size_t>(r)];
        } else if (static_groups) {
          p = stat[static_cast<std::size_t>(r * gpr + src / g)];
        } else {
          if (col % g == 0) {  // find_params(W[:, col : col + g]) on the outer W
            const index_t c1 = std::min(C, col + g);
            matrix_f seg = W.block(r, col, 1, c1 - col);
            if (variant == ref_variant::params_from_block) {
              for (index_t j = col; j < std::min(c1, i2); ++j) seg(0, j - col) = W1(r, j - i1);
            }
            cur[static_cast<std::size_t>(r)] = params_of(seg, 0, 1, 0, c1 - col);
            put(r * gpr + col / g, cur[static_cast<std::size_t>(r)]);
          }
          p = cur[static_cast<std::size_t>(r)];
        }
        const float x = W1(r, i);
        const int code = d::stored_to_code(q, d::encode_element(q, x, p, qmin, qmax));
        const float v = d::decode_element(q, code, p);
        const index_t dst = permuted_groups ? col : src;
        out.codes[static_cast<std::size_t>(r * C + dst)] = code;
        deq_perm(r, col) = v;
        const float dd = U(col, col);
        const float e = (x - v) / dd;
        const double l = static_cast<double>(x - v) * static_cast<double>(x - v) /
                         (2.0 * static_cast<double>(dd) * static_cast<double>(dd));
        out.loss += l;
        loss_perm(col) += l;
        for (index_t j = i; j < count; ++j) W1(r, j) -= e * U(col, i1 + j);
        Err1(r, i) = e;
      }
    }
    if (variant != ref_variant::no_lazy_update) {
      for (index_t r = 0; r < rows; ++r) {
        for (index_t j = i2; j < C; ++j) {
          float s = 0.0f;
          for (index_t i = 0; i < count; ++i) s += Err1(r, i) * U(i1 + i, j);
          W(r, j) -= s;
        }
      }
    }
  }
  out.deq.resize(rows, C);
  out.column_loss.resize(C);
  for (index_t col = 0; col < C; ++col) {
    out.deq.col(out.perm[static_cast<std::size_t>(col)]) = deq_perm.col(col);
    out.column_loss(out.perm[static_cast<std::size_t>(col)]) = loss_perm(col);
  }
  return out;
}

// A row agrees when its codes and zero points / scale bytes are identical and its scales agree
// to 1e-5 relative (the two factor routes and summation orders move W, hence a group's range,
// by a few ulps); the run agrees when >= 95% of rows do and the losses are within 1e-3.
struct agreement {
  double rows_identical;  // fraction of rows that agree
  double loss_rel;        // |loss - ref loss| / ref loss
  double max_deq_diff;    // max |dequantized - ref| over the agreeing rows, relative to max |ref|
  bool passes() const { return rows_identical >= 0.95 && loss_rel <= 1e-3; }
};

agreement compare(const gptq_result& a, const ref_result& b) {
  const quantized_matrix& m = a.weight;
  const index_t rows = m.rows, C = m.cols;
  const index_t gpr = m.q.gran == granularity::per_tensor ? 0 : m.groups_per_row;
  const double deq_scale = static_cast<double>(b.deq.cwiseAbs().maxCoeff());
  index_t same = 0;
  double deq_diff = 0;
  for (index_t r = 0; r < rows; ++r) {
    bool ok = true;
    for (index_t c = 0; c < C && ok; ++c)
      ok = m.code(r, c) == b.codes[static_cast<std::size_t>(r * C + c)];
    for (index_t k = r * gpr; k < (r + 1) * gpr && ok; ++k) {
      const std::size_t kk = static_cast<std::size_t>(k);
      ok = std::fabs(static_cast<double>(m.scales[kk]) - static_cast<double>(b.scales[kk])) <=
               1e-5 * static_cast<double>(b.scales[kk]) &&
           (!m.q.has_zero_point() || m.zero_points[kk] == b.zeros[kk]) &&
           (!m.q.is_block_format() || m.scale_codes[kk] == b.scale_codes[kk]);
    }
    if (!ok) continue;
    ++same;
    for (index_t c = 0; c < C; ++c)
      deq_diff = std::max(deq_diff, std::fabs(static_cast<double>(a.dequantized(r, c)) -
                                              static_cast<double>(b.deq(r, c))) /
                                        deq_scale);
  }
  return {static_cast<double>(same) / static_cast<double>(rows),
          std::fabs(a.loss - b.loss) / b.loss, deq_diff};
}

// Runs gptq and the reference on one configuration and expects them to agree.
void expect_matches_reference(const matrix_f& W, const matrix_d& H, const gptq_config& cfg,
                              index_t block, index_t dead_columns) {
  const std::string what = cfg.name + " block " + std::to_string(block);
  gptq_options o;
  o.block_size = block;
  o.act_order = cfg.act_order;
  o.static_groups = cfg.static_groups;
  const gptq_result r = rotquant::gptq(W, H, cfg.q, o);
  const ref_result ref =
      gptq_reference(W, H, cfg.q, block, o.percdamp, cfg.act_order, cfg.static_groups);
  const agreement a = compare(r, ref);
  EXPECT_TRUE(a.passes()) << what << ": rows identical " << a.rows_identical
                          << ", loss relative difference " << a.loss_rel;
  if (!r.perm.empty()) {
    EXPECT_TRUE(r.perm == ref.perm) << what;
  }
  // The agreeing rows dequantize alike (same codes, scales within 1e-5), and every column's
  // loss agrees to 1e-3 of the largest.
  EXPECT_LE(a.max_deq_diff, 1e-5) << what;
  EXPECT_LE((r.column_loss - ref.column_loss).cwiseAbs().maxCoeff(),
            1e-3 * ref.column_loss.maxCoeff())
      << what;
  EXPECT_EQ(r.dead_columns, dead_columns) << what;
}

TEST(GptqReference, MatchesPlainLoopReference) {
  // Blocks of 20, 6 and 4 < C = 96: groups of 32 start inside blocks (block 20: 32 in [20, 40),
  // 64 in [60, 80)) and cross block boundaries; groups of 48 are longer than a block.
  const index_t n = scaled(384, 192), C = 96, rows = scaled(64, 32);
  matrix_f X = correlated_inputs(n, C, 81);
  X.col(10).setZero();  // a dead column
  const matrix_d H = hessian_of(X);
  const matrix_f W = gaussian(rows, C, 82, 0.02);
  const index_t block = 20;
  for (const gptq_config& cfg : std::vector<gptq_config>{
           {"int4 sym g32", quantizer::gptq_weight(4, true, false, 32), false, false},
           {"int4 asym g32 act_order", quantizer::gptq_weight(4, false, false, 32), true, false},
           {"int4 asym g48 act_order", quantizer::gptq_weight(4, false, false, 48), true, false},
           {"int4 sym g32 act_order static", quantizer::gptq_weight(4, true, false, 32), true,
            true},
           {"int4 asym g16 static", quantizer::gptq_weight(4, false, false, 16), false, true},
           {"int4 asym per_row act_order", quantizer::gptq_weight(4, false, false), true, false},
           {"int4 sym per_tensor", quantizer::int_sym(4, granularity::per_tensor), false, false},
           {"quarot int4 asym g32 act_order", quantizer::int_asym(4, granularity::per_group, 32),
            true, false},
           {"fp4 e2m1 g16 act_order", quantizer::fp4(fp4_kind::e2m1, granularity::per_group, 16),
            true, false},
           {"mxfp4 act_order", quantizer::mxfp4(), true, false},
           {"nvfp4", quantizer::nvfp4(), false, false},
       }) {
    for (index_t b : {block, index_t{6}, index_t{4}}) expect_matches_reference(W, H, cfg, b, 1);
  }
  // The wrong variants must not pass the same test.
  {
    const quantizer q = quantizer::gptq_weight(4, true, false, 32);
    gptq_options o;
    o.block_size = block;
    const gptq_result r = rotquant::gptq(W, H, q, o);
    for (ref_variant v : {ref_variant::params_from_block, ref_variant::no_lazy_update}) {
      const ref_result wrong = gptq_reference(W, H, q, block, o.percdamp, false, false, v);
      const agreement a = compare(r, wrong);
      EXPECT_LT(a.rows_identical, 0.9) << "variant " << static_cast<int>(v);
      EXPECT_FALSE(a.passes()) << "variant " << static_cast<int>(v) << ": rows identical "
                               << a.rows_identical << ", loss " << a.loss_rel;
    }
  }
}

TEST(GptqReference, WideLayerWithDefaultBlock) {
  // C = 640 > 512 columns with the default block of 128: the lazy update reaches columns many
  // blocks ahead. Per row, per group of 128 with act_order, static groups of 64.
  const index_t C = 640, rows = scaled(12, 6);
  const matrix_f A = gaussian(C, C, 121, 1.0 / std::sqrt(static_cast<double>(C)));
  matrix_d H = A.cast<double>() * A.cast<double>().transpose();  // SPD, correlated
  H.diagonal().array() += 0.05;
  for (index_t c : {index_t{3}, index_t{200}}) {  // two large channels
    H.row(c) *= 5.0;
    H.col(c) *= 5.0;
  }
  const matrix_f W = gaussian(rows, C, 122, 0.02);
  for (const gptq_config& cfg : std::vector<gptq_config>{
           {"int4 asym per_row", quantizer::gptq_weight(4, false, false), false, false},
           {"int4 sym g128 act_order", quantizer::gptq_weight(4, true, false, 128), true, false},
           {"int4 asym g64 static act_order", quantizer::gptq_weight(4, false, false, 64), true,
            true},
           {"mxfp4", quantizer::mxfp4(), false, false},
       }) {
    expect_matches_reference(W, H, cfg, 128, 0);
  }
}

// ----------------------------------------------------------------- 6. dead columns

TEST(GptqDeadColumns, ClearedWithZeroLoss) {
  const index_t n = scaled(256, 128), C = 64, rows = 20;
  matrix_f X = correlated_inputs(n, C, 91);
  const std::vector<index_t> dead = {0, 7, 33, C - 1};
  for (index_t d : dead) X.col(d).setZero();
  rotquant::hessian_accumulator<float> acc(C);
  acc.add(X);
  const rotquant::matrix<float> H = acc.hessian();
  for (index_t d : dead) ASSERT_EQ(H(d, d), 0.0f);
  const matrix_f W = gaussian(rows, C, 92, 0.02);
  for (const gptq_config& cfg : std::vector<gptq_config>{
           {"int4 sym per_row", quantizer::gptq_weight(4, true, false), false, false},
           {"int4 asym per_row act_order", quantizer::gptq_weight(4, false, false), true, false},
           {"int4 asym g16 act_order", quantizer::gptq_weight(4, false, false, 16), true, false},
           {"quarot int4 asym g16", quantizer::int_asym(4, granularity::per_group, 16), false,
            false},
           {"int4 sym g16 act_order static", quantizer::gptq_weight(4, true, false, 16), true,
            true},
           {"fp4 e2m1 per_row", quantizer::fp4(fp4_kind::e2m1), true, false},
           {"mxfp4", quantizer::mxfp4(), true, false},
       }) {
    gptq_options o;
    o.block_size = 24;
    o.act_order = cfg.act_order;
    o.static_groups = cfg.static_groups;
    const gptq_result r = rotquant::gptq(W, H, cfg.q, o);
    EXPECT_EQ(r.dead_columns, static_cast<index_t>(dead.size())) << cfg.name;
    const matrix_f packed = weight_in_input_order(r);
    for (index_t d : dead) {
      for (index_t row = 0; row < rows; ++row) {
        EXPECT_EQ(r.dequantized(row, d), 0.0f) << cfg.name << " column " << d;
        EXPECT_EQ(packed(row, d), 0.0f) << cfg.name << " column " << d;
      }
      EXPECT_EQ(r.column_loss(d), 0.0) << cfg.name << " column " << d;
    }
    // The live columns carry all of the loss: it is the quadratic form of the weight with the
    // dead columns cleared (H[d, d] = 1 + damp there, dW = 0), to 1e-4 relative.
    EXPECT_GT(r.loss, 0.0) << cfg.name;
    matrix_d dW = W.cast<double>() - r.dequantized.cast<double>();
    for (index_t d : dead) dW.col(d).setZero();
    matrix_d Hdamp = H.cast<double>();
    Hdamp.diagonal().array() += r.damp;
    const double quad = 0.5 * (dW * Hdamp * dW.transpose()).trace();
    EXPECT_NEAR(r.loss, quad, 1e-4 * quad) << cfg.name;
    // damp = percdamp x mean diagonal after the dead entries are set to 1.
    EXPECT_NEAR(r.damp, 0.01 * (H.cast<double>().trace() + static_cast<double>(dead.size())) / C,
                1e-6 * r.damp)
        << cfg.name;
  }
  // H = 0: every column is dead, the result is all zero with zero loss.
  const gptq_result z = rotquant::gptq(W, matrix_d(matrix_d::Zero(C, C)),
                                       quantizer::gptq_weight(4, false, false, 16));
  EXPECT_EQ(z.dead_columns, C);
  EXPECT_TRUE((z.dequantized.array() == 0.0f).all());
  EXPECT_EQ(z.loss, 0.0);
}

// ----------------------------------------------------------------- 7. errors

TEST(GptqErrors, MessagesNameTheProblem) {
  const index_t C = 8;
  const matrix_f W = gaussian(4, C, 101);
  const matrix_d I = matrix_d::Identity(C, C);
  const quantizer q = quantizer::gptq_weight(4, true, false);
  gptq_options o;
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, matrix_d(matrix_d::Identity(6, 6)), q),
                        "H is 6 x 6, W has 8 columns");
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, matrix_d(matrix_d::Zero(8, 6)), q), "H is 8 x 6");
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(matrix_f(0, C), I, q), "at least one row");
  matrix_f Wn = W;
  Wn(1, 2) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(Wn, I, q), "W holds a non-finite value");
  Wn(1, 2) = -std::numeric_limits<float>::infinity();
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(Wn, I, q), "at (1, 2)");
  matrix_d Hn = I;
  Hn(3, 4) = Hn(4, 3) = std::numeric_limits<double>::infinity();
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, Hn, q), "H holds a non-finite value");
  Hn(3, 4) = Hn(4, 3) = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, Hn, q), "H holds a non-finite value");
  matrix_d Ha = I;
  Ha(0, 1) = 0.5;
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, Ha, q), "H is not symmetric");
  o.block_size = 0;
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, I, q, o), "block_size must be >= 1 (got 0)");
  o = gptq_options{};
  o.percdamp = -0.01;
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, I, q, o), "percdamp must be finite and >= 0");
  o.percdamp = std::numeric_limits<double>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, I, q, o), "percdamp must be finite and >= 0");
  o = gptq_options{};
  o.static_groups = true;
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, I, q, o), "static_groups needs a per_group quantizer");
  EXPECT_ROTQUANT_ERROR(rotquant::gptq(W, I, quantizer::int_sym(4, granularity::per_group, 3)),
                        "does not divide the row length");

  // Not positive definite after damping: H = -I, and a rank-2 H minus 0.05 I (diagonal
  // positive, eigenvalues -0.05 on the null space; default damp 0.01 x mean diag ~ 0.02).
  const matrix_d negI = -I;
  const matrix_f B = gaussian(2, C, 102);
  matrix_d Hr = B.cast<double>().transpose() * B.cast<double>();
  Hr.diagonal().array() -= 0.05;
  const double lmin =
      Eigen::SelfAdjointEigenSolver<matrix_d>(Hr, Eigen::EigenvaluesOnly).eigenvalues()(0);
  ASSERT_LT(lmin, -0.04);
  ASSERT_LT(0.01 * Hr.diagonal().mean(), -lmin);
  const matrix_d* not_pd[] = {&negI, &Hr};
  const double needed[] = {1.0, -lmin};  // the least damp that makes H + damp I definite
  for (int k = 0; k < 2; ++k) {
    const std::string msg = error_message([&] { rotquant::gptq(W, *not_pd[k], q); });
    EXPECT_TRUE(contains(msg, "not positive definite")) << msg;
    EXPECT_TRUE(contains(msg, "would be needed")) << msg;
    // The damp it names is the least one to 1% ("a damp of about X").
    const std::string key = "a damp of about ";
    const std::size_t at = msg.find(key);
    EXPECT_NE(at, std::string::npos) << msg;
    if (at != std::string::npos) {
      const double named_damp = std::stod(msg.substr(at + key.size()));
      EXPECT_GE(named_damp, 0.99 * needed[k]) << msg;
      EXPECT_LE(named_damp, 1.01 * needed[k]) << msg;
    }
  }
  // Damping above the smallest eigenvalue's magnitude succeeds.
  o = gptq_options{};
  o.percdamp = 1.5 * -lmin / Hr.diagonal().mean();
  EXPECT_NO_THROW(rotquant::gptq(W, Hr, q, o));

  // The layer name appears in the messages.
  gptq_options named;
  named.layer = "model.layers.3.mlp.down_proj";
  const std::string tag = "layer 'model.layers.3.mlp.down_proj'";
  for (const std::string& msg : {
           error_message([&] { rotquant::gptq(W, matrix_d(matrix_d::Identity(6, 6)), q, named); }),
           error_message([&] {
             matrix_f w = W;
             w(0, 0) = std::numeric_limits<float>::quiet_NaN();
             rotquant::gptq(w, I, q, named);
           }),
           error_message([&] { rotquant::gptq(W, Ha, q, named); }),
           error_message([&] { rotquant::gptq(W, Hr, q, named); }),
       }) {
    EXPECT_TRUE(contains(msg, tag)) << msg;
  }
  {
    gptq_options bad = named;
    bad.block_size = 0;
    const std::string msg = error_message([&] { rotquant::gptq(W, I, q, bad); });
    EXPECT_TRUE(contains(msg, tag)) << msg;
  }
}

// ----------------------------------------------------------------- 8. determinism

TEST(GptqDeterminism, SameBitsOnTwoThreads) {
  const index_t n = scaled(256, 128), C = 80, rows = 300;  // 300 rows: chunks of 256 and 44
  const matrix_f X = correlated_inputs(n, C, 111);
  const matrix_d H = hessian_of(X);
  const matrix_f W = gaussian(rows, C, 112, 0.02);
  rotquant::serial_executor serial;
  rotquant::thread_pool_executor pool(2);
  for (const gptq_config& cfg : std::vector<gptq_config>{
           {"int4 asym per_row mse", quantizer::gptq_weight(4, false, true), false, false},
           {"int4 sym g16 act_order", quantizer::gptq_weight(4, true, false, 16), true, false},
           {"int4 asym g16 act_order static", quantizer::gptq_weight(4, false, false, 16), true,
            true},
           {"nvfp4 act_order", quantizer::nvfp4(), true, false},
       }) {
    gptq_options o;
    o.block_size = 32;
    o.act_order = cfg.act_order;
    o.static_groups = cfg.static_groups;
    o.ex = &serial;
    const gptq_result a = rotquant::gptq(W, H, cfg.q, o);
    o.ex = &pool;
    const gptq_result b = rotquant::gptq(W, H, cfg.q, o);
    o.ex = nullptr;
    const gptq_result c = rotquant::gptq(W, H, cfg.q, o);
    expect_same_result(a, b, cfg.name + " serial vs 2 threads");
    expect_same_result(a, c, cfg.name + " serial vs default executor");
  }
}

}  // namespace
