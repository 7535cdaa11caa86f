// SPDX-License-Identifier: Apache-2.0
// rotquant.hpp: umbrella header; includes every public module.
#pragma once

#include "rotquant/config.hpp"
#include "rotquant/core/cpu.hpp"
#include "rotquant/core/dispatch.hpp"
#include "rotquant/core/error.hpp"
#include "rotquant/core/matrix.hpp"
#include "rotquant/core/reduce.hpp"
#include "rotquant/core/rng.hpp"
#include "rotquant/core/threading.hpp"
#include "rotquant/version.hpp"
