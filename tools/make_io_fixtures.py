#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
# make_io_fixtures.py: writes the small .npy and safetensors-like fixtures under tests/data with
# NumPy (Debian python3-numpy; run with /usr/bin/python3). The files are committed; rerun only
# to regenerate them.
import json
import os
import struct

import numpy as np

d = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data")
os.makedirs(d, exist_ok=True)
p = lambda name: os.path.join(d, name)
np.save(p("f32_3x4.npy"), (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 4)
np.save(p("f64_5.npy"), np.array([1e-300, -2.5, 3.0, np.pi, 1e300], dtype=np.float64))
np.save(p("f16_2x3.npy"), np.array([[1.0, -0.5, 65504], [6.1e-5, 5.96e-8, -0.0]], dtype=np.float16))
np.save(p("i8_4.npy"), np.array([-128, -1, 0, 127], dtype=np.int8))
np.save(p("u8_0x5.npy"), np.zeros((0, 5), dtype=np.uint8))
np.save(p("i32_scalar.npy"), np.array(-7, dtype=np.int32))
np.save(p("i64_2.npy"), np.array([1 << 40, -3], dtype=np.int64))
np.save(p("fortran_2x2.npy"), np.asfortranarray(np.arange(4, dtype=np.float32).reshape(2, 2)))
np.save(p("bigendian_2.npy"), np.array([1, 2], dtype=">f4"))
np.save(p("object_1.npy"), np.array([None], dtype=object), allow_pickle=True)
# f16 values as float32 (the exact decoded values) for the reader test.
with open(p("f16_2x3.expected"), "w") as f:
    f.write(" ".join(repr(float(x)) for x in np.load(p("f16_2x3.npy")).astype(np.float32).ravel()))
