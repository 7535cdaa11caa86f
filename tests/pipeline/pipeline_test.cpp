// SPDX-License-Identifier: Apache-2.0
#include "rotquant/pipeline/pipeline.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "rotquant/pipeline/presets.hpp"
#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_f;

// LLaMA-like activations: N(0,1) with a few channels x30 on every token and one massive token.
matrix_f outlier_activations(index_t t, index_t c, std::uint64_t seed) {
  matrix_f x = rotquant::random_normal_matrix<float>(t, c, seed);
  x.col(3) *= 30.0f;
  x.col(c / 2 + 1) *= 30.0f;
  x.col(c - 5) *= 15.0f;
  x(0, 7) = 400.0f;
  return x;
}

matrix_f weights(index_t out, index_t in, std::uint64_t seed) {
  return rotquant::random_normal_matrix<float>(out, in, seed) * 0.05f;
}

TEST(Pipeline, RtnForwardIsFakeQuantTimesDequantizedWeight) {
  const matrix_f x = outlier_activations(32, 64, 1), w = weights(24, 64, 2);
  const auto layer = rotquant::presets::rtn().calibrate(x, w);
  EXPECT_EQ(layer.online().num_stages(), 0u);
  const matrix_f want =
      rotquant::fake_quantize(rotquant::presets::a4_per_token(), x) *
      rotquant::dequantize(rotquant::quantize(rotquant::presets::w4_per_channel(), w)).transpose();
  EXPECT_EQ(layer.forward(x, rotquant::execution::fake_quant), want);
  ASSERT_TRUE(layer.has_kernel());  // automatic: the packed kernels, same integer products
  EXPECT_LE((layer.forward(x) - want).cwiseAbs().maxCoeff(), 1e-4f * want.cwiseAbs().maxCoeff());
}

// The deployable part is what forward() runs: same bits, the Hadamard fused into the quantizer,
// and nothing of it exists for a quantizer pair without kernels.
TEST(Pipeline, DeployableLayerIsTheKernelPath) {
  const matrix_f x = outlier_activations(40, 128, 5), w = weights(16, 128, 6);
  const auto layer = rotquant::presets::quarot(4).calibrate(x, w);
  ASSERT_TRUE(layer.has_kernel());
  const rotquant::w4a4_linear& d = layer.deployable();
  EXPECT_TRUE(d.fused_rotation());
  EXPECT_EQ(d.in_features(), 128);
  EXPECT_EQ(d.out_features(), 16);
  const matrix_f y = d.forward(x);
  EXPECT_EQ(y, layer.forward(x));
  // The materialised reference: X M, then the kernels.
  const matrix_f xt = layer.online().apply(x);
  EXPECT_EQ(y, rotquant::linear_w4a4(xt, layer.packed()));
  const auto int3 = rotquant::presets::rtn(rotquant::quantizer::int_sym(3)).calibrate(x, w);
  EXPECT_FALSE(int3.has_kernel());
  EXPECT_ROTQUANT_ERROR(int3.deployable(), "so no deployable layer");
}

// DuQuant's builder with alpha = 0 does not smooth: no scale stage, the transform of
// duquant(x) without the weight; with alpha > 0 the scale stage comes first.
TEST(Pipeline, DuquantBuilderWithoutSmoothingAddsNoScale) {
  const matrix_f x = outlier_activations(64, 128, 8), w = weights(16, 128, 9);
  rotquant::stages::duquant_builder b;
  b.options.block_size = 32;
  b.options.alpha = 0.0;
  const rotquant::transform t0 = b.build(x, w);
  for (const auto& st : t0.stages()) EXPECT_NE(st.kind, rotquant::stage_kind::scale);
  EXPECT_EQ(t0.to_dense(), rotquant::duquant(x, b.options).xform.to_dense());
  b.options.alpha = 0.6;
  const rotquant::transform t6 = b.build(x, w);
  ASSERT_GE(t6.num_stages(), 1u);
  EXPECT_EQ(t6.stages().front().kind, rotquant::stage_kind::scale);
}

// The online transform and the folded weight cancel: (X M)(W M^-T)^T == X W^T.
TEST(Pipeline, EveryPresetTransformFoldsExactly) {
  const index_t c = 256;
  const matrix_f x = outlier_activations(64, c, 3), w = weights(32, c, 4);
  const matrix_f y = x * w.transpose();
  auto check = [&](const rotquant::quantized_linear& l, const char* name) {
    const matrix_f y2 = l.online().apply(x) * l.online().fold_into_weight(w).transpose();
    EXPECT_LE((y2 - y).norm(), 1e-5 * y.norm()) << name;
  };
  check(rotquant::presets::smoothquant().calibrate(x, w), "smoothquant");
  check(rotquant::presets::quarot(7).calibrate(x, w), "quarot");
  check(rotquant::presets::duquant(7, 64).calibrate(x, w), "duquant");
  rotquant::dfrot_options o;
  o.steps = 5;
  const auto dfrot = rotquant::make_pipeline(
      rotquant::stages::rotate<rotquant::stages::hadamard_builder>{}, rotquant::stages::refine{o},
      rotquant::stages::quantize<>{{rotquant::presets::w4_per_channel()},
                                   {rotquant::presets::a4_per_token()}});
  const auto l = dfrot.calibrate(x, w);
  EXPECT_EQ(l.online().num_stages(), 1u);  // start * R_opt as one dense stage
  EXPECT_TRUE(l.online().is_orthogonal(1e-6));
  check(l, "dfrot");
  check(rotquant::presets::hqdit().calibrate(x, w), "hqdit");
}

// Rotations flatten the outlier channels, so the W4A4 layer output is far better than RTN.
TEST(Pipeline, RotationPresetsBeatRoundToNearestOnOutlierChannels) {
  const index_t c = 256;
  const matrix_f xc = outlier_activations(128, c, 5), w = weights(64, c, 6);
  const matrix_f xt = outlier_activations(128, c, 7);  // held-out batch
  const double rtn = rotquant::presets::rtn().calibrate(xc, w).report(xt).output_sqnr_db;
  const double smooth = rotquant::presets::smoothquant().calibrate(xc, w).report(xt).output_sqnr_db;
  const double quarot = rotquant::presets::quarot(1).calibrate(xc, w).report(xt).output_sqnr_db;
  const double duq = rotquant::presets::duquant(1, 64).calibrate(xc, w).report(xt).output_sqnr_db;
  const double hq = rotquant::presets::hqdit().calibrate(xc, w).report(xt).output_sqnr_db;
  std::cout << "output SQNR dB: rtn " << rtn << ", smoothquant " << smooth << ", quarot " << quarot
            << ", duquant " << duq << ", hqdit " << hq << "\n";
  EXPECT_GT(smooth, rtn + 2.0);
  EXPECT_GT(quarot, rtn + 6.0);
  EXPECT_GT(duq, rtn + 6.0);
  EXPECT_GT(hq, rtn + 3.0);
}

TEST(Pipeline, ReportSeesStagesAndMassiveTokens) {
  matrix_f x = outlier_activations(64, 128, 8);
  x(0, 7) = 4000.0f;  // a massive activation (> 20x the median token's max)
  const matrix_f w = weights(16, 128, 9);
  const auto r = rotquant::presets::quarot(2).calibrate(x, w).report(x);
  ASSERT_EQ(r.stages.size(), 2u);
  EXPECT_EQ(r.stages[0].stage, "input");
  EXPECT_EQ(r.stages[1].stage, "randomized_hadamard");
  EXPECT_EQ(r.stages[0].max_abs, 4000.0);
  EXPECT_LT(r.stages[1].kurtosis, r.stages[0].kurtosis / 5);  // rotation removes the tails
  EXPECT_EQ(r.massive_tokens, 1);
  EXPECT_EQ(r.normal_tokens, 63);
  EXPECT_GT(r.massive_token_mse, r.normal_token_mse);
  EXPECT_NE(r.to_string().find("randomized_hadamard"), std::string::npos);
}

TEST(Pipeline, BadInputs) {
  const matrix_f x = outlier_activations(8, 64, 1), w = weights(4, 64, 2);
  const auto p = rotquant::presets::quarot();
  EXPECT_ROTQUANT_ERROR(p.calibrate(x, weights(4, 32, 1)), "X has 64 features");
  EXPECT_ROTQUANT_ERROR(p.calibrate(matrix_f(0, 64), w), "need at least one token");
  matrix_f bad = x;
  bad(3, 5) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(p.calibrate(bad, w), "non-finite value nan at (3, 5)");
  EXPECT_ROTQUANT_ERROR(
      rotquant::presets::quarot().calibrate(outlier_activations(8, 18, 1), weights(4, 18, 1)),
      "18");  // no Hadamard matrix of order 18 exists
  const auto layer = p.calibrate(x, w);
  EXPECT_ROTQUANT_ERROR(layer.forward(matrix_f::Zero(3, 32)), "input has 32 features");
}

}  // namespace

namespace {

// forward() through the packed kernels agrees with fake quantization for every kernel format.
TEST(Pipeline, KernelPathMatchesFakeQuant) {
  const rotquant::index_t c = 256;
  const matrix_f x = outlier_activations(19, c, 11), w = weights(40, c, 12);
  struct pair_case {
    rotquant::quantizer w, a;
  };
  const std::vector<pair_case> cases = {
      {rotquant::presets::w4_per_channel(), rotquant::presets::a4_per_token()},
      {rotquant::presets::w4_per_channel(), rotquant::quantizer::quarot_activation(4, false)},
      {rotquant::quantizer::int_sym(4, rotquant::granularity::per_group, 64),
       rotquant::quantizer::int_sym(4, rotquant::granularity::per_group, 64)},
      {rotquant::presets::w4_per_channel(), rotquant::quantizer::int_sym(8)},
      {rotquant::quantizer::mxfp4(), rotquant::quantizer::mxfp4()},
      {rotquant::quantizer::nvfp4(), rotquant::quantizer::nvfp4()},
      {rotquant::presets::w4_per_channel(), rotquant::presets::a4_per_token(0.9f)},
  };
  for (const auto& k : cases) {
    const auto layer = rotquant::presets::quarot(3, k.w, k.a).calibrate(x, w);
    ASSERT_TRUE(layer.has_kernel()) << k.w.name() << " x " << k.a.name();
    const matrix_f yk = layer.forward(x, rotquant::execution::kernel);
    const matrix_f yf = layer.forward(x, rotquant::execution::fake_quant);
    // Same integer products; only the float accumulation order differs.
    EXPECT_LE((yk - yf).cwiseAbs().maxCoeff(), 1e-4f * yf.cwiseAbs().maxCoeff())
        << k.w.name() << " x " << k.a.name();
  }
  const auto dq = rotquant::presets::duquant(1, 64).calibrate(x, w);  // asymmetric weights
  EXPECT_FALSE(dq.has_kernel());
  EXPECT_ROTQUANT_ERROR(dq.forward(x, rotquant::execution::kernel), "no kernel for weights");
}

}  // namespace

// GPTQ weights through the pipeline (stages::gptq_weights, presets::*_gptq).
namespace gptq_cases {

// Correlated activations (x = z a): the Hessian is far from diagonal, where GPTQ gains most.
matrix_f correlated(index_t t, index_t c, std::uint64_t seed) {
  const matrix_f z = rotquant::random_normal_matrix<float>(t, c, seed);
  const matrix_f a =
      rotquant::random_normal_matrix<float>(c, c, seed + 1) * 0.3f + matrix_f::Identity(c, c);
  return z * a;
}

// The weight-only output error of a layer: || X W^T - (X M) Wq^T ||^2.
double weight_error(const rotquant::quantized_linear& l, const matrix_f& x, const matrix_f& w) {
  const matrix_f y = l.transform_input(x) * l.weight_dequantized().transpose();
  return static_cast<double>((x * w.transpose() - y).squaredNorm());
}

TEST(PipelineGptq, PresetsQuantizeWeightsBelowTheirRtnForms) {
  const matrix_f x = correlated(512, 64, 3), w = weights(48, 64, 4);
  namespace p = rotquant::presets;
  const struct {
    const char* name;
    rotquant::quantized_linear rtn, gptq;
  } cases[] = {
      {"rtn", p::rtn().calibrate(x, w), p::rtn_gptq().calibrate(x, w)},
      {"quarot", p::quarot(1).calibrate(x, w), p::quarot_gptq(1).calibrate(x, w)},
      {"dfrot", p::dfrot(1).calibrate(x, w), p::dfrot_gptq(1).calibrate(x, w)},
      {"duquant", p::duquant(1, 32).calibrate(x, w), p::duquant_gptq(1, 32).calibrate(x, w)},
      {"hqdit", p::hqdit().calibrate(x, w), p::hqdit_gptq().calibrate(x, w)},
  };
  for (const auto& c : cases) {
    // Same transform and quantizer, only the weight rounding differs.
    EXPECT_EQ(c.gptq.online().num_stages(), c.rtn.online().num_stages()) << c.name;
    EXPECT_EQ(c.gptq.weight_quantizer().name(), c.rtn.weight_quantizer().name()) << c.name;
    EXPECT_EQ(c.gptq.has_kernel(), c.rtn.has_kernel()) << c.name;
    EXPECT_LT(weight_error(c.gptq, x, w), 0.8 * weight_error(c.rtn, x, w)) << c.name;
    if (c.gptq.has_kernel()) {
      const matrix_f fq = c.gptq.forward(x, rotquant::execution::fake_quant);
      const matrix_f k = c.gptq.forward(x, rotquant::execution::kernel);
      EXPECT_LE((k - fq).cwiseAbs().maxCoeff(), 1e-4f * fq.cwiseAbs().maxCoeff()) << c.name;
    }
  }
}

TEST(PipelineGptq, HessianRowsGivenApartAreTransformedLikeX) {
  // calibrate(x, w, hx): GPTQ's Hessian from hx after the online transform. With hx = x the
  // result equals calibrate(x, w); with other rows it differs and fits those rows better.
  const matrix_f x = correlated(256, 64, 5), w = weights(32, 64, 6);
  const matrix_f hx = correlated(512, 64, 7);
  const auto p = rotquant::presets::quarot_gptq(2);
  const auto a = p.calibrate(x, w), b = p.calibrate(x, w, x), c = p.calibrate(x, w, hx);
  EXPECT_EQ(a.weight_dequantized(), b.weight_dequantized());
  EXPECT_NE(a.weight_dequantized(), c.weight_dequantized());
  EXPECT_LT(weight_error(c, hx, w), weight_error(a, hx, w));
  EXPECT_ROTQUANT_ERROR(p.calibrate(x, w, matrix_f::Ones(8, 63)), "hessian_x has 63 features");
}

TEST(PipelineGptq, ActOrderWithGroupsAddsThePermutationToTheOnlineTransform) {
  namespace st = rotquant::stages;
  const matrix_f x = correlated(512, 64, 8), w = weights(32, 64, 9);
  rotquant::gptq_options o;
  o.act_order = true;
  const auto wq = rotquant::quantizer::gptq_weight(4, true, false, 16);
  const auto layer = rotquant::make_pipeline(st::rotate<st::hadamard_builder>{{true, 3, 0}},
                                             st::quantize<st::gptq_weights<>>{
                                                 {{wq}, o}, {rotquant::presets::a4_per_token()}})
                         .calibrate(x, w);
  // signs + Hadamard + the act-order permutation; the folded weight still computes X W^T.
  ASSERT_EQ(layer.online().num_stages(), 3u);
  EXPECT_LT(weight_error(layer, x, w),
            0.8 * weight_error(rotquant::presets::quarot(3, wq).calibrate(x, w), x, w));
  ASSERT_TRUE(layer.has_kernel());
  const matrix_f fq = layer.forward(x, rotquant::execution::fake_quant);
  EXPECT_LE((layer.forward(x) - fq).cwiseAbs().maxCoeff(), 1e-4f * fq.cwiseAbs().maxCoeff());
}

}  // namespace gptq_cases
