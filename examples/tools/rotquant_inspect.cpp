// SPDX-License-Identifier: Apache-2.0
// rotquant-inspect: one layer of a calibration file as a picture (standalone SVG): per-channel
// max |x| before and after every stage of the preset's online transform, the output error of
// each token with the massive tokens marked, and for DuQuant the greedy search's peak trace.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "calibration.hpp"
#include "cli.hpp"
#include "layers.hpp"
#include "svg.hpp"

namespace {

using rotquant::index_t;
using rotquant::matrix_f;

const char* const kTool = "rotquant-inspect";

void print_usage() {
  std::printf(
      "usage: rotquant-inspect [options] --svg OUT.svg INPUT.safetensors\n"
      "       rotquant-inspect [options] --svg OUT.svg --x X.npy --w W.npy\n"
      "\n"
      "Calibrates a preset on one layer of INPUT (tensors L.x [T, C] and L.weight [out, C]) and\n"
      "draws it as an SVG: per-channel max |x| before and after each transform stage, the output\n"
      "error of every token (massive tokens marked) and, for duquant, the peak trace of the\n"
      "rotation search.\n"
      "\n"
      "options:\n"
      "  --svg FILE          output SVG (required)\n"
      "  --preset P          %s (default quarot)\n"
      "  --seed N            seed of the randomized rotations (default 0)\n"
      "  --layer NAME        the layer to draw (default: the first)\n"
      "  --massive-factor F  massive token: max |x| above F x the median token's (default 20)\n"
      "  --x, --w            one layer from .npy files instead of INPUT\n"
      "  -h, --help          this text\n"
      "exit status: 0 done, 1 bad input (the message names the problem), 2 usage error\n",
      rqtool::preset_list().c_str());
}

const char* const kBlue = "#3465a4";
const char* const kOrange = "#e07020";
const char* const kRed = "#cc2222";
const char* const kGreen = "#2e8b57";
const char* const kPurple = "#7b4fa8";

constexpr double kWidth = 960, kLeft = 78, kPlotWidth = 860;

std::vector<double> channel_absmax(const matrix_f& x) {
  const rotquant::vector_f m = x.cwiseAbs().colwise().maxCoeff().transpose();
  return std::vector<double>(m.data(), m.data() + m.size());
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

std::string short_num(double v) {
  return rqtool::format("%.4g", v);
}

// One panel of per-channel max |x| as vertical bars (outlier channels in orange).
void channel_panel(svg::document& d, double y, double h, const std::vector<double>& m, double ylo,
                   double yhi, const std::string& title, bool last, bool legend) {
  const double c = static_cast<double>(m.size());
  const svg::panel p(kLeft, y, kPlotWidth, h, -0.5, c - 0.5, ylo, yhi, true);
  p.draw_axes(d, title, last ? "input channel" : "", "max |x|");
  if (legend) p.legend(d, title, {{kBlue, "channel max |x|"}, {kOrange, "above 10 x the median"}});
  const double med = median(m);
  const double bar = std::max(1.0, 0.8 * kPlotWidth / c);
  std::string normal, outlier;
  for (std::size_t j = 0; j < m.size(); ++j) {
    const double px = p.sx(static_cast<double>(j));
    const std::string seg =
        "M" + svg::num(px) + " " + svg::num(y + h) + "V" + svg::num(p.sy(m[j])) + " ";
    (m[j] > 10 * med ? outlier : normal) += seg;
  }
  if (!normal.empty()) d.path(normal, kBlue, bar);
  if (!outlier.empty()) d.path(outlier, kOrange, bar);
}

// Per-token output MSE as a scatter, massive tokens in red.
void token_panel(svg::document& d, double y, double h, const std::vector<double>& err,
                 const std::vector<std::uint8_t>& massive) {
  double lo, hi;
  svg::log_range(err, lo, hi);
  const double t = static_cast<double>(err.size());
  const svg::panel p(kLeft, y, kPlotWidth, h, -0.5, t - 0.5, lo, hi, true);
  const std::string title = "per-token output error (MSE of the layer's output row)";
  p.draw_axes(d, title, "token", "output MSE");
  double sm = 0, sn = 0;
  std::size_t nm = 0, nn = 0;
  for (std::size_t i = 0; i < err.size(); ++i) {
    if (massive[i]) continue;
    d.circle(p.sx(static_cast<double>(i)), p.sy(err[i]), 2.2, kBlue);
    sn += err[i];
    ++nn;
  }
  for (std::size_t i = 0; i < err.size(); ++i) {  // massive tokens drawn on top
    if (!massive[i]) continue;
    d.circle(p.sx(static_cast<double>(i)), p.sy(err[i]), 5, kRed, "white");
    sm += err[i];
    ++nm;
  }
  if (nn) d.line(p.x, p.sy(sn / nn), p.x + p.w, p.sy(sn / nn), kBlue, 1, "5,4");
  if (nm) d.line(p.x, p.sy(sm / nm), p.x + p.w, p.sy(sm / nm), kRed, 1, "5,4");
  p.legend(d, title,
           {{kRed, rqtool::format("%zu massive, mean ", nm) +
                       (nm ? short_num(sm / static_cast<double>(nm)) : std::string("-"))},
            {kBlue, rqtool::format("%zu normal, mean ", nn) +
                        (nn ? short_num(sn / static_cast<double>(nn)) : std::string("-"))}});
}

// DuQuant's greedy search: peak (max - min) before each rotation step, per search; the chosen
// step count k (first minimum) circled.
void peak_panel(svg::document& d, double y, double h, const rqtool::duquant_trace& r) {
  std::vector<double> all;
  std::size_t steps = 0;
  for (const auto& pk : r.peaks) {
    all.insert(all.end(), pk.begin(), pk.end());
    steps = std::max(steps, pk.size());
  }
  double lo = *std::min_element(all.begin(), all.end());
  double hi = *std::max_element(all.begin(), all.end());
  const bool log = lo > 0 && hi / lo > 20;
  if (log) {
    svg::log_range(all, lo, hi);
  } else {
    lo = 0;
    hi = hi > 0 ? hi * 1.08 : 1;
  }
  const svg::panel p(kLeft, y, kPlotWidth, h, 0, std::max<double>(1, steps - 1), lo, hi, log);
  const std::string title = "DuQuant peak trace (max - min before each greedy step)";
  p.draw_axes(d, title, "rotation step", "peak");
  const char* colors[] = {kPurple, kGreen, kOrange, kBlue};
  std::vector<std::pair<std::string, std::string>> legend;
  for (std::size_t i = 0; i < r.peaks.size(); ++i) {
    const std::vector<float>& peaks = r.peaks[i];
    const char* color = colors[i % 4];
    std::string path;
    for (std::size_t j = 0; j < peaks.size(); ++j)
      path += (j ? "L" : "M") + svg::num(p.sx(static_cast<double>(j))) + " " +
              svg::num(p.sy(peaks[j])) + " ";
    d.path(path, color, 1.6);
    const auto k = static_cast<std::size_t>(r.chosen[i]);
    const double cx = p.sx(static_cast<double>(k)), cy = p.sy(peaks[k]);
    d.line(cx, p.y, cx, p.y + p.h, color, 1, "4,3");
    d.circle(cx, cy, 5, "white", color);
    d.circle(cx, cy, 2, color);
    d.text(cx + 4, p.y + 14 + 14 * static_cast<double>(i), "k = " + std::to_string(k), 11, "start",
           true, color);
    legend.push_back({color, rqtool::format("R%zu: k = %zu, ", i + 1, k) +
                                 short_num(peaks.front()) + " -> " + short_num(peaks[k])});
  }
  p.legend(d, title, legend);
}

int run(const std::vector<std::string>& args) {
  std::string input, x_npy, w_npy, svg_path, layer, preset = "quarot", v;
  std::uint64_t seed = 0;
  double factor = 20;
  rqtool::arg_reader a(args);
  while (!a.done()) {
    if (a.flag("-h") || a.flag("--help")) {
      print_usage();
      return 0;
    } else if (a.option("--svg", v)) {
      svg_path = v;
    } else if (a.option("--preset", v)) {
      if (!rqtool::is_preset(v))
        throw rqtool::usage_error("unknown preset '" + v + "' (expected " + rqtool::preset_list() +
                                  ")");
      preset = v;
    } else if (a.option("--seed", v)) {
      seed = rqtool::parse_count("--seed", v);
    } else if (a.option("--layer", v)) {
      layer = v;
    } else if (a.option("--massive-factor", v)) {
      factor = rqtool::parse_positive("--massive-factor", v);
    } else if (a.option("--x", v)) {
      x_npy = v;
    } else if (a.option("--w", v)) {
      w_npy = v;
    } else if (a.positional(v)) {
      if (!input.empty()) throw rqtool::usage_error("more than one INPUT ('" + v + "')");
      input = v;
    }
  }
  const bool npy = !x_npy.empty() || !w_npy.empty();
  if (npy && (x_npy.empty() || w_npy.empty())) throw rqtool::usage_error("--x and --w go together");
  if (npy && !input.empty()) throw rqtool::usage_error("give INPUT or --x/--w, not both");
  if (!npy && input.empty()) throw rqtool::usage_error("no INPUT file given");
  if (svg_path.empty()) throw rqtool::usage_error("no output given (--svg OUT.svg)");

  const rqtool::layer_data l =
      npy ? rqtool::load_npy_layer(x_npy, w_npy, layer.empty() ? "linear" : layer)
          : rqtool::load_layers(input, layer).front();
  const matrix_f& x = l.x;
  rqtool::calibrate_options co;
  co.token_errors = true;
  co.massive_factor = factor;
  rqtool::calibrated_layer q;
  rqtool::duquant_trace trace;
  try {
    q = rqtool::calibrate_layer(preset, seed, x, l.w, co);
    if (preset == "duquant") trace = rqtool::duquant_peaks(x, l.w, seed);
  } catch (const rotquant::error& e) {
    throw rotquant::error("layer '" + l.name + "': " + e.what());
  }
  const rotquant::linear_report& rep = q.report;

  // Activations after every stage of the online transform, one stage at a time.
  std::vector<std::vector<double>> maxima{channel_absmax(x)};
  std::vector<std::string> titles{"per-channel max |x|: input"};
  matrix_f cur = x;
  const auto& stages = q.online.stages();
  for (std::size_t i = 0; i < stages.size(); ++i) {
    rotquant::transform one(x.cols());
    one.append_stage(stages[i]);
    cur = one.apply(cur);
    maxima.push_back(channel_absmax(cur));
    titles.push_back("per-channel max |x| after stage " + std::to_string(i + 1) + ": " +
                     rotquant::to_string(stages[i].kind));
  }
  std::vector<double> all;
  for (const auto& m : maxima) all.insert(all.end(), m.begin(), m.end());
  double ylo, yhi;
  svg::log_range(all, ylo, yhi);

  const auto massive = rotquant::massive_tokens_by_magnitude(x, factor);

  svg::document d(kWidth, 100);
  d.comment("rotquant-inspect: layer " + l.name + ", preset " + preset);
  d.text(20, 30, "rotquant-inspect: layer " + l.name + ", preset " + preset, 18, "start", true);
  d.text(20, 50,
         rqtool::format("x [%lld, %lld], W [%lld, %lld]; weights ",
                        static_cast<long long>(x.rows()), static_cast<long long>(x.cols()),
                        static_cast<long long>(l.w.rows()), static_cast<long long>(l.w.cols())) +
             q.weight_quantizer + ", activations " + q.activation_quantizer,
         12, "start", false, "#444");
  d.text(
      20, 67,
      rqtool::format("output SQNR %.2f dB, MSE %.3g; massive tokens %lld (MSE %.3g), normal "
                     "%lld (MSE %.3g); kurtosis %.3g -> %.3g",
                     rep.output_sqnr_db, rep.output_mse, static_cast<long long>(rep.massive_tokens),
                     rep.massive_token_mse, static_cast<long long>(rep.normal_tokens),
                     rep.normal_token_mse, rep.stages.front().kurtosis, rep.stages.back().kurtosis),
      12, "start", false, "#444");
  double y = 100;
  d.text(20, y, "Per-channel max |x| before and after each transform stage (shared log scale)", 15,
         "start", true);
  y += 30;
  const double ph = 110;
  for (std::size_t i = 0; i < maxima.size(); ++i) {
    const auto* m = &maxima[i];
    const double mx = *std::max_element(m->begin(), m->end());
    channel_panel(d, y, ph, *m, ylo, yhi, titles[i] + "  (max " + short_num(mx) + ")",
                  i + 1 == maxima.size(), i == 0);
    y += ph + (i + 1 == maxima.size() ? 60 : 42);
  }
  d.text(20, y,
         "Quantization error per token (massive: max |x| above " + short_num(factor) +
             " x the median token's)",
         15, "start", true);
  y += 30;
  token_panel(d, y, 180, q.token_mse, massive);
  y += 180 + 60;

  std::size_t panels = maxima.size() + 1;
  if (preset == "duquant") {
    d.text(20, y,
           rqtool::format("DuQuant rotation searches (rotquant::duquant: block %lld, up to %lld "
                          "steps, alpha %.2g)",
                          static_cast<long long>(trace.block), static_cast<long long>(trace.steps),
                          trace.alpha),
           15, "start", true);
    y += 30;
    peak_panel(d, y, 200, trace);
    y += 200 + 60;
    ++panels;
  }
  d.set_height(y);
  const std::string text = d.str("rotquant-inspect: " + l.name + " (" + preset + ")");
  std::FILE* f = std::fopen(svg_path.c_str(), "wb");
  if (!f) throw rotquant::io::io_error("cannot create '" + svg_path + "'");
  const bool ok = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !ok)
    throw rotquant::io::io_error("error while writing '" + svg_path + "'");

  std::printf("%s: layer %s, preset %s: output SQNR %.2f dB, %lld massive token%s\n", kTool,
              l.name.c_str(), preset.c_str(), rep.output_sqnr_db,
              static_cast<long long>(rep.massive_tokens), rep.massive_tokens == 1 ? "" : "s");
  std::printf("wrote %s (%zu panels, %zu bytes)\n", svg_path.c_str(), panels, text.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return rqtool::run_tool(kTool, argc, argv, run);
}
