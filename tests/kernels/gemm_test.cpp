// SPDX-License-Identifier: Apache-2.0
// Tests for kernels/gemm.hpp (docs/testing.md F9/F10): every ISA path and format bit-exact with an
// independent int64 reference, extreme codes, tails, large K, thread counts, bad inputs.
#include "rotquant/kernels/gemm.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "rotquant/core/rng.hpp"
#include "rotquant/quant/formats.hpp"
#include "rotquant/quant/quantizer.hpp"
#include "test_util.hpp"

namespace {

using rotquant::act_format;
using rotquant::index_t;
using rotquant::matrix_f;
using rotquant::packed_activations;
using rotquant::packed_weights;
using rotquant::weight_format;

matrix_f random_matrix(index_t r, index_t c, std::uint64_t seed) {
  rotquant::rng g(seed);
  matrix_f x(r, c);
  for (index_t i = 0; i < r; ++i)
    for (index_t j = 0; j < c; ++j) x(i, j) = static_cast<float>(g.normal());
  return x;
}

// Weight integer units and per-(row, block) multipliers, built by the test itself.
struct int_weights {
  weight_format f;
  index_t n, k, block;
  std::vector<int> units;         // n x k: INT4 code, or 2 * E2M1 value
  std::vector<float> scales;      // n x blocks: multiplier of one unit
  std::vector<std::int8_t> raw;   // what pack_weight_codes takes
  std::vector<float> raw_scales;  // idem
};

int_weights random_int_weights(weight_format f, index_t n, index_t k, index_t group,
                               std::uint64_t seed, int mode = 0) {
  rotquant::rng g(seed);
  int_weights w{f, n, k, 0, {}, {}, {}, {}};
  w.block = f == weight_format::qsi4cx   ? k
            : f == weight_format::qsi4cg ? group
            : f == weight_format::mxfp4  ? 32
                                         : 16;
  const bool fp4 = f == weight_format::mxfp4 || f == weight_format::nvfp4;
  const index_t blocks = (k + w.block - 1) / w.block;
  for (index_t i = 0; i < n * k; ++i) {
    int c = 0;
    if (mode == 0)
      c = fp4 ? static_cast<int>(g.uniform_int(16)) : static_cast<int>(g.uniform_int(16)) - 8;
    if (mode == 1) c = fp4 ? 0xF : -8;  // most negative everywhere (FP4: -6)
    if (mode == 2) c = fp4 ? 0x7 : 7;   // most positive everywhere (FP4: +6)
    w.raw.push_back(static_cast<std::int8_t>(c));
    w.units.push_back(fp4 ? rotquant::e2m1_to_int_x2(static_cast<std::uint8_t>(c)) : c);
  }
  for (index_t i = 0; i < n * blocks; ++i) {
    // Scales spanning many binades (group scales 1e-3 .. 1e3), powers of two for FP4 blocks.
    const float s = fp4 ? std::ldexp(1.0f, static_cast<int>(g.uniform_int(12)) - 6)
                        : static_cast<float>(std::exp(g.uniform() * 13.8 - 6.9));
    w.raw_scales.push_back(s);
    w.scales.push_back(fp4 ? s * 0.5f : s);
  }
  return w;
}

// The documented epilogue computed from integers in int64: y = fma chain over kernel blocks.
matrix_f reference(const packed_activations& a, const int_weights& w, const float* bias) {
  const index_t ab = std::min(a.block, a.k), wb = std::min(w.block, w.k);
  const index_t kb = std::min(ab, wb);
  const index_t nkb = (a.k + kb - 1) / kb;
  const index_t wblocks = (w.k + w.block - 1) / w.block;
  matrix_f out(a.m, w.n);
  for (index_t m = 0; m < a.m; ++m)
    for (index_t n = 0; n < w.n; ++n) {
      float y = 0.0f;
      for (index_t b = 0; b < nkb; ++b) {
        long long dot = 0;
        for (index_t k = b * kb; k < std::min(a.k, (b + 1) * kb); ++k)
          dot += static_cast<long long>(a.codes[static_cast<std::size_t>(m * a.stride + k)]) *
                 w.units[static_cast<std::size_t>(n * w.k + k)];
        const float sa = a.scales[static_cast<std::size_t>(m * a.blocks + b * kb / a.block)];
        const float sw = w.scales[static_cast<std::size_t>(n * wblocks + b * kb / w.block)];
        y = std::fma(static_cast<float>(dot), sa * sw, y);
      }
      out(m, n) = bias ? y + bias[n] : y;
    }
  return out;
}

packed_weights pack(const int_weights& w, index_t group) {
  return rotquant::pack_weight_codes(w.raw.data(), w.raw_scales.data(), w.n, w.k, w.f, group);
}

::testing::AssertionResult bits_equal(const matrix_f& got, const matrix_f& want) {
  for (index_t i = 0; i < want.rows(); ++i)
    for (index_t j = 0; j < want.cols(); ++j)
      if (std::memcmp(&got(i, j), &want(i, j), sizeof(float)) != 0)
        return ::testing::AssertionFailure()
               << "at (" << i << ", " << j << "): got " << got(i, j) << " want " << want(i, j);
  return ::testing::AssertionSuccess();
}

constexpr weight_format all_weights[] = {weight_format::qsi4cx, weight_format::qsi4cg,
                                         weight_format::mxfp4, weight_format::nvfp4};
constexpr act_format all_acts[] = {act_format::qsi4dx, act_format::qai4dx, act_format::qsi4dg,
                                   act_format::qsi8dx, act_format::mxfp4,  act_format::nvfp4};

// The F9 sweep: every path x every weight format x every activation format over M in
// {1, 2, 3, 5, 17}, N around the panel width, K with tails; bit-exact with the int64 reference.
TEST(Gemm, EveryPathAndFormatBitExactWithInt64Reference) {
  const std::vector<index_t> ks = rotquant_test::small_scale()
                                      ? std::vector<index_t>{1, 17, 136}
                                      : std::vector<index_t>{1, 3, 8, 17, 31, 64, 100, 129, 264};
  std::size_t cases = 0, nonzero = 0, total = 0;
  std::uint64_t seed = 1;
  for (index_t m : {1, 2, 3, 5, 17})
    for (index_t n : {1, 15, 16, 17, 33, 70})
      for (index_t k : ks)
        for (weight_format wf : all_weights)
          for (act_format af : all_acts) {
            if ((m + n + k) % 3 != static_cast<index_t>(af) % 3 && n != 17) continue;  // thin out
            const int_weights w = random_int_weights(wf, n, k, 32, ++seed);
            const packed_weights pw = pack(w, 32);
            const matrix_f x = random_matrix(m, k, ++seed);
            const packed_activations pa = rotquant::quantize_activations(x, af, 1.0f, 32);
            const rotquant::vector_f bias = random_matrix(n, 1, seed).col(0);
            const bool with_bias = (seed & 1) != 0;
            const matrix_f want = reference(pa, w, with_bias ? bias.data() : nullptr);
            for (auto path : rotquant::available_isas()) {
              rotquant::scoped_isa force(path);
              const matrix_f got = rotquant::quantized_matmul(
                  pa, pw,
                  with_bias ? rotquant::gemm_epilogue::with_bias(bias) : rotquant::gemm_epilogue{});
              ASSERT_TRUE(bits_equal(got, want))
                  << rotquant::to_string(path) << " " << rotquant::to_string(wf) << " x "
                  << rotquant::to_string(af) << " m=" << m << " n=" << n << " k=" << k;
              ++cases;
            }
            for (index_t i = 0; i < want.size(); ++i) nonzero += want.data()[i] != 0.0f;
            total += static_cast<std::size_t>(want.size());
          }
  EXPECT_GT(cases, 500u);
  EXPECT_GT(nonzero, total / 2) << "uninformative test: most outputs are zero";
}

// Extreme codes everywhere (docs/testing.md 3.2): -8 x -8, +7 x -8, FP4 -6 x -6, INT8 -128, with
// K up to 16384; exact integer results are known in closed form.
TEST(Gemm, ExtremeCodesExactOnEveryPath) {
  const index_t k = rotquant_test::scaled(16384, 2048), n = 19;
  for (int mode : {1, 2})
    for (weight_format wf : {weight_format::qsi4cx, weight_format::mxfp4}) {
      int_weights w = random_int_weights(wf, n, k, 0, 5, mode);
      for (auto& s : w.raw_scales) s = 1.0f;
      for (auto& s : w.scales) s = wf == weight_format::mxfp4 ? 0.5f : 1.0f;
      const packed_weights pw = pack(w, 0);
      for (act_format af : {act_format::qsi4dx, act_format::qsi8dx}) {
        // Rows of -1 with clip 7/8 (INT4: s = 1/8) or 127/128 (INT8: s = 1/128) give the most
        // negative code.
        matrix_f x = matrix_f::Constant(3, k, -1.0f);
        const float clip = af == act_format::qsi4dx ? 0.875f : 127.0f / 128.0f;
        const packed_activations pa = rotquant::quantize_activations(x, af, clip);
        const int amin = af == act_format::qsi4dx ? -8 : -128;
        ASSERT_EQ(pa.codes[0], amin);
        const int wu = w.units[0];
        const double want_dot = static_cast<double>(amin) * wu * static_cast<double>(k);
        const matrix_f want = reference(pa, w, nullptr);
        EXPECT_EQ(want(0, 0), static_cast<float>(want_dot) * (pa.scales[0] * w.scales[0]))
            << "reference sanity";
        for (auto path : rotquant::available_isas()) {
          rotquant::scoped_isa force(path);
          EXPECT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw), want))
              << rotquant::to_string(path) << " mode " << mode << " " << rotquant::to_string(wf)
              << " x " << rotquant::to_string(af);
        }
      }
    }
}

// Mixed positive / negative extremes: +7 x -8 alternating so the sum cancels only if every lane
// is exact.
TEST(Gemm, AlternatingExtremesOnEveryPath) {
  const index_t k = 1000, n = 40;
  int_weights w = random_int_weights(weight_format::qsi4cx, n, k, 0, 9, 0);
  for (index_t i = 0; i < n * k; ++i) {
    const int c = (i % 3 == 0) ? 7 : -8;
    w.raw[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(c);
    w.units[static_cast<std::size_t>(i)] = c;
  }
  const packed_weights pw = pack(w, 0);
  matrix_f x(5, k);
  for (index_t r = 0; r < 5; ++r)
    for (index_t c = 0; c < k; ++c) x(r, c) = (c + r) % 2 ? -1.0f : 0.875f;
  const packed_activations pa = rotquant::quantize_activations(x, act_format::qsi4dx, 0.875f);
  const matrix_f want = reference(pa, w, nullptr);
  for (auto path : rotquant::available_isas()) {
    rotquant::scoped_isa force(path);
    EXPECT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw), want)) << rotquant::to_string(path);
  }
}

// Float outputs against the float product of the dequantized operands (XNNPACK-style bound:
// only the fp32 epilogue rounds, so |err| <= 4 eps * sum_k |a_k w_k| per output).
TEST(Gemm, FloatOutputWithinBoundOfDequantizedProduct) {
  for (weight_format wf : all_weights)
    for (act_format af : all_acts) {
      const matrix_f wf32 = random_matrix(45, 256, 3);
      const matrix_f x = random_matrix(7, 256, 4);
      const packed_weights pw = rotquant::pack_weights(wf32, wf, 64);
      const packed_activations pa = rotquant::quantize_activations(x, af, 1.0f, 64);
      const Eigen::MatrixXd da = rotquant::dequantize_activations(pa).cast<double>();
      const Eigen::MatrixXd dw = rotquant::dequantize_weights(pw).cast<double>();
      const Eigen::MatrixXd exact = da * dw.transpose();
      const Eigen::MatrixXd mag = da.cwiseAbs() * dw.cwiseAbs().transpose();
      const matrix_f got = rotquant::quantized_matmul(pa, pw);
      for (index_t i = 0; i < got.rows(); ++i)
        for (index_t j = 0; j < got.cols(); ++j)
          ASSERT_LE(std::abs(got(i, j) - exact(i, j)), 4 * 1.2e-7 * mag(i, j) + 1e-30)
              << rotquant::to_string(wf) << " x " << rotquant::to_string(af);
      // And the quantized product is a sane approximation of the float product.
      const Eigen::MatrixXd truth = x.cast<double>() * wf32.cast<double>().transpose();
      EXPECT_LT((exact - truth).norm() / truth.norm(), af == act_format::qsi8dx ? 0.2 : 0.3)
          << rotquant::to_string(wf) << " x " << rotquant::to_string(af);
    }
}

// pack_weights from floats equals the general quantizer's codes and scales (quant/), and packing
// that quantizer's output gives the same packed bytes.
TEST(Gemm, PackWeightsMatchesGeneralQuantizer) {
  const matrix_f w = random_matrix(33, 200, 8);
  struct pairing {
    weight_format f;
    rotquant::quantizer q;
  };
  const pairing pairs[] = {
      {weight_format::qsi4cx, rotquant::quantizer::int_sym(4)},
      {weight_format::qsi4cg,
       rotquant::quantizer::int_sym(4, rotquant::granularity::per_group, 40)},
      {weight_format::mxfp4, rotquant::quantizer::mxfp4()},
      {weight_format::nvfp4, rotquant::quantizer::nvfp4()},
  };
  for (const auto& p : pairs) {
    if (p.f == weight_format::mxfp4) continue;  // 200 is not a multiple of 32 for quant/
    const packed_weights a = rotquant::pack_weights(w, p.f, 40);
    const packed_weights b = rotquant::pack_weights(rotquant::quantize(p.q, w));
    EXPECT_EQ(a.data, b.data) << rotquant::to_string(p.f);
    EXPECT_EQ(a.scales, b.scales) << rotquant::to_string(p.f);
    const matrix_f deq = rotquant::dequantize(rotquant::quantize(p.q, w));
    EXPECT_TRUE(bits_equal(rotquant::dequantize_weights(a), deq)) << rotquant::to_string(p.f);
  }
  const matrix_f w32 = random_matrix(20, 96, 2);
  EXPECT_EQ(rotquant::pack_weights(w32, weight_format::mxfp4).data,
            rotquant::pack_weights(rotquant::quantize(rotquant::quantizer::mxfp4(), w32)).data);
}

// Thread counts 1, 2, 3 give identical bits (work splits never change a reduction order).
TEST(Gemm, ThreadCountDoesNotChangeBits) {
  for (index_t m : {1, 4, 70}) {
    const packed_weights pw =
        rotquant::pack_weights(random_matrix(300, 264, 1), weight_format::qsi4cg, 64);
    const packed_activations pa =
        rotquant::quantize_activations(random_matrix(m, 264, 2), act_format::qsi4dx);
    const matrix_f one = rotquant::quantized_matmul(pa, pw);
    for (int t : {2, 3}) {
      rotquant::thread_pool_executor pool(t);
      EXPECT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw, {}, &pool), one)) << t;
    }
  }
}

// linear_w4a4 = quantize then multiply; a strided output view leaves the padding untouched.
TEST(Gemm, LinearAndStridedOutput) {
  const matrix_f w = random_matrix(21, 72, 5), x = random_matrix(6, 72, 6);
  const packed_weights pw = rotquant::pack_weights(w, weight_format::qsi4cx);
  const matrix_f want =
      rotquant::quantized_matmul(rotquant::quantize_activations(x, act_format::qsi4dx), pw);
  std::vector<float> buf(6 * 30, -7.0f);
  rotquant::linear_w4a4(rotquant::view(x), pw, rotquant::make_view(buf.data(), 6, 21, 30));
  for (index_t r = 0; r < 6; ++r)
    for (index_t c = 0; c < 30; ++c) {
      const float v = buf[static_cast<std::size_t>(r * 30 + c)];
      if (c < 21)
        EXPECT_EQ(v, want(r, c));
      else
        EXPECT_EQ(v, -7.0f) << "padding written at " << r << "," << c;
    }
  EXPECT_TRUE(bits_equal(rotquant::linear_w4a4(x, pw), want));
}

TEST(Gemm, RejectsBadInput) {
  const matrix_f w = random_matrix(10, 64, 1);
  const packed_weights pw = rotquant::pack_weights(w, weight_format::qsi4cg, 32);
  const packed_activations pa =
      rotquant::quantize_activations(random_matrix(2, 48, 1), act_format::qsi4dx);
  matrix_f out(2, 10);
  EXPECT_ROTQUANT_ERROR(rotquant::quantized_matmul(pa, pw, rotquant::view(out)), "must match");
  const packed_activations pg =
      rotquant::quantize_activations(random_matrix(2, 64, 1), act_format::qsi4dg, 1.0f, 24);
  EXPECT_ROTQUANT_ERROR(rotquant::quantized_matmul(pg, pw, rotquant::view(out)), "incompatible");
  const packed_activations ok =
      rotquant::quantize_activations(random_matrix(2, 64, 1), act_format::qsi4dx);
  matrix_f bad(3, 10);
  EXPECT_ROTQUANT_ERROR(rotquant::quantized_matmul(ok, pw, rotquant::view(bad)), "expected 2 x 10");
  const rotquant::vector_f b5 = rotquant::vector_f::Zero(5);
  EXPECT_ROTQUANT_ERROR(rotquant::quantized_matmul(ok, pw, rotquant::view(out),
                                                   rotquant::gemm_epilogue::with_bias(b5)),
                        "bias has 5");
  EXPECT_ROTQUANT_ERROR(rotquant::pack_weights(w, weight_format::qsi4cg, 20), "multiple of 8");
  matrix_f wn = w;
  wn(3, 3) = std::nanf("");
  EXPECT_ROTQUANT_ERROR(rotquant::pack_weights(wn, weight_format::qsi4cx), "non-finite");
  const std::int8_t codes[2] = {9, 0};
  const float scales[1] = {1.0f};
  EXPECT_ROTQUANT_ERROR(rotquant::pack_weight_codes(codes, scales, 1, 2, weight_format::qsi4cx),
                        "not in -8..7");
  EXPECT_ROTQUANT_ERROR(
      rotquant::pack_weights(rotquant::quantize(rotquant::quantizer::int_asym(4), w)),
      "no GEMM kernel");
  EXPECT_ROTQUANT_ERROR(rotquant::linear_w4a4(random_matrix(2, 63, 1), pw), "63 columns");
}

#if ROTQUANT_HAS_NEON
// The plain-NEON fallback (CPUs without the dot-product extension) is exact too.
TEST(Gemm, NeonFallbackWithoutDotprodBitExact) {
  const matrix_f w = random_matrix(37, 100, 3), x = random_matrix(5, 100, 4);
  for (weight_format wf : all_weights) {
    const packed_weights pw = rotquant::pack_weights(w, wf, 32);
    const packed_activations pa = rotquant::quantize_activations(x, act_format::qsi8dx);
    matrix_f ref;
    {
      rotquant::scoped_isa force(rotquant::isa::scalar);
      ref = rotquant::quantized_matmul(pa, pw);
    }
    rotquant::detail::gemm_neon_dotprod_override().store(0);
    const matrix_f got = rotquant::quantized_matmul(pa, pw);
    rotquant::detail::gemm_neon_dotprod_override().store(-1);
    EXPECT_TRUE(bits_equal(got, ref)) << rotquant::to_string(wf);
  }
}
#endif

}  // namespace
