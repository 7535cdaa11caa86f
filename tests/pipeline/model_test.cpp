// SPDX-License-Identifier: Apache-2.0
#include "rotquant/pipeline/model.hpp"

#include <gtest/gtest.h>

#include "rotquant/core/rng.hpp"
#include "rotquant/transforms/orthogonal.hpp"
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

}  // namespace
