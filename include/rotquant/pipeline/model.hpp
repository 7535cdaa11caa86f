// SPDX-License-Identifier: Apache-2.0
// model.hpp: model-level helpers for the transforms that span layers: RMSNorm weight fusion,
// the residual-stream rotation applied to every reader and writer of the residual, and
// per-head rotations for V/O. Documented for LLaMA-family decoders and DiT blocks.
//
// Readers' note (LLaMA-2/3, Mistral, Qwen2.5; HF names). The residual stream x (hidden size C)
// is written by the embedding, o_proj and down_proj, and read (through an RMSNorm) by
// q/k/v_proj, gate/up_proj and lm_head. A weightless RMSNorm commutes with an orthogonal Q:
// rms_norm(x Q) = rms_norm(x) Q. So after fusing each norm's gamma into the linears that read
// it (fuse_rms_norm), the whole stream can run rotated by Q with no online cost:
//   readers  W <- W Q        (q, k, v, gate, up, lm_head: input side)
//   writers  W <- Q^T W      (o_proj, down_proj: output side; bias b <- Q^T b)
//   embedding rows E <- E Q
// DiT blocks (DiT-XL/2: hidden 1152 = 9 * 128) use LayerNorm with adaLN modulation: the
// rotation is applied the same way to the attention/MLP linears, but LayerNorm's mean removal
// and the adaLN shift do not commute with Q, so only per-linear (online) rotations are exact
// there; rotate_inputs() below covers that case.
#pragma once

#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/transforms/transform.hpp"

namespace rotquant {

/// Folds an RMSNorm weight gamma (length C) into every linear that reads the normalised
/// activations: each reader W [out, C] becomes W diag(gamma); gamma becomes all ones.
/// Exact: rms_norm(x) diag(gamma) W^T = rms_norm(x) (W diag(gamma))^T. O(C * sum(out)).
template <class Scalar>
void fuse_rms_norm(vector<Scalar>& gamma, const std::vector<matrix<Scalar>*>& readers) {
  ROTQUANT_CHECK(gamma.size() > 0, "fuse_rms_norm: empty norm weight");
  check_finite(gamma, "fuse_rms_norm: gamma");
  for (std::size_t i = 0; i < readers.size(); ++i) {
    ROTQUANT_CHECK(readers[i] != nullptr, "fuse_rms_norm: reader " << i << " is null");
    ROTQUANT_CHECK(readers[i]->cols() == gamma.size(),
                   "fuse_rms_norm: reader " << i << " has " << readers[i]->cols()
                                            << " input features, the norm has " << gamma.size());
  }
  for (auto* w : readers) *w = *w * gamma.asDiagonal();
  gamma.setOnes();
}

/// Applies a stream transform M (dimension C) to every reader and writer of a stream:
///   readers    W [out, C] <- W M^{-T}    (their input is the stream)
///   writers    W [C, in]  <- M^T W       (their output is the stream)
///   embeddings E [vocab, C] <- E M       (rows are stream vectors)
/// so that a model computing with the rotated stream gives the same outputs. For the residual
/// stream of a decoder M must be orthogonal (so weightless norms commute with it); fuse the
/// norm weights first (fuse_rms_norm). For V/O per-head rotations pass W_v as a writer and W_o
/// as a reader with a block-diagonal M over the heads.
template <class Scalar>
void rotate_stream(const transform& m, const std::vector<matrix<Scalar>*>& readers,
                   const std::vector<matrix<Scalar>*>& writers,
                   const std::vector<matrix<Scalar>*>& embeddings = {}) {
  auto check = [&](const std::vector<matrix<Scalar>*>& list, const char* what, bool by_rows) {
    for (std::size_t i = 0; i < list.size(); ++i) {
      ROTQUANT_CHECK(list[i] != nullptr, "rotate_stream: " << what << " " << i << " is null");
      const index_t n = by_rows ? list[i]->rows() : list[i]->cols();
      ROTQUANT_CHECK(n == m.dim(), "rotate_stream: " << what << " " << i << " has " << n
                                                     << " stream features, the transform "
                                                     << m.dim());
    }
  };
  check(readers, "reader", false);
  check(writers, "writer", true);
  check(embeddings, "embedding", false);
  for (auto* w : readers) *w = m.fold_into_weight(*w);
  for (auto* w : writers) {
    // y M = x W^T M = x (M^T W)^T: apply M to the rows of W^T.
    const matrix<Scalar> wt = w->transpose();
    *w = m.apply(wt).transpose();
  }
  for (auto* e : embeddings) *e = m.apply(*e);
}

/// The transform that applies `head` (dimension head_dim) to each of `count` consecutive
/// heads: dimension count * head_dim, block-diagonal with `head` on every block, stage by stage
/// (a Hadamard stage stays a fast Hadamard of the same block; a dense stage becomes a shared
/// block-diagonal one).
inline transform repeat_per_head(const transform& head, index_t count) {
  ROTQUANT_CHECK(count >= 1, "repeat_per_head: count = " << count << "; expected >= 1");
  const index_t d = head.dim();
  transform out(d * count);
  auto tile = [&](const vector_d& v) {
    vector_d t(d * count);
    for (index_t h = 0; h < count; ++h) t.segment(h * d, d) = v;
    return t;
  };
  for (const auto& st : head.stages()) {
    switch (st.kind) {
      case stage_kind::scale:
        out.append_scale(tile(st.values));
        break;
      case stage_kind::signs:
        out.append_signs(tile(st.values));
        break;
      case stage_kind::permutation: {
        std::vector<index_t> perm(static_cast<std::size_t>(d * count));
        for (index_t h = 0; h < count; ++h)
          for (index_t i = 0; i < d; ++i)
            perm[static_cast<std::size_t>(h * d + i)] =
                h * d + st.perm[static_cast<std::size_t>(i)];
        out.append_permutation(std::move(perm));
        break;
      }
      case stage_kind::hadamard:
        out.append_hadamard(st.block, st.transposed);
        break;
      case stage_kind::block_diagonal:
        if (st.blocks.size() == 1) {
          out.append_block_diagonal(st.blocks[0]);
        } else {
          std::vector<matrix_d> blocks;
          for (index_t h = 0; h < count; ++h)
            blocks.insert(blocks.end(), st.blocks.begin(), st.blocks.end());
          out.append_block_diagonal(std::move(blocks));
        }
        break;
      case stage_kind::dense:
        out.append_block_diagonal(st.blocks[0]);
        break;
    }
  }
  return out;
}

/// QuaRot's R2: an orthogonal per-head rotation R (dimension head_dim) folded into v_proj's
/// output rows and o_proj's input columns, so attention runs with V R per head and the model's
/// output is unchanged (softmax weights mix V rows; (P V R) R^T = P V). GQA: w_v has kv_heads
/// heads, w_o reads `heads` query heads, head h taking V of KV head h / (heads / kv_heads);
/// every head uses the same R, so o_proj's fold is R on each of its heads.
///   w_v [kv_heads * head_dim, in] <- per head R^T W_v,h     w_o [out, heads * head_dim] <- W_o R
template <class Scalar>
void rotate_heads_v_o(const transform& r, matrix<Scalar>& w_v, matrix<Scalar>& w_o,
                      index_t kv_heads, index_t heads) {
  const index_t d = r.dim();
  ROTQUANT_CHECK(
      kv_heads >= 1 && heads >= kv_heads && heads % kv_heads == 0,
      "rotate_heads_v_o: " << heads << " heads are not a multiple of " << kv_heads << " KV heads");
  ROTQUANT_CHECK(w_v.rows() == kv_heads * d, "rotate_heads_v_o: v_proj has "
                                                 << w_v.rows() << " output rows, expected "
                                                 << "kv_heads * head_dim = " << kv_heads * d);
  ROTQUANT_CHECK(w_o.cols() == heads * d, "rotate_heads_v_o: o_proj has "
                                              << w_o.cols() << " input columns, expected "
                                              << "heads * head_dim = " << heads * d);
  rotate_stream<Scalar>(repeat_per_head(r, kv_heads), {}, {&w_v});
  rotate_stream<Scalar>(repeat_per_head(r, heads), {&w_o}, {});
}

}  // namespace rotquant
