"""PyTorch side of tests/test_torch_parity.cpp.

Reads a JSON list of cases written by the C++ test (layer kind, dtype, config, named parameters,
inputs and upstream gradients), runs the same layer in PyTorch with those exact weights (loaded
with load_state_dict(strict=True), so the parameter names must match PyTorch's), and writes the
forward outputs and the gradients of every input and parameter as JSON.

Usage: /usr/bin/python3 nn_parity.py IN.json OUT.json
"""
import json
import sys

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


def tensor(entry, dtype):
    return torch.tensor(entry["data"], dtype=dtype).reshape(entry["shape"])


def dump(t):
    return {"shape": list(t.shape), "data": t.detach().reshape(-1).tolist()}


def build(case, dtype):
    kind, cfg = case["kind"], case["config"]
    if kind == "linear":
        return torch.nn.Linear(cfg["in"], cfg["out"])
    if kind == "embedding":
        return torch.nn.Embedding(cfg["num"], cfg["dim"], padding_idx=cfg["padding_idx"])
    if kind in ("lstm", "gru"):
        cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        return cls(cfg["input_size"], cfg["hidden_size"], num_layers=cfg["num_layers"],
                   bidirectional=cfg["bidirectional"], batch_first=True)
    return None  # cross_entropy has no module


def run(case):
    dtype = torch.float64 if case["dtype"] == "float64" else torch.float32
    module = build(case, dtype)
    params = {}
    if module is not None:
        module = module.to(dtype)
        state = {k: tensor(v, dtype) for k, v in case["params"].items()}
        module.load_state_dict(state, strict=True)
        params = dict(module.named_parameters())
    inputs = case["inputs"]
    up = {k: tensor(v, dtype) for k, v in case["upstream"].items()}
    kind, cfg = case["kind"], case["config"]
    grads_of = {}
    outputs = {}
    if kind == "linear":
        x = tensor(inputs["x"], dtype).requires_grad_(True)
        outputs["y"] = module(x)
        grads_of["x"] = x
    elif kind == "embedding":
        ids = torch.tensor(inputs["ids"]["data"], dtype=torch.int64).reshape(inputs["ids"]["shape"])
        outputs["y"] = module(ids)
    elif kind in ("lstm", "gru"):
        x = tensor(inputs["x"], dtype).requires_grad_(True)
        lengths = torch.tensor(inputs["lengths"], dtype=torch.int64)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, state = module(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        outputs["output"] = out
        if kind == "lstm":
            outputs["h"], outputs["c"] = state
        else:
            outputs["h"] = state
        grads_of["x"] = x
    elif kind == "cross_entropy":
        logits = tensor(inputs["logits"], dtype).requires_grad_(True)
        targets = torch.tensor(inputs["targets"], dtype=torch.int64)
        outputs["loss"] = torch.nn.functional.cross_entropy(
            logits, targets, ignore_index=cfg["ignore_index"],
            label_smoothing=cfg["label_smoothing"])
        grads_of["logits"] = logits
    else:
        raise ValueError("unknown kind " + kind)
    total = sum((outputs[k] * up[k]).sum() for k in outputs)
    total.backward()
    grads = {k: v.grad for k, v in grads_of.items()}
    grads.update({k: v.grad for k, v in params.items()})
    return {"outputs": {k: dump(v) for k, v in outputs.items()},
            "grads": {k: dump(v) for k, v in grads.items() if v is not None}}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    torch.manual_seed(0)
    results = [run(c) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
