// SPDX-License-Identifier: Apache-2.0
// version.hpp: the library version, as macros and as constants.
#pragma once

#define ROTQUANT_VERSION_MAJOR 0
#define ROTQUANT_VERSION_MINOR 2
#define ROTQUANT_VERSION_PATCH 0
#define ROTQUANT_VERSION_STRING "0.2.0"

namespace rotquant {

/// Version of the headers in use, e.g. for a log line of an engine.
struct version_info {
  int major;
  int minor;
  int patch;
  const char* string;
};

inline constexpr version_info version{ROTQUANT_VERSION_MAJOR, ROTQUANT_VERSION_MINOR,
                                      ROTQUANT_VERSION_PATCH, ROTQUANT_VERSION_STRING};

}  // namespace rotquant
