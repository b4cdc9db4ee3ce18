"""PyTorch side of the parity cases in tests/test_sdpa.cpp.

Reads a JSON list of cases written by the C++ test: scaled dot-product attention (q, k, v, an
optional boolean keep-mask, causal, scale) or gelu (x, approximate), each with the upstream
gradient of its output. Runs PyTorch's own function on the same values and writes the output and
the input gradients as JSON, with the name of the PyTorch function used.

PyTorch's attention takes a boolean attn_mask whose True entries take part, as seqgrad's mask.
Its is_causal is aligned top-left, seqgrad's causal bottom-right (query i sees key
j <= i + Tk - Tq, as a decoder with a key/value cache needs), so the causal part is passed as an
explicit mask built here: tril with diagonal Tk - Tq. Debian's torch 1.13 has the function only
as the private F._scaled_dot_product_attention, whose scale is fixed at 1/sqrt(D); there the
requested scale is folded into q (autograd carries it into q's gradient).

Usage: /usr/bin/python3 sdpa_parity.py IN.json OUT.json
"""
import json
import math
import sys

import torch
import torch.nn.functional as F


def tensor(entry, dtype):
    return torch.tensor(entry["data"], dtype=dtype).reshape(entry["shape"])


def dump(t):
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def attention(q, k, v, keep, scale):
    public = getattr(F, "scaled_dot_product_attention", None)
    if public is not None:
        try:
            return public(q, k, v, attn_mask=keep, scale=scale), "F.scaled_dot_product_attention"
        except TypeError:  # torch 2.0: no scale argument
            pass
        fn, name = public, "F.scaled_dot_product_attention (scale folded into q)"
    else:
        fn, name = F._scaled_dot_product_attention, "F._scaled_dot_product_attention (torch 1.13)"
    q_scaled = q * (scale * math.sqrt(q.shape[-1]))
    out = fn(q_scaled, k, v, attn_mask=keep)
    return (out[0] if isinstance(out, tuple) else out), name


def run_sdpa(case, dtype):
    q = tensor(case["q"], dtype).requires_grad_(True)
    if case["self"]:
        k = v = q
    else:
        k = tensor(case["k"], dtype).requires_grad_(True)
        v = tensor(case["v"], dtype).requires_grad_(True)
    keep = None
    if case["mask"] is not None:
        keep = tensor(case["mask"], torch.float64) != 0
    if case["causal"]:
        tq, tk = q.shape[-2], k.shape[-2]
        causal = torch.ones(tq, tk, dtype=torch.bool).tril(diagonal=tk - tq)
        keep = causal if keep is None else keep & causal
    if keep is not None:
        # PyTorch broadcasts the mask against the scores; give it their rank.
        while keep.dim() < q.dim():
            keep = keep.unsqueeze(0)
    out, name = attention(q, k, v, keep, case["scale"])
    (out * tensor(case["upstream"], dtype)).sum().backward()
    values = {"out": out, "dq": q.grad}
    if not case["self"]:
        values["dk"] = k.grad
        values["dv"] = v.grad
    return values, name


def run_gelu(case, dtype):
    x = tensor(case["x"], dtype).requires_grad_(True)
    y = F.gelu(x, approximate=case["approximate"])
    (y * tensor(case["upstream"], dtype)).sum().backward()
    return {"out": y, "dx": x.grad}, "F.gelu(approximate='{}')".format(case["approximate"])


def run(case):
    dtype = torch.float64 if case["dtype"] == "float64" else torch.float32
    if case["kind"] == "sdpa":
        values, name = run_sdpa(case, dtype)
    elif case["kind"] == "gelu":
        values, name = run_gelu(case, dtype)
    else:
        raise ValueError("unknown kind " + case["kind"])
    return {"impl": name, "values": {k: dump(v) for k, v in values.items()}}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    results = [run(c) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
