// SPDX-License-Identifier: Apache-2.0
// llama_eval.cpp: rotquant-llama-eval, the end-to-end table. Quantizes a LLaMA-architecture
// model (default: the shipped austen-llama) to W4A4 with every recipe of llama_recipes.hpp and
// prints per-byte perplexity (fake quantization and, where the format has one, the packed
// kernels), the change vs float32, calibration time, prefill and decode throughput vs float32,
// the KV cache's bytes per token and weight memory. rtn, quarot, dfrot and duquant also get
// W4A4KV4 rows (QuaRot's INT4 K and V rules at clip 0.95), and quarot a KV4 row without the
// online Q/K Hadamard (the ablation).
#include <sys/resource.h>
#include <rotquant/core/cpu.hpp>
#include <rotquant/core/dispatch.hpp>
#include <rotquant/version.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <sstream>

#include "llama_model.hpp"
#include "llama_recipes.hpp"

namespace {

using clock_type = std::chrono::steady_clock;
using rotquant::index_t;
using rotquant::matrix_f;

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

double perplexity_and_rate(const llama::model& m, const std::string& text, double& tokens_per_s) {
  const auto t0 = clock_type::now();
  const double p = llama::perplexity(m, text, 256, 0, nullptr);
  const double s = seconds_since(t0);
  const double windows = std::ceil(static_cast<double>(text.size()) / 255.0);
  tokens_per_s = (static_cast<double>(text.size()) + windows) / s;
  return p;
}

/// Decode throughput on one thread: BOS and then `ctx - 1` bytes of `text`, one M = 1 step each
/// over the KV cache (teacher-forced, so every configuration runs the same tokens); the faster of
/// two runs, in tokens per second.
double decode_rate(const llama::model& m, const std::string& text, int ctx) {
  rotquant::scoped_default_executor serial(nullptr);
  double best = 0;
  for (int run = 0; run < 2; ++run) {
    auto state = m.start();
    const auto t0 = clock_type::now();
    m.step({m.cfg.bos}, state);
    for (int i = 0; i + 1 < ctx && static_cast<std::size_t>(i) < text.size(); ++i)
      m.step({static_cast<unsigned char>(text[static_cast<std::size_t>(i)])}, state);
    best = std::max(best, static_cast<double>(state.size()) / seconds_since(t0));
  }
  return best;
}

std::string fmt(double v, int prec) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", prec, v);
  return buf;
}

struct row_result {
  std::string name, bits, weights, kv;
  double ppl_fake = 0, ppl_kernel = 0, calib_s = 0, tps_fake = 0, tps_kernel = 0, decode_tps = 0;
  double kv_bytes = 0, weight_mb = 0;
  bool kernels = false;
  std::string method() const { return name.substr(0, name.find('/')); }
  double best() const { return kernels ? ppl_kernel : ppl_fake; }
};

/// One row: the model at its current KV setting, fake quantization and (when every layer has
/// one) the kernels; decode throughput on the kernels where they exist.
row_result evaluate(llama::quantized_model& q, const std::string& kv, const std::string& text,
                    bool decode) {
  row_result r;
  r.name = q.recipe.name;
  r.bits = q.recipe.bits;
  r.weights = q.recipe.name == "float32" ? "-" : q.recipe.gptq ? "gptq" : "rtn";
  r.kv = kv;
  r.calib_s = q.calib_s;
  r.weight_mb = q.weight_bytes / 1e6;
  r.kv_bytes = q.m.start().caches.front().bytes_per_token() * q.m.cfg.layers;
  q.use_kernels(false);
  r.ppl_fake = perplexity_and_rate(q.m, text, r.tps_fake);
  if (q.has_kernels) {
    q.use_kernels(true);
    r.kernels = true;
    r.ppl_kernel = perplexity_and_rate(q.m, text, r.tps_kernel);
  }
  if (decode) r.decode_tps = decode_rate(q.m, text, q.m.cfg.max_positions);
  q.use_kernels(false);
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir = "examples/data/austen-llama";
  std::string text_path;
  // Default: the demo (one seed, first 16 KiB: about two minutes on 2 cores). --full: the
  // acceptance run (whole text, three seeds).
  int threads = 2, calib_seqs = 16;  // GPTQ's Hessian rows: sequences of BOS + 255 bytes
  std::size_t max_bytes = 16384;
  bool check = false, kv_rows = true;
  llama::recipe_options opt;
  std::vector<std::string> only;  // recipe name prefixes to run (empty = all)
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto next = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument("missing value after " + a);
        return argv[++i];
      };
      if (a == "--model")
        dir = next();
      else if (a == "--text")
        text_path = next();
      else if (a == "--seeds")
        opt.seeds = std::stoi(next());
      else if (a == "--threads")
        threads = std::stoi(next());
      else if (a == "--bytes")
        max_bytes = static_cast<std::size_t>(std::stoll(next()));
      else if (a == "--full")
        opt.seeds = 3, max_bytes = 0;
      else if (a == "--check")
        check = true;
      else if (a == "--verbose")
        opt.verbose = true;
      else if (a == "--no-w-clip")
        opt.w_clip = false;
      else if (a == "--no-kv")
        kv_rows = false;
      else if (a == "--calib-seqs")
        calib_seqs = std::stoi(next());
      else if (a == "--dfrot-alpha")
        opt.dfrot_alpha = std::stod(next());
      else if (a == "--dfrot-steps")
        opt.dfrot_steps = std::stoi(next());
      else if (a == "--dfrot-rule")
        opt.dfrot_rule = next();
      else if (a == "--version") {
        std::printf("rotquant-llama-eval %s\n", ROTQUANT_VERSION_STRING);
        return 0;
      } else if (a == "--only") {
        std::stringstream list(next());
        for (std::string n; std::getline(list, n, ',');) only.push_back(n);
      } else {
        std::printf(
            "usage: rotquant-llama-eval [--model DIR] [--text FILE] [--seeds N] [--threads N]\n"
            "                           [--bytes N (0 = all)] [--full] [--check] [--no-kv]\n"
            "                           [--only PRESET[,PRESET...]] [--verbose]\n"
            "                           [--dfrot-alpha A (100)] [--dfrot-steps N (100)]\n"
            "                           [--dfrot-rule released|mistral|magnitude] [--no-w-clip]\n"
            "                           [--calib-seqs N (16)]\n"
            "  default: 1 seed on the first 16384 bytes; --full: 3 seeds on the whole text;\n"
            "  --check: exit 1 unless every perplexity is finite, fake quant and kernels agree\n"
            "  within 0.2%%, every rotation preset beats round-to-nearest and stays within\n"
            "  0.112 of float32, every rotation preset's KV4 row is within 0.03 of its KV16\n"
            "  row and quarot's KV4 without the Q/K Hadamard scores worse than with it (means\n"
            "  over the seeds) and, with 3+ seeds, DuQuant and DFRot average <= QuaRot;\n"
            "  --no-kv: no KV4 rows; --verbose: DFRot's massive/normal error report on stderr;\n"
            "  --no-w-clip: QuaRot/DFRot weights at clip 1.0 instead of QuaRot's --w_clip search;\n"
            "  --calib-seqs: sequences (BOS + 255 bytes) whose rows GPTQ's Hessians collect: the\n"
            "  two of calib/tokens.npy, then windows spread evenly over the text file (rotations\n"
            "  and quantizer fits calibrate on the two shipped sequences in every row);\n"
            "  *-gptq rows: GPTQ weights (block 128, percdamp 0.01), calibrated layer by layer.\n");
        return a == "--help" ? 0 : 2;
      }
    }
    if (opt.seeds < 1 || opt.seeds > 100)
      throw std::invalid_argument("--seeds: " + std::to_string(opt.seeds) + " is not in 1..100");
    if (threads < 1 || threads > 256)
      throw std::invalid_argument("--threads: " + std::to_string(threads) + " is not in 1..256");
    if (text_path.empty()) text_path = dir + "/persuasion_first64k.txt";
    std::ifstream in(text_path, std::ios::binary);
    if (!in) throw rotquant::io::io_error("cannot open '" + text_path + "'");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    if (max_bytes && max_bytes < text.size()) text.resize(max_bytes);
    const llama::weights base = llama::weights::load(dir);
    const auto calib = llama::calibration_set::load(dir, text_path, calib_seqs, base.cfg.bos);
    rotquant::thread_pool_executor pool(threads);
    rotquant::set_default_executor(&pool);

    std::printf(
        "rotquant %s  model %s (hidden %d, layers %d, ffn %d)  text %zu bytes  threads %d\n",
        rotquant::version.string, dir.c_str(), base.cfg.hidden, base.cfg.layers,
        base.cfg.intermediate, text.size(), threads);
    std::printf("kernel path: %s   calibration: %zu x %zu tokens (GPTQ: %zu x %zu)\n\n",
                rotquant::to_string(rotquant::active_isa()), calib.seqs.size(),
                calib.seqs[0].size(), calib.gptq_seqs.size(), calib.seqs[0].size());

    std::vector<row_result> rows;
    {
      auto f = llama::quantize_model("float32", base, calib, opt);
      rows.push_back(evaluate(f, "16", text, true));
    }
    const double float_ppl = rows[0].ppl_fake;
    for (const auto& info : llama::list_recipes(opt)) {
      bool wanted = only.empty();
      for (const auto& o : only) wanted = wanted || info.name.compare(0, o.size(), o) == 0;
      if (!wanted) continue;
      auto q = llama::quantize_model(info.name, base, calib, opt);
      rows.push_back(evaluate(q, "16", text, true));
      const std::string m = info.method();
      if (kv_rows && (m == "rtn" || m == "quarot" || m == "dfrot" || m == "duquant")) {
        q.set_kv(4);
        rows.push_back(evaluate(q, "4", text, true));
        if (m == "quarot") {
          q.set_kv(4, 0.95f, false);
          rows.push_back(evaluate(q, "4 noKH", text, false));
        }
        q.set_kv(16);
      }
      std::fprintf(stderr, "  %-14s done (%.1f s calibration)\n", info.name.c_str(), q.calib_s);
    }

    std::printf("%-16s %-14s %-5s %-6s %8s %9s %8s %7s %8s %8s %8s %7s %7s\n", "preset", "bits",
                "w", "kv", "ppl", "ppl(kern)", "delta", "calib s", "tok/s fq", "tok/s kn",
                "dec tok/s", "KV B/t", "wts MB");
    // Means over the seeds of each (method, kv) pair, on the kernels where they exist.
    std::map<std::string, std::vector<double>> by_method;
    for (const auto& r : rows) {
      std::printf("%-16s %-14s %-5s %-6s %8s %9s %+8.4f %7s %8s %8s %8s %7s %7s\n", r.name.c_str(),
                  r.bits.c_str(), r.weights.c_str(), r.kv.c_str(), fmt(r.ppl_fake, 4).c_str(),
                  r.kernels ? fmt(r.ppl_kernel, 4).c_str() : "-", r.best() - float_ppl,
                  r.name == "float32" ? "-" : fmt(r.calib_s, 2).c_str(), fmt(r.tps_fake, 0).c_str(),
                  r.kernels ? fmt(r.tps_kernel, 0).c_str() : "-",
                  r.decode_tps > 0 ? fmt(r.decode_tps, 0).c_str() : "-", fmt(r.kv_bytes, 0).c_str(),
                  fmt(r.weight_mb, 2).c_str());
      by_method[r.method() + " KV" + r.kv].push_back(r.ppl_fake);
    }
    const auto mean_of = [&](const std::string& key) {
      const auto it = by_method.find(key);
      if (it == by_method.end() || it->second.empty()) return 0.0;
      double sum = 0;
      for (double x : it->second) sum += x;
      return sum / static_cast<double>(it->second.size());
    };
    if (opt.seeds > 1) {
      std::printf("\nmeans over %d seeds (fake-quant ppl):\n", opt.seeds);
      for (const auto& kv : by_method) {
        if (kv.second.size() < 2) continue;
        double lo = 1e30, hi = -1e30;
        for (double v : kv.second) lo = std::min(lo, v), hi = std::max(hi, v);
        std::printf("  %-22s %.4f [%.4f, %.4f]\n", kv.first.c_str(), mean_of(kv.first), lo, hi);
      }
    }
    if (check) {
      // The reduced demo run by ctest: coarse truths that hold on any slice of the text.
      const double rtn = mean_of("rtn KV16");
      std::vector<std::string> failures;
      if (!std::isfinite(float_ppl) || float_ppl <= 1.0) failures.push_back("float32 perplexity");
      for (const auto& r : rows) {
        const std::string label = r.name + " KV" + r.kv;
        if (!std::isfinite(r.ppl_fake) || r.ppl_fake < float_ppl * 0.99)
          failures.push_back(label + ": perplexity " + fmt(r.ppl_fake, 4));
        if (r.kernels && std::fabs(r.ppl_kernel / r.ppl_fake - 1.0) > 0.002)
          failures.push_back(label + ": kernels " + fmt(r.ppl_kernel, 4) + " vs fake quant " +
                             fmt(r.ppl_fake, 4));
        if (r.kv != "16") continue;
        const std::string m = r.method();
        const bool rotation = m.rfind("quarot", 0) == 0 || m.rfind("duquant", 0) == 0 ||
                              m.rfind("dfrot", 0) == 0 || m.rfind("hqdit", 0) == 0;
        if (rotation && rtn > 0 && !(r.ppl_fake < rtn))
          failures.push_back(label + ": " + fmt(r.ppl_fake, 4) + " not below rtn " + fmt(rtn, 4));
        // The acceptance bound W4A4 <= 3.95 against float32 3.838, as a delta for any slice.
        if (rotation && r.ppl_fake - float_ppl > 0.112)
          failures.push_back(label + ": " + fmt(r.ppl_fake - float_ppl, 4) +
                             " above float32 (more than 0.112)");
      }
      // The INT4 cache: within 0.03 of KV16 for every rotation preset; quarot's Q/K Hadamard
      // measurably helps it.
      for (const char* m : {"quarot", "dfrot", "duquant"}) {
        const std::string k16 = std::string(m) + " KV16", k4 = std::string(m) + " KV4";
        if (by_method.count(k4) && mean_of(k4) - mean_of(k16) > 0.03)
          failures.push_back(k4 + ": mean " + fmt(mean_of(k4), 4) + " more than 0.03 above " + k16 +
                             "'s " + fmt(mean_of(k16), 4));
      }
      if (by_method.count("quarot KV4 noKH") &&
          !(mean_of("quarot KV4 noKH") > mean_of("quarot KV4") + 1e-3))
        failures.push_back("quarot KV4 without the Q/K Hadamard: mean " +
                           fmt(mean_of("quarot KV4 noKH"), 4) + " not above " +
                           fmt(mean_of("quarot KV4"), 4) + " + 0.001 with it");
      // With three or more seeds: DuQuant and DFRot at least as good as QuaRot on average, and
      // GPTQ weights at or below the same recipe with RTN weights.
      if (opt.seeds >= 3) {
        for (const char* m : {"duquant", "dfrot"})
          if (by_method.count(std::string(m) + " KV16") && by_method.count("quarot KV16") &&
              mean_of(std::string(m) + " KV16") > mean_of("quarot KV16"))
            failures.push_back(std::string(m) + ": mean " +
                               fmt(mean_of(std::string(m) + " KV16"), 4) + " above quarot's " +
                               fmt(mean_of("quarot KV16"), 4));
        for (const char* m : {"quarot", "dfrot"}) {
          const std::string k = std::string(m) + " KV16", g = std::string(m) + "-gptq KV16";
          if (by_method.count(g) && by_method.count(k) && mean_of(g) > mean_of(k))
            failures.push_back(g + ": mean " + fmt(mean_of(g), 4) + " above " + k + "'s " +
                               fmt(mean_of(k), 4));
        }
      }
      if (rows.size() < 2) failures.push_back("no preset ran");
      for (const auto& f : failures) std::fprintf(stderr, "check failed: %s\n", f.c_str());
      if (!failures.empty()) return 1;
      std::printf("\ncheck: passed (%zu rows)\n", rows.size());
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    std::printf(
        "\nperplexity: per byte, windows of BOS + 255 bytes, every byte predicted once.\n"
        "kv: the KV cache (16 = float32; 4 = INT4 K and V per token and head, asymmetric, clip\n"
        "0.95, QuaRot's rules; noKH = without the online Q/K Hadamard); KV B/t: its bytes per\n"
        "token over all layers.\n"
        "tok/s: prefill of 256-token windows (forward + scoring, %d threads), fq = fake\n"
        "quantization in float, kn = packed W4A4 kernels (%s path); float32 runs Eigen.\n"
        "dec tok/s: one thread, M = 1 steps over the KV cache up to 256 positions (kernels where\n"
        "the row has them). peak RSS %.1f MB.\n",
        threads, rotquant::to_string(rotquant::active_isa()),
        static_cast<double>(ru.ru_maxrss) / 1024.0);
    rotquant::set_default_executor(nullptr);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rotquant-llama-eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
