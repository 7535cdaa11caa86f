#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Command-line test of tools/export_rotations.py (ctest
tools.export_rotations_cli): malformed inputs (non-orthogonal matrices, bad
permutations, NaN, wrong shapes, foreign pickles) must exit with status 1 and
a message naming the problem; --help and usage errors behave; the vectorised
FNV-1a checksum equals the byte-by-byte definition.

Usage: export_rotations_cli_test.py tools/export_rotations.py
Exit status 0 when every check passes, 1 otherwise, 77 (ctest
SKIP_RETURN_CODE) when NumPy is missing, or when PyTorch is missing after the
checks that need only NumPy passed.
"""

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
import tempfile

SKIP = 77


class Checker:
    def __init__(self, exporter, work):
        self.exporter = exporter
        self.work = work
        self.failures = 0
        self.passed = 0
        spec = importlib.util.spec_from_file_location("export_rotations",
                                                      exporter)
        self.module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(self.module)

    def path(self, name):
        return os.path.join(self.work, name)

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("ok    " + what)
        else:
            self.failures += 1
            print("FAIL  " + what + ("\n      " + detail if detail else ""))

    def run_in_process(self, argv):
        """(status, stdout + stderr) of the exporter's main(argv)."""
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            try:
                status = self.module.main([str(a) for a in argv])
            except SystemExit as e:  # argparse
                status = e.code
        return status, out.getvalue()

    def run_process(self, argv, prelude=None):
        """(status, output) of the exporter as its own process."""
        if prelude is None:
            cmd = [sys.executable, self.exporter]
        else:
            code = ("import runpy, sys; %s; sys.argv = [%r] + sys.argv[1:]; "
                    "runpy.run_path(%r, run_name='__main__')"
                    % (prelude, self.exporter, self.exporter))
            cmd = [sys.executable, "-c", code]
        proc = subprocess.run(cmd + [str(a) for a in argv], cwd=self.work,
                              capture_output=True, text=True)
        return proc.returncode, proc.stdout + proc.stderr

    def expect_error(self, what, argv, *needles, status=1):
        code, text = self.run_in_process(argv)
        missing = [n for n in needles if n not in text]
        self.check(code == status and not missing, what,
                   "status %r (want %d), missing %r in:\n%s"
                   % (code, status, missing, text))

    def expect_ok(self, what, argv):
        code, text = self.run_in_process(argv)
        self.check(code == 0 and os.path.isfile(self.path(argv[2])), what,
                   "status %r:\n%s" % (code, text))


def numpy_checks(c, np):
    rng = np.random.default_rng(7)
    m = c.module

    def naive(data):
        h = 0xCBF29CE484222325
        for b in bytes(data):
            h = ((h ^ b) * 0x100000001B3) & ((1 << 64) - 1)
        return h

    for n in (0, 5, 64, 1000, (1 << 20) + 3):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        h = m.Fnv1a64()
        h.update(data[:n // 2])
        h.update(data[n // 2:])
        c.check(h.value == naive(data), "FNV-1a 64 of %d bytes" % n)

    code, text = c.run_process(["--help"])
    c.check(code == 0 and all(s in text for s in (
        "dfrot", "spinquant", "duquant", "activations")), "--help lists the "
        "subcommands", text)
    code, text = c.run_process(["duquant", "--help"])
    c.check(code == 0 and "--block" in text and "--no-smooth" in text,
            "duquant --help", text)
    code, text = c.run_process([])
    c.check(code == 2 and "usage" in text, "no arguments: usage, status 2",
            text)

    q, _ = np.linalg.qr(rng.standard_normal((16, 16)))
    np.save(c.path("q.npy"), q)
    c.expect_ok("dfrot accepts an orthogonal .npy",
                ["dfrot", c.path("q.npy"), "q.safetensors"])
    skewed = q.copy()
    skewed[3, 4] += 1e-3
    np.save(c.path("skewed.npy"), skewed)
    code, text = c.run_process(["dfrot", "skewed.npy", "out.safetensors"])
    c.check(code == 1 and "is not orthogonal" in text and
            "max |R^T R - I|" in text and "--orthonormalize" in text and
            not os.path.exists(c.path("out.safetensors")),
            "dfrot: non-orthogonal matrix -> status 1, no output", text)
    c.expect_ok("dfrot --tol 1e-2 accepts it",
                ["dfrot", c.path("skewed.npy"), "tol.safetensors",
                 "--tol", "1e-2"])
    c.expect_ok("dfrot --orthonormalize projects it",
                ["dfrot", c.path("skewed.npy"), "orth.safetensors",
                 "--orthonormalize"])
    nan = q.copy()
    nan[1, 2] = np.nan
    np.save(c.path("nan.npy"), nan)
    c.expect_error("dfrot: NaN", ["dfrot", c.path("nan.npy"), "x"],
                   "non-finite", "[1, 2]")
    np.save(c.path("rect.npy"), q[:, :8])
    c.expect_error("dfrot: non-square", ["dfrot", c.path("rect.npy"), "x"],
                   "square matrix", "[16, 8]")
    np.save(c.path("ints.npy"), np.eye(4, dtype=np.int64))
    c.expect_error("dfrot: integer matrix",
                   ["dfrot", c.path("ints.npy"), "x"], "floating point")
    c.expect_error("dfrot: missing input",
                   ["dfrot", c.path("none.npy"), "x"], "does not exist")
    c.expect_error("dfrot: bad --tol",
                   ["dfrot", c.path("q.npy"), "x", "--tol", "nan"], "--tol")

    act = rng.standard_normal((3, 4)).astype(np.float32)
    act[2, 1] = np.inf
    np.save(c.path("act_inf.npy"), act)
    c.expect_error("activations: Inf rejected",
                   ["activations", c.path("act_inf.npy"), "x"],
                   "NaN/Inf", "[2, 1]", "--allow-nonfinite")
    c.expect_ok("activations --allow-nonfinite keeps it",
                ["activations", c.path("act_inf.npy"), "inf.safetensors",
                 "--allow-nonfinite"])
    np.save(c.path("obj.npy"), np.array([None], dtype=object),
            allow_pickle=True)
    c.expect_error("activations: object array",
                   ["activations", c.path("obj.npy"), "x"], "object arrays")
    np.save(c.path("c64.npy"), np.zeros(3, dtype=np.complex64))
    c.expect_error("activations: complex dtype",
                   ["activations", c.path("c64.npy"), "x"],
                   "dtype complex64")

    # Without PyTorch, a torch file gets status 3 and the package to install.
    with open(c.path("fake.bin"), "wb") as f:
        f.write(b"PK")
    code, text = c.run_process(["spinquant", "fake.bin", "x"],
                               prelude="sys.modules['torch'] = None")
    c.check(code == 3 and "python3-torch" in text,
            "torch file without PyTorch: status 3 naming python3-torch", text)


class NotATensor:
    """Pickled by reference: weights_only loading must refuse it."""


def torch_checks(c, np, torch):
    rng = np.random.default_rng(11)

    def orth(n):
        return torch.from_numpy(np.linalg.qr(rng.standard_normal((n, n)))[0])

    def save(name, obj):
        torch.save(obj, c.path(name))
        return c.path(name)

    dim, block = 32, 8
    good = {"fc.R1": orth(block), "fc.perm": torch.randperm(dim),
            "fc.R2": orth(block), "fc.smooth_scale": torch.rand(dim) + 0.5}
    c.expect_ok("duquant: R1/perm/R2/scales",
                ["duquant", save("good.pt", good), "good.safetensors"])

    bad = dict(good)
    perm = torch.randperm(dim)
    perm[5] = perm[9]
    bad["fc.perm"] = perm
    c.expect_error("duquant: duplicate index in the permutation",
                   ["duquant", save("dup.pt", bad), "x"],
                   "permutation 'fc.perm' is not a permutation of 0..31",
                   "appears 2 times")
    bad["fc.perm"] = torch.arange(dim) + 1
    c.expect_error("duquant: out-of-range permutation entry",
                   ["duquant", save("range.pt", bad), "x"],
                   "is not a permutation", "entry 31 is 32")
    bad["fc.perm"] = torch.arange(dim).float()
    c.expect_error("duquant: float permutation",
                   ["duquant", save("fperm.pt", bad), "x"],
                   "must hold integers")
    bad["fc.perm"] = torch.arange(dim - 1)
    c.expect_error("duquant: permutation of the wrong length",
                   ["duquant", save("short.pt", bad), "x"],
                   "inconsistent channel counts")

    bad = dict(good)
    bad["fc.R2"] = orth(block) * 1.01
    c.expect_error("duquant: non-orthogonal R2",
                   ["duquant", save("scaled.pt", bad), "x"],
                   "rotation 'fc.R2'", "is not orthogonal")
    bad = dict(good)
    del bad["fc.perm"]
    c.expect_error("duquant: two rotations, no permutation",
                   ["duquant", save("noperm.pt", bad), "x"],
                   "2 rotation(s) and 0 permutation(s)")
    c.expect_error("duquant: --block disagrees",
                   ["duquant", c.path("good.pt"), "x", "--block", "16"],
                   "--block says 16")
    bad = dict(good)
    bad["fc.smooth_scale"] = torch.zeros(dim)
    c.expect_error("duquant: zero smoothing scale",
                   ["duquant", save("zero.pt", bad), "x"],
                   "scales must be finite, normal and > 0")
    c.expect_ok("duquant --no-smooth ignores them",
                ["duquant", c.path("zero.pt"), "nosmooth.safetensors",
                 "--no-smooth"])
    released = {0: {"qkv_smooth_scale": torch.rand(dim) + 0.5,
                    "qkv_smooth_shift": torch.full((dim,), 0.25),
                    "self_attn.q_proj.act_quantizer.R":
                        torch.stack([orth(block), orth(block)]),
                    "self_attn.q_proj.act_quantizer.permutation_list":
                        torch.randperm(dim)[None]}}
    c.expect_error("duquant: non-zero smoothing shift",
                   ["duquant", save("shift.pt", released), "x"],
                   "model.layers.0.qkv_smooth_shift", "not zero")
    released[0]["qkv_smooth_shift"] = torch.zeros(dim)
    c.expect_ok("duquant: released layout",
                ["duquant", save("released.pt", released),
                 "released.safetensors"])
    c.expect_error("duquant: nothing DuQuant in the file",
                   ["duquant", save("other.pt", {"a.weight": orth(4)}), "x"],
                   "no DuQuant rotations")
    c.expect_error("duquant: shared rotation, channel count unknown",
                   ["duquant", save("nodim.pt", {"fc.R1": orth(block)}),
                    "x"], "--dim")
    c.expect_ok("duquant --dim gives it",
                ["duquant", c.path("nodim.pt"), "dim.safetensors",
                 "--dim", dim])

    rbin = {"R1": orth(16).float(),
            "model.layers.0.self_attn.R2": orth(4).float()}
    c.expect_ok("spinquant: R.bin", ["spinquant", save("R.bin", rbin),
                                     "R.safetensors"])
    bad = dict(rbin)
    r2 = orth(4).float()
    r2[0, 0] += 0.01
    bad["model.layers.0.self_attn.R2"] = r2
    c.expect_error("spinquant: non-orthogonal R2",
                   ["spinquant", save("badR.bin", bad), "x"],
                   "SpinQuant R2 'model.layers.0.self_attn.R2'",
                   "is not orthogonal", "float32")
    c.expect_error("spinquant: no rotation keys",
                   ["spinquant", save("empty.bin", {"w": orth(4)}), "x"],
                   "no 'R1' key")
    c.expect_error("spinquant: --heads 0",
                   ["spinquant", c.path("R.bin"), "x", "--heads", "0"],
                   "--heads must be >= 1")

    c.expect_error("dfrot: several square matrices need --key",
                   ["dfrot", c.path("R.bin"), "x"], "--key")
    c.expect_ok("dfrot --key picks one",
                ["dfrot", c.path("R.bin"), "key.safetensors", "--key", "R1"])
    c.expect_error("torch file with a foreign object",
                   ["dfrot", save("obj.pt", {"R": orth(4),
                                             "x": NotATensor()}), "x"],
                   "--trust-pickle")
    c.expect_error("activations: bool tensor",
                   ["activations", save("bool.pt", {"m": torch.ones(3) > 0}),
                    "x"], "dtype bool")
    with open(c.path("junk.pt"), "wb") as f:
        f.write(b"not a torch file")
    c.expect_error("unreadable torch file",
                   ["activations", c.path("junk.pt"), "x"], "cannot read",
                   "junk.pt")


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    exporter = os.path.abspath(sys.argv[1])
    try:
        import numpy as np
    except ImportError as e:
        print("SKIPPED: %s cannot import numpy (%s); install python3-numpy"
              % (sys.executable, e))
        return SKIP
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="export_rotations_cli.") as work:
        os.chdir(work)  # relative output names land in the scratch folder
        try:
            c = Checker(exporter, work)
            numpy_checks(c, np)
            try:
                import torch
            except ImportError as e:
                torch = None
                reason = str(e)
            if torch is not None:
                torch_checks(c, np, torch)
        finally:
            os.chdir(cwd)
    print("%d passed, %d failed" % (c.passed, c.failures))
    if c.failures:
        return 1
    if torch is None:
        print("SKIPPED: the checks of torch files need PyTorch, which %s "
              "cannot import (%s); install python3-torch"
              % (sys.executable, reason))
        return SKIP
    return 0


if __name__ == "__main__":
    sys.exit(main())
