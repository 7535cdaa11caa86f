// SPDX-License-Identifier: Apache-2.0
// rotquant-bench: reads Google Benchmark JSON files of rotquant's benchmarks (benchmarks/bm_*,
// run with --benchmark_out=FILE or --benchmark_format=json) and prints each rotquant run next
// to the peer run of the same shape (Eigen fp32 / oneDNN for the GEMM, the textbook FWHT, a
// dense rotation and memcpy for the Hadamard transform, ...), with the ratio peer / rotquant.
//
// Benchmark names are "BM_base/arg/.../modifier": named arguments "M:2048" or "isa:avx2" (what
// the benchmarks write), positional ones (files of older builds, named here per benchmark),
// modifiers "real_time", "iterations:1", ... The time compared is the real time of UseRealTime
// runs and the CPU time otherwise. With --benchmark_repetitions=N the median stands for the run
// (the median aggregate, else the median of the repetitions in the file), the spread is the
// repetitions' min..max and the cv aggregate (stddev / mean), and peer/rotquant is the ratio of
// the medians.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "rotquant/io/json.hpp"

namespace {

using rotquant::io::json_value;
const char* const kTool = "rotquant-bench";

void print_usage() {
  std::printf(
      "usage: rotquant-bench [options] FILE.json...\n"
      "\n"
      "Prints rotquant's Google Benchmark results (bm_gemm, bm_hadamard, bm_quantize,\n"
      "bm_duquant, bm_dfrot, bm_gptq; JSON from --benchmark_out=FILE --benchmark_out_format=json\n"
      "or --benchmark_format=json) as tables grouped by benchmark family: shape, rotquant run\n"
      "and time, peer run and time, peer/rotquant (above 1: rotquant is faster) and the\n"
      "counters.\n"
      "\n"
      "With --benchmark_repetitions=N (also with --benchmark_report_aggregates_only=true) each\n"
      "side shows its median and spread (min..max of the repetitions and cv = stddev / mean;\n"
      "the cv alone when only aggregates were written) and peer/rotquant is the ratio of the\n"
      "medians. This compares rotquant with its peer within one run; to compare two runs (before\n"
      "and after a change, or two machines) use Google Benchmark's own tools/compare.py\n"
      "(compare.py benchmarks BEFORE.json AFTER.json, in Google Benchmark's source tree), which\n"
      "also tests the difference for significance.\n"
      "\n"
      "options:\n"
      "  --family TEXT  only families whose title contains TEXT\n"
      "  -h, --help     this text\n"
      "exit status: 0 done, 1 unreadable or malformed file, 2 usage error\n");
}

// ---- one benchmark run ------------------------------------------------------------------------

struct run_info {
  std::string name, base, label;
  std::vector<std::pair<std::string, std::string>> args;  // in name order
  double time_ns = 0;   // the run's time; with repetitions their median
  double raw_time = 0;  // the time field as written (a fraction for the cv aggregate)
  bool real_time = false;
  std::map<std::string, double> counters;
  // With repetitions: how many ran, the times of those in the file, the cv aggregate (or -1).
  int repetitions = 1;
  std::vector<double> samples_ns;
  double cv = -1;

  bool repeated() const { return repetitions > 1 || samples_ns.size() > 1 || cv >= 0; }

  const std::string* arg(const std::string& key) const {
    for (const auto& kv : args)
      if (kv.first == key) return &kv.second;
    return nullptr;
  }
};

// Names of positional arguments, by benchmark base name (or prefix ending in '<' or '_*').
std::vector<std::string> positional_names(const std::string& base) {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> table = {
      {"BM_rotquant", {"n", "rows", "isa"}},
      {"BM_textbook", {"n", "rows"}},
      {"BM_memcpy", {"n", "rows"}},
      {"BM_eigen_dense", {"n", "rows"}},
      {"BM_w4a4_decode_cold", {"N"}},
      {"BM_stream_read_cold", {"N"}},
      {"BM_hadamard_then_quantize", {"n"}},
      {"BM_duquant_*", {"C"}},
      {"BM_dfrot_step", {"C", "rows", "sample", "thr"}},
      {"BM_dfrot_part<", {"C", "rows", "thr"}},
      {"BM_peer_eigen_gemm", {"C", "rows"}}};
  for (const auto& e : table) {
    const std::string& k = e.first;
    if (k.back() == '*'   ? base.compare(0, k.size() - 1, k, 0, k.size() - 1) == 0
        : k.back() == '<' ? base.compare(0, k.size(), k) == 0
                          : base == k)
      return e.second;
  }
  return {};
}

double to_ns(double v, const std::string& unit, const std::string& where) {
  if (unit == "ns") return v;
  if (unit == "us") return v * 1e3;
  if (unit == "ms") return v * 1e6;
  if (unit == "s") return v * 1e9;
  throw rotquant::io::io_error(where + ": unknown time_unit '" + unit + "'");
}

bool is_standard_key(const std::string& k) {
  static const char* const keys[] = {"name",
                                     "family_index",
                                     "per_family_instance_index",
                                     "run_name",
                                     "run_type",
                                     "repetitions",
                                     "repetition_index",
                                     "threads",
                                     "iterations",
                                     "real_time",
                                     "cpu_time",
                                     "time_unit",
                                     "label",
                                     "error_occurred",
                                     "error_message",
                                     "aggregate_name",
                                     "aggregate_unit",
                                     "big_o",
                                     "rms"};
  for (const char* s : keys)
    if (k == s) return true;
  return false;
}

const json_value& member(const json_value& o, const char* key, json_value::kind kind,
                         const std::string& where) {
  const json_value* v = o.find(key);
  if (!v || v->type != kind)
    throw rotquant::io::io_error(where + ": '" + key + "' is missing or has the wrong type");
  return *v;
}

// One JSON entry; `name` is its run name (an aggregate's without the "_median" suffix).
run_info parse_run(const json_value& b, const std::string& name, const std::string& where) {
  run_info r;
  r.name = name;
  if (const json_value* l = b.find("label"))
    if (l->type == json_value::kind::string) r.label = l->string;
  // Split the name into base, named / positional arguments and modifiers.
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= r.name.size(); ++i)
    if (i == r.name.size() || r.name[i] == '/') {
      parts.push_back(r.name.substr(start, i - start));
      start = i + 1;
    }
  r.base = parts.front();
  const std::vector<std::string> names = positional_names(r.base);
  std::size_t positional = 0;
  for (std::size_t i = 1; i < parts.size(); ++i) {
    const std::string& p = parts[i];
    const std::size_t colon = p.find(':');
    if (p == "real_time" || p == "manual_time") {
      r.real_time = true;
    } else if (colon != std::string::npos) {
      const std::string key = p.substr(0, colon);
      if (key == "iterations" || key == "repeats" || key == "min_time" || key == "threads" ||
          key == "min_warmup_time")
        continue;
      r.args.emplace_back(key, p.substr(colon + 1));
    } else {
      r.args.emplace_back(
          positional < names.size() ? names[positional] : "arg" + std::to_string(positional), p);
      ++positional;
    }
  }
  const std::string unit = member(b, "time_unit", json_value::kind::string, where).string;
  const double t =
      member(b, r.real_time ? "real_time" : "cpu_time", json_value::kind::number, where).number;
  r.raw_time = t;
  r.time_ns = to_ns(t, unit, where);
  for (const auto& kv : b.object)
    if (!is_standard_key(kv.first) && kv.second.type == json_value::kind::number)
      r.counters[kv.first] = kv.second.number;
  return r;
}

// ---- families: which run is rotquant's, which its peers, which arguments form the shape ------

struct peer_rule {
  const char* base;
  const char* label;
};

struct family_rule {
  const char* title;
  const char* base;  // exact base name, or a prefix when it ends with '*'
  std::vector<const char*> shape;
  std::vector<peer_rule> peers;
};

const std::vector<family_rule>& rules() {
  static const std::vector<peer_rule> gemm_peers = {{"BM_eigen_f32", "Eigen fp32"},
                                                    {"BM_onednn_u8s8s32", "oneDNN int8"}};
  static const std::vector<family_rule> r = {
      {"W4A4 GEMM qsi4cx x qsi4dx, K = 4096 (bm_gemm)",
       "BM_w4a4_qsi4cx_qsi4dx",
       {"M", "N"},
       gemm_peers},
      {"GEMM, other weight x activation formats, K = 4096 (bm_gemm)",
       "BM_formats",
       {"M", "N"},
       gemm_peers},
      {"W4A4 decode with cold weights (bm_gemm)",
       "BM_w4a4_decode_cold",
       {"N"},
       {{"BM_stream_read_cold", "read of the same bytes"}}},
      {"decode attention, one head group (1 KV head x 4 query heads, d = 128) (bm_attention)",
       "BM_attention",
       {"ctx"},
       {{"BM_eigen_attention", "Eigen float32"}}},
      {"fast Hadamard transform (bm_hadamard)",
       "BM_rotquant",
       {"n", "rows"},
       {{"BM_textbook", "textbook FWHT"},
        {"BM_eigen_dense", "dense rotation"},
        {"BM_memcpy", "memcpy"}}},
      {"activation quantize + pack, 2048 x 4096 (bm_quantize)",
       "BM_quantize",
       {},
       {{"BM_copy_f32", "plain copy"}}},
      {"activation quantize + pack, 2048 x 4096, NVFP4 with a static tensor scale (bm_quantize)",
       "BM_quantize_nvfp4_static",
       {},
       {{"BM_copy_f32", "plain copy"}}},
      {"activation quantize + pack, 2048 x 4096, each SIMD path on one thread (bm_quantize)",
       "BM_quantize_path",
       {},
       {{"BM_copy_f32", "plain copy"}}},
      {"fused Hadamard + NVFP4 with a static tensor scale, 2048 x 4096 (bm_quantize)",
       "BM_hadamard_quantize_nvfp4_static",
       {"n"},
       {{"BM_copy_f32", "plain copy"}}},
      {"fused Hadamard + quantize, 2048 x 4096 (bm_quantize)",
       "BM_hadamard_quantize_fused",
       {"n"},
       {{"BM_hadamard_then_quantize", "unfused H + qsi4dx"},
        {"BM_hadamard_then_plain", "H + plain INT4 loop"},
        {"BM_copy_f32", "plain copy"}}},
      {"per-token INT4 quantize, 2048 x 4096, one thread, vs the plain loop (bm_quantize)",
       "BM_quantize_vs_plain",
       {},
       {{"BM_plain_int4_loop", "plain INT4 loop"}}},
      {"DuQuant transform, LLM-like activation, T = 2048 (bm_duquant)",
       "BM_duquant_fast_llm",
       {"C"},
       {{"BM_duquant_straightforward_llm", "straightforward search"}}},
      {"DuQuant transform, Gaussian activation, T = 2048 (bm_duquant)",
       "BM_duquant_fast_gauss",
       {"C"},
       {{"BM_duquant_straightforward_gauss", "straightforward search"}}},
      {"DFRot (bm_dfrot)",
       "BM_dfrot_part<part::multiply_rows>",
       {"C", "rows"},
       {{"BM_peer_eigen_gemm", "Eigen GEMM"}}},
      {"DFRot (bm_dfrot)",
       "BM_dfrot_part<part::cross_product>",
       {"C", "rows"},
       {{"BM_peer_eigen_gemm", "Eigen GEMM"}}},
      {"DFRot (bm_dfrot)", "BM_dfrot_*", {"C", "rows"}, {}},
      {"GPTQ of one n x n layer, Hessian included, INT4 per channel with --w_clip (bm_gptq)",
       "BM_gptq_layer",
       {"n", "rows"},
       {{"BM_gptq_straightforward", "column-by-column Eigen"}}},
      {"GPTQ, the parts of a layer (bm_gptq)", "BM_gptq_*", {"n", "rows"}, {}}};
  return r;
}

// A peer's base name (never listed as a rotquant run; unpaired, it goes to "other benchmarks").
bool is_peer_base(const std::string& base) {
  for (const auto& rule : rules())
    for (const auto& p : rule.peers)
      if (base == p.base) return true;
  return false;
}

bool base_matches(const char* pattern, const std::string& base) {
  const std::string p(pattern);
  if (!p.empty() && p.back() == '*') return base.compare(0, p.size() - 1, p, 0, p.size() - 1) == 0;
  return base == p;
}

// The shape arguments of r, "M=2048 N=4096" (all arguments of a run without a rule).
std::string shape_of(const run_info& r, const std::vector<const char*>& shape) {
  std::string s;
  for (const char* k : shape)
    if (const std::string* v = r.arg(k)) s += (s.empty() ? "" : " ") + std::string(k) + "=" + *v;
  return s.empty() ? "-" : s;
}

// The other arguments (and the label): what tells apart runs of one shape.
std::string variant_of(const run_info& r, const std::vector<const char*>& shape, bool with_base,
                       bool with_label = true) {
  std::string s = with_base ? r.base.substr(r.base.compare(0, 3, "BM_") == 0 ? 3 : 0) : "";
  for (const auto& kv : r.args) {
    bool in_shape = false;
    for (const char* k : shape) in_shape = in_shape || kv.first == k;
    if (!in_shape) s += (s.empty() ? "" : " ") + kv.first + "=" + kv.second;
  }
  if (with_label && !r.label.empty()) s += (s.empty() ? "" : " ") + ("[" + r.label + "]");
  return s.empty() ? "-" : s;
}

// Peer p has the shape of r: every shape argument both runs have agrees.
bool same_shape(const run_info& r, const run_info& p, const std::vector<const char*>& shape) {
  for (const char* k : shape) {
    const std::string *a = r.arg(k), *b = p.arg(k);
    if (a && b && *a != *b) return false;
  }
  return true;
}

// A time in the unit that suits `scale_ns` (ns, us, ms, s): divisor, unit, printf format.
struct time_unit {
  double div;
  const char *unit, *fmt;
};
time_unit unit_for(double scale_ns) {
  if (scale_ns < 1e3) return {1.0, "ns", "%.1f"};
  if (scale_ns < 1e6) return {1e3, "us", "%.2f"};
  if (scale_ns < 1e9) return {1e6, "ms", "%.2f"};
  return {1e9, "s", "%.3f"};
}

std::string format_time(double ns) {
  const time_unit u = unit_for(ns);
  return rqtool::format(u.fmt, ns / u.div) + " " + u.unit;
}

// "1.08..1.12 ms": both ends in the unit of the larger.
std::string format_range(double lo_ns, double hi_ns) {
  const time_unit u = unit_for(hi_ns);
  return rqtool::format(u.fmt, lo_ns / u.div) + ".." + rqtool::format(u.fmt, hi_ns / u.div) + " " +
         u.unit;
}

// The spread of a repeated run: min..max of its repetitions in the file and its cv (the cv
// aggregate, else stddev / mean of those repetitions); "-" for a run without repetitions.
std::string spread_of(const run_info& r) {
  std::string s;
  double cv = r.cv;
  if (r.samples_ns.size() > 1) {
    const auto mm = std::minmax_element(r.samples_ns.begin(), r.samples_ns.end());
    s = format_range(*mm.first, *mm.second);
    if (cv < 0) {
      double mean = 0, var = 0;
      for (double t : r.samples_ns) mean += t;
      mean /= static_cast<double>(r.samples_ns.size());
      for (double t : r.samples_ns) var += (t - mean) * (t - mean);
      var /= static_cast<double>(r.samples_ns.size() - 1);
      if (mean > 0) cv = std::sqrt(var) / mean;
    }
  }
  if (cv >= 0) s += (s.empty() ? "" : " ") + rqtool::format("cv %.1f%%", 100.0 * cv);
  return s.empty() ? "-" : s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A counter as the benchmarks write them: "<what>_per_second" rates in base units (bytes, ops,
// flops, el_log2n, ...) with an SI prefix, "time_per_<what>" in seconds (from an inverted
// rate), anything else as its plain number, its unit (if any) in its name (step_s,
// x100_steps_min, err_diff_ppm; x_copy, a ratio). with_name: prefix a plain number with its name.
std::string format_counter(const std::string& name, double v, bool with_name = true) {
  static const std::string rate = "_per_second", per = "time_per_";
  if (ends_with(name, rate) && name.size() > rate.size()) {
    const std::string what = name.substr(0, name.size() - rate.size());
    const std::string unit = what == "bytes"   ? "B/s"
                             : what == "ops"   ? "OP/s"
                             : what == "flops" ? "FLOP/s"
                                               : " " + what + "/s";
    const double a = std::fabs(v);
    if (a >= 1e12) return rqtool::format("%.2f T", v / 1e12) + unit;
    if (a >= 1e9) return rqtool::format("%.2f G", v / 1e9) + unit;
    if (a >= 1e6) return rqtool::format("%.2f M", v / 1e6) + unit;
    if (a >= 1e3) return rqtool::format("%.2f k", v / 1e3) + unit;
    return rqtool::format("%.4g ", v) + unit;
  }
  if (name.compare(0, per.size(), per) == 0 && name.size() > per.size())
    return format_time(v * 1e9) + "/" + name.substr(per.size());
  return (with_name ? name + " " : std::string()) + rqtool::format("%.4g", v);
}

// Counters of r, each followed by the peer's value of the same counter when it has one, then
// the counters only the peer has ("peer: x_straightforward 3.7").
std::string counters_of(const run_info& r, const run_info* peer) {
  std::string s;
  for (const auto& kv : r.counters) {
    s += (s.empty() ? "" : ", ") + format_counter(kv.first, kv.second);
    if (peer) {
      const auto it = peer->counters.find(kv.first);
      if (it != peer->counters.end())
        s += " (peer " + format_counter(kv.first, it->second, false) + ")";
    }
  }
  if (peer) {
    std::string only;
    for (const auto& kv : peer->counters)
      if (!r.counters.count(kv.first))
        only += (only.empty() ? "" : ", ") + format_counter(kv.first, kv.second);
    if (!only.empty()) s += (s.empty() ? "peer: " : "; peer: ") + only;
  }
  return s;
}

// ---- text tables -------------------------------------------------------------------------------

void print_table(const std::vector<std::string>& header, const std::vector<bool>& right,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w(header.size());
  for (std::size_t c = 0; c < header.size(); ++c) w[c] = header[c].size();
  for (const auto& r : rows)
    for (std::size_t c = 0; c < r.size(); ++c) w[c] = std::max(w[c], r[c].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string s = " ";
    for (std::size_t c = 0; c < cells.size(); ++c) {
      const bool last = c + 1 == cells.size();
      s += " " + (last && !right[c] ? cells[c] : rqtool::pad(cells[c], w[c], right[c]));
    }
    while (!s.empty() && s.back() == ' ') s.pop_back();
    std::printf("%s\n", s.c_str());
  };
  line(header);
  std::vector<std::string> rule;
  for (std::size_t c = 0; c < header.size(); ++c) rule.push_back(std::string(w[c], '-'));
  line(rule);
  for (const auto& r : rows) line(r);
}

// ---- one file
// ------------------------------------------------------------------------------------

std::string read_text(const std::string& path) {
  const std::vector<std::uint8_t> bytes = rotquant::io::detail::read_file(path);
  return std::string(bytes.begin(), bytes.end());
}

std::string size_string(double bytes) {
  if (bytes >= 1048576) return rqtool::format("%g MiB", bytes / 1048576);
  return rqtool::format("%g KiB", bytes / 1024);
}

void print_context(const json_value& root, const std::string& path, std::size_t runs) {
  const json_value* ctx = root.find("context");
  if (!ctx || ctx->type != json_value::kind::object)
    throw rotquant::io::io_error(path + ": no \"context\" object (not Google Benchmark JSON?)");
  auto str = [&](const char* k) {
    const json_value* v = ctx->find(k);
    return v && v->type == json_value::kind::string ? v->string : std::string("?");
  };
  auto number = [&](const char* k) {
    const json_value* v = ctx->find(k);
    return v && v->type == json_value::kind::number ? v->number : -1.0;
  };
  std::printf("%s: %zu runs of %s (%s, host %s)\n", path.c_str(), runs, str("executable").c_str(),
              str("date").c_str(), str("host_name").c_str());
  std::string cpu = rqtool::format("%g CPUs", number("num_cpus"));
  if (number("mhz_per_cpu") > 0) cpu += rqtool::format(" at %g MHz", number("mhz_per_cpu"));
  if (const json_value* s = ctx->find("cpu_scaling_enabled"))
    if (s->type == json_value::kind::boolean)
      cpu += s->boolean ? ", frequency scaling on (timings noisier)" : ", frequency scaling off";
  if (const json_value* caches = ctx->find("caches")) {
    std::string list;
    if (caches->type == json_value::kind::array)
      for (const auto& c : caches->array) {
        const json_value *type = c.find("type"), *level = c.find("level"), *size = c.find("size");
        if (!type || !level || !size || level->type != json_value::kind::number ||
            size->type != json_value::kind::number || type->type != json_value::kind::string)
          continue;
        const std::string t = type->string == "Data"          ? "d"
                              : type->string == "Instruction" ? "i"
                                                              : "";
        list += (list.empty() ? "" : ", ") + rqtool::format("L%g", level->number) + t + " " +
                size_string(size->number);
      }
    if (!list.empty()) cpu += "; caches " + list;
  }
  std::printf("  CPU: %s\n", cpu.c_str());
  std::string extra;
  if (const json_value* la = ctx->find("load_avg"))
    if (la->type == json_value::kind::array && !la->array.empty()) {
      extra += "load average";
      for (const auto& v : la->array)
        if (v.type == json_value::kind::number) extra += rqtool::format(" %.2f", v.number);
    }
  const std::string build = str("library_build_type");
  if (build != "?") extra += (extra.empty() ? "" : "; ") + ("benchmark library " + build);
  if (!extra.empty()) std::printf("  %s\n", extra.c_str());
}

// The runs of one file, one per run name: repetitions and aggregates folded into one run_info.
struct run_group {
  std::optional<run_info> first, median, mean;
  std::vector<double> samples_ns;
  double cv = -1;
  int repetitions = 1;
};

double median_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct table_row {
  std::vector<std::string> cells;  // shape, run, time, spread, peer, peer time, spread, ratio, ctr
  bool repeated = false;
};

// Prints rows without the two spread columns unless one of them is repeated.
void print_family(std::vector<std::string> header, std::vector<bool> right,
                  const std::vector<table_row>& rows, const std::vector<std::size_t>& spread_cols) {
  bool repeated = false;
  for (const auto& r : rows) repeated = repeated || r.repeated;
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) cells.push_back(r.cells);
  if (!repeated) {
    for (auto c = spread_cols.rbegin(); c != spread_cols.rend(); ++c) {
      header.erase(header.begin() + static_cast<std::ptrdiff_t>(*c));
      right.erase(right.begin() + static_cast<std::ptrdiff_t>(*c));
      for (auto& row : cells) row.erase(row.begin() + static_cast<std::ptrdiff_t>(*c));
    }
  } else {
    for (auto& h : header)
      if (h == "time")
        h = "median";
      else if (h == "peer time")
        h = "peer median";
  }
  print_table(header, right, cells);
}

void report_file(const std::string& path, const std::string& family_filter) {
  const json_value root = rotquant::io::parse_json(read_text(path), path);
  if (root.type != json_value::kind::object)
    throw rotquant::io::io_error(path + ": not a JSON object");
  const json_value& list = member(root, "benchmarks", json_value::kind::array, path);

  // Group the entries by run name: the repetitions (run_type "iteration") and the aggregates
  // (mean, median, stddev, cv) of one benchmark share it.
  std::vector<std::string> order;
  std::map<std::string, run_group> groups;
  std::map<std::string, std::string> errors;  // run name -> message
  std::vector<int> thread_counts;
  for (std::size_t i = 0; i < list.array.size(); ++i) {
    const json_value& b = list.array[i];
    const std::string where = path + ": benchmarks[" + std::to_string(i) + "]";
    if (b.type != json_value::kind::object)
      throw rotquant::io::io_error(where + " is not an object");
    const std::string name = member(b, "name", json_value::kind::string, where).string;
    std::string agg;
    if (const json_value* rt = b.find("run_type"))
      if (rt->type == json_value::kind::string && rt->string == "aggregate") {
        const json_value* an = b.find("aggregate_name");
        agg = an && an->type == json_value::kind::string ? an->string : "?";
      }
    std::string key = name;
    if (const json_value* rn = b.find("run_name"); rn && rn->type == json_value::kind::string)
      key = rn->string;
    else if (!agg.empty() && ends_with(key, "_" + agg))
      key.erase(key.size() - agg.size() - 1);  // files without run_name
    if (const json_value* e = b.find("error_occurred"))
      if (e->type == json_value::kind::boolean && e->boolean) {
        const json_value* m = b.find("error_message");
        errors[key] = m && m->type == json_value::kind::string ? m->string : "error";
        continue;
      }
    if (!agg.empty() && agg != "median" && agg != "mean" && agg != "stddev" && agg != "cv")
      continue;  // BigO, RMS and user-defined statistics
    if (const json_value* t = b.find("threads"))
      if (t->type == json_value::kind::number &&
          std::find(thread_counts.begin(), thread_counts.end(), static_cast<int>(t->number)) ==
              thread_counts.end())
        thread_counts.push_back(static_cast<int>(t->number));
    run_info r = parse_run(b, key, where);
    auto it = groups.find(key);
    if (it == groups.end()) {
      order.push_back(key);
      it = groups.emplace(key, run_group()).first;
    }
    run_group& g = it->second;
    if (const json_value* n = b.find("repetitions"); n && n->type == json_value::kind::number)
      g.repetitions = std::max(g.repetitions, static_cast<int>(n->number));
    if (agg.empty()) {
      g.samples_ns.push_back(r.time_ns);
      if (!g.first) g.first = std::move(r);
    } else if (agg == "median") {
      g.median = std::move(r);
    } else if (agg == "mean") {
      g.mean = std::move(r);
    } else if (agg == "cv") {
      g.cv = r.raw_time;
    }
  }
  std::vector<run_info> runs;
  bool any_repeated = false, any_samples = false;
  int max_repetitions = 1;
  for (const auto& k : order) {
    run_group& g = groups.at(k);
    run_info r;
    if (g.median) {
      r = *g.median;
    } else if (g.first && g.samples_ns.size() > 1) {
      r = *g.first;
      r.time_ns = median_of(g.samples_ns);
    } else if (g.first) {
      r = *g.first;
    } else if (g.mean) {
      r = *g.mean;
    } else {
      continue;  // only a stddev / cv entry
    }
    r.repetitions = g.repetitions;
    r.samples_ns = g.samples_ns;
    r.cv = g.cv;
    any_repeated = any_repeated || r.repeated();
    any_samples = any_samples || r.samples_ns.size() > 1;
    max_repetitions = std::max(max_repetitions, r.repetitions);
    runs.push_back(std::move(r));
  }

  print_context(root, path, runs.size());
  std::string threads;
  for (int t : thread_counts) threads += (threads.empty() ? "" : ", ") + std::to_string(t);
  std::printf("  benchmark threads: %s (the thr= argument, where shown, is the run's own pool)\n",
              threads.empty() ? "?" : threads.c_str());
  if (!errors.empty()) {
    std::map<std::string, int> why;
    for (const auto& e : errors) ++why[e.second];
    std::string s;
    for (const auto& w : why)
      s += (s.empty() ? "" : ", ") + std::to_string(w.second) + " " + w.first;
    std::printf("  skipped runs with errors: %s\n", s.c_str());
  }
  std::printf(
      "  time: real time for UseRealTime runs, CPU time otherwise; peer/rotquant above 1 means "
      "rotquant is faster\n");
  if (any_repeated)
    std::printf(
        "  repetitions: %d; median = of the repetitions, spread = %s, peer/rotquant = ratio of "
        "the medians\n",
        max_repetitions,
        any_samples ? "their min..max and cv (stddev / mean)"
                    : "cv (stddev / mean; the file holds the aggregates only)");

  // Assign every run to the first rule whose rotquant base matches; peers are looked up by shape.
  std::vector<bool> used(runs.size(), false);
  std::vector<std::string> titles;
  std::map<std::string, std::vector<table_row>> table;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const run_info& r = runs[i];
    if (is_peer_base(r.base)) continue;
    for (const auto& rule : rules()) {
      if (!base_matches(rule.base, r.base)) continue;
      used[i] = true;
      const bool prefix = std::string(rule.base).back() == '*';
      const std::string shape = shape_of(r, rule.shape),
                        variant = variant_of(r, rule.shape, prefix);
      auto& rows = table[rule.title];
      if (std::find(titles.begin(), titles.end(), rule.title) == titles.end())
        titles.push_back(rule.title);
      bool any = false;
      for (const auto& pr : rule.peers)
        for (std::size_t j = 0; j < runs.size(); ++j) {
          const run_info& p = runs[j];
          if (p.base != pr.base || !same_shape(r, p, rule.shape)) continue;
          used[j] = true;
          any = true;
          std::string peer = pr.label;
          const std::string pv = variant_of(p, rule.shape, false, false);
          if (pv != "-") peer += " " + pv;
          rows.push_back(
              {{shape, variant, format_time(r.time_ns), spread_of(r), peer, format_time(p.time_ns),
                spread_of(p), rqtool::format("%.2fx", p.time_ns / r.time_ns), counters_of(r, &p)},
               r.repeated() || p.repeated()});
        }
      if (!any)
        rows.push_back({{shape, variant, format_time(r.time_ns), spread_of(r), "-", "-", "-", "-",
                         counters_of(r, nullptr)},
                        r.repeated()});
      break;
    }
  }
  std::vector<table_row> others;
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (!used[i])
      others.push_back(
          {{runs[i].name, runs[i].label.empty() ? "-" : runs[i].label, format_time(runs[i].time_ns),
            spread_of(runs[i]), counters_of(runs[i], nullptr)},
           runs[i].repeated()});

  std::size_t shown = 0;
  for (const auto& title : titles) {
    if (title.find(family_filter) == std::string::npos) continue;
    std::printf("\n== %s ==\n", title.c_str());
    print_family({"shape", "rotquant run", "time", "spread", "peer", "peer time", "spread",
                  "peer/rotquant", "counters"},
                 {false, false, true, true, false, true, true, true, false}, table[title], {3, 6});
    ++shown;
  }
  if (!others.empty() && std::string("other benchmarks").find(family_filter) != std::string::npos) {
    std::printf("\n== other benchmarks ==\n");
    print_family({"benchmark", "label", "time", "spread", "counters"},
                 {false, false, true, true, false}, others, {3});
    ++shown;
  }
  if (shown == 0) std::printf("\n(no benchmark family matches '%s')\n", family_filter.c_str());
}

int run(const std::vector<std::string>& args) {
  std::vector<std::string> files;
  std::string family, v;
  rqtool::arg_reader a(args);
  while (!a.done()) {
    if (a.flag("-h") || a.flag("--help")) {
      print_usage();
      return 0;
    } else if (a.option("--family", v)) {
      family = v;
    } else if (a.positional(v)) {
      files.push_back(v);
    }
  }
  if (files.empty()) throw rqtool::usage_error("no JSON file given");
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (i) std::printf("\n");
    report_file(files[i], family);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return rqtool::run_tool(kTool, argc, argv, run);
}
