#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh: build and run the main demo (README's first command).
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/deps.sh
rq_ensure_packages g++ cmake make libeigen3-dev libgtest-dev googletest
cmake --preset dev >/dev/null
cmake --build --preset dev --target rotquant_demo
./build/dev/examples/rotquant_demo "$@"
