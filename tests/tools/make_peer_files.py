#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Setup step of the exporter's end-to-end test (ctest
tools.export_rotations_py).

Writes files the way the peer projects save them (torch.save and np.save),
with the reference matrices next to them as .npy, runs
tools/export_rotations.py on each, and lists what the C++ test
(export_rotations_test.cpp) must check in manifest.txt:

  transform   FILE NAME REF.npy       to_dense() of NAME in FILE equals REF
  duquant     FILE NAME PREFIX        NAME equals the transform rotquant
                                      builds from PREFIX.{s,R1,perm,R2}.npy
  count       FILE N                  FILE holds exactly N transforms
  activation  FILE NAME TAG REF.npy   tensor NAME has dtype TAG and REF's
                                      shape and values (exactly)

Usage: make_peer_files.py --out DIR --exporter tools/export_rotations.py
Exit status 77 (ctest SKIP_RETURN_CODE) when NumPy or PyTorch cannot be
imported; DIR then holds SKIPPED with the reason, so the C++ test skips too.
"""

import argparse
import os
import subprocess
import sys

SKIP = 77


def clear(out):
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        path = os.path.join(out, name)
        if os.path.isfile(path) or os.path.islink(path):
            os.unlink(path)


def skip(out, reason):
    with open(os.path.join(out, "SKIPPED"), "w") as f:
        f.write(reason + "\n")
    print("SKIPPED: " + reason)
    return SKIP


class Peers:
    def __init__(self, out, exporter, np, torch):
        self.out = out
        self.exporter = exporter
        self.np = np
        self.torch = torch
        self.rng = np.random.default_rng(20240611)
        self.manifest = []

    def path(self, name):
        return os.path.join(self.out, name)

    def save_ref(self, name, array):
        self.np.save(self.path(name), self.np.ascontiguousarray(array))
        return name

    def orthogonal(self, n):
        """Q factor of a seeded Gaussian matrix (float64)."""
        q, _ = self.np.linalg.qr(self.rng.standard_normal((n, n)))
        return q

    def export(self, *args):
        cmd = [sys.executable, self.exporter] + [str(a) for a in args]
        print("+ " + " ".join(cmd[1:]), flush=True)
        proc = subprocess.run(cmd, cwd=self.out, capture_output=True,
                              text=True)
        sys.stdout.write(proc.stdout)
        sys.stdout.write(proc.stderr)
        if proc.returncode != 0:
            raise SystemExit("exporter failed with status %d"
                             % proc.returncode)

    def dfrot(self):
        np, torch = self.np, self.torch
        r = self.orthogonal(48)  # np.save'd float64, as DFRot's script
        np.save(self.path("dfrot_R.npy"), r)
        self.save_ref("dfrot_R.ref.npy", r)
        self.export("dfrot", "dfrot_R.npy", "dfrot.safetensors")
        self.manifest.append("transform dfrot.safetensors R1 dfrot_R.ref.npy")
        self.manifest.append("count dfrot.safetensors 1")
        # A float32 torch tensor (rounded, orthogonal to ~1e-7).
        r32 = torch.from_numpy(self.orthogonal(40)).float()
        torch.save(r32, self.path("dfrot_R.pt"))
        self.save_ref("dfrot_pt.ref.npy", r32.double().numpy())
        self.export("dfrot", "dfrot_R.pt", "dfrot_pt.safetensors",
                    "--name", "residual")
        self.manifest.append(
            "transform dfrot_pt.safetensors residual dfrot_pt.ref.npy")

    def spinquant(self):
        np, torch = self.np, self.torch
        hidden, head_dim, heads, layers = 64, 16, 4, 2
        rs = {"R1": torch.from_numpy(self.orthogonal(hidden)).float()}
        for i in range(layers):
            key = "model.layers.%d.self_attn.R2" % i
            rs[key] = torch.from_numpy(self.orthogonal(head_dim)).float()
        torch.save(rs, self.path("R.bin"))
        self.export("spinquant", "R.bin", "spinquant.safetensors")
        self.export("spinquant", "R.bin", "spinquant_heads.safetensors",
                    "--heads", heads)
        for key, value in rs.items():
            m = value.double().numpy()
            ref = self.save_ref("spinquant.%s.ref.npy" % key, m)
            self.manifest.append("transform spinquant.safetensors %s %s"
                                 % (key, ref))
            if key != "R1":  # the o_proj input: R2 on every head
                ref = self.save_ref("spinquant_heads.%s.ref.npy" % key,
                                    np.kron(np.eye(heads), m))
            self.manifest.append("transform spinquant_heads.safetensors "
                                 "%s %s" % (key, ref))
        self.manifest.append("count spinquant.safetensors %d" % len(rs))
        self.manifest.append("count spinquant_heads.safetensors %d"
                             % len(rs))

    # DuQuant --------------------------------------------------------------

    def duquant_reference(self, dim, s, rots, perms):
        """DuQuant's quantizer ops (quantize/quantizer.py, init_duquant)
        applied to the identity in float64: X / s, then per search
        X.reshape(-1, B) @ R (per-block stacks: block g of every row times
        R[g]) and X[:, perm]."""
        torch = self.torch
        x = torch.eye(dim, dtype=torch.float64)
        if s is not None:
            x = x / torch.from_numpy(s)
        for i, r in enumerate(rots):
            r = torch.from_numpy(r)
            b = r.shape[-1]
            if r.dim() == 2:
                x = x.reshape(-1, b).matmul(r).reshape(dim, dim)
            else:
                x = torch.cat([x[:, g * b:(g + 1) * b].matmul(r[g])
                               for g in range(r.shape[0])], dim=1)
            if i < len(perms):
                x = x[:, torch.from_numpy(perms[i])]
        return x.numpy()

    def duquant_linear(self, dim, block, per_block):
        """(s, [R1, R2], [perm]) like one DuQuant linear input (fp32)."""
        np = self.np
        s = np.exp(self.rng.normal(0.0, 1.0, dim)).astype(np.float32)
        rots = []
        for _ in range(2):
            n = dim // block if per_block else 1
            r = np.stack([self.orthogonal(block) for _ in range(n)])
            r = r.astype(np.float32)
            rots.append(r if per_block else r[0])
        perm = self.rng.permutation(dim).astype(np.int64)
        return s, rots, [perm]

    def write_components(self, prefix, s, rots, perms):
        np = self.np
        self.save_ref(prefix + ".s.npy", s.astype(np.float64))
        for name, r in zip(("R1", "R2"), rots):
            r = r.astype(np.float64)
            self.save_ref("%s.%s.npy" % (prefix, name),
                          r if r.ndim == 3 else r[None])
        self.save_ref(prefix + ".perm.npy", perms[0])

    def duquant(self):
        np, torch = self.np, self.torch
        hidden, ffn, block = 64, 96, 16
        params = {}
        count = 0
        for layer in range(2):
            state = {}
            groups = {"qkv": (hidden, ["self_attn.q_proj", "self_attn.k_proj",
                                       "self_attn.v_proj"]),
                      "fc1": (hidden, ["mlp.up_proj", "mlp.gate_proj"]),
                      "out": (hidden, ["self_attn.o_proj"]),
                      "down": (ffn, ["mlp.down_proj"])}
            for group, (dim, linears) in groups.items():
                # Paper mode (one rotation per block) for layer 1's o_proj.
                per_block = layer == 1 and group == "out"
                s, rots, perms = self.duquant_linear(dim, block, per_block)
                state["%s_smooth_scale" % group] = torch.from_numpy(s)
                state["%s_smooth_shift" % group] = torch.zeros(dim)
                r = torch.from_numpy(np.stack(rots))
                p = torch.from_numpy(np.stack(perms))
                for lin in linears:  # k/v and gate copy q's and up's
                    for q in ("act_quantizer", "weight_quantizer"):
                        state["%s.%s.R" % (lin, q)] = r.clone()
                        state["%s.%s.permutation_list" % (lin, q)] = p.clone()
                    state["%s.weight_quantizer.upbound_factor" % lin] = \
                        torch.full((dim, 1), 4.0)
                    name = "model.layers.%d.%s" % (layer, lin)
                    ref = self.duquant_reference(
                        dim, s.astype(np.float64),
                        [x.astype(np.float64) for x in rots], perms)
                    self.save_ref("duquant.%s.ref.npy" % name, ref)
                    self.manifest.append(
                        "transform duquant.safetensors %s duquant.%s.ref.npy"
                        % (name, name))
                    self.write_components("duquant." + name, s, rots, perms)
                    self.manifest.append(
                        "duquant duquant.safetensors %s duquant.%s"
                        % (name, name))
                    count += 1
            state["qkt_smooth_scale"] = torch.ones(hidden)
            state["init_duquant_params"] = torch.tensor(1)
            params[layer] = state
        torch.save(params, self.path("duquant_parameters.pth"))
        self.export("duquant", "duquant_parameters.pth", "duquant.safetensors",
                    "--block", block)
        self.manifest.append("count duquant.safetensors %d" % count)

        # The simpler layout: R1 per block (float64), perm, R2 shared.
        dim, block = 24, 8
        s, rots, perms = self.duquant_linear(dim, block, False)
        rots[0] = np.stack([self.orthogonal(block) for _ in range(3)])
        torch.save({"layer0": {"fc1": {
            "R1": torch.from_numpy(rots[0]),
            "perm": torch.from_numpy(perms[0]),
            "R2": torch.from_numpy(rots[1]),
            "smooth_scales": torch.from_numpy(s)}}},
            self.path("duquant_simple.pt"))
        self.export("duquant", "duquant_simple.pt",
                    "duquant_simple.safetensors")
        ref = self.duquant_reference(
            dim, s.astype(np.float64), [x.astype(np.float64) for x in rots],
            perms)
        self.save_ref("duquant_simple.ref.npy", ref)
        self.write_components("duquant_simple", s, rots, perms)
        self.manifest.append("transform duquant_simple.safetensors "
                             "layer0.fc1 duquant_simple.ref.npy")
        self.manifest.append("duquant duquant_simple.safetensors layer0.fc1 "
                             "duquant_simple")
        self.manifest.append("count duquant_simple.safetensors 1")

    # Activations ------------------------------------------------------------

    def activations(self):
        np, torch = self.np, self.torch
        f32 = self.rng.standard_normal((5, 64)).astype(np.float32)
        f32[2, 7] = 1234.5  # a massive activation
        f32[0, 0] = -0.0
        f16 = torch.from_numpy(
            (self.rng.standard_normal((3, 96)) * 4).astype(np.float16))
        f16[0, :4] = torch.tensor([65504.0, -65504.0, 6.0e-8, -0.0])
        bf16 = torch.from_numpy(
            self.rng.standard_normal((4, 8)) * 100).bfloat16()
        bf16[1, :3] = torch.tensor([3.0e38, -1.0e-38, 1.0 / 3.0])
        tokens = torch.arange(7, dtype=torch.int64) * 1000003
        dump = {"model.layers.0.input": torch.from_numpy(f32),
                "model.layers.0.mlp.down_proj.input": f16,
                "model.layers.1": {"bf16": bf16},
                "tokens": tokens}
        torch.save(dump, self.path("activations.pt"))
        self.export("activations", "activations.pt",
                    "activations.safetensors")
        for name, tag, t in (("model.layers.0.input", "F32", dump[
                                 "model.layers.0.input"]),
                             ("model.layers.0.mlp.down_proj.input", "F16",
                              f16),
                             ("model.layers.1.bf16", "BF16", bf16),
                             ("tokens", "I64", tokens)):
            ref = t.numpy() if tag == "I64" else t.float().numpy()
            ref_name = self.save_ref("activations.%s.ref.npy" % name, ref)
            self.manifest.append("activation activations.safetensors %s %s "
                                 "%s" % (name, tag, ref_name))
        act = (self.rng.standard_normal((6, 10)) * 3).astype(np.float32)
        np.save(self.path("act.npy"), act)
        self.export("activations", "act.npy", "act_npy.safetensors",
                    "--name", "x")
        self.manifest.append("activation act_npy.safetensors x F32 act.npy")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="folder to fill")
    parser.add_argument("--exporter", required=True,
                        help="path of tools/export_rotations.py")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    clear(out)
    try:
        import numpy as np
    except ImportError as e:
        return skip(out, "%s cannot import numpy (%s); install python3-numpy"
                    % (sys.executable, e))
    try:
        import torch
    except ImportError as e:
        return skip(out, "%s cannot import torch (%s); install python3-torch "
                    "(Debian) to run the exporter's end-to-end test"
                    % (sys.executable, e))
    torch.manual_seed(0)
    peers = Peers(out, os.path.abspath(args.exporter), np, torch)
    peers.dfrot()
    peers.spinquant()
    peers.duquant()
    peers.activations()
    with open(os.path.join(out, "manifest.txt"), "w") as f:
        f.write("\n".join(peers.manifest) + "\n")
    print("wrote %d checks to %s"
          % (len(peers.manifest), os.path.join(out, "manifest.txt")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
