"""PyTorch side of tests/test_torch_parity.cpp.

Reads a JSON list of cases written by the C++ test (layer kind, dtype, config, named parameters,
inputs, masks and upstream gradients), runs the same layer in PyTorch with those exact weights
(loaded with load_state_dict(strict=True), so the parameter names must match PyTorch's), and
writes the forward outputs, the gradients of every input and parameter, and values compared
without a gradient (attention weights) as JSON.

The Transformer cases run in training mode with dropout 0: with inputs that require grad,
PyTorch takes its ordinary (not the fast inference) path, whose numerics are the reference.

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


def bool_tensor(entry):
    return torch.tensor(entry["data"], dtype=torch.float64).reshape(entry["shape"]) != 0


def masks(spec, dtype):
    """(key_padding_mask, attn_mask) in PyTorch's form from one attention's masks in the case.

    The C++ side sends attn_mask as bool (JSON has no -inf) with "float" asking for its 0/-inf
    form, and is_causal as a flag; PyTorch 1.13 takes causality as an attn_mask only.
    """
    kpm = bool_tensor(spec["key_padding_mask"]) if "key_padding_mask" in spec else None
    attn = bool_tensor(spec["attn_mask"]) if "attn_mask" in spec else None
    if spec["is_causal"]:
        tq, tk = spec["tq"], spec["tk"]
        causal = torch.ones(tq, tk, dtype=torch.bool).triu(1 + tk - tq)
        attn = causal if attn is None else attn | causal
    if attn is not None and spec["float"]:
        attn = torch.zeros(attn.shape, dtype=dtype).masked_fill(attn, float("-inf"))
    return kpm, attn


def layer_kwargs(cfg):
    return dict(dim_feedforward=cfg["dim_feedforward"], dropout=0.0,
                activation=cfg["activation"], layer_norm_eps=cfg["layer_norm_eps"],
                batch_first=True, norm_first=cfg["norm_first"])


def build(case, dtype):
    kind, cfg = case["kind"], case["config"]
    nn = torch.nn
    if kind == "mha":
        return nn.MultiheadAttention(cfg["embed_dim"], cfg["num_heads"], bias=cfg["bias"],
                                     batch_first=True)
    if kind in ("encoder_layer", "encoder"):
        layer = nn.TransformerEncoderLayer(cfg["d_model"], cfg["nhead"], **layer_kwargs(cfg))
        if kind == "encoder_layer":
            return layer
        return nn.TransformerEncoder(layer, cfg["num_layers"],
                                     norm=nn.LayerNorm(cfg["d_model"], eps=cfg["layer_norm_eps"]),
                                     enable_nested_tensor=False)
    if kind in ("decoder_layer", "decoder"):
        layer = nn.TransformerDecoderLayer(cfg["d_model"], cfg["nhead"], **layer_kwargs(cfg))
        if kind == "decoder_layer":
            return layer
        return nn.TransformerDecoder(layer, cfg["num_layers"],
                                     norm=nn.LayerNorm(cfg["d_model"], eps=cfg["layer_norm_eps"]))
    if kind == "transformer":
        return nn.Transformer(cfg["d_model"], cfg["nhead"], cfg["num_encoder_layers"],
                              cfg["num_decoder_layers"], **layer_kwargs(cfg))
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
    values = {}

    def leaf(name):
        t = tensor(inputs[name], dtype).requires_grad_(True)
        grads_of[name] = t
        return t

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
    elif kind == "mha":
        kpm, attn = masks(case["masks"]["self"], dtype)
        if cfg["mode"] == "self":
            q = k = v = leaf("x")
        elif cfg["mode"] == "cross":
            q = leaf("query")
            k = v = leaf("memory")
        else:
            q, k, v = leaf("query"), leaf("key"), leaf("value")
        y, w = module(q, k, v, key_padding_mask=kpm, attn_mask=attn, need_weights=True,
                      average_attn_weights=False)
        outputs["y"] = y
        values["weights"] = w
    elif kind in ("encoder_layer", "encoder"):
        kpm, attn = masks(case["masks"]["src"], dtype)
        src = leaf("src")
        if kind == "encoder_layer":
            outputs["y"] = module(src, src_mask=attn, src_key_padding_mask=kpm)
        else:
            outputs["y"] = module(src, mask=attn, src_key_padding_mask=kpm)
    elif kind in ("decoder_layer", "decoder"):
        tgt_kpm, tgt_attn = masks(case["masks"]["tgt"], dtype)
        mem_kpm, mem_attn = masks(case["masks"]["memory"], dtype)
        outputs["y"] = module(leaf("tgt"), leaf("memory"), tgt_mask=tgt_attn, memory_mask=mem_attn,
                              tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm)
    elif kind == "transformer":
        src_kpm, src_attn = masks(case["masks"]["src"], dtype)
        tgt_kpm, tgt_attn = masks(case["masks"]["tgt"], dtype)
        mem_kpm, mem_attn = masks(case["masks"]["memory"], dtype)
        outputs["y"] = module(leaf("src"), leaf("tgt"), src_mask=src_attn, tgt_mask=tgt_attn,
                              memory_mask=mem_attn, src_key_padding_mask=src_kpm,
                              tgt_key_padding_mask=tgt_kpm, memory_key_padding_mask=mem_kpm)
    else:
        raise ValueError("unknown kind " + kind)
    total = sum((outputs[k] * up[k]).sum() for k in outputs)
    total.backward()
    grads = {k: v.grad for k, v in grads_of.items()}
    grads.update({k: v.grad for k, v in params.items()})
    return {"outputs": {k: dump(v) for k, v in outputs.items()},
            "grads": {k: dump(v) for k, v in grads.items() if v is not None},
            "values": {k: dump(v) for k, v in values.items()}}


def main():
    with open(sys.argv[1]) as f:
        cases = json.load(f)
    torch.manual_seed(0)
    results = [run(c) for c in cases]
    with open(sys.argv[2], "w") as f:
        json.dump(results, f)


if __name__ == "__main__":
    main()
