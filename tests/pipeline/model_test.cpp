// SPDX-License-Identifier: Apache-2.0
#include "rotquant/pipeline/model.hpp"

#include <gtest/gtest.h>

#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/orthogonal.hpp"
#include "rotquant/transforms/randomized_hadamard.hpp"
#include "test_util.hpp"

namespace {

using rotquant::matrix_f;
using rotquant::vector_f;

matrix_f rms_norm(const matrix_f& x, const vector_f& g) {
  matrix_f y = x;
  for (rotquant::index_t t = 0; t < x.rows(); ++t)
    y.row(t) = x.row(t) / std::sqrt(x.row(t).squaredNorm() / x.cols() + 1e-5f);
  return y * g.asDiagonal();
}

// A toy residual block: x1 = x + (norm(x) Wr^T) Ww^T (a reader then a writer), logits = norm(x1)
// H^T.
TEST(ModelHelpers, FuseNormAndRotateResidualStreamAreExact) {
  const rotquant::index_t c = 64, hidden = 48, vocab = 11, tokens = 9;
  const matrix_f emb = rotquant::random_normal_matrix<float>(vocab, c, 1);
  matrix_f wr = rotquant::random_normal_matrix<float>(hidden, c, 2) * 0.1f;
  matrix_f ww = rotquant::random_normal_matrix<float>(c, hidden, 3) * 0.1f;
  matrix_f head = rotquant::random_normal_matrix<float>(vocab, c, 4);
  vector_f g1 = (rotquant::random_normal_matrix<float>(c, 1, 5).array() * 0.3f + 1.0f).matrix();
  vector_f g2 = (rotquant::random_normal_matrix<float>(c, 1, 6).array() * 0.3f + 1.0f).matrix();
  const std::vector<int> ids = {0, 3, 10, 2, 2, 7, 1, 9, 4};
  auto run = [&](const matrix_f& e, const matrix_f& r, const matrix_f& w, const matrix_f& h,
                 const vector_f& a, const vector_f& b) {
    matrix_f x(tokens, c);
    for (int t = 0; t < tokens; ++t) x.row(t) = e.row(ids[t]);
    x += (rms_norm(x, a) * r.transpose()) * w.transpose();
    return matrix_f(rms_norm(x, b) * h.transpose());
  };
  const matrix_f ref = run(emb, wr, ww, head, g1, g2);

  matrix_f e2 = emb, r2 = wr, w2 = ww, h2 = head;
  vector_f a2 = g1, b2 = g2;
  rotquant::fuse_rms_norm<float>(a2, {&r2});
  rotquant::fuse_rms_norm<float>(b2, {&h2});
  EXPECT_TRUE((a2.array() == 1.0f).all());
  EXPECT_LE((run(e2, r2, w2, h2, a2, b2) - ref).norm(), 1e-5 * ref.norm());

  rotquant::transform q(c);
  q.append_dense(rotquant::random_orthogonal(c, 7));
  q.append_signs(rotquant::random_signs<double>(c, 8));
  q.append_hadamard();
  rotquant::rotate_stream<float>(q, {&r2, &h2}, {&w2}, {&e2});
  EXPECT_GT((e2 - emb).norm(), 1.0f);  // really rotated
  EXPECT_LE((run(e2, r2, w2, h2, a2, b2) - ref).norm(), 1e-5 * ref.norm());
}

TEST(ModelHelpers, BadInputs) {
  vector_f g = vector_f::Ones(8);
  matrix_f w(4, 6);
  EXPECT_ROTQUANT_ERROR(rotquant::fuse_rms_norm<float>(g, {&w}), "reader 0 has 6 input features");
  rotquant::transform q(8);
  EXPECT_ROTQUANT_ERROR(rotquant::rotate_stream<float>(q, {}, {&w}), "writer 0 has 4");
  EXPECT_ROTQUANT_ERROR(rotquant::rotate_stream<float>(q, {nullptr}, {}), "reader 0 is null");
}

// Per-head rotations (QuaRot's R2 on V/O, the online Hadamard on Q/K): repeat_per_head keeps
// each stage per head, and folding R into v_proj / o_proj leaves GQA attention's output as it
// was for any attention weights.
TEST(HeadRotations, RepeatPerHeadAppliesTheHeadTransformToEveryHead) {
  const rotquant::index_t d = 16, heads = 5;
  const auto r = rotquant::randomized_hadamard(d, 3);  // signs + Hadamard
  const auto full = rotquant::repeat_per_head(r, heads);
  ASSERT_EQ(full.dim(), d * heads);
  ASSERT_EQ(full.num_stages(), r.num_stages());
  const matrix_f x = rotquant::random_normal_matrix<float>(7, d * heads, 4);
  const matrix_f y = full.apply(x);
  for (rotquant::index_t h = 0; h < heads; ++h) {
    const matrix_f xh = x.middleCols(h * d, d);
    EXPECT_LT((y.middleCols(h * d, d) - r.apply(xh)).cwiseAbs().maxCoeff(), 1e-6f) << "head " << h;
  }
  // q.k per head is unchanged when Q and K both get the per-head Hadamard.
  const matrix_f q = rotquant::random_normal_matrix<float>(3, d * heads, 5);
  const matrix_f qr = full.apply(q), xr = y;
  for (rotquant::index_t h = 0; h < heads; ++h) {
    const matrix_f s0 = q.middleCols(h * d, d) * x.middleCols(h * d, d).transpose();
    const matrix_f s1 = qr.middleCols(h * d, d) * xr.middleCols(h * d, d).transpose();
    EXPECT_LT((s0 - s1).cwiseAbs().maxCoeff(), 1e-4f);
  }
}

TEST(HeadRotations, FoldingIntoVAndOKeepsGqaAttentionExact) {
  const rotquant::index_t d = 8, kv = 2, heads = 6, in = 24, out = 20, T = 5;
  matrix_f wv = rotquant::random_normal_matrix<float>(kv * d, in, 6);
  matrix_f wo = rotquant::random_normal_matrix<float>(out, heads * d, 7);
  const matrix_f x = rotquant::random_normal_matrix<float>(T, in, 8);
  std::vector<matrix_f> p;  // attention weights per query head (rows sum to 1)
  for (rotquant::index_t h = 0; h < heads; ++h) {
    matrix_f a = rotquant::random_normal_matrix<float>(T, T, 10 + static_cast<std::uint64_t>(h))
                     .array()
                     .exp()
                     .matrix();
    for (rotquant::index_t i = 0; i < T; ++i) a.row(i) /= a.row(i).sum();
    p.push_back(a);
  }
  auto layer = [&](const matrix_f& v_w, const matrix_f& o_w) {
    const matrix_f v = x * v_w.transpose();
    matrix_f attn(T, heads * d);
    for (rotquant::index_t h = 0; h < heads; ++h)
      attn.middleCols(h * d, d) = p[static_cast<std::size_t>(h)] * v.middleCols((h / 3) * d, d);
    return matrix_f(attn * o_w.transpose());
  };
  const matrix_f before = layer(wv, wo);
  const matrix_f wv0 = wv;
  const auto r = rotquant::randomized_hadamard(d, 9);
  rotquant::rotate_heads_v_o<float>(r, wv, wo, kv, heads);
  const matrix_f after = layer(wv, wo);
  EXPECT_LT((after - before).cwiseAbs().maxCoeff(), 1e-4f * before.cwiseAbs().maxCoeff());
  // V itself is rotated (the fold is not the identity).
  EXPECT_GT((wv - wv0).norm(), 0.5f * wv0.norm());
  EXPECT_ROTQUANT_ERROR(rotquant::rotate_heads_v_o<float>(r, wv, wo, 4, heads),
                        "not a multiple of 4 KV heads");
  matrix_f short_v = wv.topRows(d);
  EXPECT_ROTQUANT_ERROR(rotquant::rotate_heads_v_o<float>(r, short_v, wo, kv, heads),
                        "expected kv_heads * head_dim = 16");
}

}  // namespace
