// SPDX-License-Identifier: Apache-2.0
// llama_recipes.cpp: the recipes of llama_recipes.hpp and their calibration over a whole model
// (the one translation unit of the example engine that compiles the presets).
#include "llama_recipes.hpp"

#include <rotquant/io/npy.hpp>
#include <rotquant/pipeline/model.hpp>
#include <rotquant/pipeline/presets.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <functional>
#include <stdexcept>

namespace llama {
namespace {

using clock_type = std::chrono::steady_clock;

/// A model linear backed by a rotquant::quantized_linear; `*kernels` selects kernels or fake
/// quantization; `*weights_only` (GPTQ's sequential calibration) runs the quantized weights
/// with float activations.
class quantized_adapter final : public linear {
 public:
  quantized_adapter(std::shared_ptr<const rotquant::quantized_linear> q,
                    std::shared_ptr<bool> kernels, std::shared_ptr<bool> weights_only)
      : q_(std::move(q)), kernels_(std::move(kernels)), weights_only_(std::move(weights_only)) {}
  matrix_f forward(const matrix_f& x) const override {
    if (weights_only_ && *weights_only_)
      return q_->transform_input(x) * q_->weight_dequantized().transpose();
    const bool kernel = *kernels_ && q_->has_kernel();
    return q_->forward(x, kernel ? rotquant::execution::kernel : rotquant::execution::fake_quant);
  }
  index_t in_features() const override { return q_->in_features(); }
  index_t out_features() const override { return q_->out_features(); }

 private:
  std::shared_ptr<const rotquant::quantized_linear> q_;
  std::shared_ptr<bool> kernels_, weights_only_;
};

enum class residual { none, hadamard, dfrot };

/// Calibrates one linear group (layer, group) on its inputs X and stacked weight W; GPTQ
/// recipes also get the inputs of the partly quantized model (the Hessian's rows).
using group_calibrator = std::function<rotquant::quantized_linear(
    const matrix_f& x, const matrix_f& w, int layer, int group, const matrix_f& hx)>;

struct recipe {
  recipe_info info;
  bool fuse_norms = false;
  residual stream = residual::none;
  std::uint64_t seed = 0;
  group_calibrator make;
};

/// Every recipe; DuQuant's rotations use the element-wise mean of the `n_seq` calibration
/// sequences of `seq_len` tokens.
std::vector<recipe> all_recipes(const recipe_options& opt, index_t seq_len, index_t n_seq) {
  // QuaRot and DFRot weights use the MSE clip search of QuaRot's --w_clip, the setting both
  // papers evaluate with; w_clip = false gives clip 1.0.
  const auto w4 = opt.w_clip ? rotquant::quantizer::gptq_weight(4, true, true)
                             : rotquant::presets::w4_per_channel();
  const auto a4 = rotquant::presets::a4_per_token();
  const std::string rot_bits = opt.w_clip ? "W4A4 int wclip" : "W4A4 int";
  std::vector<recipe> out;
  auto rotated = [&](const std::string& name, const std::string& bits, residual r,
                     std::uint64_t seed, rotquant::quantizer wq, rotquant::quantizer aq,
                     bool gptq = false) {
    recipe rc{{name, bits, gptq, true}, true, r, seed, nullptr};
    rc.make = [=](const matrix_f& x, const matrix_f& w, int layer, int g, const matrix_f& hx) {
      const std::uint64_t s = seed * 1000 + static_cast<std::uint64_t>(layer * 4 + g);
      rotquant::gptq_options go;
      go.layer = "layer " + std::to_string(layer) + " " + group_name(g);
      if (g == o || g == down) {
        if (gptq) return rotquant::presets::quarot_gptq(s, wq, aq, go).calibrate(x, w, hx);
        return rotquant::presets::quarot(s, wq, aq).calibrate(x, w);
      }
      if (gptq) return rotquant::presets::rtn_gptq(wq, aq, go).calibrate(x, w, hx);
      return rotquant::presets::rtn(wq, aq).calibrate(x, w);
    };
    out.push_back(rc);
  };
  const auto seeded = [&](const std::string& base, int s) {
    return base + "/s" + std::to_string(s);
  };
  out.push_back({{"rtn", "W4A4 int", false, false},
                 false,
                 residual::none,
                 0,
                 [](const matrix_f& x, const matrix_f& w, int, int, const matrix_f&) {
                   return rotquant::presets::rtn().calibrate(x, w);
                 }});
  out.push_back({{"smoothquant", "W4A4 int", false, false},
                 false,
                 residual::none,
                 0,
                 [](const matrix_f& x, const matrix_f& w, int, int, const matrix_f&) {
                   return rotquant::presets::smoothquant().calibrate(x, w);
                 }});
  for (int s = 0; s < opt.seeds; ++s)
    rotated(seeded("quarot", s), rot_bits, residual::hadamard, static_cast<std::uint64_t>(s), w4,
            a4);
  for (int s = 0; s < opt.seeds; ++s)
    rotated(seeded("quarot-gptq", s), rot_bits, residual::hadamard, static_cast<std::uint64_t>(s),
            w4, a4, true);
  // DuQuant as released: rotations and permutations from the element-wise mean of the
  // calibration sequences ("rotate_inps"), smoothing from the max over all of their tokens.
  for (int gptq = 0; gptq < 2; ++gptq)
    for (int s = 0; s < opt.seeds; ++s) {
      const auto seed = static_cast<std::uint64_t>(s);
      recipe rc{{seeded(gptq ? "duquant-gptq" : "duquant", s), "W4A4 int asym", gptq == 1, true},
                false,
                residual::none,
                seed,
                nullptr};
      rc.make = [seed, seq_len, n_seq, gptq](const matrix_f& x, const matrix_f& w, int layer, int g,
                                             const matrix_f& hx) {
        rotquant::duquant_options d;
        d.seed = seed * 1000 + static_cast<std::uint64_t>(layer * 4 + g);
        d.act_absmax = x.cwiseAbs().colwise().maxCoeff().transpose().cast<double>();
        matrix_f mean = matrix_f::Zero(seq_len, x.cols());
        for (index_t k = 0; k < n_seq; ++k) mean += x.middleRows(k * seq_len, seq_len);
        mean /= static_cast<float>(n_seq);
        namespace st = rotquant::stages;
        const auto wq = rotquant::quantizer::duquant(4, 0.8f);
        const auto aq = rotquant::quantizer::duquant(4, 0.9f);
        if (gptq) {
          rotquant::gptq_options go;
          go.layer = "layer " + std::to_string(layer) + " " + group_name(g);
          return rotquant::make_pipeline(st::rotate<st::duquant_builder>{{d}},
                                         st::quantize<st::gptq_weights<>>{{{wq}, go}, {aq}})
              .calibrate(mean, w, hx);
        }
        return rotquant::make_pipeline(st::rotate<st::duquant_builder>{{d}},
                                       st::quantize<>{{wq}, {aq}})
            .calibrate(mean, w);
      };
      out.push_back(rc);
    }
  for (int s = 0; s < opt.seeds; ++s)
    rotated(seeded("dfrot", s), rot_bits, residual::dfrot, static_cast<std::uint64_t>(s), w4, a4);
  for (int s = 0; s < opt.seeds; ++s)
    rotated(seeded("dfrot-gptq", s), rot_bits, residual::dfrot, static_cast<std::uint64_t>(s), w4,
            a4, true);
  out.push_back({{"hqdit", "W4A4 fp4", false, false},
                 true,
                 residual::none,
                 0,
                 [](const matrix_f& x, const matrix_f& w, int, int, const matrix_f&) {
                   return rotquant::presets::hqdit().calibrate(x, w);
                 }});
  rotated("quarot-mxfp4", "W4A4 mxfp4", residual::hadamard, 0, rotquant::quantizer::mxfp4(),
          rotquant::quantizer::mxfp4());
  rotated("quarot-nvfp4", "W4A4 nvfp4", residual::hadamard, 0, rotquant::quantizer::nvfp4(),
          rotquant::quantizer::nvfp4());
  return out;
}

/// Rows [sum of rows, cols] of the parts, in order.
matrix_f stack_rows(const std::vector<matrix_f>& parts) {
  index_t rows = 0;
  for (const auto& p : parts) rows += p.rows();
  matrix_f x(rows, parts.at(0).cols());
  index_t r = 0;
  for (const auto& p : parts) {
    x.middleRows(r, p.rows()) = p;
    r += p.rows();
  }
  return x;
}

/// Inputs of every linear group over the calibration sequences, [layer][group].
std::vector<std::vector<matrix_f>> collect_inputs(model& m,
                                                  const std::vector<std::vector<int>>& seqs) {
  std::vector<std::vector<std::vector<matrix_f>>> parts(static_cast<std::size_t>(m.cfg.layers),
                                                        std::vector<std::vector<matrix_f>>(4));
  m.observe = [&](int l, int g, const matrix_f& x) {
    parts[static_cast<std::size_t>(l)][static_cast<std::size_t>(g)].push_back(x);
  };
  for (const auto& s : seqs) m.forward(s);
  m.observe = nullptr;
  std::vector<std::vector<matrix_f>> out(parts.size(), std::vector<matrix_f>(4));
  for (std::size_t l = 0; l < parts.size(); ++l)
    for (std::size_t g = 0; g < 4; ++g) out[l][g] = stack_rows(parts[l][g]);
  return out;
}

/// The inputs of linear group g of layer l over the sequences whose residual streams entering
/// layer l are `streams` (one per sequence), running layer l only as far as group g.
matrix_f collect_group_input(model& m, const std::vector<matrix_f>& streams, int layer, int g) {
  struct stop {};
  std::vector<matrix_f> parts;
  m.observe = [&](int l, int gg, const matrix_f& x) {
    if (l == layer && gg == g) {
      parts.push_back(x);
      throw stop{};
    }
  };
  for (const auto& s : streams) {
    matrix_f x = s;
    try {
      m.run_block(layer, x, m.make_rope(x.rows()));
    } catch (const stop&) {
    }
  }
  m.observe = nullptr;
  return stack_rows(parts);
}

/// Fuses the RMSNorm weights into the linears that read them (exact in float).
void fuse_norms(weights& w) {
  for (auto& L : w.layers) {
    rotquant::fuse_rms_norm<float>(L.input_norm, {&L.w[0], &L.w[1], &L.w[2]});
    rotquant::fuse_rms_norm<float>(L.post_norm, {&L.w[4], &L.w[5]});
  }
  rotquant::fuse_rms_norm<float>(w.final_norm, {&w.lm_head});
}

/// Rotates the residual stream by q: readers q/k/v/gate/up/lm_head, writers o/down, embedding.
void rotate_residual(weights& w, const rotquant::transform& q) {
  std::vector<matrix_f*> readers = {&w.lm_head}, writers;
  for (auto& L : w.layers) {
    for (int i : {0, 1, 2, 4, 5}) readers.push_back(&L.w[static_cast<std::size_t>(i)]);
    for (int i : {3, 6}) writers.push_back(&L.w[static_cast<std::size_t>(i)]);
  }
  rotquant::rotate_stream<float>(q, readers, writers, {&w.embed});
}

rotquant::massive_rule parse_rule(const std::string& r) {
  if (r == "released") return rotquant::massive_rule::released;
  if (r == "mistral") return rotquant::massive_rule::mistral;
  if (r == "magnitude") return rotquant::massive_rule::magnitude;
  throw std::invalid_argument("dfrot rule: '" + r + "' is not one of released, mistral, magnitude");
}

}  // namespace

calibration_set calibration_set::load(const std::string& model_dir, const std::string& text_path,
                                      int gptq_seqs, int bos) {
  if (gptq_seqs < 1 || gptq_seqs > 256)
    throw std::invalid_argument("GPTQ calibration sequences: " + std::to_string(gptq_seqs) +
                                " is not in 1..256");
  calibration_set c;
  const auto tok = rotquant::io::read_npy(model_dir + "/calib/tokens.npy");
  const auto ids = tok.to_vector<int>();
  const std::size_t seq = static_cast<std::size_t>(tok.shape.back());
  for (std::size_t s = 0; s + seq <= ids.size(); s += seq)
    c.seqs.emplace_back(ids.begin() + static_cast<std::ptrdiff_t>(s),
                        ids.begin() + static_cast<std::ptrdiff_t>(s + seq));
  if (c.seqs.empty()) throw rotquant::io::io_error(model_dir + "/calib/tokens.npy: no sequence");
  // GPTQ's calibration sequences: the shipped ones, then windows spread over the whole file.
  c.gptq_seqs.assign(c.seqs.begin(),
                     c.seqs.begin() + std::min<std::ptrdiff_t>(
                                          static_cast<std::ptrdiff_t>(c.seqs.size()), gptq_seqs));
  std::ifstream full(text_path, std::ios::binary);
  if (!full) throw rotquant::io::io_error("cannot open '" + text_path + "'");
  const std::string all((std::istreambuf_iterator<char>(full)), {});
  const int extra = gptq_seqs - static_cast<int>(c.gptq_seqs.size());
  for (int k = 0; k < extra && all.size() > seq; ++k) {
    const std::size_t off = (all.size() - seq) * static_cast<std::size_t>(k) /
                            static_cast<std::size_t>(std::max(1, extra));
    std::vector<int> t = {bos};
    for (std::size_t i = 0; i + 1 < seq; ++i) t.push_back(static_cast<unsigned char>(all[off + i]));
    c.gptq_seqs.push_back(std::move(t));
  }
  return c;
}

std::vector<recipe_info> list_recipes(const recipe_options& o) {
  std::vector<recipe_info> out;
  for (const auto& r : all_recipes(o, 1, 1)) out.push_back(r.info);
  return out;
}

quantized_model quantize_model(const std::string& name, const weights& base,
                               const calibration_set& calib, const recipe_options& opt) {
  quantized_model out;
  if (name == "float32") {
    out.recipe = {"float32", "W32A32", false, false};
    out.m = model::from_weights(base);
    for (const auto& L : base.layers)
      for (const auto& w : L.w) out.weight_bytes += static_cast<double>(w.size()) * 4.0;
    return out;
  }
  const auto recipes = all_recipes(opt, static_cast<index_t>(calib.seqs.at(0).size()),
                                   static_cast<index_t>(calib.seqs.size()));
  const recipe* rc = nullptr;
  std::string names = "float32";
  for (const auto& r : recipes) {
    if (r.info.name == name) rc = &r;
    names += ", " + r.info.name;
  }
  if (!rc) throw std::invalid_argument("unknown recipe '" + name + "'; accepted: " + names);
  out.recipe = rc->info;
  const auto t0 = clock_type::now();
  weights w = base;
  if (rc->fuse_norms) fuse_norms(w);
  if (rc->stream == residual::hadamard) {
    rotate_residual(w, rotquant::randomized_hadamard(w.cfg.hidden, 77 + rc->seed));
  } else if (rc->stream == residual::dfrot) {
    model fused = model::from_weights(w);
    const auto inputs = collect_inputs(fused, calib.seqs);
    std::vector<matrix_f> parts;
    for (const auto& l : inputs)
      for (int g : {qkv, gate_up}) parts.push_back(l[static_cast<std::size_t>(g)]);
    rotquant::dfrot_options d;
    d.alpha = opt.dfrot_alpha;
    d.steps = opt.dfrot_steps;
    d.massive.rule = parse_rule(opt.dfrot_rule);
    d.seed = 77 + rc->seed;
    const auto refined = rotquant::dfrot(stack_rows(parts), d);
    if (opt.verbose)
      std::fprintf(stderr, "%s: %d accepted steps\n%s", name.c_str(), refined.accepted_steps,
                   refined.report.to_string().c_str());
    rotate_residual(w, refined.rotation);
  }
  if (rc->info.head_rotations) {
    // QuaRot's rotate_ov_proj: R2, a Hadamard of the head dimension, per KV head into v_proj's
    // output rows and per attention head into o_proj's input columns.
    const auto r2 = rotquant::transform(w.cfg.head_dim()).append_hadamard();
    for (auto& L : w.layers)
      rotquant::rotate_heads_v_o(r2, L.w[2], L.w[3], w.cfg.kv_heads, w.cfg.heads);
  }
  out.m = model::from_weights(w);
  model& m = out.m;
  const auto inputs = collect_inputs(m, calib.seqs);
  // The linear groups calibrate independently (each seeded by its layer and group): spread
  // them over the pool; any parallelism inside a calibration then runs inline.
  const int groups = w.cfg.layers * 4;
  std::vector<std::shared_ptr<const rotquant::quantized_linear>> quantized(
      static_cast<std::size_t>(groups));
  auto weights_only = std::make_shared<bool>(false);
  if (rc->info.gptq) {
    // QuaRot's gptq_fwrd: layer by layer, [q,k,v] -> [o] -> [gate,up] -> [down], each
    // group's Hessian from its inputs in the model quantized so far (weights only). The
    // residual streams entering layer l (the layers before it quantized), as QuaRot keeps its
    // `inps`: each layer runs once more after its groups are quantized.
    *weights_only = true;
    std::vector<matrix_f> streams;
    for (const auto& s : calib.gptq_seqs) streams.push_back(m.embed_tokens(s));
    for (int l = 0; l < w.cfg.layers; ++l) {
      for (int g = 0; g < 4; ++g) {
        const matrix_f hx = collect_group_input(m, streams, l, g);
        const matrix_f wg = model::group_weight(w.layers[static_cast<std::size_t>(l)], g);
        auto q = std::make_shared<const rotquant::quantized_linear>(rc->make(
            inputs[static_cast<std::size_t>(l)][static_cast<std::size_t>(g)], wg, l, g, hx));
        quantized[static_cast<std::size_t>(l * 4 + g)] = q;
        m.blocks[static_cast<std::size_t>(l)].lin[static_cast<std::size_t>(g)] =
            std::make_shared<quantized_adapter>(q, out.kernels, weights_only);
      }
      for (auto& x : streams) m.run_block(l, x, m.make_rope(x.rows()));
    }
    *weights_only = false;
  } else {
    rotquant::parallel_for(0, groups, 1, [&](index_t lo, index_t hi) {
      for (index_t i = lo; i < hi; ++i) {
        const int l = static_cast<int>(i / 4), g = static_cast<int>(i % 4);
        const matrix_f wg = model::group_weight(w.layers[static_cast<std::size_t>(l)], g);
        quantized[static_cast<std::size_t>(i)] = std::make_shared<const rotquant::quantized_linear>(
            rc->make(inputs[static_cast<std::size_t>(l)][static_cast<std::size_t>(g)], wg, l, g,
                     matrix_f()));
      }
    });
  }
  out.has_kernels = true;
  for (int l = 0; l < w.cfg.layers; ++l)
    for (int g = 0; g < 4; ++g) {
      const auto& q = quantized[static_cast<std::size_t>(l * 4 + g)];
      out.has_kernels = out.has_kernels && q->has_kernel();
      out.weight_bytes +=
          q->has_kernel()
              ? static_cast<double>(q->packed().data.size() + q->packed().scales.size() * 4)
              : static_cast<double>(q->weight_codes().codes.size() +
                                    q->weight_codes().scales.size() * 4 +
                                    q->weight_codes().zero_points.size() * 4);
      m.blocks[static_cast<std::size_t>(l)].lin[static_cast<std::size_t>(g)] =
          std::make_shared<quantized_adapter>(q, out.kernels, weights_only);
    }
  out.calib_s = std::chrono::duration<double>(clock_type::now() - t0).count();
  return out;
}

}  // namespace llama
