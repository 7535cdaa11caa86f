// SPDX-License-Identifier: Apache-2.0
// dfrot_test.cpp: DFRot refiner: quantizer rule, Procrustes closed form, QR sign convention,
// orthogonality, acceptance, massive-token detection, LLaMA-like error split, sampling, errors.
#include "rotquant/transforms/dfrot.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"

#include <gtest/gtest.h>

#include <Eigen/LU>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <vector>

#include "test_util.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_d;
using rotquant::matrix_f;

/// LLaMA-like residual-stream rows: N(0, 1) entries, 4 outlier channels offset by +-6 on every
/// token, and the `massive` tokens carrying values in the thousands on two channels.
matrix_f residual_like(index_t t, index_t c, const std::vector<index_t>& massive,
                       std::uint64_t seed) {
  matrix_f x = rotquant::random_normal_matrix<float>(t, c, seed);
  for (int k = 0; k < 4; ++k) x.col((k * 37 + 5) % c).array() += (k % 2 ? -6.0f : 6.0f);
  for (index_t m : massive) {
    x(m, 11 % c) = 2400.0f;
    x(m, 70 % c) = -1700.0f;
  }
  return x;
}

/// The same rows after an RMSNorm without weight (every row scaled to norm sqrt(C)), which is
/// what DFRot calibrates on.
matrix_f llama_like(index_t t, index_t c, const std::vector<index_t>& massive, std::uint64_t seed) {
  matrix_f x = residual_like(t, c, massive, seed);
  for (index_t r = 0; r < t; ++r) x.row(r) *= std::sqrt(static_cast<float>(c)) / x.row(r).norm();
  return x;
}

std::vector<std::uint8_t> mask_of(index_t t, const std::vector<index_t>& massive) {
  std::vector<std::uint8_t> m(static_cast<std::size_t>(t), 0);
  for (index_t i : massive) m[static_cast<std::size_t>(i)] = 1;
  return m;
}

TEST(DfrotQuantizer, FollowsTheQuarotSymmetricRule) {
  rotquant::dfrot_sym_quantizer q;  // 4 bit, clip 1
  matrix_f x(3, 6);
  x << 7.0f, -3.5f, 1.75f, 0.4f, 0.0f, 2.5f,  //
      0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f,     //
      -14.0f, 1.0f, 3.0f, -5.0f, 0.99f, 7.0f;
  matrix_f out(3, 6);
  q(rotquant::view(static_cast<const matrix_f&>(x)), rotquant::view(out));
  // Row 0: s = 1; rint is half to even: -3.5 -> -4, 2.5 -> 2.
  const float want0[] = {7, -4, 2, 0, 0, 2};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out(0, i), want0[i]) << i;
  EXPECT_TRUE(out.row(1).isZero());  // all-zero row: s = 1, codes 0
  // Row 2: s = 14 / 7 = 2; 1/2 -> 0, 3/2 -> 2, -5/2 -> -2, 7/2 -> 4.
  const float want2[] = {-14, 0, 4, -4, 0, 8};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out(2, i), want2[i]) << i;

  // clip 0.5: s = 7 * 0.5 / 7 = 0.5; large negatives reach -8, positives clamp at +7.
  rotquant::dfrot_sym_quantizer half{4, 0.5};
  matrix_f y(1, 3);
  y << 7.0f, -7.0f, 0.3f;
  matrix_f yq(1, 3);
  half(rotquant::view(static_cast<const matrix_f&>(y)), rotquant::view(yq));
  EXPECT_EQ(yq(0, 0), 3.5f);
  EXPECT_EQ(yq(0, 1), -4.0f);
  EXPECT_EQ(yq(0, 2), 0.5f);

  EXPECT_ROTQUANT_ERROR((rotquant::dfrot_sym_quantizer{4, 1.5}.validate()), "outside (0, 1]");
  EXPECT_ROTQUANT_ERROR((rotquant::dfrot_sym_quantizer{9, 1.0}.validate()), "bits = 9");
}

TEST(Dfrot, ReleasedThresholdScalesWithSqrtHiddenSize) {
  EXPECT_DOUBLE_EQ(rotquant::dfrot_released_threshold(4096), 8.5);
  EXPECT_DOUBLE_EQ(rotquant::dfrot_released_threshold(1024), 4.25);
  EXPECT_NEAR(rotquant::dfrot_released_threshold(128), 8.5 / std::sqrt(32.0), 1e-15);
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot_released_threshold(0), "must be >= 1");
}

TEST(Dfrot, ProcrustesRecoversAPlantedRotation) {
  for (index_t n : {16, 96}) {
    const matrix_d a = rotquant::random_normal_matrix(4 * n, n, 11);
    const matrix_d q0 = rotquant::random_orthogonal(n, 12);
    // sigma = 0: closed form, P = Q0.
    const matrix_d p = rotquant::procrustes_rotation(a, a * q0);
    const double err = (p - q0).norm();
    EXPECT_LE(err, 1e-5 * n) << "n = " << n;
    EXPECT_LE(err, 1e-11 * n) << "n = " << n;  // observed ~1e-14: the SVD is exact to rounding
    // sigma = 1e-6 and 1e-3: still orthogonal, close to Q0 in proportion to the noise.
    for (double sigma : {1e-6, 1e-3}) {
      const matrix_d b = a * q0 + sigma * rotquant::random_normal_matrix(4 * n, n, 13);
      const matrix_d pn = rotquant::procrustes_rotation(a, b);
      EXPECT_LE(rotquant::detail::orthogonality_error(pn), 1e-12);
      EXPECT_LE((pn - q0).norm(), 10.0 * sigma * n) << "sigma " << sigma;
    }
    std::printf("n = %ld: planted recovery error = %.3g\n", static_cast<long>(n), err);
  }
  // Rank-deficient A (columns repeated): still an orthogonal answer that maps A onto B.
  matrix_d a = rotquant::random_normal_matrix(40, 8, 21);
  a.col(5) = a.col(1);
  a.col(6) = -a.col(2);
  const matrix_d q0 = rotquant::random_orthogonal(8, 22);
  const matrix_d p = rotquant::procrustes_rotation(a, a * q0);
  EXPECT_LE(rotquant::detail::orthogonality_error(p), 1e-12);
  EXPECT_LE((a * p - a * q0).norm(), 1e-10 * (a * q0).norm());
}

TEST(Dfrot, HouseholderQHasLapackSigns) {
  // Near-identity orthogonal P: LAPACK's convention negates every column but the last.
  const index_t n = 12;
  matrix_d k = 1e-3 * rotquant::random_normal_matrix(n, n, 3);
  const matrix_d skew = k - k.transpose();
  const matrix_d eye = matrix_d::Identity(n, n);
  const matrix_d p = (eye - skew).partialPivLu().solve(eye + skew);  // Cayley: orthogonal
  const matrix_d q = rotquant::detail::householder_q(p);
  EXPECT_LE(rotquant::detail::orthogonality_error(q), 1e-14);
  for (index_t j = 0; j < n; ++j) {
    const double sign = j + 1 < n ? -1.0 : 1.0;
    EXPECT_LE((q.col(j) - sign * p.col(j)).cwiseAbs().maxCoeff(), 1e-13) << "column " << j;
  }
  // Householder reflectors ignore column signs, so the released qr_q(R qr_q(P)) equals
  // qr_q(R P): the loop skips the first QR.
  const matrix_d r = rotquant::random_orthogonal(n, 4), p2 = rotquant::random_orthogonal(n, 5);
  const matrix_d two = rotquant::detail::householder_q(r * rotquant::detail::householder_q(p2));
  const matrix_d one = rotquant::detail::householder_q(r * p2);
  EXPECT_LE((two - one).cwiseAbs().maxCoeff(), 1e-13);
  EXPECT_GT((r * p2 - one).cwiseAbs().maxCoeff(), 0.5);  // the signs did change
}

TEST(Dfrot, StaysOrthogonalAfterOneHundredSteps) {
  const index_t c = 64, t = 512;
  const matrix_f x = llama_like(t, c, {3, 200}, 5);
  rotquant::dfrot_options opt;
  opt.steps = 100;
  const rotquant::dfrot_result r = rotquant::dfrot(x, opt);
  EXPECT_EQ(r.steps.size(), 100u);
  EXPECT_LE(rotquant::detail::orthogonality_error(r.refinement), 1e-6);
  EXPECT_LE(rotquant::detail::orthogonality_error(r.matrix), 1e-6);
  EXPECT_TRUE(r.rotation.is_orthogonal(1e-6));
  EXPECT_EQ(r.rotation.num_stages(), 1u);
  // The transform applies the returned matrix.
  const matrix_f y = r.rotation.apply(x);
  const matrix_f want = (x.cast<double>() * r.matrix).cast<float>();
  EXPECT_LE((y - want).cwiseAbs().maxCoeff(), 1e-4f);
  std::printf("orthogonality after 100 steps: %.3g\n",
              rotquant::detail::orthogonality_error(r.matrix));
}

TEST(Dfrot, MonotoneAcceptanceNeverIncreasesTheLoss) {
  const index_t c = 64, t = 512;
  const matrix_f x = llama_like(t, c, {7}, 6);
  rotquant::dfrot_options opt;
  opt.steps = 100;
  opt.accept_slack = 0.0;
  opt.accept_min_decrease = 0.0;
  const rotquant::dfrot_result r = rotquant::dfrot(x, opt);
  ASSERT_GE(r.loss_trace.size(), 2u);
  int non_monotone = 0;
  for (std::size_t i = 1; i < r.loss_trace.size(); ++i)
    non_monotone += r.loss_trace[i] > r.loss_trace[i - 1] ? 1 : 0;
  EXPECT_EQ(non_monotone, 0);
  for (const auto& s : r.steps) {
    if (s.accepted) {
      EXPECT_LT(s.loss_candidate, s.loss_before) << "step " << s.step;
    }
  }
  // It makes real progress before it stops.
  EXPECT_LT(r.loss_trace.back(), 0.9 * r.loss_trace.front());
  EXPECT_EQ(static_cast<int>(r.loss_trace.size()), r.accepted_steps + 1);
  std::printf("monotone rule: %d accepted steps, loss %.4g -> %.4g, %d non-monotone steps\n",
              r.accepted_steps, r.loss_trace.front(), r.loss_trace.back(), non_monotone);

  // The released rule (slack 100, min decrease 0.1) accepts every step whose loss does not grow
  // by 99.9 or more; its record must say so.
  rotquant::dfrot_options rel;
  rel.steps = 40;
  const rotquant::dfrot_result rr = rotquant::dfrot(x, rel);
  int increases = 0;
  for (const auto& s : rr.steps) {
    EXPECT_EQ(s.accepted, rotquant::dfrot_accept(s.loss_before, s.loss_candidate, 100.0, 0.1));
    increases += s.loss_candidate > s.loss_before ? 1 : 0;
  }
  EXPECT_LT(rr.loss_trace.back(), 0.9 * rr.loss_trace.front());
  std::printf("released rule: %d steps accepted, %d of them with a (small) loss increase\n",
              rr.accepted_steps, increases);
  EXPECT_TRUE(rotquant::dfrot_accept(10.0, 50.0, 100.0, 0.1));
  EXPECT_FALSE(rotquant::dfrot_accept(10.0, 109.95, 100.0, 0.1));
  EXPECT_FALSE(rotquant::dfrot_accept(10.0, 10.0, 0.0, 0.0));
}

TEST(Dfrot, DetectionRulesFindThePlantedTokens) {
  const index_t c = 128, t = 512;
  const std::vector<index_t> planted = {0, 170, 333};
  const matrix_f x = llama_like(t, c, planted, 8);
  const auto want = mask_of(t, planted);

  rotquant::massive_token_options opt;  // released rule, threshold 8.5 sqrt(128 / 4096) = 1.50
  EXPECT_EQ(rotquant::detect_massive_tokens(x, opt), want);
  // Magnitude rule: with the default factor 3 on residual-stream rows (values in the thousands
  // against a median max near 8); after RMSNorm the gap shrinks to sqrt(C / 2) = 8 against ~5
  // at C = 128, so the factor must come down.
  opt.rule = rotquant::massive_rule::magnitude;
  EXPECT_EQ(rotquant::detect_massive_tokens(residual_like(t, c, planted, 8), opt), want);
  opt.magnitude_factor = 1.4;
  EXPECT_EQ(rotquant::detect_massive_tokens(x, opt), want);
  opt.rule = rotquant::massive_rule::mistral;
  const auto mistral = rotquant::detect_massive_tokens(x, opt);
  for (index_t i : planted) EXPECT_EQ(mistral[static_cast<std::size_t>(i)], 1) << i;
  // The absolute threshold does not transfer without scaling (pitfall 10): 8.5 at C = 128
  // marks every token.
  rotquant::massive_token_options unscaled;
  unscaled.threshold = 8.5;
  const auto all = rotquant::detect_massive_tokens(x, unscaled);
  EXPECT_EQ(std::count(all.begin(), all.end(), 1), t);
  opt.rule = rotquant::massive_rule::mask;
  opt.mask = want;
  EXPECT_EQ(rotquant::detect_massive_tokens(x, opt), want);
}

TEST(Dfrot, RefinementLowersMassiveErrorOnLlamaLikeData) {
  const index_t c = 128, t = rotquant_test::scaled(1024, 512);
  const std::vector<index_t> planted = {0, t / 3, t / 2 + 1};
  const matrix_f x = llama_like(t, c, planted, 9);
  rotquant::dfrot_options opt;  // released defaults: hadamard start, alpha 100, released rule
  opt.steps = rotquant_test::scaled(40, 20);  // the loss is flat after ~20 steps
  const rotquant::dfrot_result r = rotquant::dfrot(x, opt);
  EXPECT_EQ(r.massive, mask_of(t, planted));
  const auto& s = r.report.start;
  const auto& f = r.report.refined;
  std::printf("%s", r.report.to_string().c_str());
  EXPECT_EQ(s.massive_tokens, 3);
  EXPECT_LT(f.massive_rms, 0.75 * s.massive_rms);
  EXPECT_LE(f.normal_rms, 1.02 * s.normal_rms);
  EXPECT_LT(f.weighted_loss, 0.8 * s.weighted_loss);

  // Randomized Hadamard beats a random orthogonal rotation on the massive tokens.
  const auto mask = mask_of(t, planted);
  const auto had =
      rotquant::quantization_error_split(x, mask, rotquant::randomized_hadamard(c, 42));
  rotquant::transform ro(c);
  ro.append_dense(rotquant::random_orthogonal(c, 42));
  const auto orth = rotquant::quantization_error_split(x, mask, ro);
  std::printf("massive rms error: randomized Hadamard %.4f, random orthogonal %.4f\n",
              had.massive_rms, orth.massive_rms);
  EXPECT_LT(had.massive_rms, 0.6 * orth.massive_rms);
  EXPECT_NEAR(had.massive_rms, s.massive_rms, 1e-4 * s.massive_rms);

  // Starting from the random orthogonal rotation works too and also lowers the massive error.
  opt.start = rotquant::dfrot_start::random_orthogonal;
  opt.steps = rotquant_test::scaled(20, 10);
  const rotquant::dfrot_result ro_r = rotquant::dfrot(x, opt);
  EXPECT_NEAR(ro_r.report.start.massive_rms, orth.massive_rms, 1e-4 * orth.massive_rms);
  EXPECT_LT(ro_r.report.refined.massive_rms, 0.75 * orth.massive_rms);
}

TEST(Dfrot, SubsampledRefinementMatchesFullData) {
  // Sampling n of N normal rows with weight sqrt(N / n) keeps the objective unbiased, but the
  // refined rotation overfits the sample a little (C^2 parameters): at C = 64 the full-data loss
  // is 2-3% above the full refinement with n = 16 C and within 1% from n = 64 C.
  const index_t c = 64, t = 8192;
  const std::vector<index_t> planted = {1, t / 2};
  const matrix_f x = llama_like(t, c, planted, 10);
  rotquant::dfrot_options opt;
  opt.steps = 30;
  opt.massive.rule = rotquant::massive_rule::mask;
  opt.massive.mask = mask_of(t, planted);
  const rotquant::dfrot_result full = rotquant::dfrot(x, opt);
  opt.sample_rows = t / 2;
  opt.sample_seed = 3;
  const rotquant::dfrot_result sub = rotquant::dfrot(x, opt);
  EXPECT_EQ(sub.objective_rows, 2 + t / 2);
  const double lf = full.report.refined.weighted_loss, ls = sub.report.refined.weighted_loss;
  const double l0 = full.report.start.weighted_loss;
  std::printf(
      "full-data loss: start %.6g, full refinement %.6g, subsampled (1/2) %.6g, "
      "ratio %.5f\n",
      l0, lf, ls, ls / lf);
  EXPECT_LE(ls, 1.01 * lf);
  EXPECT_LT(lf, 0.95 * l0);
  // The sampled objective is an unbiased estimate: at the start it is close to the full one.
  EXPECT_NEAR(sub.loss_trace.front(), l0, 0.05 * l0);
}

TEST(Dfrot, GivenStartAndThreadCountGiveTheSameBits) {
  const index_t c = 64, t = 600;
  const matrix_f x = llama_like(t, c, {4}, 12);
  rotquant::dfrot_options opt;
  opt.steps = 5;
  const rotquant::dfrot_result a = rotquant::dfrot(x, opt);
  opt.start = rotquant::dfrot_start::given;
  opt.start_transform = rotquant::randomized_hadamard(c, 42);
  rotquant::thread_pool_executor pool(2);
  const rotquant::dfrot_result b = rotquant::dfrot(x, opt, rotquant::dfrot_sym_quantizer{}, &pool);
  EXPECT_EQ(a.matrix, b.matrix);
  EXPECT_EQ(a.loss_trace, b.loss_trace);
  // The same start as a dense matrix: identical up to the rounding of a dense product.
  opt.start_transform.reset();
  opt.start_matrix = rotquant::randomized_hadamard(c, 42).to_dense();
  const rotquant::dfrot_result d = rotquant::dfrot(x, opt);
  EXPECT_NEAR(d.loss_trace.back(), a.loss_trace.back(), 1e-3 * a.loss_trace.back());
  // Double rows run the same algorithm.
  const matrix_d xd = x.cast<double>();
  const rotquant::dfrot_result e = rotquant::dfrot(xd, opt);
  EXPECT_NEAR(e.loss_trace.front(), a.loss_trace.front(), 1e-4 * a.loss_trace.front());
}

TEST(Dfrot, AcceptsTheLibraryQuantizer) {
  const index_t c = 64, t = 300;
  const matrix_f x = llama_like(t, c, {4}, 14);
  rotquant::dfrot_options opt;
  opt.steps = 3;
  const rotquant::dfrot_result a = rotquant::dfrot(x, opt);
  const rotquant::dfrot_result b =
      rotquant::dfrot(x, opt, rotquant::quantizer::quarot_activation(4, true));
  // Same rule (QuaRot 4-bit symmetric per token, clip 1): same bits.
  EXPECT_EQ(a.loss_trace, b.loss_trace);
  EXPECT_EQ(a.matrix, b.matrix);
  // An asymmetric or FP4 quantizer is accepted too and still lowers its own objective.
  const rotquant::dfrot_result c4 = rotquant::dfrot(x, opt, rotquant::quantizer::mxfp4());
  EXPECT_LT(c4.loss_trace.back(), c4.loss_trace.front());
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt, rotquant::quantizer::fp8(true)),
                        "scale shared across rows");
}

TEST(Dfrot, RejectsBadInput) {
  const index_t c = 32, t = 64;
  const matrix_f x = llama_like(t, c, {2}, 13);
  rotquant::dfrot_options opt;
  opt.steps = 1;
  opt.start = rotquant::dfrot_start::given;
  matrix_d m = rotquant::random_orthogonal(c, 1);
  m(3, 4) += 1e-3;
  opt.start_matrix = m;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt), "start rotation is not orthogonal");
  opt.start_matrix = rotquant::random_orthogonal(c + 1, 1);
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt), "33 x 33 but X has 32 columns");
  opt.start_matrix.reset();
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt), "got neither");
  opt.start_transform = rotquant::randomized_hadamard(2 * c, 1);
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt), "start transform has dimension 64");
  rotquant::transform scaled_start(c);
  scaled_start.append_scale(rotquant::vector_d::Constant(c, 2.0));
  opt.start_transform = scaled_start;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, opt), "not orthogonal");

  rotquant::dfrot_options o2;
  o2.steps = 1;
  o2.massive.rule = rotquant::massive_rule::mask;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o2), "mask has 0 entries but X has 64 rows");
  o2.massive.mask.assign(static_cast<std::size_t>(t), 0);
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o2), "selects no massive token");
  o2.alpha = 1.0;  // nothing to weight: accepted
  EXPECT_NO_THROW(rotquant::dfrot(x, o2));

  rotquant::dfrot_options o3;
  o3.alpha = 0.0;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o3), "alpha 0");
  o3.alpha = 100.0;
  o3.steps = -1;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o3), "steps -1");
  o3.steps = 1;
  o3.sample_rows = -5;
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o3), "sample_rows -5");

  matrix_f bad = x;
  bad(5, 7) = std::numeric_limits<float>::quiet_NaN();
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(bad, rotquant::dfrot_options{}), "non-finite");
  EXPECT_ROTQUANT_ERROR(rotquant::detect_massive_tokens(bad), "non-finite");
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(matrix_f(0, c)), "at least one row");
  EXPECT_ROTQUANT_ERROR(rotquant::dfrot(x, o3, rotquant::dfrot_sym_quantizer{4, 0.0}),
                        "clip ratio 0");

  EXPECT_ROTQUANT_ERROR(rotquant::procrustes_rotation(matrix_d::Ones(4, 3), matrix_d::Ones(4, 2)),
                        "same shape expected");
  EXPECT_ROTQUANT_ERROR(
      rotquant::quantization_error_split(x, mask_of(t, {2}), rotquant::randomized_hadamard(16, 1)),
      "rotation dimension 16");
}

}  // namespace
