// SPDX-License-Identifier: Apache-2.0
// llama_model.hpp: a compact LLaMA-family forward pass on Eigen (RMSNorm, RoPE rotate-half,
// SwiGLU, causal attention with grouped KV heads), reading a Hugging Face config.json +
// model.safetensors through rotquant's io module.
//
// This is an example of how an engine uses rotquant, not part of the library: every linear
// layer goes through a `linear` object, so a quantized layer built by rotquant can replace the
// float one without the model code knowing.
#pragma once

#include <rotquant/core/rng.hpp>
#include <rotquant/core/threading.hpp>
#include <rotquant/io/json.hpp>
#include <rotquant/io/npy.hpp>
#include <rotquant/io/safetensors.hpp>
#include <rotquant/kernels/kv_cache.hpp>
#include <rotquant/transforms/transform.hpp>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace llama {

using rotquant::index_t;
using rotquant::matrix_f;
using rotquant::vector_f;

struct config {
  int hidden = 0, intermediate = 0, heads = 0, kv_heads = 0, layers = 0, vocab = 0, bos = 0;
  int max_positions = 0;
  float rms_eps = 1e-5f, rope_theta = 10000.0f;
  int head_dim() const { return hidden / heads; }

  static config load(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw rotquant::io::io_error("cannot open '" + path + "'");
    std::stringstream ss;
    ss << in.rdbuf();
    const auto j = rotquant::io::parse_json(ss.str(), path);
    auto integer = [&](const char* key, int fallback) {
      const auto* v = j.find(key);
      if (!v) {
        if (fallback >= 0) return fallback;
        throw rotquant::io::io_error(path + ": missing key '" + key + "'");
      }
      if (v->type != rotquant::io::json_value::kind::number || !v->is_integer || v->integer <= 0)
        throw rotquant::io::io_error(path + ": '" + key + "' is not a positive integer");
      return static_cast<int>(v->integer);
    };
    auto real = [&](const char* key, double fallback) {
      const auto* v = j.find(key);
      return v && v->type == rotquant::io::json_value::kind::number ? v->number : fallback;
    };
    config c;
    c.hidden = integer("hidden_size", -1);
    c.intermediate = integer("intermediate_size", -1);
    c.heads = integer("num_attention_heads", -1);
    c.kv_heads = integer("num_key_value_heads", c.heads);
    c.layers = integer("num_hidden_layers", -1);
    c.vocab = integer("vocab_size", -1);
    c.bos = integer("bos_token_id", 1);
    c.max_positions = integer("max_position_embeddings", 2048);
    c.rms_eps = static_cast<float>(real("rms_norm_eps", 1e-5));
    c.rope_theta = static_cast<float>(real("rope_theta", 10000.0));
    if (c.hidden % c.heads != 0 || c.heads % c.kv_heads != 0)
      throw rotquant::io::io_error(path + ": heads do not divide hidden size / kv heads");
    return c;
  }
};

/// A linear layer Y = X W^T (+ nothing: LLaMA has no biases). Replaceable by quantized ones.
class linear {
 public:
  virtual ~linear() = default;
  virtual matrix_f forward(const matrix_f& x) const = 0;
  virtual index_t in_features() const = 0;
  virtual index_t out_features() const = 0;
};

class float_linear final : public linear {
 public:
  explicit float_linear(matrix_f w) : w_(std::move(w)) {}
  matrix_f forward(const matrix_f& x) const override { return x * w_.transpose(); }
  index_t in_features() const override { return w_.cols(); }
  index_t out_features() const override { return w_.rows(); }
  const matrix_f& weight() const { return w_; }

 private:
  matrix_f w_;
};

/// Names of the seven linear layers of a block, in HF order.
inline const std::vector<std::string>& linear_names() {
  static const std::vector<std::string> names = {
      "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
      "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
  return names;
}

/// The model runs four linear groups per block; layers that read the same input are stacked
/// along the output dimension so their input is transformed and quantized once:
/// qkv = [q; k; v], o, gate_up = [gate; up], down.
enum group : int { qkv = 0, o = 1, gate_up = 2, down = 3 };
inline const char* group_name(int g) {
  static const char* names[] = {"qkv_proj", "o_proj", "gate_up_proj", "down_proj"};
  return names[g];
}

/// Float weights of the whole model, HF names.
struct weights {
  config cfg;
  matrix_f embed, lm_head;
  vector_f final_norm;
  struct layer {
    vector_f input_norm, post_norm;
    std::vector<matrix_f> w;  // in linear_names() order, each [out, in]
  };
  std::vector<layer> layers;

  static weights load(const std::string& dir) {
    weights m;
    m.cfg = config::load(dir + "/config.json");
    const auto file = rotquant::io::read_safetensors(dir + "/model.safetensors");
    auto mat = [&](const std::string& name, index_t rows, index_t cols) {
      const auto& t = file.at(name);
      if (t.shape.size() != 2 || t.shape[0] != rows || t.shape[1] != cols)
        throw rotquant::io::io_error(name + ": unexpected shape");
      return t.to_matrix<float>();
    };
    auto vec = [&](const std::string& name, index_t n) {
      const auto& t = file.at(name);
      if (t.shape.size() != 1 || t.shape[0] != n)
        throw rotquant::io::io_error(name + ": unexpected shape");
      const auto v = t.to_vector<float>();
      return vector_f(Eigen::Map<const vector_f>(v.data(), n));
    };
    const auto& c = m.cfg;
    const index_t h = c.hidden, f = c.intermediate, kv = c.kv_heads * c.head_dim();
    m.embed = mat("model.embed_tokens.weight", c.vocab, h);
    m.lm_head = mat("lm_head.weight", c.vocab, h);
    m.final_norm = vec("model.norm.weight", h);
    const index_t shapes[7][2] = {{h, h}, {kv, h}, {kv, h}, {h, h}, {f, h}, {f, h}, {h, f}};
    for (int l = 0; l < c.layers; ++l) {
      layer L;
      const std::string p = "model.layers." + std::to_string(l) + ".";
      L.input_norm = vec(p + "input_layernorm.weight", h);
      L.post_norm = vec(p + "post_attention_layernorm.weight", h);
      for (int i = 0; i < 7; ++i)
        L.w.push_back(mat(p + linear_names()[static_cast<std::size_t>(i)] + ".weight", shapes[i][0],
                          shapes[i][1]));
      m.layers.push_back(std::move(L));
    }
    return m;
  }
};

/// Row-wise RMSNorm: x / sqrt(mean(x^2) + eps) * gamma (gamma empty = weightless).
inline matrix_f rms_norm(const matrix_f& x, const vector_f& gamma, float eps) {
  matrix_f y(x.rows(), x.cols());
  for (index_t t = 0; t < x.rows(); ++t) {
    const float ms = x.row(t).squaredNorm() / static_cast<float>(x.cols());
    const float r = 1.0f / std::sqrt(ms + eps);
    if (gamma.size())
      y.row(t) = (x.row(t) * r).cwiseProduct(gamma.transpose());
    else
      y.row(t) = x.row(t) * r;
  }
  return y;
}

/// The runnable model: float weights for norms/embeddings, `linear` objects for the layers,
/// and optional online transforms applied to the inputs of o_proj and down_proj (set by
/// quantization recipes that rotate those activations; identity when empty).
struct model {
  config cfg;
  matrix_f embed, lm_head;
  vector_f final_norm;
  struct block {
    vector_f input_norm, post_norm;            // empty = already fused into the next linears
    std::vector<std::shared_ptr<linear>> lin;  // indexed by `group`
  };
  std::vector<block> blocks;
  /// Hook called on the input of every linear group (layer, group, X): for collecting
  /// calibration activations. Null = none.
  std::function<void(int, int, const matrix_f&)> observe;
  /// The KV cache's format (bits 16 = float32; heads and head_dim are filled in from cfg) and
  /// QuaRot's online per-head Hadamard on Q and K after RoPE (q.k unchanged), which flattens
  /// K's outlier channels before the cache quantizes it. The window path (forward) fake-quantizes
  /// K and V by the same rules, so it scores what the incremental path (step) computes.
  rotquant::kv_cache_options kv;
  /// Turns the per-head Hadamard on Q and K on (built once, applied in place per head).
  void set_k_hadamard(bool on) {
    k_hadamard_ = on ? std::make_shared<const rotquant::transform>(
                           rotquant::transform(cfg.head_dim()).append_hadamard())
                     : nullptr;
  }
  bool k_hadamard() const { return k_hadamard_ != nullptr; }

  rotquant::kv_cache_options kv_options() const {
    rotquant::kv_cache_options o = kv;
    o.heads = cfg.kv_heads;
    o.head_dim = cfg.head_dim();
    return o;
  }

  /// The stacked weight of group g of a layer ([q; k; v], o, [gate; up], down).
  static matrix_f group_weight(const weights::layer& L, int g) {
    auto stack = [](std::initializer_list<const matrix_f*> parts) {
      index_t rows = 0;
      for (const auto* p : parts) rows += p->rows();
      matrix_f out(rows, (*parts.begin())->cols());
      index_t r = 0;
      for (const auto* p : parts) {
        out.middleRows(r, p->rows()) = *p;
        r += p->rows();
      }
      return out;
    };
    switch (g) {
      case qkv:
        return stack({&L.w[0], &L.w[1], &L.w[2]});
      case o:
        return L.w[3];
      case gate_up:
        return stack({&L.w[4], &L.w[5]});
      default:
        return L.w[6];
    }
  }

  static model from_weights(const weights& w) {
    model m;
    m.cfg = w.cfg;
    m.embed = w.embed;
    m.lm_head = w.lm_head;
    m.final_norm = w.final_norm;
    for (const auto& L : w.layers) {
      block b;
      b.input_norm = L.input_norm;
      b.post_norm = L.post_norm;
      for (int g = 0; g < 4; ++g)
        b.lin.push_back(std::make_shared<float_linear>(group_weight(L, g)));
      m.blocks.push_back(std::move(b));
    }
    return m;
  }

  matrix_f run_linear(int layer, int which, const matrix_f& x) const {
    if (observe) observe(layer, which, x);
    return blocks[static_cast<std::size_t>(layer)].lin[static_cast<std::size_t>(which)]->forward(x);
  }

  /// RoPE tables of positions 0..T-1 (rotate-half convention, HF LLaMA): [T, head_dim / 2].
  struct rope_tables {
    matrix_f cos, sin;
  };
  rope_tables make_rope(index_t T) const {
    const int hd = cfg.head_dim(), half = hd / 2;
    rope_tables r{matrix_f(T, half), matrix_f(T, half)};
    for (index_t t = 0; t < T; ++t)
      for (int i = 0; i < half; ++i) {
        const double inv = std::pow(static_cast<double>(cfg.rope_theta), -2.0 * i / hd);
        const float ang = static_cast<float>(static_cast<double>(t) * static_cast<float>(inv));
        r.cos(t, i) = std::cos(ang);
        r.sin(t, i) = std::sin(ang);
      }
    return r;
  }

  /// The residual stream [T, hidden] entering layer 0.
  matrix_f embed_tokens(const std::vector<int>& tokens) const {
    const index_t T = static_cast<index_t>(tokens.size());
    matrix_f x(T, cfg.hidden);
    for (index_t t = 0; t < T; ++t) x.row(t) = embed.row(tokens[static_cast<std::size_t>(t)]);
    return x;
  }

  /// Q, K, V of layer l for the normalised rows h1 at positions pos0 .. pos0 + T - 1: RoPE on Q
  /// and K, then the per-head Hadamard when set_k_hadamard(true) was called.
  struct qkv_rows {
    matrix_f q, k, v;
  };
  qkv_rows project_qkv(int l, const matrix_f& h1, index_t pos0, const rope_tables& rt) const {
    const index_t T = h1.rows();
    const int hd = cfg.head_dim(), H = cfg.heads, KV = cfg.kv_heads, half = hd / 2;
    const matrix_f qkv_out = run_linear(l, qkv, h1);
    const index_t kvw = static_cast<index_t>(KV) * hd;
    qkv_rows r{qkv_out.leftCols(cfg.hidden), qkv_out.middleCols(cfg.hidden, kvw),
               qkv_out.rightCols(kvw)};
    auto rope = [&](matrix_f& m, int nheads) {
      for (index_t t = 0; t < T; ++t)
        for (int h = 0; h < nheads; ++h) {
          float* v = m.data() + t * m.cols() + h * hd;
          for (int i = 0; i < half; ++i) {
            const float a = v[i], b = v[i + half];
            const float c = rt.cos(pos0 + t, i), s = rt.sin(pos0 + t, i);
            v[i] = a * c - b * s;
            v[i + half] = b * c + a * s;
          }
        }
    };
    rope(r.q, H);
    rope(r.k, KV);
    if (k_hadamard_) {
      // [T, heads * hd] row-major is [T * heads, hd]: one head per row.
      for (matrix_f* m : {&r.q, &r.k})
        k_hadamard_->apply_inplace(rotquant::make_view<float>(m->data(), m->size() / hd, hd, hd));
    }
    return r;
  }

  /// The rest of layer l after attention: o_proj, residual, MLP, residual.
  void finish_block(int l, matrix_f& x, const matrix_f& attn) const {
    const block& b = blocks[static_cast<std::size_t>(l)];
    x += run_linear(l, o, attn);
    const matrix_f h2 = rms_norm(x, b.post_norm, cfg.rms_eps);
    const matrix_f gu = run_linear(l, gate_up, h2);
    matrix_f a(x.rows(), cfg.intermediate);
    for (index_t t = 0; t < x.rows(); ++t)
      for (index_t i = 0; i < cfg.intermediate; ++i) {
        const float gi = gu(t, i);
        a(t, i) = gi / (1.0f + std::exp(-gi)) * gu(t, cfg.intermediate + i);
      }
    x += run_linear(l, down, a);
  }

  /// Decoder layer l on the residual stream x [T, hidden] (in place), causal.
  void run_block(int l, matrix_f& x, const rope_tables& rt) const {
    const index_t T = x.rows();
    const int hd = cfg.head_dim(), H = cfg.heads, KV = cfg.kv_heads, group = H / KV;
    const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
    const block& b = blocks[static_cast<std::size_t>(l)];
    const matrix_f h1 = rms_norm(x, b.input_norm, cfg.rms_eps);
    qkv_rows p = project_qkv(l, h1, 0, rt);
    if (kv.bits < 16) {
      p.k = rotquant::kv_fake_quantize_keys(kv_options(), p.k);
      p.v = rotquant::kv_fake_quantize_values(kv_options(), p.v);
    }
    matrix_f attn(T, cfg.hidden);
    for (int h = 0; h < H; ++h) {
      const int kvh = h / group;
      const matrix_f qh = p.q.middleCols(h * hd, hd), kh = p.k.middleCols(kvh * hd, hd);
      matrix_f s = (qh * kh.transpose()) * scale;
      for (index_t i = 0; i < T; ++i) {
        const float mx = s.row(i).head(i + 1).maxCoeff();
        float sum = 0;
        for (index_t j = 0; j <= i; ++j) sum += (s(i, j) = std::exp(s(i, j) - mx));
        for (index_t j = 0; j <= i; ++j) s(i, j) /= sum;
        for (index_t j = i + 1; j < T; ++j) s(i, j) = 0;
      }
      attn.middleCols(h * hd, hd) = s * p.v.middleCols(kvh * hd, hd);
    }
    finish_block(l, x, attn);
  }

  /// Incremental decoding: one KV cache per layer and the RoPE tables of every position.
  struct decode_state {
    std::vector<rotquant::kv_cache> caches;
    rope_tables rope;
    index_t size() const { return caches.empty() ? 0 : caches.front().size(); }
  };
  decode_state start() const {
    decode_state s;
    for (int l = 0; l < cfg.layers; ++l) {
      s.caches.emplace_back(kv_options());
      s.caches.back().reserve(cfg.max_positions);
    }
    s.rope = make_rope(cfg.max_positions);
    return s;
  }

  /// Runs `tokens` (a prompt chunk, or one token: M = 1) after the ones already in `s`, appending
  /// their K and V to the caches; returns their logits [tokens, vocab].
  matrix_f step(const std::vector<int>& tokens, decode_state& s) const {
    const index_t pos0 = s.size(), T = static_cast<index_t>(tokens.size());
    if (T == 0) return matrix_f(0, cfg.vocab);
    if (pos0 + T > cfg.max_positions)
      throw std::invalid_argument("llama: " + std::to_string(pos0 + T) +
                                  " tokens exceed the context of " +
                                  std::to_string(cfg.max_positions) + " positions");
    for (int t : tokens)
      if (t < 0 || t >= cfg.vocab)
        throw std::invalid_argument("llama: token id " + std::to_string(t) + " is not in 0.." +
                                    std::to_string(cfg.vocab - 1));
    matrix_f x = embed_tokens(tokens);
    for (int l = 0; l < cfg.layers; ++l) {
      const block& b = blocks[static_cast<std::size_t>(l)];
      const matrix_f h1 = rms_norm(x, b.input_norm, cfg.rms_eps);
      const qkv_rows p = project_qkv(l, h1, pos0, s.rope);
      auto& cache = s.caches[static_cast<std::size_t>(l)];
      cache.append(p.k, p.v);
      finish_block(l, x, cache.attend(p.q, cfg.heads));
    }
    return logits(x);
  }

  std::shared_ptr<const rotquant::transform> k_hadamard_;  // set_k_hadamard

  /// Logits [T, vocab] from the residual stream after the last layer.
  matrix_f logits(const matrix_f& x) const {
    return rms_norm(x, final_norm, cfg.rms_eps) * lm_head.transpose();
  }

  /// Logits [T, vocab] for one sequence of token ids (T <= max_positions), causal.
  matrix_f forward(const std::vector<int>& tokens) const {
    matrix_f x = embed_tokens(tokens);
    const rope_tables rt = make_rope(x.rows());
    for (int l = 0; l < cfg.layers; ++l) run_block(l, x, rt);
    return logits(x);
  }
};

/// How the next token is drawn from a row of logits: temperature 0 = greedy (the first largest
/// logit); otherwise softmax(logits / temperature) over the top_k largest (0 = all), drawn with
/// rotquant::rng seeded by `seed` (the same tokens on every platform for the same logits).
struct sampling {
  float temperature = 0.0f;
  int top_k = 0;
  std::uint64_t seed = 0;

  void validate(int vocab) const {
    if (!(temperature >= 0.0f) || !std::isfinite(temperature))
      throw std::invalid_argument("llama: temperature " + std::to_string(temperature) +
                                  " is not a finite value >= 0 (0 = greedy)");
    if (top_k < 0 || top_k > vocab)
      throw std::invalid_argument("llama: top-k " + std::to_string(top_k) + " is not in 0.." +
                                  std::to_string(vocab) + " (0 = every token)");
  }
};

/// The next token for one row of logits.
inline int sample_token(const Eigen::Ref<const Eigen::RowVectorXf>& row, const sampling& s,
                        rotquant::rng& gen) {
  const index_t n = row.size();
  if (s.temperature == 0.0f) {
    index_t best = 0;
    for (index_t i = 1; i < n; ++i)
      if (row(i) > row(best)) best = i;
    return static_cast<int>(best);
  }
  std::vector<int> ids(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) ids[static_cast<std::size_t>(i)] = static_cast<int>(i);
  // Largest first, ties by id: a total order, so the candidates do not depend on the sort.
  std::sort(ids.begin(), ids.end(),
            [&](int a, int b) { return row(a) > row(b) || (row(a) == row(b) && a < b); });
  const std::size_t k = s.top_k > 0 ? static_cast<std::size_t>(s.top_k) : ids.size();
  std::vector<double> p(k);
  double sum = 0;
  for (std::size_t i = 0; i < k; ++i)
    sum += (p[i] = std::exp(static_cast<double>(row(ids[i]) - row(ids[0])) /
                            static_cast<double>(s.temperature)));
  double u = gen.uniform() * sum;
  for (std::size_t i = 0; i < k; ++i) {
    if (u < p[i]) return ids[i];
    u -= p[i];
  }
  return ids[k - 1];
}

/// Text generation: the prompt in one prefill step, then max_new tokens one at a time (M = 1
/// steps over the KV cache). The times are wall seconds of the prefill and of the decode steps.
struct generation {
  std::vector<int> tokens;  // the generated ones (not the prompt)
  double prefill_s = 0, decode_s = 0;
  double kv_bytes_per_token = 0;  // every layer's cache
};

inline generation generate(const model& m, const std::vector<int>& prompt, int max_new,
                           const sampling& s) {
  if (prompt.empty()) throw std::invalid_argument("llama: the prompt is empty (give at least BOS)");
  if (max_new < 0)
    throw std::invalid_argument("llama: max-new " + std::to_string(max_new) + " is negative");
  const std::size_t ctx = static_cast<std::size_t>(m.cfg.max_positions);
  if (prompt.size() + static_cast<std::size_t>(max_new) > ctx)
    throw std::invalid_argument("llama: the prompt (" + std::to_string(prompt.size()) +
                                " tokens) and " + std::to_string(max_new) +
                                " new tokens exceed the context of " + std::to_string(ctx) +
                                " positions");
  s.validate(m.cfg.vocab);
  using clock = std::chrono::steady_clock;
  rotquant::rng gen(s.seed);
  generation g;
  auto state = m.start();
  auto t0 = clock::now();
  matrix_f logits = m.step(prompt, state);
  g.prefill_s = std::chrono::duration<double>(clock::now() - t0).count();
  t0 = clock::now();
  for (int i = 0; i < max_new; ++i) {
    const int next = sample_token(logits.row(logits.rows() - 1), s, gen);
    g.tokens.push_back(next);
    if (i + 1 < max_new) logits = m.step({next}, state);
  }
  g.decode_s = std::chrono::duration<double>(clock::now() - t0).count();
  for (const auto& c : state.caches) g.kv_bytes_per_token += c.bytes_per_token();
  return g;
}

/// Per-byte perplexity of `text` in windows of BOS + (ctx - 1) bytes: every byte is predicted
/// exactly once, the first byte of each window from BOS alone. `window_nll(tokens)` returns the
/// summed negative log-likelihood of tokens[1..] given their prefixes. Windows run in parallel on
/// `ex`; the sum is taken in window order, so the result does not depend on it.
template <class WindowNll>
double windowed_perplexity(const model& m, const std::string& text, int ctx, std::size_t max_bytes,
                           rotquant::executor* ex, const WindowNll& window_nll) {
  const std::size_t n = max_bytes ? std::min(max_bytes, text.size()) : text.size();
  const std::size_t step = static_cast<std::size_t>(ctx - 1);
  const std::size_t windows = (n + step - 1) / step;
  std::vector<double> nll(windows, 0.0);
  rotquant::parallel_for(
      0, static_cast<index_t>(windows), 1,
      [&](index_t lo, index_t hi) {
        for (index_t w = lo; w < hi; ++w) {
          const std::size_t start = static_cast<std::size_t>(w) * step;
          const std::size_t len = std::min(step, n - start);
          std::vector<int> tokens = {m.cfg.bos};
          for (std::size_t i = 0; i < len; ++i)
            tokens.push_back(static_cast<unsigned char>(text[start + i]));
          nll[static_cast<std::size_t>(w)] = window_nll(tokens);
        }
      },
      ex);
  double total = 0;
  for (double v : nll) total += v;
  return std::exp(total / static_cast<double>(n));
}

/// -log softmax(row)[next].
inline double token_nll(const Eigen::Ref<const Eigen::RowVectorXf>& row, int next) {
  const float mx = row.maxCoeff();
  return mx + std::log((row.array() - mx).exp().cast<double>().sum()) - row(next);
}

/// Perplexity through the window path (one causal forward per window).
inline double perplexity(const model& m, const std::string& text, int ctx = 256,
                         std::size_t max_bytes = 0, rotquant::executor* ex = nullptr) {
  return windowed_perplexity(m, text, ctx, max_bytes, ex, [&](const std::vector<int>& tokens) {
    const matrix_f logits = m.forward(tokens);
    double s = 0;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i)
      s += token_nll(logits.row(static_cast<index_t>(i)), tokens[i + 1]);
    return s;
  });
}

/// The same through the incremental path: each window fed one token at a time (M = 1 steps over
/// the KV cache), each step's logits scoring the next byte.
inline double perplexity_incremental(const model& m, const std::string& text, int ctx = 256,
                                     std::size_t max_bytes = 0, rotquant::executor* ex = nullptr) {
  return windowed_perplexity(m, text, ctx, max_bytes, ex, [&](const std::vector<int>& tokens) {
    auto state = m.start();
    double s = 0;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i)
      s += token_nll(m.step({tokens[i]}, state).row(0), tokens[i + 1]);
    return s;
  });
}

}  // namespace llama
