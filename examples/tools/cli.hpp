// SPDX-License-Identifier: Apache-2.0
// cli.hpp: what the rotquant command-line tools share: option parsing, exit codes (0 success,
// 1 bad input: any rotquant::error or I/O failure, 2 usage error), --version, number formatting
// and the per-layer progress display on stderr.
#pragma once

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "rotquant/core/error.hpp"
#include "rotquant/version.hpp"

#if defined(_WIN32)
#include <io.h>
#else
#include <unistd.h>
#endif

namespace rqtool {

/// A command line the tool does not accept (exit code 2).
class usage_error : public std::runtime_error {
 public:
  explicit usage_error(const std::string& what) : std::runtime_error(what) {}
};

/// Runs body(args) and maps its outcome to the exit code, printing the message on stderr as
/// "TOOL: error: ...". body returns the exit code for the normal path. `--version` anywhere on
/// the command line prints "TOOL VERSION" (rotquant's version) and exits 0 instead.
template <class Body>
int run_tool(const char* tool, int argc, char** argv, Body body) {
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    for (const std::string& a : args) {
      if (a == "--version") {
        std::printf("%s %s\n", tool, ROTQUANT_VERSION_STRING);
        return 0;
      }
    }
    return body(args);
  } catch (const usage_error& e) {
    std::fprintf(stderr, "%s: usage error: %s\n(run '%s --help' for the options)\n", tool, e.what(),
                 tool);
    return 2;
  } catch (const rotquant::error& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", tool, e.what());
    return 1;
  }
}

/// A minimal "--name value" / "--name=value" / flag parser over argv[1..].
class arg_reader {
 public:
  explicit arg_reader(std::vector<std::string> args) : args_(std::move(args)) {}

  bool done() const { return i_ >= args_.size(); }

  /// True (and consumes it) if the next argument is the flag `name`.
  bool flag(const char* name) {
    if (done() || args_[i_] != name) return false;
    ++i_;
    return true;
  }

  /// True if the next argument is option `name`; its value goes to `value`.
  bool option(const char* name, std::string& value) {
    if (done()) return false;
    const std::string& a = args_[i_];
    const std::string n(name);
    if (a == n) {
      if (i_ + 1 >= args_.size()) throw usage_error("option " + n + " needs a value");
      value = args_[i_ + 1];
      i_ += 2;
      return true;
    }
    if (a.compare(0, n.size() + 1, n + "=") == 0) {
      value = a.substr(n.size() + 1);
      ++i_;
      return true;
    }
    return false;
  }

  /// The next argument if it is positional (does not start with "-"); an unknown option throws.
  bool positional(std::string& value) {
    if (done()) return false;
    const std::string& a = args_[i_];
    if (a.size() > 1 && a[0] == '-') throw usage_error("unknown option '" + a + "'");
    value = a;
    ++i_;
    return true;
  }

 private:
  std::vector<std::string> args_;
  std::size_t i_ = 0;
};

/// Parses a non-negative integer option value (whole string, decimal).
inline unsigned long long parse_count(const std::string& option, const std::string& text) {
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos || text.size() > 19)
    throw usage_error(option + " expects a non-negative integer, got '" + text + "'");
  return std::strtoull(text.c_str(), nullptr, 10);
}

/// Parses a finite positive number option value.
inline double parse_positive(const std::string& option, const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(v > 0) || v > 1e300)
    throw usage_error(option + " expects a positive number, got '" + text + "'");
  return v;
}

/// printf into a std::string.
template <class... Args>
std::string format(const char* fmt, Args... args) {
  const int n = std::snprintf(nullptr, 0, fmt, args...);
  std::string s(static_cast<std::size_t>(n > 0 ? n : 0), '\0');
  if (n > 0) std::snprintf(&s[0], s.size() + 1, fmt, args...);
  return s;
}

/// `s` padded with spaces on the right (left = false) or left (left = true) to `width`.
inline std::string pad(const std::string& s, std::size_t width, bool left = false) {
  if (s.size() >= width) return s;
  const std::string fill(width - s.size(), ' ');
  return left ? fill + s : s + fill;
}

/// True if stderr is a terminal (progress bars only make sense there).
inline bool stderr_is_tty() {
#if defined(_WIN32)
  return _isatty(_fileno(stderr)) != 0;
#else
  return isatty(fileno(stderr)) != 0;
#endif
}

/// Per-item progress on stderr, safe to call from worker threads: a redrawn bar on a terminal,
/// otherwise one line per finished item (logs stay readable).
class progress {
 public:
  progress(std::string what, std::size_t total)
      : what_(std::move(what)),
        total_(total),
        tty_(stderr_is_tty()),
        start_(std::chrono::steady_clock::now()) {
    if (tty_) draw("");
  }
  /// Ends an unfinished bar's line (an error message then starts on a line of its own).
  ~progress() {
    if (tty_ && done_ < total_) std::fputc('\n', stderr);
  }
  progress(const progress&) = delete;
  progress& operator=(const progress&) = delete;

  /// Records one finished item called `name` that took `seconds`.
  void finished(const std::string& name, double seconds) {
    std::lock_guard<std::mutex> lock(mutex_);
    ++done_;
    if (tty_) {
      draw(name);
      if (done_ == total_) std::fputc('\n', stderr);
    } else {
      std::fprintf(stderr, "[%zu/%zu] %s %s (%.2f s)\n", done_, total_, what_.c_str(), name.c_str(),
                   seconds);
    }
    std::fflush(stderr);
  }

 private:
  void draw(const std::string& last) {
    const int width = 30;
    const int filled = total_ ? static_cast<int>(width * done_ / total_) : width;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.append(static_cast<std::size_t>(width - filled), '.');
    std::string tail = last.size() > 40 ? "..." + last.substr(last.size() - 37) : last;
    std::fprintf(stderr, "\r\033[K%s [%s] %zu/%zu %6.1f s  %s", what_.c_str(), bar.c_str(), done_,
                 total_, elapsed, tail.c_str());
    std::fflush(stderr);
  }

  std::string what_;
  std::size_t total_;
  std::size_t done_ = 0;
  bool tty_;
  std::chrono::steady_clock::time_point start_;
  std::mutex mutex_;
};

}  // namespace rqtool
