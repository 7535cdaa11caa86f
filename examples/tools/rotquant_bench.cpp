// SPDX-License-Identifier: Apache-2.0
// rotquant-bench: reads Google Benchmark JSON files of rotquant's benchmarks (benchmarks/bm_*,
// run with --benchmark_out=FILE or --benchmark_format=json) and prints each rotquant run next
// to the peer run of the same shape (Eigen fp32 / oneDNN for the GEMM, the textbook FWHT, a
// dense rotation and memcpy for the Hadamard transform, ...), with the ratio peer / rotquant.
//
// Benchmark names are "BM_base/arg/.../modifier": named arguments "M:2048", positional ones
// (named here per benchmark), modifiers "real_time", "iterations:1", ... The time compared is
// the real time of UseRealTime runs and the CPU time otherwise; with repetitions the median
// aggregate (else the mean) stands for the run.
#include <algorithm>
#include <cstdio>
#include <map>
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
      "bm_duquant, bm_dfrot; JSON from --benchmark_out=FILE or --benchmark_format=json) as\n"
      "tables grouped by benchmark family: shape, rotquant run and time, peer run and time,\n"
      "peer/rotquant (above 1: rotquant is faster) and the counters.\n"
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
  double time_ns = 0;
  bool real_time = false;
  std::map<std::string, double> counters;

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

run_info parse_run(const json_value& b, const std::string& where) {
  run_info r;
  r.name = member(b, "name", json_value::kind::string, where).string;
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
       {{"BM_hadamard_then_quantize", "unfused H + qsi4dx"}, {"BM_copy_f32", "plain copy"}}},
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
      {"DFRot (bm_dfrot)", "BM_dfrot_*", {"C", "rows"}, {}}};
  return r;
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

std::string format_time(double ns) {
  if (ns < 1e3) return rqtool::format("%.1f ns", ns);
  if (ns < 1e6) return rqtool::format("%.2f us", ns / 1e3);
  if (ns < 1e9) return rqtool::format("%.2f ms", ns / 1e6);
  return rqtool::format("%.3f s", ns / 1e9);
}

std::string format_counter(const std::string& name, double v) {
  if (name == "bytes_per_second" || name == "items_per_second") {
    const char* unit = name == "bytes_per_second" ? "B/s" : " items/s";
    if (v >= 1e9) return rqtool::format("%.2f G", v / 1e9) + unit;
    if (v >= 1e6) return rqtool::format("%.2f M", v / 1e6) + unit;
    return rqtool::format("%.4g ", v) + unit;
  }
  return name + " " + rqtool::format("%.4g", v);
}

// Counters of r, each followed by the peer's value of the same counter when it has one.
std::string counters_of(const run_info& r, const run_info* peer) {
  std::string s;
  for (const auto& kv : r.counters) {
    s += (s.empty() ? "" : ", ") + format_counter(kv.first, kv.second);
    if (peer) {
      const auto it = peer->counters.find(kv.first);
      if (it != peer->counters.end())
        s += " (peer " +
             (kv.first == "bytes_per_second" || kv.first == "items_per_second"
                  ? format_counter(kv.first, it->second)
                  : rqtool::format("%.4g", it->second)) +
             ")";
    }
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

void report_file(const std::string& path, const std::string& family_filter) {
  const json_value root = rotquant::io::parse_json(read_text(path), path);
  if (root.type != json_value::kind::object)
    throw rotquant::io::io_error(path + ": not a JSON object");
  const json_value& list = member(root, "benchmarks", json_value::kind::array, path);

  // One representative per run name: median aggregate, else mean, else the first iteration run.
  std::vector<std::string> order;
  std::map<std::string, std::pair<int, run_info>> chosen;  // rank (lower wins), run
  std::map<std::string, std::string> errors;               // run name -> message
  std::vector<int> thread_counts;
  for (std::size_t i = 0; i < list.array.size(); ++i) {
    const json_value& b = list.array[i];
    const std::string where = path + ": benchmarks[" + std::to_string(i) + "]";
    if (b.type != json_value::kind::object)
      throw rotquant::io::io_error(where + " is not an object");
    const std::string name = member(b, "name", json_value::kind::string, where).string;
    const json_value* rn = b.find("run_name");
    const std::string key = rn && rn->type == json_value::kind::string ? rn->string : name;
    if (const json_value* e = b.find("error_occurred"))
      if (e->type == json_value::kind::boolean && e->boolean) {
        const json_value* m = b.find("error_message");
        errors[key] = m && m->type == json_value::kind::string ? m->string : "error";
        continue;
      }
    int rank = 2;
    if (const json_value* rt = b.find("run_type"))
      if (rt->type == json_value::kind::string && rt->string == "aggregate") {
        const json_value* an = b.find("aggregate_name");
        const std::string agg = an && an->type == json_value::kind::string ? an->string : "";
        if (agg != "median" && agg != "mean") continue;  // stddev, cv, BigO, RMS
        rank = agg == "median" ? 0 : 1;
      }
    if (const json_value* t = b.find("threads"))
      if (t->type == json_value::kind::number &&
          std::find(thread_counts.begin(), thread_counts.end(), static_cast<int>(t->number)) ==
              thread_counts.end())
        thread_counts.push_back(static_cast<int>(t->number));
    run_info r = parse_run(b, where);
    r.name = key;
    const auto it = chosen.find(key);
    if (it == chosen.end()) {
      order.push_back(key);
      chosen.emplace(key, std::make_pair(rank, std::move(r)));
    } else if (rank < it->second.first) {
      it->second = std::make_pair(rank, std::move(r));
    }
  }
  std::vector<run_info> runs;
  for (const auto& k : order) runs.push_back(chosen.at(k).second);

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

  // Assign every run to the first rule whose rotquant base matches; peers are looked up by shape.
  std::vector<bool> used(runs.size(), false);
  std::vector<std::string> titles;
  std::map<std::string, std::vector<std::vector<std::string>>> table;
  for (std::size_t i = 0; i < runs.size(); ++i) {
    const run_info& r = runs[i];
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
          rows.push_back({shape, variant, format_time(r.time_ns), peer, format_time(p.time_ns),
                          rqtool::format("%.2fx", p.time_ns / r.time_ns), counters_of(r, &p)});
        }
      if (!any)
        rows.push_back(
            {shape, variant, format_time(r.time_ns), "-", "-", "-", counters_of(r, nullptr)});
      break;
    }
  }
  std::vector<std::vector<std::string>> others;
  for (std::size_t i = 0; i < runs.size(); ++i)
    if (!used[i])
      others.push_back({runs[i].name, runs[i].label.empty() ? "-" : runs[i].label,
                        format_time(runs[i].time_ns), counters_of(runs[i], nullptr)});

  std::size_t shown = 0;
  for (const auto& title : titles) {
    if (title.find(family_filter) == std::string::npos) continue;
    std::printf("\n== %s ==\n", title.c_str());
    print_table({"shape", "rotquant run", "time", "peer", "peer time", "peer/rotquant", "counters"},
                {false, false, true, false, true, true, false}, table[title]);
    ++shown;
  }
  if (!others.empty() && std::string("other benchmarks").find(family_filter) != std::string::npos) {
    std::printf("\n== other benchmarks ==\n");
    print_table({"benchmark", "label", "time", "counters"}, {false, false, true, false}, others);
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
