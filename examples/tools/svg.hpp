// SPDX-License-Identifier: Apache-2.0
// svg.hpp: a small hand-written SVG writer for the tools' plots: a document of shapes and text,
// an axis scale (linear or log10) with "nice" ticks, and a framed plot panel with tick labels,
// title and axis labels. Output is standalone SVG 1.1 (viewable in any browser).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace svg {

/// Text with the five XML special characters escaped.
inline std::string escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

/// A coordinate with two decimals (enough for screen pixels, keeps files small).
inline std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  std::string s(buf);
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

/// A short tick label: 0.001, 0.5, 20, 1e4, 2e-5.
inline std::string tick_label(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (a == 0 || (a < 1e4 && a >= 1e-3)) {
    std::snprintf(buf, sizeof(buf), "%g", v);
    return buf;
  }
  std::snprintf(buf, sizeof(buf), "%.0e", v);  // e.g. 1e+04, 2e-05
  std::string s(buf);
  const std::size_t e = s.find('e');
  std::string exp = s.substr(e + 1);
  const bool neg = exp[0] == '-';
  exp = exp.substr(1);
  while (exp.size() > 1 && exp[0] == '0') exp.erase(0, 1);
  return s.substr(0, e) + "e" + (neg ? "-" : "") + exp;
}

/// An SVG document: shapes are appended in drawing order.
class document {
 public:
  document(double width, double height) : width_(width), height_(height) {}

  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& stroke = "none") {
    body_ << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w)
          << "\" height=\"" << num(h) << "\" fill=\"" << fill << "\" stroke=\"" << stroke
          << "\"/>\n";
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "") {
    body_ << "<line x1=\"" << num(x1) << "\" y1=\"" << num(y1) << "\" x2=\"" << num(x2)
          << "\" y2=\"" << num(y2) << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width)
          << "\"" << (dash.empty() ? "" : " stroke-dasharray=\"" + dash + "\"") << "/>\n";
  }
  /// A path from its "d" data (e.g. "M 0 0 L 10 10").
  void path(const std::string& d, const std::string& stroke, double width,
            const std::string& fill = "none") {
    body_ << "<path d=\"" << d << "\" stroke=\"" << stroke << "\" stroke-width=\"" << num(width)
          << "\" fill=\"" << fill << "\"/>\n";
  }
  void circle(double cx, double cy, double r, const std::string& fill,
              const std::string& stroke = "none") {
    body_ << "<circle cx=\"" << num(cx) << "\" cy=\"" << num(cy) << "\" r=\"" << num(r)
          << "\" fill=\"" << fill << "\" stroke=\"" << stroke << "\"/>\n";
  }
  /// Text at (x, y) (baseline); anchor start|middle|end; rotate in degrees about (x, y).
  void text(double x, double y, const std::string& s, double size = 12,
            const std::string& anchor = "start", bool bold = false,
            const std::string& fill = "#222", double rotate = 0) {
    body_ << "<text x=\"" << num(x) << "\" y=\"" << num(y) << "\" font-size=\"" << num(size)
          << "\" text-anchor=\"" << anchor << "\" fill=\"" << fill << "\""
          << (bold ? " font-weight=\"bold\"" : "");
    if (rotate != 0)
      body_ << " transform=\"rotate(" << num(rotate) << " " << num(x) << " " << num(y) << ")\"";
    body_ << ">" << escape(s) << "</text>\n";
  }
  /// A tooltip-free comment (kept in the file for a reader of the source).
  void comment(const std::string& s) {
    std::string c = s;
    for (std::size_t p; (p = c.find("--")) != std::string::npos;) c.replace(p, 2, "- ");
    body_ << "<!-- " << c << " -->\n";
  }

  double width() const { return width_; }
  double height() const { return height_; }
  void set_height(double h) { height_ = h; }

  /// The whole file: XML declaration, <svg> root with a white background, then the shapes.
  std::string str(const std::string& title) const {
    std::ostringstream o;
    o << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\"" << num(width_)
      << "\" height=\"" << num(height_) << "\" viewBox=\"0 0 " << num(width_) << " " << num(height_)
      << "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n"
      << "<title>" << escape(title) << "</title>\n"
      << "<rect x=\"0\" y=\"0\" width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << body_.str() << "</svg>\n";
    return o.str();
  }

 private:
  double width_, height_;
  std::ostringstream body_;
};

/// Maps data values in [lo, hi] to pixels [p0, p1] (p1 < p0 for a y axis); log10 if `log`.
struct scale {
  double lo = 0, hi = 1;
  double p0 = 0, p1 = 1;
  bool log = false;

  double operator()(double v) const {
    const double a = log ? std::log10(lo) : lo, b = log ? std::log10(hi) : hi;
    double t = log ? std::log10(std::max(v, lo)) : v;
    t = b > a ? (t - a) / (b - a) : 0.5;
    return p0 + std::min(1.0, std::max(0.0, t)) * (p1 - p0);
  }

  /// Tick values inside [lo, hi]: powers of ten (log; plus 2 and 5 times them when the range
  /// spans under two decades), or 1/2/5 x 10^k steps giving about `target` ticks (linear).
  std::vector<double> ticks(int target = 6) const {
    std::vector<double> out;
    if (log) {
      const int e0 = static_cast<int>(std::floor(std::log10(lo))),
                e1 = static_cast<int>(std::ceil(std::log10(hi)));
      const bool fine = e1 - e0 <= 2;
      const int step = std::max(1, (e1 - e0) / 8);  // at most ~8 decade labels
      for (int e = e0; e <= e1; e += fine ? 1 : step)
        for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
          const double v = m * std::pow(10.0, e);
          if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) out.push_back(v);
        }
      return out;
    }
    const double span = hi - lo;
    if (!(span > 0)) return {lo};
    const double raw = span / target, mag = std::pow(10.0, std::floor(std::log10(raw)));
    const double f = raw / mag, step = (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
    for (double v = std::ceil(lo / step) * step; v <= hi + step * 1e-9; v += step)
      out.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
    return out;
  }
};

/// A log scale's range [lo, hi]: the whole decades around the positive finite values of v
/// (zeros are drawn at the floor lo).
inline void log_range(const std::vector<double>& v, double& lo, double& hi) {
  lo = 0;
  hi = 0;
  for (double x : v)
    if (x > 0 && std::isfinite(x)) {
      lo = lo == 0 ? x : std::min(lo, x);
      hi = std::max(hi, x);
    }
  if (hi == 0) lo = 0.1, hi = 1;
  if (hi <= lo) lo = hi / 10;
  lo = std::pow(10.0, std::floor(std::log10(lo)));
  hi = std::pow(10.0, std::ceil(std::log10(hi)));
}

/// A plot panel: the plot area (x, y, w, h) with its scales, frame, grid and labels.
struct panel {
  double x, y, w, h;
  scale sx, sy;

  panel(double x_, double y_, double w_, double h_, double xlo, double xhi, double ylo, double yhi,
        bool ylog)
      : x(x_), y(y_), w(w_), h(h_) {
    sx = {xlo, xhi, x, x + w, false};
    sy = {ylo, yhi, y + h, y, ylog};
  }

  /// Frame, horizontal grid lines, tick marks and labels, title above, axis labels.
  void draw_axes(document& d, const std::string& title, const std::string& xlabel,
                 const std::string& ylabel, int xticks = 8) const {
    d.rect(x, y, w, h, "#fbfbfd", "#999");
    for (double v : sy.ticks()) {
      const double py = sy(v);
      d.line(x, py, x + w, py, "#e2e2e8", 1);
      d.line(x - 4, py, x, py, "#555", 1);
      d.text(x - 6, py + 4, tick_label(v), 10, "end");
    }
    for (double v : sx.ticks(xticks)) {
      const double px = sx(v);
      d.line(px, y + h, px, y + h + 4, "#555", 1);
      d.text(px, y + h + 15, tick_label(v), 10, "middle");
    }
    d.text(x, y - 7, title, 13, "start", true);
    if (!xlabel.empty()) d.text(x + w / 2, y + h + 30, xlabel, 11, "middle", false, "#444");
    if (!ylabel.empty()) d.text(x - 46, y + h / 2, ylabel, 11, "middle", false, "#444", -90);
  }

  /// The legend: one coloured square and label per entry, in a row right-aligned above the
  /// plot (on the title's line, which `title` is, so that both fit), or, when the row would run
  /// into the title, in a box in the plot's top-right corner.
  void legend(document& d, const std::string& title,
              const std::vector<std::pair<std::string, std::string>>& entries) const {
    const double char_w = 6.2;  // about the advance of 11 px sans-serif text
    double row = 0;
    for (const auto& e : entries) row += 30 + char_w * static_cast<double>(e.second.size());
    if (7.6 * static_cast<double>(title.size()) + row + 20 <= w) {
      double lx = x + w - row;
      for (const auto& e : entries) {
        d.rect(lx + 8, y - 16, 10, 10, e.first);
        d.text(lx + 22, y - 7, e.second, 11);
        lx += 30 + char_w * static_cast<double>(e.second.size());
      }
      return;
    }
    double longest = 0;
    for (const auto& e : entries) longest = std::max(longest, static_cast<double>(e.second.size()));
    const double bw = 30 + longest * char_w, bh = 8 + 16 * static_cast<double>(entries.size());
    const double bx = x + w - bw - 8, by = y + 8;
    d.rect(bx, by, bw, bh, "white", "#bbb");
    for (std::size_t i = 0; i < entries.size(); ++i) {
      const double ly = by + 14 + 16 * static_cast<double>(i);
      d.rect(bx + 8, ly - 8, 10, 10, entries[i].first);
      d.text(bx + 24, ly + 1, entries[i].second, 11);
    }
  }
};

}  // namespace svg
