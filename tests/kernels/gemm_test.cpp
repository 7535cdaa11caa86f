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
            for (auto path : rotquant_test::isa_paths()) {
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
        for (auto path : rotquant_test::isa_paths()) {
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
  for (auto path : rotquant_test::isa_paths()) {
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

// ---------------------------------------------------------------------------------------------
// AMX (detail/arch/amx/): the scalar tile model against the instruction definitions, the tile
// kernel on that model against the int64 reference on every machine, and the instructions
// themselves where the CPU has them (a visible skip otherwise).

namespace amx = rotquant::detail::arch;

amx::amx_tile_config tile_config(int rows_a, int colsb_a) {
  amx::amx_tile_config c;
  c.rows[0] = static_cast<std::uint8_t>(rows_a);  // C: rows_a x 16 int32
  c.colsb[0] = 64;
  c.rows[4] = static_cast<std::uint8_t>(rows_a);  // A: rows_a x colsb_a bytes
  c.colsb[4] = static_cast<std::uint16_t>(colsb_a);
  c.rows[6] = static_cast<std::uint8_t>(colsb_a / 4);  // B: colsb_a / 4 x 64 bytes
  c.colsb[6] = 64;
  return c;
}

TEST(GemmAmx, TileModelFollowsTheInstructionDefinitions) {
  // C[m][n] += sum_k sum_i A[m][4k + i] * B[k][4n + i], over the configured rows and columns,
  // with int8 operands at their extremes and an int32 accumulator that wraps.
  rotquant::rng g(3);
  for (int rows : {1, 7, 16})
    for (int colsb : {4, 32, 64}) {
      amx::amx_tiles_model t;
      t.configure(tile_config(rows, colsb));
      std::vector<std::int8_t> a(16 * 64), b(16 * 64);
      for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(g.uniform_int(256)) - 128);
      for (auto& v : b) v = static_cast<std::int8_t>(static_cast<int>(g.uniform_int(256)) - 128);
      std::vector<std::int32_t> c0(16 * 16), c(16 * 16, 0x5A5A5A5A);
      for (auto& v : c0) v = static_cast<std::int32_t>(g.uniform_int(2000)) - 1000;
      c0[0] = 2147483600;  // wraps past INT32_MAX when the dot product is positive
      t.load<0>(c0.data(), 64);
      t.load<4>(a.data(), 64);
      t.load<6>(b.data(), 64);
      t.dpbssd<0, 4, 6>();
      t.store<0>(c.data(), 64);
      for (int m = 0; m < 16; ++m)
        for (int n = 0; n < 16; ++n) {
          const std::size_t at = static_cast<std::size_t>(m * 16 + n);
          if (m >= rows) {
            EXPECT_EQ(c[at], 0x5A5A5A5A) << "a store wrote past the configured rows";
            continue;
          }
          long long want = c0[at];
          for (int k = 0; k < colsb / 4; ++k)
            for (int i = 0; i < 4; ++i)
              want += static_cast<long long>(a[static_cast<std::size_t>(m * 64 + 4 * k + i)]) *
                      b[static_cast<std::size_t>(k * 64 + 4 * n + i)];
          const auto wrapped = static_cast<std::int32_t>(static_cast<std::uint32_t>(want));
          ASSERT_EQ(c[at], wrapped)
              << "rows " << rows << " colsb " << colsb << " at " << m << "," << n;
        }
    }
  // Stores move rows(t) rows of colsb(t) bytes at the given stride and nothing else.
  amx::amx_tiles_model t;
  t.configure(tile_config(2, 32));
  std::vector<std::int8_t> ones(64 * 3, 1), raw(64 * 3, 9);
  t.load<4>(ones.data(), 64);
  t.store<4>(raw.data(), 64);
  for (int i = 0; i < 64 * 3; ++i)
    ASSERT_EQ(raw[static_cast<std::size_t>(i)], (i < 128 && i % 64 < 32) ? 1 : 9) << i;
  // Shapes the instruction would reject are errors of the model.
  amx::amx_tile_config bad = tile_config(16, 64);
  bad.rows[6] = 8;  // B must have colsb(A) / 4 = 16 rows
  t.configure(bad);
  EXPECT_ROTQUANT_ERROR((t.dpbssd<0, 4, 6>()), "TDPBSSD shapes disagree");
  amx::amx_tile_config big = tile_config(16, 64);
  big.colsb[4] = 128;
  EXPECT_ROTQUANT_ERROR(t.configure(big), "palette 1 allows 16 x 64");
}

// The shapes of the AMX sweeps: M tails around the 16-row tile and 32-row block, N around the
// 32-column block, K around the 64-byte tile depth and the 512-value K chunk, every group size
// class (tile depth 8, 16, 32, 64 and padded blocks).
struct amx_case {
  index_t m, n, k, group;
};
std::vector<amx_case> amx_cases() {
  std::vector<amx_case> out;
  // Under sanitizers and emulation (small scale) the scalar tile model is slow: fewer shapes,
  // still across the 16-row tile, the 32-column block, the tile depth and the K chunk.
  const bool small = rotquant_test::small_scale();
  const std::vector<index_t> ms =
      small ? std::vector<index_t>{1, 17, 33} : std::vector<index_t>{1, 15, 16, 17, 33, 70};
  const std::vector<index_t> ns =
      small ? std::vector<index_t>{17, 33} : std::vector<index_t>{1, 17, 33, 70};
  const std::vector<index_t> ks = small ? std::vector<index_t>{17, 136, 600}
                                        : std::vector<index_t>{1, 17, 64, 100, 136, 264, 600, 1100};
  for (index_t m : ms)
    for (index_t n : ns)
      for (index_t k : ks)
        for (index_t group : {8, 32, 96, 128}) {
          if (!small && (m * 7 + n * 3 + k + group) % 5 != 0) continue;  // thin out
          if (small && (m + n + k + group) % 3 != 0) continue;
          out.push_back({m, n, k, group});
        }
  return out;
}

// Every weight x activation format through the tile kernel on the scalar model: bit-exact with
// the int64 reference. Runs on every machine.
TEST(GemmAmx, TileModelKernelBitExactWithInt64Reference) {
  std::size_t cases = 0;
  std::uint64_t seed = 100;
  for (const amx_case& c : amx_cases())
    for (weight_format wf : all_weights)
      for (act_format af : all_acts) {
        if ((c.m + c.k + static_cast<index_t>(af) + static_cast<index_t>(wf)) % 2 != 0) continue;
        const int_weights w = random_int_weights(wf, c.n, c.k, c.group, ++seed);
        const packed_weights pw = pack(w, c.group);
        const packed_activations pa =
            rotquant::quantize_activations(random_matrix(c.m, c.k, ++seed), af, 1.0f, c.group);
        if (!rotquant::detail::gemm_blocks_pair(pa.block, pw.block, c.k)) continue;
        const rotquant::vector_f bias = random_matrix(c.n, 1, seed).col(0);
        const bool with_bias = (seed & 1) != 0;
        const auto ep =
            with_bias ? rotquant::gemm_epilogue::with_bias(bias) : rotquant::gemm_epilogue{};
        const matrix_f want = reference(pa, w, with_bias ? bias.data() : nullptr);
        ASSERT_TRUE(bits_equal(rotquant::detail::quantized_matmul_amx_model(pa, pw, ep), want))
            << rotquant::to_string(wf) << " x " << rotquant::to_string(af) << " m=" << c.m
            << " n=" << c.n << " k=" << c.k << " group=" << c.group;
        ++cases;
      }
  EXPECT_GT(cases, rotquant_test::small_scale() ? 10u : 150u);
}

// The tile kernel's thread split (256-row x 8-panel tasks) does not change bits either.
TEST(GemmAmx, TileModelThreadCountDoesNotChangeBits) {
  const packed_weights pw =
      rotquant::pack_weights(random_matrix(300, 200, 1), weight_format::qsi4cg, 40);
  const packed_activations pa =
      rotquant::quantize_activations(random_matrix(300, 200, 2), act_format::qsi4dg, 1.0f, 40);
  matrix_f want;
  {
    rotquant::scoped_isa force(rotquant::isa::scalar);
    want = rotquant::quantized_matmul(pa, pw);
  }
  rotquant::thread_pool_executor pool(3);
  EXPECT_TRUE(bits_equal(rotquant::detail::quantized_matmul_amx_model(pa, pw, {}, &pool), want));
}

// The instructions themselves (where the CPU has AMX-INT8 and Linux grants the tile state).
TEST(GemmAmx, HardwareTilesBitExactWithTheModelAndReference) {
  if (!rotquant::isa_available(rotquant::isa::amx))
    GTEST_SKIP() << "AMX not available (compiled in: " << ROTQUANT_HAS_AMX
                 << ", CPU: " << rotquant::cpu().to_string()
                 << "): the tile instructions were not run; the scalar tile model tests cover "
                    "the kernel's logic";
  rotquant::scoped_isa force(rotquant::isa::amx);
  std::size_t cases = 0;
  std::uint64_t seed = 900;
  for (const amx_case& c : amx_cases())
    for (weight_format wf : all_weights)
      for (act_format af : all_acts) {
        const int_weights w = random_int_weights(wf, c.n, c.k, c.group, ++seed);
        const packed_weights pw = pack(w, c.group);
        const packed_activations pa =
            rotquant::quantize_activations(random_matrix(c.m, c.k, ++seed), af, 1.0f, c.group);
        if (!rotquant::detail::gemm_blocks_pair(pa.block, pw.block, c.k)) continue;
        const matrix_f want = reference(pa, w, nullptr);
        ASSERT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw), want))
            << rotquant::to_string(wf) << " x " << rotquant::to_string(af) << " m=" << c.m
            << " n=" << c.n << " k=" << c.k << " group=" << c.group;
        ++cases;
      }
  EXPECT_GT(cases, rotquant_test::small_scale() ? 20u : 300u);
  // Large shapes over several tasks and threads, extreme codes included.
  const index_t big_k = rotquant_test::scaled(2100, 600), big_m = rotquant_test::scaled(300, 70);
  for (weight_format wf : {weight_format::qsi4cx, weight_format::mxfp4}) {
    int_weights w = random_int_weights(wf, 200, big_k, 0, 7, 1);
    const packed_weights pw = pack(w, 0);
    matrix_f x = matrix_f::Constant(big_m, big_k, -1.0f);
    x.topRows(big_m / 3) = random_matrix(big_m / 3, big_k, 8);
    const packed_activations pa = rotquant::quantize_activations(x, act_format::qsi8dx);
    const matrix_f want = reference(pa, w, nullptr);
    rotquant::thread_pool_executor pool(2);
    EXPECT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw), want)) << rotquant::to_string(wf);
    EXPECT_TRUE(bits_equal(rotquant::quantized_matmul(pa, pw, {}, &pool), want));
    EXPECT_TRUE(bits_equal(rotquant::detail::quantized_matmul_amx_model(pa, pw), want));
  }
}

#if ROTQUANT_HAS_AMX
// The helpers are always_inline into AMX-target code: call them from such functions.
ROTQUANT_TARGET_AMX void hw_widen64(const std::uint8_t* src, const std::int8_t* values,
                                    std::int8_t* lo, std::int8_t* hi) {
  amx::amx_tiles_hw::widen64(src, values, lo, hi);
}
ROTQUANT_TARGET_AMX void hw_scale16(const std::int32_t* c, float sa, const float* sw, float* y) {
  amx::amx_tiles_hw::scale16(c, sa, sw, y);
}

// The hardware backend's two vector helpers equal the model's portable ones.
TEST(GemmAmx, HardwareRowHelpersEqualTheModel) {
  if (!rotquant::isa_available(rotquant::isa::avx512))
    GTEST_SKIP() << "AVX-512 not available: the hardware row helpers were not run";
  rotquant::rng g(5);
  std::uint8_t src[64];
  for (auto& v : src) v = static_cast<std::uint8_t>(g.uniform_int(256));
  for (const std::int8_t* values : {amx::amx_int4_values, amx::amx_fp4_values}) {
    std::int8_t lo[64], hi[64], lo2[64], hi2[64];
    amx::amx_tiles_model::widen64(src, values, lo, hi);
    hw_widen64(src, values, lo2, hi2);
    EXPECT_EQ(std::memcmp(lo, lo2, 64), 0);
    EXPECT_EQ(std::memcmp(hi, hi2, 64), 0);
  }
  std::int32_t c[16];
  float sw[16], y1[16], y2[16];
  for (int j = 0; j < 16; ++j) {
    c[j] = static_cast<std::int32_t>(g.uniform_int(1u << 30)) - (1 << 29);
    sw[j] = static_cast<float>(g.normal());
    y1[j] = y2[j] = static_cast<float>(g.normal() * 1e6);
  }
  amx::amx_tiles_model::scale16(c, 0.37f, sw, y1);
  hw_scale16(c, 0.37f, sw, y2);
  EXPECT_EQ(std::memcmp(y1, y2, sizeof(y1)), 0);
}
#endif

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
