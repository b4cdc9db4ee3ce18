#!/usr/bin/python3
"""The PyTorch side of benchmarks/bench_seq2seq.cpp: seqgrad's Seq2Seq model (Luong attention with
input feeding, 'concat' additive scorer, bidirectional LSTM encoder with hidden/2 per direction,
tanh(Linear) bridge, LSTM decoder, combine tanh(W_c [c; h]), projection, cross-entropy ignoring
pad 0, teacher forcing, dropout 0) written the way a PyTorch user would: nn.Embedding, nn.LSTM on a
packed batch, nn.LSTMCell stepping, nn.Linear. Parameter names are seqgrad's (decoder.rnn is a
list of LSTMCells, renamed on load), so seqgrad's weights load strictly, name by name and shape by
shape. Shape legend: B batch, S source length, T target length, E embedding, H hidden,
V vocabulary, A attention size.

Two ways to run it, always with Debian's interpreter (/usr/bin/python3 has python3-torch):

  seq2seq_torch.py [--hidden 256 --batch 64 ...] --steps 20
      standalone: random weights and batch, N timed training steps and greedy decodes after
      warm-up; prints one JSON object with the per-step times in ms.
  seq2seq_torch.py --weights FILE --serve
      what bench_seq2seq runs: the model config, seqgrad's weights and the batch come from the
      safetensors FILE; prints one JSON line with parity figures (parameter count, the initial
      loss, gradient norm and greedy tokens), then answers commands on stdin, one JSON line each:
        train WARMUP STEPS    -> {"ms": [...], "loss": last loss}
        decode WARMUP STEPS   -> {"ms": [...], "steps": decoder steps of the last decode}
        quit
      so the C++ side can alternate rounds (seqgrad, torch, seqgrad, ...) in one run.
"""
import argparse
import ctypes
import json
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, BOS, EOS = 0, 1, 2  # seqgrad's reserved ids (seq2seq/model.h)


# --- the model ---------------------------------------------------------------------------------


class Config:
    def __init__(self, src_vocab, tgt_vocab, embed, hidden, layers, attention_size=0):
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.embed, self.hidden, self.layers = embed, hidden, layers
        self.attention_size = attention_size if attention_size > 0 else hidden


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c.src_vocab, c.embed, padding_idx=PAD)
        self.rnn = nn.LSTM(c.embed, c.hidden // 2, num_layers=c.layers, bidirectional=True,
                           batch_first=True)

    def forward(self, src, lengths):
        # src [B,S], lengths [B] (CPU int64) -> states [B,S,H] (zero past each length),
        # mask [B,S], final (h, c) [L*2,B,H/2] in the batch's own order
        x = self.embedding(src)
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = torch.arange(src.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        return states, mask, final


class Bridge(nn.Module):
    # [L*D,B,Hh] -> [L,B,D*Hh] -> tanh(W x + b) [L,B,H]
    def __init__(self, c):
        super().__init__()
        self.layers = c.layers
        self.h = nn.Linear(c.hidden, c.hidden)
        self.c = nn.Linear(c.hidden, c.hidden)

    def map(self, layer, states):
        B = states.size(1)
        x = states.view(self.layers, 2, B, -1).permute(0, 2, 1, 3).reshape(self.layers, B, -1)
        return torch.tanh(layer(x))


class ConcatScorer(nn.Module):
    # score(q, k) = v . tanh(W q + U k); U k is computed once per batch
    def __init__(self, c):
        super().__init__()
        self.W = nn.Linear(c.hidden, c.attention_size, bias=False)
        self.U = nn.Linear(c.hidden, c.attention_size)
        self.v = nn.Linear(c.attention_size, 1, bias=False)

    def score(self, query, uk):  # [B,H], [B,S,A] -> [B,S]
        return self.v(torch.tanh(uk + self.W(query).unsqueeze(1))).squeeze(2)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.scorer = ConcatScorer(c)


class StackedLSTMCell(nn.Module):
    def __init__(self, c):
        super().__init__()
        sizes = [c.embed + c.hidden] + [c.hidden] * (c.layers - 1)  # Luong input feeding
        self.cells = nn.ModuleList(nn.LSTMCell(i, c.hidden) for i in sizes)

    def forward(self, x, hs, cs):
        new_h, new_c = [], []
        for cell, h, c in zip(self.cells, hs, cs):
            h, c = cell(x, (h, c))
            new_h.append(h)
            new_c.append(c)
            x = h
        return new_h, new_c


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.hidden = c.hidden
        self.embedding = nn.Embedding(c.tgt_vocab, c.embed, padding_idx=PAD)
        self.attention = Attention(c)
        self.rnn = StackedLSTMCell(c)
        self.combine = nn.Linear(2 * c.hidden, c.hidden)
        self.project = nn.Linear(c.hidden, c.tgt_vocab)

    def step(self, y_prev, feed, hs, cs, values, prepared, mask):
        # Luong: h_t = LSTM([emb(y_{t-1}); o_{t-1}]); c_t = attend(h_t); o_t = tanh(W_c [c_t; h_t])
        x = torch.cat([self.embedding(y_prev), feed], 1)
        hs, cs = self.rnn(x, hs, cs)
        h = hs[-1]
        scores = self.attention.scorer.score(h, prepared).masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, 1)  # [B,S]
        context = torch.bmm(a.unsqueeze(1), values).squeeze(1)  # [B,H]
        o = torch.tanh(self.combine(torch.cat([context, h], 1)))
        return o, a, hs, cs


class Seq2Seq(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cfg = c
        self.encoder = Encoder(c)
        self.bridge = Bridge(c)
        self.decoder = Decoder(c)

    def start(self, src, lengths):
        states, mask, (h, c) = self.encoder(src, lengths)
        h0 = self.bridge.map(self.bridge.h, h).unbind(0)
        c0 = self.bridge.map(self.bridge.c, c).unbind(0)
        prepared = self.decoder.attention.scorer.U(states)
        feed = torch.zeros(src.size(0), self.cfg.hidden)
        return states, prepared, mask, list(h0), list(c0), feed

    def loss(self, src, lengths, tgt_in, tgt_out):
        """Teacher-forced mean cross-entropy over real target tokens, plus the token count and
        argmax hits that seqgrad's Seq2Seq::loss also computes."""
        B, T = tgt_in.shape
        values, prepared, mask, hs, cs, feed = self.start(src, lengths)
        outputs = []
        for t in range(T):
            feed, _, hs, cs = self.decoder.step(tgt_in[:, t], feed, hs, cs, values, prepared, mask)
            outputs.append(feed)
        logits = self.decoder.project(torch.stack(outputs, 1)).reshape(B * T, -1)
        targets = tgt_out.reshape(-1)
        loss = F.cross_entropy(logits, targets, ignore_index=PAD)
        with torch.no_grad():
            real = targets != PAD
            tokens = int(real.sum())
            correct = int(((logits.argmax(1) == targets) & real).sum())
        return loss, tokens, correct

    @torch.no_grad()
    def greedy(self, src, lengths, max_len):
        """Greedy decoding (seqgrad's beam_search with beam 1): stops when every row has emitted
        </s> or after max_len steps. Returns tokens [B,steps], attention [B,steps,S], steps."""
        values, prepared, mask, hs, cs, feed = self.start(src, lengths)
        y = torch.full((src.size(0),), BOS, dtype=torch.int64)
        finished = torch.zeros(src.size(0), dtype=torch.bool)
        tokens, attention = [], []
        for _ in range(max_len):
            feed, a, hs, cs = self.decoder.step(y, feed, hs, cs, values, prepared, mask)
            logp = F.log_softmax(self.decoder.project(feed), 1)
            y = logp.argmax(1)
            tokens.append(y)
            attention.append(a)
            finished |= y == EOS
            if bool(finished.all()):
                break
        return torch.stack(tokens, 1), torch.stack(attention, 1), len(tokens)


def torch_name(name):
    """seqgrad parameter name -> this model's: the decoder's LSTM is a list of cells."""
    prefix = "decoder.rnn."
    if name.startswith(prefix):
        base, layer = name[len(prefix):].rsplit("_l", 1)  # weight_ih_l0 -> weight_ih, 0
        return f"{prefix}cells.{layer}.{base}"
    return name


# --- seqgrad's file: config, weights and batch ---------------------------------------------------

DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8"),
          "BOOL": np.dtype("?")}


def read_safetensors(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        a = np.frombuffer(blob[base + begin:base + end], dtype=DTYPES[info["dtype"]])
        tensors[name] = a.reshape(info["shape"]).copy()
    return metadata, tensors


def load_weights(model, params):
    """Strict: every parameter of both models, by name, of one shape."""
    own = dict(model.named_parameters())
    mapped = {torch_name(k): v for k, v in params.items()}
    missing = sorted(set(own) - set(mapped))
    extra = sorted(set(mapped) - set(own))
    if missing or extra:
        sys.exit(f"seq2seq_torch.py: parameter names differ: only in torch {missing}, "
                 f"only in seqgrad {extra}")
    with torch.no_grad():
        for name, p in own.items():
            w = torch.from_numpy(mapped[name])
            if tuple(w.shape) != tuple(p.shape):
                sys.exit(f"seq2seq_torch.py: {name}: seqgrad {tuple(w.shape)}, "
                         f"torch {tuple(p.shape)}")
            p.copy_(w)


def random_batch(gen, c, B, S, T):
    """Like bench_seq2seq.cpp's: source lengths in [S/2, S] (row 0 has S), targets of
    length in [(T-1)/2, T-1] plus <s> / </s>, pads 0, tokens from 4."""
    lengths = gen.integers(max(1, S // 2), S + 1, size=B)
    lengths[0] = S
    src = np.zeros((B, S), np.int64)
    tgt_in = np.zeros((B, T), np.int64)
    tgt_out = np.zeros((B, T), np.int64)
    for b in range(B):
        src[b, :lengths[b]] = gen.integers(4, c.src_vocab, size=lengths[b])
        n = int(gen.integers(max(1, (T - 1) // 2), T))
        y = gen.integers(4, c.tgt_vocab, size=n)
        tgt_in[b, 0] = BOS
        tgt_in[b, 1:n + 1] = y
        tgt_out[b, :n] = y
        tgt_out[b, n] = EOS
    return [torch.from_numpy(a) for a in (src, lengths.astype(np.int64), tgt_in, tgt_out)]


# --- timing ------------------------------------------------------------------------------------


def openblas():
    """The OpenBLAS torch runs on (Debian's, through libblas.so.3), found in the process map."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "libopenblas" in line}
    if not paths:
        return None
    lib = ctypes.CDLL(sorted(paths)[0])
    lib.openblas_get_corename.restype = ctypes.c_char_p
    return lib


class Bench:
    def __init__(self, model, decode_model, batch, max_len):
        self.model, self.decode_model = model, decode_model
        self.src, self.lengths, self.tgt_in, self.tgt_out = batch
        self.max_len = max_len
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.last_loss = float("nan")
        self.last_steps = 0

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        loss, _, _ = self.model.loss(self.src, self.lengths, self.tgt_in, self.tgt_out)
        loss.backward()
        self.opt.step()
        self.last_loss = loss.item()

    def decode(self):
        _, _, self.last_steps = self.decode_model.greedy(self.src, self.lengths, self.max_len)

    @staticmethod
    def timed(fn, warmup, steps):
        for _ in range(warmup):
            fn()
        ms = []
        for _ in range(steps):
            t0 = time.perf_counter()
            fn()
            ms.append((time.perf_counter() - t0) * 1e3)
        return ms


def parity(model, decode_model, batch, max_len):
    """Figures the C++ side compares with its own, all at the initial weights."""
    src, lengths, tgt_in, tgt_out = batch
    loss, tokens, correct = model.loss(src, lengths, tgt_in, tgt_out)
    loss.backward()
    norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())))
    model.zero_grad(set_to_none=True)
    tokens_out, _, steps = decode_model.greedy(src, lengths, max_len)
    return {"loss": loss.item(), "tokens": tokens, "correct": correct, "grad_norm": norm,
            "decode_steps": steps, "decoded": tokens_out.tolist()}


def setup_threads(threads):
    torch.set_num_threads(threads)
    lib = openblas()
    if lib is not None:
        lib.openblas_set_num_threads(threads)
    return {"torch_threads": torch.get_num_threads(),
            "openblas_threads": lib.openblas_get_num_threads() if lib else None,
            "corename": lib.openblas_get_corename().decode() if lib else "(no OpenBLAS)",
            "torch_version": torch.__version__}


def serve(args):
    metadata, tensors = read_safetensors(args.weights)
    mc = json.loads(metadata["config"])
    c = Config(mc["src_vocab"], mc["tgt_vocab"], mc["embed"], mc["hidden"], mc["layers"],
               mc.get("attention_size", 0))
    if (mc["cell"], mc["bidirectional"], mc["attention"], mc["style"], mc["dropout"]) != \
            ("lstm", True, "concat", "luong", 0.0):
        sys.exit(f"seq2seq_torch.py: only lstm/bidirectional/concat/luong/dropout 0, got {mc}")
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    model, decode_model = Seq2Seq(c), Seq2Seq(c)
    load_weights(model, params)
    load_weights(decode_model, params)
    decode_model.eval()
    with torch.no_grad():  # as the C++ side: </s> never wins, so every decode runs max_len steps
        decode_model.decoder.project.bias[EOS] = float(metadata["eos_bias"])
    batch = [torch.from_numpy(tensors["batch." + k]) for k in
             ("src", "src_lengths", "tgt_in", "tgt_out")]
    max_len = int(metadata["decode_max_len"])
    info = setup_threads(args.threads)
    info["params"] = sum(p.numel() for p in model.parameters())
    info["parity"] = parity(model, decode_model, batch, max_len)
    print(json.dumps(info), flush=True)
    bench = Bench(model, decode_model, batch, max_len)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "quit":
            break
        warmup, steps = int(cmd[1]), int(cmd[2])
        if cmd[0] == "train":
            ms = bench.timed(bench.train_step, warmup, steps)
            print(json.dumps({"ms": ms, "loss": bench.last_loss}), flush=True)
        elif cmd[0] == "decode":
            ms = bench.timed(bench.decode, warmup, steps)
            print(json.dumps({"ms": ms, "steps": bench.last_steps}), flush=True)
        else:
            sys.exit(f"seq2seq_torch.py: unknown command {line.strip()!r}")


def standalone(args):
    info = setup_threads(args.threads)
    torch.manual_seed(args.seed)
    c = Config(args.vocab, args.vocab, args.embed, args.hidden, args.layers)
    batch = random_batch(np.random.default_rng(args.seed), c, args.batch, args.src_len,
                         args.tgt_len)
    model, decode_model = Seq2Seq(c), Seq2Seq(c)
    decode_model.load_state_dict(model.state_dict())
    decode_model.eval()
    with torch.no_grad():
        decode_model.decoder.project.bias[EOS] = -30.0
    bench = Bench(model, decode_model, batch, args.tgt_len)
    train_ms = bench.timed(bench.train_step, args.warmup, args.steps)
    decode_ms = bench.timed(bench.decode, args.warmup, args.steps)
    info.update({"params": sum(p.numel() for p in model.parameters()),
                 "config": vars(args), "train_ms": train_ms,
                 "train_median_ms": float(np.median(train_ms)), "decode_ms": decode_ms,
                 "decode_median_ms": float(np.median(decode_ms)),
                 "decode_steps": bench.last_steps})
    print(json.dumps(info, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="seqgrad's safetensors file (config, weights, batch)")
    p.add_argument("--serve", action="store_true", help="answer train/decode commands on stdin")
    p.add_argument("--threads", type=int, default=1, help="torch and OpenBLAS threads")
    p.add_argument("--vocab", type=int, default=40)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--src-len", type=int, default=12)
    p.add_argument("--tgt-len", type=int, default=10)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.serve != bool(args.weights):
        p.error("--serve and --weights go together")
    if args.serve:
        serve(args)
    else:
        standalone(args)


if __name__ == "__main__":
    main()
