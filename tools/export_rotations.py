#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Convert rotations saved by DFRot, SpinQuant and DuQuant, and PyTorch
activation dumps, into files that rotquant::io reads.

Outputs are safetensors files written with NumPy only (no `safetensors`
package): transform files in rotquant's format version 1 (see the comment at
the top of include/rotquant/io/transform_file.hpp) and, for activations, plain
safetensors files. Every matrix is stored in float64; nothing is
re-orthogonalised unless --orthonormalize is given.

Row convention: rotquant applies a transform as X -> X M (rows are tokens), so
a peer's matrix is stored as M exactly when the peer multiplies activations on
the right.

Mappings (the transform's stages, in order):

  dfrot      R (C x C, saved with np.save or torch.save; DFRot's R1, applied
             as X -> X R)                           -> dense(R), name "R1".
  spinquant  R.bin (torch.save'd dict): "R1" (C x C, X -> X R1)
                                                    -> dense(R1), name "R1";
             every key ending in "R2" (head_dim x head_dim, applied per head
             as x_h -> x_h R2)                      -> dense(R2) of size
             head_dim, named by its key (".weight" dropped), or with
             --heads H block_diagonal(R2, shared) over H * head_dim (the
             o_proj input).
  duquant    per linear input: [scale(s)] -> block_diagonal(R_1)
             -> permutation(P_1) -> ... -> block_diagonal(R_{p+1}),
             i.e. x / s, x.reshape(-1, B) @ R_1, x[:, perm], ..., as DuQuant's
             quantizer applies them and as rotquant::duquant builds them
             (scale stage: values s, apply X / s; permutation: new channel i
             = old channel perm[i]). Accepted layouts (nested dicts are
             flattened with "."; an integer key at the top level, as in
             DuQuant's duquant_parameters.pth, becomes "model.layers.<i>"):
               <lin>.act_quantizer.R [p+1, B, B] (one block shared, the
                 released code) or [p+1, C/B, B, B] (one per block) and
               <lin>.act_quantizer.permutation_list [p, C] (DuQuant's
                 buffers; ".act_quantizer" is optional, ".weight_quantizer"
                 copies are ignored);
               <lin>.R1, <lin>.R2 ([B, B] shared or [C/B, B, B] per block)
                 and <lin>.perm or <lin>.permutation [C];
               smoothing: <lin>.smooth_scale(s) [C], or DuQuant's layer-level
                 <layer>.{qkv,fc1,out,down}_smooth_scale, which feed
                 q/k/v_proj, up/gate_proj, o_proj and down_proj.
             Transforms are named by <lin> ("transform" for a dict of one
             linear's R1/perm/R2 without a prefix). Smoothing shifts must be
             zero; LET post-scales and LWC bounds are not exported.
             --no-smooth drops the scale stage (when the scales are already
             folded into the model).
  activations  a .pt dict name -> tensor (nested dicts and lists flattened
             with "."), a single tensor, a .npy or a .npz -> a plain
             safetensors file with the same dtypes (F32, F16, BF16, F64 and
             integer types) and the same bytes.

Checks: every rotation must be finite, square and orthogonal within --tol
(max |R^T R - I|, default 1e-4; --orthonormalize projects instead),
permutations bijective integer vectors, scales finite, normal and > 0, and
activations finite (unless --allow-nonfinite). Torch files are loaded with
weights_only=True (tensors and containers only) unless --trust-pickle.

Examples:
  export_rotations.py dfrot R_llama2_7b.npy r1.safetensors
  export_rotations.py spinquant R.bin spinquant.safetensors --heads 32
  export_rotations.py duquant duquant_parameters.pth duquant.safetensors
  export_rotations.py activations acts.pt acts.safetensors

Exit status: 0 on success, 1 for a bad input (the message says what and
where), 2 for bad usage, 3 when NumPy, or PyTorch for a torch file, cannot be
imported (the message names the interpreter and the packages to install).
"""

import argparse
import json
import math
import os
import pickle
import re
import sys
import tempfile

EXIT_BAD_INPUT = 1
EXIT_MISSING_DEPENDENCY = 3

# Debian's python3-numpy and python3-torch import only in the system interpreter.
SYSTEM_PYTHON = "/usr/bin/python3"


def install_hint(package, debian, pip):
    """How to get `package` (as a sentence tail) for this interpreter."""
    if os.path.realpath(sys.executable) == os.path.realpath(SYSTEM_PYTHON):
        return "install it with `apt-get install %s` (Debian)" % debian
    return ("run it with %s after `apt-get install %s` (Debian), or install "
            "%s for this interpreter (%s -m pip install %s)"
            % (SYSTEM_PYTHON, debian, package, sys.executable or "python3",
               pip))


try:
    import numpy as np
except ImportError as _numpy_error:
    print("export_rotations.py needs NumPy, which %s cannot import (%s): %s"
          % (sys.executable or "this interpreter", _numpy_error,
             install_hint("NumPy", "python3-numpy", "numpy")),
          file=sys.stderr)
    sys.exit(EXIT_MISSING_DEPENDENCY)

PRODUCER = "rotquant tools/export_rotations.py"
DEFAULT_TOL = 1e-4


class ExportError(Exception):
    """A bad input: reported as 'error: <message>' with exit status 1."""


class MissingDependency(Exception):
    """PyTorch is needed and absent: exit status 3 (as for NumPy)."""


def warn(message):
    print("export_rotations: warning: " + message, file=sys.stderr)


# --------------------------------------------------------------------------
# FNV-1a 64 (the transform file checksum), vectorised with NumPy.
#
# h_{k+1} = (h_k ^ b_k) * P mod 2^64. Writing h_k ^ b_k = h_k + d_k with
# d_k = (l_k ^ b_k) - l_k, l_k = h_k mod 256, the recurrence becomes linear,
# h_m = h_0 P^m + sum_k d_k P^(m-k) mod 2^64, once the low bytes l_k are
# known. Those follow l_{k+1} = ((l_k ^ b_k) * P) mod 256, and bit j of that
# product is bit j of (l_k ^ b_k) xor a function of the bits below j, so each
# bit of l is a prefix xor once the lower bits are known: eight vector passes.

_FNV_OFFSET = 0xCBF29CE484222325
_FNV_PRIME = 0x100000001B3
_MASK64 = (1 << 64) - 1
_FNV_CHUNK = 1 << 20


class Fnv1a64:
    """Incremental FNV-1a 64 over byte strings and NumPy arrays."""

    _powers = None  # P^(n - k), k = 0..n-1, n = _FNV_CHUNK (shared)

    def __init__(self):
        self.value = _FNV_OFFSET

    @classmethod
    def _prime_powers(cls):
        if cls._powers is None:
            p = np.full(_FNV_CHUNK, _FNV_PRIME, dtype=np.uint64)
            cls._powers = np.ascontiguousarray(np.cumprod(p)[::-1])
        return cls._powers

    @staticmethod
    def _low_bytes(l0, b):
        """l_k (h_k mod 256 before byte k) for every k, starting from l0."""
        low = np.zeros(b.size, dtype=np.uint8)
        p_low = _FNV_PRIME & 0xFF
        for j in range(8):
            x = (low ^ b) & np.uint8((1 << j) - 1)
            carry = ((x.astype(np.uint16) * p_low) >> j) & 1
            toggle = (((b >> j) & 1).astype(np.uint16) ^ carry)
            acc = np.bitwise_xor.accumulate(toggle.astype(np.uint8))
            first = (l0 >> j) & 1
            bits = np.empty(b.size, dtype=np.uint8)
            bits[0] = first
            bits[1:] = acc[:-1] ^ np.uint8(first)
            low |= bits << np.uint8(j)
        return low

    def _update_chunk(self, b):
        m = b.size
        if m < 64:
            h = self.value
            for byte in b.tolist():
                h = ((h ^ byte) * _FNV_PRIME) & _MASK64
            self.value = h
            return
        pw = self._prime_powers()[_FNV_CHUNK - m:]
        low = self._low_bytes(self.value & 0xFF, b)
        d = (low ^ b).astype(np.int64) - low.astype(np.int64)
        s = int(np.sum(d.view(np.uint64) * pw, dtype=np.uint64))
        self.value = (self.value * int(pw[0]) + s) & _MASK64

    def update(self, data):
        b = np.frombuffer(memoryview(data).cast("B"), dtype=np.uint8)
        for start in range(0, b.size, _FNV_CHUNK):
            self._update_chunk(b[start:start + _FNV_CHUNK])

    def hexdigest(self):
        return "%016x" % self.value


# --------------------------------------------------------------------------
# safetensors writer

_SAFETENSORS_DTYPES = {
    np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16",
    np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("i1"): "I8",
    np.dtype("u1"): "U8",
}


class Entry:
    """One tensor: name, safetensors dtype tag, shape, little-endian bytes."""

    def __init__(self, name, tag, shape, data):
        self.name = name
        self.tag = tag
        self.shape = [int(d) for d in shape]
        self.data = data  # a C-contiguous little-endian NumPy array

    @classmethod
    def from_array(cls, name, array):
        a = np.asarray(array)
        le = a.dtype.newbyteorder("<") if a.dtype.itemsize > 1 else a.dtype
        if le not in _SAFETENSORS_DTYPES:
            raise ExportError("tensor '%s': dtype %s has no safetensors "
                              "equivalent here" % (name, a.dtype))
        a = np.ascontiguousarray(a, dtype=le)
        return cls(name, _SAFETENSORS_DTYPES[le], a.shape, a)


def _clean_text(text):
    """A str that encodes as UTF-8 (lone surrogates from odd file names)."""
    return text.encode("utf-8", "replace").decode("utf-8")


def write_safetensors(path, entries, metadata):
    """Writes entries (in order) and string metadata; header padded to 8."""
    header = {}
    if metadata:
        header["__metadata__"] = {_clean_text(k): _clean_text(v)
                                  for k, v in metadata.items()}
    offset = 0
    for e in entries:
        if not e.name or e.name == "__metadata__" or e.name in header:
            raise ExportError("invalid or duplicate tensor name '%s'"
                              % e.name)
        n = e.data.nbytes
        header[e.name] = {"dtype": e.tag, "shape": e.shape,
                          "data_offsets": [offset, offset + n]}
        offset += n
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=True)
    text += " " * (-len(text) % 8)
    out_dir = os.path.dirname(os.path.abspath(path))
    os.makedirs(out_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".export_rotations.", dir=out_dir)
    umask = os.umask(0)
    os.umask(umask)
    try:
        os.chmod(tmp, 0o666 & ~umask)  # as open() would, not mkstemp's 0600
        with os.fdopen(fd, "wb") as f:
            f.write(len(text).to_bytes(8, "little"))
            f.write(text.encode("ascii"))
            for e in entries:
                f.write(memoryview(e.data).cast("B"))
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


# --------------------------------------------------------------------------
# Transforms (rotquant's stages as data) and the transform file writer


def describe_dtype(dtype):
    return str(dtype).replace("torch.", "")


def check_matrix(m, what, source_dtype=None):
    """A finite, square float64 matrix."""
    m = np.asarray(m)
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] < 1:
        raise ExportError("%s must be a non-empty square matrix, got shape %s"
                          % (what, list(m.shape)))
    if not np.issubdtype(m.dtype, np.floating):
        raise ExportError("%s must be floating point, got %s"
                          % (what, describe_dtype(source_dtype or m.dtype)))
    m = m.astype(np.float64)
    bad = np.argwhere(~np.isfinite(m))
    if bad.size:
        i, j = bad[0]
        raise ExportError("%s has %d non-finite entries (first: [%d, %d] = "
                          "%r)" % (what, len(bad), i, j, m[i, j]))
    return m


def orthogonality_error(m):
    """max |M^T M - I| in float64 (rotquant::orthogonality_error)."""
    return float(np.max(np.abs(m.T @ m - np.eye(m.shape[0]))))


def nearest_orthogonal(m):
    u, _, vt = np.linalg.svd(m)
    return u @ vt


class Options:
    def __init__(self, tol=DEFAULT_TOL, orthonormalize=False):
        self.tol = tol
        self.orthonormalize = orthonormalize


def rotation(m, what, opts, source_dtype=None):
    """Validated rotation: finite, square, orthogonal within opts.tol."""
    m = check_matrix(m, what, source_dtype)
    if opts.orthonormalize:
        return nearest_orthogonal(m)
    err = orthogonality_error(m)
    if not err <= opts.tol:
        raise ExportError(
            "%s (%d x %d, %s) is not orthogonal: max |R^T R - I| = %.3g > "
            "%g; pass --orthonormalize to replace it by the nearest "
            "orthogonal matrix, or --tol to accept it as it is"
            % (what, m.shape[0], m.shape[1],
               describe_dtype(source_dtype or "float64"), err, opts.tol))
    return m


def permutation(p, what, dim):
    """Validated permutation: integers, length dim, a bijection of 0..C-1."""
    p = np.asarray(p)
    if p.ndim != 1:
        raise ExportError("%s must be a vector, got shape %s"
                          % (what, list(p.shape)))
    if not np.issubdtype(p.dtype, np.integer):
        raise ExportError("%s must hold integers, got %s" % (what, p.dtype))
    if p.size != dim:
        raise ExportError("%s has %d entries, the transform dimension is %d"
                          % (what, p.size, dim))
    p = p.astype(np.int64)
    out = np.flatnonzero((p < 0) | (p >= dim))
    if out.size:
        raise ExportError("%s is not a permutation of 0..%d: entry %d is %d"
                          % (what, dim - 1, out[0], p[out[0]]))
    counts = np.bincount(p, minlength=dim)
    if np.any(counts != 1):
        dup = int(np.flatnonzero(counts > 1)[0])
        missing = int(np.flatnonzero(counts == 0)[0])
        raise ExportError("%s is not a permutation of 0..%d: %d appears %d "
                          "times and %d is missing"
                          % (what, dim - 1, dup, counts[dup], missing))
    return p


def scales(s, what, dim):
    """Validated smoothing scales: finite, normal, > 0 (rotquant's rule)."""
    s = np.asarray(s)
    if s.ndim != 1 or s.size != dim:
        raise ExportError("%s must be a vector of %d scales, got shape %s"
                          % (what, dim, list(s.shape)))
    s = s.astype(np.float64)
    bad = np.flatnonzero(~(np.isfinite(s) & (s >= np.finfo(np.float64).tiny)))
    if bad.size:
        raise ExportError("%s[%d] = %r; scales must be finite, normal and > 0"
                          % (what, bad[0], s[bad[0]]))
    return s


class Transform:
    """rotquant::transform as data: an ordered list of stages over dim C."""

    def __init__(self, name, dim):
        if not name or "," in name:
            raise ExportError("transform name '%s' is empty or contains ','"
                              % name)
        self.name = name
        self.dim = int(dim)
        self.stages = []

    def add_scale(self, s):
        self.stages.append({"kind": "scale", "values": s})

    def add_permutation(self, p):
        self.stages.append({"kind": "permutation", "perm": p})

    def add_dense(self, m):
        if m.shape != (self.dim, self.dim):
            raise ExportError("'%s': a %s matrix for dimension %d"
                              % (self.name, list(m.shape), self.dim))
        self.stages.append({"kind": "dense", "blocks": m[None]})

    def add_block_diagonal(self, blocks, shared):
        """blocks: [n, B, B]; shared: one block for every group of B."""
        b = blocks.shape[1]
        if self.dim % b:
            raise ExportError("'%s': block size %d does not divide the "
                              "dimension %d" % (self.name, b, self.dim))
        need = 1 if shared else self.dim // b
        if blocks.shape[0] != need:
            raise ExportError("'%s': %d blocks of %d for dimension %d (need "
                              "%d)" % (self.name, blocks.shape[0], b,
                                       self.dim, need))
        self.stages.append({"kind": "block_diagonal", "blocks": blocks})


def write_transform_file(path, transforms, metadata):
    """rotquant transform file, version 1 (transform_file.hpp)."""
    names = [t.name for t in transforms]
    if len(set(names)) != len(names):
        raise ExportError("duplicate transform names")
    meta = {}
    entries = []
    for t in transforms:
        meta[t.name + ".dim"] = str(t.dim)
        meta[t.name + ".stages"] = str(len(t.stages))
        for i, st in enumerate(t.stages):
            p = "%s.stage.%d." % (t.name, i)
            meta[p + "kind"] = st["kind"]
            if st["kind"] == "scale":
                entries.append(Entry.from_array(
                    p + "values", st["values"].astype("<f8")))
            elif st["kind"] == "permutation":
                entries.append(Entry.from_array(
                    p + "perm", st["perm"].astype("<i8")))
            else:
                blocks = st["blocks"]
                if st["kind"] == "block_diagonal":
                    b = blocks.shape[1]
                    meta[p + "block"] = str(b)
                    shared = blocks.shape[0] == 1 and b != t.dim
                    meta[p + "shared"] = "1" if shared else "0"
                entries.append(Entry.from_array(
                    p + "blocks", blocks.astype("<f8")))
    for k, v in metadata.items():
        reserved = k in ("format", "version", "transforms", "checksum") or \
            any(k.startswith(n + ".") for n in names)
        if reserved:
            raise ExportError("metadata key '%s' is reserved" % k)
        meta[k] = v
    meta["format"] = "rotquant.transform"
    meta["version"] = "1"
    meta["transforms"] = ",".join(names)
    h = Fnv1a64()
    for e in entries:
        h.update(e.data)
    meta["checksum"] = h.hexdigest()
    write_safetensors(path, entries, meta)


# --------------------------------------------------------------------------
# Reading inputs

def import_torch(path):
    try:
        import torch
    except ImportError as e:
        raise MissingDependency(
            "reading '%s' needs PyTorch, which %s cannot import (%s): %s; "
            "or convert the file to .npy first"
            % (path, sys.executable, e,
               install_hint("PyTorch", "python3-torch", "torch")))
    return torch


def torch_load(path, trust_pickle):
    torch = import_torch(path)
    try:
        if trust_pickle:
            return torch.load(path, map_location="cpu")
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except TypeError:
            raise ExportError(
                "this PyTorch (%s) cannot load '%s' without running its "
                "pickled code; pass --trust-pickle if you trust the file"
                % (torch.__version__, path))
    except pickle.UnpicklingError as e:
        reason = (str(e).splitlines() or ["unpickling failed"])[0]
        raise ExportError(
            "cannot read '%s' as tensors and containers only (torch.load "
            "with weights_only=True: %s); if it is a torch.save file holding "
            "other objects and you trust it, pass --trust-pickle"
            % (path, reason[-160:]))
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise ExportError("cannot read '%s' with torch.load: %s" % (path, e))


def load_input(path, trust_pickle):
    """The object stored in path: an array/tensor or a (nested) dict."""
    if not os.path.isfile(path):
        raise ExportError("input '%s' does not exist or is not a file" % path)
    lower = path.lower()
    if lower.endswith(".npy") or lower.endswith(".npz"):
        try:
            obj = np.load(path, allow_pickle=False)
        except ValueError as e:
            raise ExportError("cannot read '%s' with numpy.load: %s (object "
                              "arrays are not accepted)" % (path, e))
        except OSError as e:
            raise ExportError("cannot read '%s': %s" % (path, e))
        if isinstance(obj, np.lib.npyio.NpzFile):
            with obj:
                return {k: obj[k] for k in obj.files}
        return obj
    return torch_load(path, trust_pickle)


def is_tensor(x):
    if isinstance(x, np.ndarray):
        return True
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def flatten(obj, prefix="", top_int_prefix=None, ignored=None):
    """(key, tensor) pairs of a nested dict/list, keys joined with '.'."""
    out = []
    if is_tensor(obj):
        return [(prefix, obj)]
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    else:
        if ignored is not None:
            ignored.append(prefix or "<root>")
        return out
    for k, v in items:
        if not isinstance(k, (str, int)):
            raise ExportError("unsupported key %r (type %s) in the input"
                              % (k, type(k).__name__))
        if isinstance(k, int) and not prefix and top_int_prefix:
            key = "%s.%d" % (top_int_prefix, k)
        else:
            key = str(k) if not prefix else prefix + "." + str(k)
        out.extend(flatten(v, key, None, ignored))
    return out


def to_numpy(x):
    """(array, source dtype name) of an ndarray or tensor; bf16 -> f32."""
    if isinstance(x, np.ndarray):
        return x, x.dtype.name
    t = x.detach().cpu()
    name = describe_dtype(t.dtype)
    if name == "bfloat16":
        t = t.float()  # exact
    return t.contiguous().numpy(), name


# --------------------------------------------------------------------------
# Subcommands


def base_metadata(method, args):
    return {"method": method, "producer": PRODUCER,
            "source": os.path.basename(args.input)}


def options(args):
    if not (args.tol >= 0 and math.isfinite(args.tol)):
        raise ExportError("--tol must be finite and >= 0, got %r" % args.tol)
    return Options(args.tol, args.orthonormalize)


def cmd_dfrot(args):
    opts = options(args)
    obj = load_input(args.input, args.trust_pickle)
    if is_tensor(obj):
        value, key = obj, None
    else:
        pairs = flatten(obj)
        if args.key is not None:
            found = [v for k, v in pairs if k == args.key]
            if not found:
                raise ExportError("'%s' has no key '%s' (keys: %s)"
                                  % (args.input, args.key,
                                     ", ".join(k for k, _ in pairs)))
            value, key = found[0], args.key
        else:
            square = [(k, v) for k, v in pairs
                      if len(v.shape) == 2 and v.shape[0] == v.shape[1]]
            if len(square) != 1:
                raise ExportError(
                    "'%s' holds %d square matrices (%s); name the rotation "
                    "with --key" % (args.input, len(square),
                                    ", ".join(k for k, _ in square) or "-"))
            key, value = square[0]
    array, dtype = to_numpy(value)
    what = "DFRot rotation" + (" '%s'" % key if key else "")
    r = rotation(array, what, opts, dtype)
    t = Transform(args.name, r.shape[0])
    t.add_dense(r)
    meta = base_metadata("dfrot", args)
    meta["source_dtype"] = dtype
    write_transform_file(args.output, [t], meta)
    return "%s: transform '%s' (dense %d x %d)" % (args.output, args.name,
                                                   r.shape[0], r.shape[0])


def strip_weight(key):
    return key[:-len(".weight")] if key.endswith(".weight") else key


def cmd_spinquant(args):
    opts = options(args)
    obj = load_input(args.input, args.trust_pickle)
    if is_tensor(obj):
        raise ExportError("'%s' holds a single tensor; SpinQuant's R.bin is "
                          "a dict with 'R1' and '...self_attn.R2' keys "
                          "(use the dfrot subcommand for a lone matrix)"
                          % args.input)
    ignored = []
    r1 = None
    r2 = []
    for key, value in flatten(obj, ignored=ignored):
        name = strip_weight(key)
        if name == "R1" or name.endswith(".R1"):
            if r1 is not None:
                raise ExportError("'%s' has two R1 entries ('%s' and '%s')"
                                  % (args.input, r1[0], key))
            r1 = (key, value)
        elif name.endswith("R2"):
            r2.append((name, key, value))
        else:
            ignored.append(key)
    if r1 is None and not r2:
        raise ExportError("'%s' has no 'R1' key and no key ending in 'R2' "
                          "(keys: %s)" % (args.input,
                                          ", ".join(ignored[:8]) or "-"))
    if ignored:
        warn("ignored %d entries that are neither R1 nor R2: %s"
             % (len(ignored), ", ".join(ignored[:5])
                + (" ..." if len(ignored) > 5 else "")))
    transforms = []
    dtypes = set()
    if r1 is not None:
        array, dtype = to_numpy(r1[1])
        dtypes.add(dtype)
        r = rotation(array, "SpinQuant R1 '%s'" % r1[0], opts, dtype)
        t = Transform("R1", r.shape[0])
        t.add_dense(r)
        transforms.append(t)
    if args.heads is not None and args.heads < 1:
        raise ExportError("--heads must be >= 1, got %d" % args.heads)
    for name, key, value in r2:
        array, dtype = to_numpy(value)
        dtypes.add(dtype)
        r = rotation(array, "SpinQuant R2 '%s'" % key, opts, dtype)
        hd = r.shape[0]
        if args.heads is None:
            t = Transform(name, hd)
            t.add_dense(r)
        else:
            t = Transform(name, hd * args.heads)
            t.add_block_diagonal(r[None], shared=args.heads > 1)
        transforms.append(t)
    meta = base_metadata("spinquant", args)
    meta["source_dtype"] = ",".join(sorted(dtypes))
    if args.heads is not None:
        meta["r2_heads"] = str(args.heads)
    write_transform_file(args.output, transforms, meta)
    return "%s: %d transform(s) (R1: %s, R2: %d)" % (
        args.output, len(transforms), "yes" if r1 is not None else "no",
        len(r2))


# DuQuant's layer-level smoothing parameters and the linears they feed.
DUQUANT_LAYER_SMOOTH = {
    "qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "fc1": ("mlp.up_proj", "mlp.gate_proj"),
    "out": ("self_attn.o_proj",),
    "down": ("mlp.down_proj",),
}
DUQUANT_SUFFIXES = ("R", "permutation_list", "R1", "R2", "perm",
                    "permutation", "smooth_scale", "smooth_scales")
_LAYER_PARAM = re.compile(r"^(?:(.*)\.)?(qkv|fc1|out|down|qkt)_smooth_"
                          r"(scale|shift)$")


def split_key(key):
    """(prefix, last component) of a dotted key."""
    head, _, last = key.rpartition(".")
    return head, last


def cmd_duquant(args):
    opts = options(args)
    obj = load_input(args.input, args.trust_pickle)
    if is_tensor(obj):
        raise ExportError("'%s' holds a single tensor; DuQuant exports are "
                          "dicts (see --help for the accepted keys)"
                          % args.input)
    ignored = []
    linears = {}  # name -> {field: (key, array, dtype)}
    layer_smooth = []
    for key, value in flatten(obj, top_int_prefix="model.layers",
                              ignored=ignored):
        m = _LAYER_PARAM.match(key)
        if m:
            layer, group, kind = m.group(1), m.group(2), m.group(3)
            if group == "qkt":
                ignored.append(key)  # scales q and k outputs, not inputs
                continue
            array, dtype = to_numpy(value)
            if kind == "shift":
                if np.any(array.astype(np.float64) != 0):
                    raise ExportError(
                        "'%s' is not zero; a smoothing shift (x - shift) is "
                        "not representable as a rotquant transform" % key)
                continue
            layer_smooth.append((layer, group, key, array, dtype))
            continue
        prefix, last = split_key(key)
        if last not in DUQUANT_SUFFIXES:
            if "post_scale" in last:
                warn("'%s' (a LET post-scale) is not exported" % key)
            ignored.append(key)
            continue
        if prefix.endswith(".weight_quantizer"):
            ignored.append(key)  # a copy of the act_quantizer's
            continue
        if prefix.endswith(".act_quantizer"):
            prefix = prefix[:-len(".act_quantizer")]
        if not prefix:
            prefix = "transform"  # a dict for a single linear input
        field = {"smooth_scales": "smooth_scale",
                 "permutation": "perm"}.get(last, last)
        entry = linears.setdefault(prefix, {})
        if field in entry:
            raise ExportError("'%s' and '%s' both give %s of '%s'"
                              % (entry[field][0], key, field, prefix))
        array, dtype = to_numpy(value)
        entry[field] = (key, array, dtype)
    for layer, group, key, array, dtype in layer_smooth:
        for lin in DUQUANT_LAYER_SMOOTH[group]:
            name = lin if not layer else layer + "." + lin
            entry = linears.setdefault(name, {})
            if "smooth_scale" in entry:
                raise ExportError("'%s' and '%s' both give the smoothing "
                                  "scales of '%s'"
                                  % (entry["smooth_scale"][0], key, name))
            entry["smooth_scale"] = (key, array, dtype)
    if not linears:
        raise ExportError("'%s' has no DuQuant rotations or smoothing scales "
                          "(keys: %s)" % (args.input,
                                          ", ".join(ignored[:8]) or "-"))
    transforms = []
    block = None
    for name, entry in linears.items():
        t = duquant_transform(name, entry, args, opts)
        if t is None:
            continue
        transforms.append(t)
        for st in t.stages:
            if st["kind"] == "block_diagonal":
                block = st["blocks"].shape[1]
    if not transforms:
        raise ExportError("'%s': nothing to export (only smoothing scales, "
                          "and --no-smooth given)" % args.input)
    meta = base_metadata("duquant", args)
    if block is not None:
        meta["block_size"] = str(block)
    meta["smoothing"] = "no" if args.no_smooth else "yes"
    write_transform_file(args.output, transforms, meta)
    return "%s: %d transform(s)" % (args.output, len(transforms))


def duquant_rotations(name, entry, opts):
    """[(blocks [n, B, B], shared)] in order, from R or R1/R2."""
    if "R" in entry and ("R1" in entry or "R2" in entry):
        raise ExportError("'%s' has both a stacked R and R1/R2" % name)
    if "R2" in entry and "R1" not in entry:
        raise ExportError("'%s' has R2 but no R1" % name)
    items = []  # (key, array [n, B, B], shared, dtype)
    if "R" in entry:
        key, r, dtype = entry["R"]
        if r.ndim == 2:
            r = r[None]
        if r.ndim == 3:
            items = [("%s[%d]" % (key, i), r[i][None], True, dtype)
                     for i in range(r.shape[0])]
        elif r.ndim == 4:
            items = [("%s[%d]" % (key, i), r[i], False, dtype)
                     for i in range(r.shape[0])]
        else:
            raise ExportError("'%s' must be [B, B], [p+1, B, B] or "
                              "[p+1, C/B, B, B], got shape %s"
                              % (key, list(r.shape)))
    else:
        for field in ("R1", "R2"):
            if field not in entry:
                continue
            key, r, dtype = entry[field]
            if r.ndim == 2:
                items.append((key, r[None], True, dtype))
            elif r.ndim == 3:
                items.append((key, r, False, dtype))
            else:
                raise ExportError("'%s' must be [B, B] or [C/B, B, B], got "
                                  "shape %s" % (key, list(r.shape)))
    out = []
    for key, stack, shared, dtype in items:
        if stack.shape[0] < 1:
            raise ExportError("'%s' holds no rotation" % key)
        blocks = []
        for j in range(stack.shape[0]):
            what = "rotation '%s'" % key if shared else \
                "rotation '%s' block %d" % (key, j)
            blocks.append(rotation(stack[j], what, opts, dtype))
        out.append((key, np.stack(blocks), shared))
    return out


def duquant_perms(entry):
    """[(key, perm vector)] in order, from permutation_list or perm."""
    if "permutation_list" in entry and "perm" in entry:
        raise ExportError("'%s' and '%s' both give permutations"
                          % (entry["permutation_list"][0], entry["perm"][0]))
    if "permutation_list" in entry:
        key, p, _ = entry["permutation_list"]
        if p.ndim == 1:
            p = p[None]
        if p.ndim != 2:
            raise ExportError(
                "'%s' must be [p, C] (full permutations), got shape %s"
                % (key, list(p.shape)))
        return [("%s[%d]" % (key, i), p[i]) for i in range(p.shape[0])]
    if "perm" in entry:
        key, p, _ = entry["perm"]
        return [(key, p)]
    return []


def duquant_transform(name, entry, args, opts):
    rots = duquant_rotations(name, entry, opts)
    perms = duquant_perms(entry)
    smooth = entry.get("smooth_scale") if not args.no_smooth else None
    if rots and len(perms) != len(rots) - 1:
        raise ExportError(
            "'%s' has %d rotation(s) and %d permutation(s); DuQuant "
            "alternates rotate, permute, ..., rotate (p permutations "
            "between p + 1 rotations)" % (name, len(rots), len(perms)))
    if not rots:
        if perms:
            raise ExportError("'%s' has a permutation but no rotation"
                              % name)
        if smooth is None:
            return None
        warn("'%s' has smoothing scales but no rotations: exported as a "
             "scale-only transform" % name)
    # The channel count C from every source that fixes it.
    dims = {}
    for key, p in perms:
        if p.ndim != 1:
            raise ExportError("permutation '%s' must be a vector, got shape "
                              "%s" % (key, list(p.shape)))
        dims[key] = p.size
    if smooth is not None:
        dims[smooth[0]] = smooth[1].size
    for key, blocks, shared in rots:
        if not shared:
            dims[key] = blocks.shape[0] * blocks.shape[1]
    if args.dim is not None:
        dims["--dim"] = args.dim
    if not dims:
        raise ExportError(
            "cannot tell the channel count of '%s' (shared block rotations, "
            "no permutation, no smoothing scales); pass --dim C" % name)
    if len(set(dims.values())) != 1:
        raise ExportError("'%s': inconsistent channel counts: %s" % (
            name, ", ".join("%s -> %d" % kv for kv in dims.items())))
    dim = next(iter(dims.values()))
    if dim < 1:
        raise ExportError("'%s': channel count %d" % (name, dim))
    t = Transform(name, dim)
    if smooth is not None:
        t.add_scale(scales(smooth[1], "smoothing scales '%s'" % smooth[0],
                           dim))
    for i, (key, blocks, shared) in enumerate(rots):
        b = blocks.shape[1]
        if args.block is not None and b != args.block:
            raise ExportError("'%s' has %d x %d blocks, --block says %d"
                              % (key, b, b, args.block))
        if dim % b:
            raise ExportError("'%s': block size %d does not divide the "
                              "channel count %d" % (key, b, dim))
        t.add_block_diagonal(blocks, shared)
        if i < len(perms):
            key_p, p = perms[i]
            t.add_permutation(permutation(p, "permutation '%s'" % key_p,
                                          dim))
    return t


# Activation dumps

_ACTIVATION_DTYPES = {
    "float32": ("F32", "<f4"), "float16": ("F16", "<f2"),
    "float64": ("F64", "<f8"), "int64": ("I64", "<i8"),
    "int32": ("I32", "<i4"), "int8": ("I8", "i1"), "uint8": ("U8", "u1"),
}


def activation_entry(name, value, allow_nonfinite):
    if isinstance(value, np.ndarray):
        dtype = value.dtype.name
        array = value
    else:
        t = value.detach().cpu().contiguous()
        dtype = describe_dtype(t.dtype)
        if dtype == "bfloat16":
            torch = sys.modules["torch"]
            bits = t.view(torch.int16).numpy().view("<u2")
            if not allow_nonfinite:
                check_finite_activation(name, t.float().numpy())
            return Entry(name, "BF16", t.shape,
                         np.ascontiguousarray(bits))
        array = t.numpy()
    if dtype not in _ACTIVATION_DTYPES:
        raise ExportError("tensor '%s' has dtype %s; activations must be "
                          "float32, float16, bfloat16, float64 or an integer "
                          "type rotquant reads (int8/uint8/int32/int64)"
                          % (name, dtype))
    tag, le = _ACTIVATION_DTYPES[dtype]
    if tag.startswith("F") and not allow_nonfinite:
        check_finite_activation(name, array)
    return Entry(name, tag, array.shape,
                 np.ascontiguousarray(array, dtype=le))


def check_finite_activation(name, array):
    bad = np.argwhere(~np.isfinite(array))
    if bad.size:
        where = ", ".join(str(int(i)) for i in bad[0])
        raise ExportError("tensor '%s' has %d NaN/Inf values (first at [%s]);"
                          " pass --allow-nonfinite to keep them"
                          % (name, len(bad), where))


def cmd_activations(args):
    obj = load_input(args.input, args.trust_pickle)
    if is_tensor(obj):
        name = args.name or os.path.splitext(os.path.basename(
            args.input))[0] or "activation"
        pairs = [(name, obj)]
    else:
        ignored = []
        pairs = flatten(obj, ignored=ignored)
        if ignored:
            warn("ignored %d non-tensor entries: %s"
                 % (len(ignored), ", ".join(ignored[:5])))
        if args.name:
            pairs = [(args.name + "." + k, v) for k, v in pairs]
    if not pairs:
        raise ExportError("'%s' holds no tensors" % args.input)
    entries = [activation_entry(k, v, args.allow_nonfinite)
               for k, v in pairs]
    meta = {"producer": PRODUCER, "source": os.path.basename(args.input)}
    write_safetensors(args.output, entries, meta)
    return "%s: %d tensor(s)" % (args.output, len(entries))


# --------------------------------------------------------------------------
# Command line


def build_parser():
    parser = argparse.ArgumentParser(
        prog="export_rotations.py",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=__doc__,
        epilog="Run '%(prog)s <subcommand> --help' for each subcommand's "
               "options.")
    sub = parser.add_subparsers(dest="command", metavar="subcommand")
    sub.required = True

    def common(p, rotations=True):
        p.add_argument("input", help="peer file (.npy, .npz, or a "
                       "torch.save file: .pt/.pth/.bin)")
        p.add_argument("output", help="safetensors file to write")
        p.add_argument("--trust-pickle", action="store_true",
                       help="load torch files with full pickle (runs code "
                       "stored in the file); by default only tensors and "
                       "containers are accepted (weights_only=True)")
        if rotations:
            p.add_argument("--tol", type=float, default=DEFAULT_TOL,
                           help="accepted max |R^T R - I| "
                           "(default %(default)g)")
            p.add_argument("--orthonormalize", action="store_true",
                           help="replace every rotation by its nearest "
                           "orthogonal matrix (polar factor, float64) "
                           "instead of checking it")

    p = sub.add_parser(
        "dfrot", help="DFRot's refined rotation R (C x C) -> dense stage",
        description="DFRot's rotation R (np.save'd C x C, or a torch file "
        "holding it) -> a transform file with one dense stage: X -> X R.")
    common(p)
    p.add_argument("--name", default="R1",
                   help="transform name (default %(default)s)")
    p.add_argument("--key", help="dict key of the rotation in a torch file "
                   "holding several square matrices")
    p.set_defaults(func=cmd_dfrot)

    p = sub.add_parser(
        "spinquant", help="SpinQuant's R.bin (R1, per-layer R2)",
        description="SpinQuant's R.bin -> transform 'R1' (dense, C x C) and "
        "one transform per key ending in R2, named by the key (dense, "
        "head_dim x head_dim, applied to each head's slice).")
    common(p)
    p.add_argument("--heads", type=int,
                   help="write each R2 as a shared block-diagonal transform "
                   "over HEADS * head_dim channels (the o_proj input) "
                   "instead of a head_dim transform")
    p.set_defaults(func=cmd_spinquant)

    p = sub.add_parser(
        "duquant", help="DuQuant's per-linear smoothing, rotations and "
        "permutations",
        description="DuQuant's saved parameters -> one transform per linear "
        "input: [scale s] -> block_diagonal(R1) -> permutation -> "
        "block_diagonal(R2) (generally (R, P) x p, then R). See the top of "
        "this script for the accepted keys.")
    common(p)
    p.add_argument("--block", type=int,
                   help="expected block size B (checked against the "
                   "rotations)")
    p.add_argument("--dim", type=int,
                   help="channel count C where the file does not fix it "
                   "(shared rotations without permutation or scales)")
    p.add_argument("--no-smooth", action="store_true",
                   help="leave the smoothing scales out (already folded "
                   "into the model)")
    p.set_defaults(func=cmd_duquant)

    p = sub.add_parser(
        "activations", help="PyTorch activation dump -> plain safetensors",
        description="A torch.save'd dict name -> tensor (or one tensor, "
        "a .npy or a .npz) -> a safetensors file with the same names, "
        "dtypes (float32/float16/bfloat16/float64/int) and bytes.")
    common(p, rotations=False)
    p.add_argument("--name", help="tensor name for a single tensor (default: "
                   "the input's file name), or a prefix for a dict")
    p.add_argument("--allow-nonfinite", action="store_true",
                   help="keep NaN/Inf values instead of rejecting the dump")
    p.set_defaults(func=cmd_activations)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        summary = args.func(args)
    except ExportError as e:
        print("export_rotations %s: error: %s" % (args.command, e),
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except MissingDependency as e:
        print("export_rotations %s: error: %s" % (args.command, e),
              file=sys.stderr)
        return EXIT_MISSING_DEPENDENCY
    print("export_rotations %s: wrote %s" % (args.command, summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
