// SPDX-License-Identifier: Apache-2.0
// error.hpp: the library's exception type and its checking macros.
//
// Three tiers (docs/design.md section 3): static_assert for template misuse; ROTQUANT_CHECK at
// every public entry point, which throws rotquant::error with a message naming the offending
// values and what would be accepted; ROTQUANT_DCHECK inside hot loops, compiled only in debug
// builds.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace rotquant {

/// Thrown for every invalid argument at a public entry point: wrong shapes, sizes a transform
/// cannot take, non-finite inputs under the reject policy, malformed files.
/// Derives from std::invalid_argument so callers can catch either.
class error : public std::invalid_argument {
 public:
  explicit error(const std::string& what) : std::invalid_argument(what) {}
};

namespace detail {

[[noreturn]] inline void throw_error(const char* file, int line, const char* condition,
                                     const std::string& message) {
  std::ostringstream out;
  out << "rotquant: " << message << " [check `" << condition << "` failed at " << file << ':'
      << line << ']';
  throw error(out.str());
}

}  // namespace detail
}  // namespace rotquant

/// ROTQUANT_CHECK(condition, message-stream): throws rotquant::error when condition is false.
/// The message is a stream expression, e.g.
///   ROTQUANT_CHECK(k % group == 0, "group size " << group << " does not divide K = " << k);
#define ROTQUANT_CHECK(condition, message)                            \
  do {                                                                \
    if (!(condition)) {                                               \
      std::ostringstream rotquant_check_stream_;                      \
      rotquant_check_stream_ << message;                              \
      ::rotquant::detail::throw_error(__FILE__, __LINE__, #condition, \
                                      rotquant_check_stream_.str());  \
    }                                                                 \
  } while (false)

/// ROTQUANT_DCHECK: as ROTQUANT_CHECK in debug builds (NDEBUG undefined), nothing otherwise.
#ifndef NDEBUG
#define ROTQUANT_DCHECK(condition, message) ROTQUANT_CHECK(condition, message)
#else
#define ROTQUANT_DCHECK(condition, message) \
  do {                                      \
  } while (false)
#endif
