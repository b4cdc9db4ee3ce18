#!/usr/bin/python3
"""The PyTorch side of benchmarks/bench_seq2seq.cpp: seqgrad's Seq2Seq model written the way a
PyTorch user would (nn.Embedding, nn.LSTM on a packed batch, nn.LSTMCell stepping, nn.Linear):
Luong attention with input feeding, a 'concat' (v . tanh(W q + U k)) or 'general' (q . W k)
scorer, an L-layer LSTM encoder (bidirectional: hidden/2 per direction), tanh(Linear) bridge,
L-layer LSTM decoder, combine tanh(W_c [c; h]), projection, cross-entropy ignoring pad 0, teacher
forcing. Dropout p sits where seqgrad puts it: on the source and target embeddings, between
stacked LSTM layers (encoder and decoder) and on o_t before the projection (not on the fed-back
o_t). Parameter names are seqgrad's (decoder.rnn is a list of LSTMCells, renamed on load), so
seqgrad's weights load with strict=True, name by name and shape by shape.
seqgrad's Transformer (ModelConfig arch "transformer") is rebuilt too, from torch.nn.Transformer's
encoder and decoder stacks (class TransformerSeq2Seq below); the runner times its training step.
Its greedy decode re-runs the decoder on the prefix each step, as a torch.nn.Transformer user
writes it (torch.nn keeps no key/value cache).
Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary,
A attention size, L layers, D directions, K beam width.

Two ways to run it, always with Debian's interpreter (/usr/bin/python3 has python3-torch):

  seq2seq_torch.py [--hidden 256 --layers 2 --attention general --unidirectional ...] --steps 20
      standalone: random weights and batch, N timed training steps, greedy and beam decodes
      after warm-up; prints one JSON object with the per-call times in ms.
  seq2seq_torch.py --serve --weights FILE [--threads N] [--blas-threads M]
      what bench_seq2seq runs: the model config, seqgrad's weights and the batch come from the
      safetensors FILE. Prints one JSON line first:
        {"torch_threads", "openblas_threads", "corename", "torch_version", "omp_wait_policy",
         "params", "parity": {"loss", "tokens", "correct", "grad_norm", "decode_steps",
         "decoded"}, "beam_parity": {"k": 5, "steps", "tokens"}} (no beam_parity for the
        Transformer; no decodes at all when the file's metadata says parity_decode 0)
      (parity at the initial weights with dropout off; "decoded" is the greedy [B,steps] token
      matrix, "beam_parity.tokens" the best beam-5 hypothesis per row without </s>), then
      answers commands on stdin, one JSON line each:
        train WARMUP STEPS    -> {"ms": [...], "loss": last loss}
                                 (zero_grad, loss, backward, clip_grad_norm_ 5, Adam lr 1e-3)
        decode WARMUP STEPS   -> {"ms": [...], "steps": decoder steps of the last decode}
        beam WARMUP STEPS K   -> {"ms": [...], "steps": ..., "tokens": [[...] per row]}
        rss                   -> {"peak_rss_mib": VmHWM, "rss_mib": VmRSS}
        reset_peak            -> {"ok": true} (VmHWM reset through /proc/self/clear_refs)
        quit
      so the C++ side can alternate rounds (seqgrad, torch, seqgrad, ...) in one run.
"""
import argparse
import ctypes
import json
import math
import os
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

PAD, BOS, EOS = 0, 1, 2  # seqgrad's reserved ids (seq2seq/model.h)
CLIP = 5.0  # the gradient-norm clip of one training step
PARITY_BEAM = 5


def die(message):
    sys.exit(f"seq2seq_torch.py: {message}")


# --- the model ---------------------------------------------------------------------------------


class Config:
    """The part of seqgrad's ModelConfig (seq2seq/model.cpp to_json) this twin builds; anything
    it cannot build is refused here, before a model exists."""

    def __init__(self, mc):
        if mc.get("cell", "lstm") != "lstm":
            die(f"only LSTM cells are built here, got cell {mc['cell']!r}")
        if mc.get("style", "luong") != "luong":
            die(f"only Luong style (input feeding) is built here, got style {mc['style']!r}")
        if mc["attention"] not in SCORERS:
            die(f"attention {mc['attention']!r} is not built here (known: {sorted(SCORERS)})")
        self.src_vocab, self.tgt_vocab = int(mc["src_vocab"]), int(mc["tgt_vocab"])
        self.embed, self.hidden = int(mc["embed"]), int(mc["hidden"])
        self.layers = int(mc["layers"])
        self.bidirectional = bool(mc["bidirectional"])
        self.dropout = float(mc["dropout"])
        self.attention = mc["attention"]
        self.attention_size = int(mc.get("attention_size", 0)) or self.hidden
        if self.layers < 1:
            die(f"layers must be >= 1, got {self.layers}")
        if not 0 <= self.dropout < 1:
            die(f"dropout {self.dropout} is outside [0, 1)")
        if self.bidirectional and self.hidden % 2:
            die(f"a bidirectional encoder splits hidden {self.hidden} in two; it must be even")
        self.directions = 2 if self.bidirectional else 1
        self.encoder_hidden = self.hidden // self.directions  # states are H wide either way


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c.src_vocab, c.embed, padding_idx=PAD)
        self.dropout = nn.Dropout(c.dropout)
        self.rnn = nn.LSTM(c.embed, c.encoder_hidden, num_layers=c.layers,
                           bidirectional=c.bidirectional, batch_first=True,
                           dropout=c.dropout if c.layers > 1 else 0.0)

    def forward(self, src, lengths):
        # src [B,S], lengths [B] (CPU int64) -> states [B,S,H] (zero past each length),
        # mask [B,S], final (h, c) [L*D,B,H/D] in the batch's own order
        x = self.dropout(self.embedding(src))
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, final = self.rnn(packed)
        states, _ = pad_packed_sequence(out, batch_first=True, total_length=src.size(1))
        mask = torch.arange(src.size(1)).unsqueeze(0) < lengths.unsqueeze(1)
        return states, mask, final


class Bridge(nn.Module):
    # [L*D,B,H/D] -> [L,B,H] (the directions side by side) -> tanh(W x + b) [L,B,H]
    def __init__(self, c):
        super().__init__()
        self.layers, self.directions = c.layers, c.directions
        self.h = nn.Linear(c.hidden, c.hidden)
        self.c = nn.Linear(c.hidden, c.hidden)

    def map(self, layer, states):
        B = states.size(1)
        x = states.view(self.layers, self.directions, B, -1).permute(0, 2, 1, 3)
        return torch.tanh(layer(x.reshape(self.layers, B, -1)))


class ConcatScorer(nn.Module):
    # score(q, k) = v . tanh(W q + U k); U k is computed once per batch
    def __init__(self, c):
        super().__init__()
        self.W = nn.Linear(c.hidden, c.attention_size, bias=False)
        self.U = nn.Linear(c.hidden, c.attention_size)
        self.v = nn.Linear(c.attention_size, 1, bias=False)

    def prepare(self, keys):  # [B,S,H] -> [B,S,A]
        return self.U(keys)

    def score(self, query, uk):  # [B,H], [B,S,A] -> [B,S]
        return self.v(torch.tanh(uk + self.W(query).unsqueeze(1))).squeeze(2)


class GeneralScorer(nn.Module):
    # score(q, k) = q . W k; W k is computed once per batch
    def __init__(self, c):
        super().__init__()
        self.W = nn.Linear(c.hidden, c.hidden, bias=False)  # keys H -> query H

    def prepare(self, keys):  # [B,S,H] -> [B,S,H]
        return self.W(keys)

    def score(self, query, wk):  # [B,H], [B,S,H] -> [B,S]
        return torch.bmm(wk, query.unsqueeze(2)).squeeze(2)


SCORERS = {"concat": ConcatScorer, "general": GeneralScorer}


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.scorer = SCORERS[c.attention](c)

    def forward(self, query, values, prepared, mask):
        # a = softmax(scores) over real positions; context = sum_j a_j h_j [B,H]
        scores = self.scorer.score(query, prepared).masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, 1)  # [B,S]
        return torch.bmm(a.unsqueeze(1), values).squeeze(1), a


class StackedLSTMCell(nn.Module):
    def __init__(self, c):
        super().__init__()
        sizes = [c.embed + c.hidden] + [c.hidden] * (c.layers - 1)  # Luong input feeding
        self.cells = nn.ModuleList(nn.LSTMCell(i, c.hidden) for i in sizes)
        self.dropout = nn.Dropout(c.dropout)  # between layers, as nn.LSTM does

    def forward(self, x, hs, cs):
        new_h, new_c = [], []
        for layer, (cell, h, c) in enumerate(zip(self.cells, hs, cs)):
            if layer > 0:
                x = self.dropout(x)
            h, c = cell(x, (h, c))
            new_h.append(h)
            new_c.append(c)
            x = h
        return new_h, new_c


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c.tgt_vocab, c.embed, padding_idx=PAD)
        self.dropout = nn.Dropout(c.dropout)
        self.attention = Attention(c)
        self.rnn = StackedLSTMCell(c)
        self.combine = nn.Linear(2 * c.hidden, c.hidden)
        self.project = nn.Linear(c.hidden, c.tgt_vocab)

    def step(self, y_prev, feed, hs, cs, values, prepared, mask):
        # Luong: h_t = LSTM([emb(y_{t-1}); o_{t-1}]); c_t = attend(h_t); o_t = tanh(W_c [c_t; h_t])
        x = torch.cat([self.dropout(self.embedding(y_prev)), feed], 1)
        hs, cs = self.rnn(x, hs, cs)
        h = hs[-1]
        context, a = self.attention(h, values, prepared, mask)
        o = torch.tanh(self.combine(torch.cat([context, h], 1)))
        return o, a, hs, cs

    def logits(self, o):  # [...,H] -> [...,V]
        return self.project(self.dropout(o))


class Seq2Seq(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.cfg = c
        self.encoder = Encoder(c)
        self.bridge = Bridge(c)
        self.decoder = Decoder(c)

    def start(self, states, mask, final):
        """The decoder's memory and initial state for encoded rows (seqgrad's Seq2Seq::start)."""
        h, c = final
        h0 = self.bridge.map(self.bridge.h, h).unbind(0)
        c0 = self.bridge.map(self.bridge.c, c).unbind(0)
        prepared = self.decoder.attention.scorer.prepare(states)
        feed = torch.zeros(states.size(0), self.cfg.hidden)
        return states, prepared, mask, list(h0), list(c0), feed

    def loss(self, src, lengths, tgt_in, tgt_out):
        """Teacher-forced mean cross-entropy over real target tokens, plus the token count and
        argmax hits that seqgrad's Seq2Seq::loss also computes."""
        B, T = tgt_in.shape
        values, prepared, mask, hs, cs, feed = self.start(*self.encoder(src, lengths))
        outputs = []
        for t in range(T):
            feed, _, hs, cs = self.decoder.step(tgt_in[:, t], feed, hs, cs, values, prepared, mask)
            outputs.append(feed)
        logits = self.decoder.logits(torch.stack(outputs, 1)).reshape(B * T, -1)
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
        values, prepared, mask, hs, cs, feed = self.start(*self.encoder(src, lengths))
        y = torch.full((src.size(0),), BOS, dtype=torch.int64)
        finished = torch.zeros(src.size(0), dtype=torch.bool)
        tokens, attention = [], []
        for _ in range(max_len):
            feed, a, hs, cs = self.decoder.step(y, feed, hs, cs, values, prepared, mask)
            y = F.log_softmax(self.decoder.logits(feed), 1).argmax(1)
            tokens.append(y)
            attention.append(a)
            finished |= y == EOS
            if bool(finished.all()):
                break
        return torch.stack(tokens, 1), torch.stack(attention, 1), len(tokens)

    @torch.no_grad()
    def beam(self, src, lengths, K, max_len, length_penalty=1.0):
        """Batched beam search by seqgrad's rules (seq2seq/search.cpp), on tensors: all B*K
        hypotheses (row b*K + i) step together. Per source, the top 2K of (beam score +
        log p) are walked best first: a </s> candidate, or any candidate at step max_len, ends
        a hypothesis; the first K others live on. A source is done once K hypotheses ended (or
        none lives, or, with length_penalty 0, no live beam can beat the best ended one). The
        answer per source is the ended hypothesis with the best score / (tokens + 1)^alpha,
        the earliest on a tie. Returns (tokens per row without </s>, decoder steps)."""
        B, V = src.size(0), self.cfg.tgt_vocab
        states, mask, (h, c) = self.encoder(src, lengths)
        rep = torch.arange(B).repeat_interleave(K)  # every source K times
        values, prepared, mask, hs, cs, feed = self.start(states[rep], mask[rep],
                                                          (h[:, rep], c[:, rep]))
        neg_inf = float("-inf")
        score = torch.full((B, K), neg_inf, dtype=torch.float64)
        score[:, 0] = 0.0  # start from one beam
        history = torch.zeros((B, K, 0), dtype=torch.int64)  # each live beam's tokens
        last = torch.full((B * K,), BOS, dtype=torch.int64)
        done = torch.zeros(B, dtype=torch.bool)
        ended = torch.zeros(B, dtype=torch.int64)  # hypotheses ended per source
        best_rank = torch.full((B,), neg_inf, dtype=torch.float64)
        best_tokens = torch.zeros((B, max_len), dtype=torch.int64)
        best_len = torch.zeros(B, dtype=torch.int64)
        rows, first_row = torch.arange(B), torch.arange(B).unsqueeze(1) * K
        steps = 0
        for t in range(max_len):
            steps += 1
            feed, _, hs, cs = self.decoder.step(last, feed, hs, cs, values, prepared, mask)
            logp = F.log_softmax(self.decoder.logits(feed), 1).double().view(B, K, V)
            top, index = (score.unsqueeze(2) + logp).view(B, K * V).topk(2 * K, 1)  # [B,2K]
            beam, token = index // V, index % V
            valid = (top > neg_inf) & ~done.unsqueeze(1)  # dead beams offer no candidates
            ends = valid & ((token == EOS) | (t + 1 == max_len))
            lives = valid & ~ends
            lives_before = lives.cumsum(1) - lives.long()
            walked = lives_before < K  # the walk stops at the K-th live candidate
            ends &= walked
            lives &= walked
            # The best hypothesis ended at this step, kept if it beats the earlier ones.
            n_tokens = t + (token != EOS).long()  # </s> is not kept
            length = (n_tokens + 1).double()
            rank = top if length_penalty == 0 else top / length.pow(length_penalty)
            step_best, pick = rank.masked_fill(~ends, neg_inf).max(1)
            better = step_best > best_rank
            if bool(better.any()):
                parent = beam.gather(1, pick.unsqueeze(1)).squeeze(1)
                tokens = torch.cat([history[rows, parent], token.gather(1, pick.unsqueeze(1))], 1)
                best_tokens[:, :t + 1] = torch.where(better.unsqueeze(1), tokens,
                                                     best_tokens[:, :t + 1])
                best_len = torch.where(better, n_tokens.gather(1, pick.unsqueeze(1)).squeeze(1),
                                       best_len)
                best_rank = torch.where(better, step_best, best_rank)
            ended += ends.sum(1)
            # The live candidates move into slots 0..K-1 in order; empty slots are dead beams
            # (score -inf, fed </s>, state of beam 0). Column K takes the rest and is dropped.
            slot = torch.where(lives, lives_before, torch.full_like(lives_before, K))
            new_score = torch.full((B, K + 1), neg_inf, dtype=torch.float64).scatter_(
                1, slot, top.masked_fill(~lives, neg_inf))[:, :K]
            new_beam = torch.zeros((B, K + 1), dtype=torch.int64).scatter_(
                1, slot, beam.masked_fill(~lives, 0))[:, :K]
            new_token = torch.full((B, K + 1), EOS, dtype=torch.int64).scatter_(
                1, slot, token.masked_fill(~lives, EOS))[:, :K]
            n_live = lives.sum(1)
            now_done = (ended >= K) | (n_live == 0)
            if length_penalty == 0:
                now_done |= (ended > 0) & (new_score[:, 0] <= best_rank)
            active = ~done  # done sources keep their beams and state
            score = torch.where(active.unsqueeze(1), new_score, score)
            history = torch.cat([history.gather(1, new_beam.unsqueeze(2).expand_as(history)),
                                 new_token.unsqueeze(2)], 2)
            last = torch.where(active.unsqueeze(1), new_token, last.view(B, K)).view(-1)
            order = torch.where(active.unsqueeze(1), first_row + new_beam,
                                first_row + torch.arange(K)).view(-1)
            done = done | now_done
            if bool(done.all()):
                break
            hs = [x.index_select(0, order) for x in hs]
            cs = [x.index_select(0, order) for x in cs]
            feed = feed.index_select(0, order)
        assert bool((best_rank > neg_inf).all()), "a source ended without a hypothesis"
        return [best_tokens[b, :best_len[b]].tolist() for b in range(B)], steps


# --- the Transformer (ModelConfig arch "transformer") --------------------------------------------


class TransformerConfig:
    """seqgrad's arch "transformer" (seq2seq/transformer_model.cpp) as far as this twin builds it:
    sinusoidal positions, an untied generator."""

    def __init__(self, mc):
        if mc.get("positions", "sinusoidal") != "sinusoidal":
            die(f"only sinusoidal positions are built here, got {mc['positions']!r}")
        if mc.get("tie_embeddings", False):
            die("a tied generator is not built here")
        self.src_vocab, self.tgt_vocab = int(mc["src_vocab"]), int(mc["tgt_vocab"])
        self.d_model, self.heads = int(mc["hidden"]), int(mc["heads"])
        self.layers = int(mc["layers"])
        self.ff = int(mc.get("ff", 0)) or 4 * self.d_model
        self.dropout = float(mc["dropout"])
        self.norm_first = bool(mc.get("norm_first", False))
        self.activation = mc.get("activation", "relu")
        if self.activation not in ("relu", "gelu"):
            die(f"activation {self.activation!r} is not built here (known: relu, gelu)")


def sinusoid(T, E):
    """[T,E]: sin(t / 10000^(2i/E)) at feature 2i, cos of the same angle at 2i+1."""
    t = torch.arange(T, dtype=torch.float64).unsqueeze(1)
    pair = torch.arange(E) // 2 * 2  # 2i for features 2i and 2i+1
    angle = t * torch.pow(10000.0, -pair.double() / E)
    y = torch.where(torch.arange(E) % 2 == 0, torch.sin(angle), torch.cos(angle))
    return y.float()


class TransformerSeq2Seq(nn.Module):
    """Embeddings scaled by sqrt(d_model) plus sinusoidal positions, then dropout; the stacks of
    torch.nn.Transformer (its encoder and decoder kept under those names, so seqgrad's names
    fit); the source padding masks the encoder's keys and the cross-attention's; the decoder's
    self-attention is causal; a Linear generator."""

    def __init__(self, c):
        super().__init__()
        self.cfg = c
        self.src_embed = nn.Embedding(c.src_vocab, c.d_model, padding_idx=PAD)
        self.tgt_embed = nn.Embedding(c.tgt_vocab, c.d_model, padding_idx=PAD)
        stacks = nn.Transformer(c.d_model, c.heads, c.layers, c.layers, c.ff, c.dropout,
                                activation=c.activation, batch_first=True,
                                norm_first=c.norm_first)
        self.encoder, self.decoder = stacks.encoder, stacks.decoder
        self.dropout = nn.Dropout(c.dropout)
        self.generator = nn.Linear(c.d_model, c.tgt_vocab)
        self.criterion = nn.CrossEntropyLoss(ignore_index=PAD)
        self.register_buffer("positions", sinusoid(1024, c.d_model), persistent=False)
        self.scale = math.sqrt(c.d_model)

    def embed(self, table, ids):  # [B,n] -> [B,n,E], positions from 0
        return self.dropout(table(ids) * self.scale + self.positions[:ids.size(1)])

    def encode(self, src):  # -> memory [B,S,E], padding [B,S] (true at pads)
        pad = src == PAD
        return self.encoder(self.embed(self.src_embed, src), src_key_padding_mask=pad), pad

    def decode_logits(self, tgt_in, memory, pad):  # -> [B,T,V]
        causal = nn.Transformer.generate_square_subsequent_mask(tgt_in.size(1))
        h = self.decoder(self.embed(self.tgt_embed, tgt_in), memory, tgt_mask=causal,
                         memory_key_padding_mask=pad)
        return self.generator(h)

    def loss(self, src, lengths, tgt_in, tgt_out):
        """Mean cross-entropy over real target tokens (teacher forcing, all positions at once),
        the token count and the argmax hits."""
        memory, pad = self.encode(src)
        logits = self.decode_logits(tgt_in, memory, pad)
        logits = logits.reshape(-1, logits.size(-1))
        targets = tgt_out.reshape(-1)
        loss = self.criterion(logits, targets)
        with torch.no_grad():
            real = targets != PAD
            tokens = int(real.sum())
            correct = int(((logits.argmax(1) == targets) & real).sum())
        return loss, tokens, correct

    @torch.no_grad()
    def greedy(self, src, lengths, max_len):
        """The loop a torch.nn.Transformer user writes: encode once, then re-run the decoder on
        the whole prefix each step (nn.TransformerDecoder keeps no key/value cache) and take the
        last position's argmax. Returns tokens [B,steps], None, steps."""
        memory, pad = self.encode(src)
        ys = torch.full((src.size(0), 1), BOS, dtype=torch.int64)
        finished = torch.zeros(src.size(0), dtype=torch.bool)
        for _ in range(max_len):
            y = self.decode_logits(ys, memory, pad)[:, -1].argmax(1)
            ys = torch.cat([ys, y.unsqueeze(1)], 1)
            finished |= y == EOS
            if bool(finished.all()):
                break
        return ys[:, 1:], None, ys.size(1) - 1


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
    """Strict: every parameter of both models, by name, of one shape (checked here with a
    readable message, then by load_state_dict(strict=True))."""
    own = dict(model.named_parameters())
    mapped = {torch_name(k): torch.from_numpy(v) for k, v in params.items()}
    missing = sorted(set(own) - set(mapped))
    extra = sorted(set(mapped) - set(own))
    if missing or extra:
        die(f"parameter names differ: only in torch {missing}, only in seqgrad {extra}")
    wrong = [f"{name}: seqgrad {tuple(w.shape)}, torch {tuple(own[name].shape)}"
             for name, w in mapped.items() if tuple(w.shape) != tuple(own[name].shape)]
    if wrong:
        die("parameter shapes differ: " + "; ".join(wrong))
    model.load_state_dict(mapped, strict=True)


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


def memory_mib():
    """VmHWM (peak resident set since start or the last reset_peak) and VmRSS, in MiB."""
    kib = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                kib[key] = int(value.split()[0])  # "  123456 kB"
    return {"peak_rss_mib": kib["VmHWM"] / 1024.0, "rss_mib": kib["VmRSS"] / 1024.0}


def reset_peak():
    with open("/proc/self/clear_refs", "w") as f:  # "5" resets VmHWM to the current RSS
        f.write("5")


class Bench:
    def __init__(self, model, decode_model, batch, max_len):
        self.model, self.decode_model = model, decode_model
        self.src, self.lengths, self.tgt_in, self.tgt_out = batch
        self.max_len = max_len
        self.opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        self.last_loss = float("nan")
        self.last_steps = 0
        self.last_tokens = []

    def train_step(self):
        self.opt.zero_grad(set_to_none=True)
        loss, _, _ = self.model.loss(self.src, self.lengths, self.tgt_in, self.tgt_out)
        loss.backward()
        nn.utils.clip_grad_norm_(self.model.parameters(), CLIP)
        self.opt.step()
        self.last_loss = loss.item()

    def decode(self):
        _, _, self.last_steps = self.decode_model.greedy(self.src, self.lengths, self.max_len)

    def beam(self, K):
        self.last_tokens, self.last_steps = self.decode_model.beam(self.src, self.lengths, K,
                                                                   self.max_len)

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


def parity(model, decode_model, batch, max_len, decode=True):
    """Figures the C++ side compares with its own, all at the initial weights and with dropout
    off (the training copy is in eval mode for this one forward and backward)."""
    src, lengths, tgt_in, tgt_out = batch
    model.eval()
    loss, tokens, correct = model.loss(src, lengths, tgt_in, tgt_out)
    loss.backward()
    norm = float(torch.sqrt(sum((p.grad.double() ** 2).sum() for p in model.parameters())))
    model.zero_grad(set_to_none=True)
    model.train()
    figures = {"loss": loss.item(), "tokens": tokens, "correct": correct, "grad_norm": norm}
    if not decode:
        return figures, None
    tokens_out, _, steps = decode_model.greedy(src, lengths, max_len)
    figures.update({"decode_steps": steps, "decoded": tokens_out.tolist()})
    if not hasattr(decode_model, "beam"):  # the Transformer twin decodes greedily only
        return figures, None
    beam_tokens, beam_steps = decode_model.beam(src, lengths, PARITY_BEAM, max_len)
    return figures, {"k": PARITY_BEAM, "steps": beam_steps, "tokens": beam_tokens}


def setup_threads(threads, blas_threads):
    torch.set_num_threads(threads)
    lib = openblas()
    if lib is not None:
        lib.openblas_set_num_threads(blas_threads)
    return {"torch_threads": torch.get_num_threads(),
            "openblas_threads": lib.openblas_get_num_threads() if lib else None,
            "corename": lib.openblas_get_corename().decode() if lib else "(no OpenBLAS)",
            "torch_version": torch.__version__,
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}


def make_models(c, params=None, eos_bias=None):
    """The training model (train mode) and the decoding copy (eval mode, </s> logit biased so
    every decode runs max_len steps), both with seqgrad's weights when given."""
    cls = TransformerSeq2Seq if isinstance(c, TransformerConfig) else Seq2Seq
    model, decode_model = cls(c), cls(c)
    if params is not None:
        load_weights(model, params)
    decode_model.load_state_dict(model.state_dict(), strict=True)
    model.train()
    decode_model.eval()
    if eos_bias is not None:
        with torch.no_grad():
            transformer = cls is TransformerSeq2Seq
            out = decode_model.generator if transformer else decode_model.decoder.project
            out.bias[EOS] = eos_bias
    return model, decode_model


def serve(args):
    metadata, tensors = read_safetensors(args.weights)
    mc = json.loads(metadata["config"])
    c = TransformerConfig(mc) if mc.get("arch", "rnn") == "transformer" else Config(mc)
    params = {k[len("param."):]: v for k, v in tensors.items() if k.startswith("param.")}
    model, decode_model = make_models(c, params, float(metadata["eos_bias"]))
    batch = [torch.from_numpy(tensors["batch." + k]) for k in
             ("src", "src_lengths", "tgt_in", "tgt_out")]
    max_len = int(metadata["decode_max_len"])
    info = setup_threads(args.threads, args.blas_threads)
    info["params"] = sum(p.numel() for p in model.parameters())
    decode = metadata.get("parity_decode", "1") == "1"
    info["parity"], beam = parity(model, decode_model, batch, max_len, decode)
    if beam is not None:
        info["beam_parity"] = beam
    print(json.dumps(info), flush=True)
    bench = Bench(model, decode_model, batch, max_len)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        name, numbers = cmd[0], cmd[1:]
        arity = {"train": 2, "decode": 2, "beam": 3, "rss": 0, "reset_peak": 0, "quit": 0}
        if name not in arity or len(numbers) != arity[name]:
            die(f"unknown command or wrong argument count: {line.strip()!r} (known: train W N, "
                "decode W N, beam W N K, rss, reset_peak, quit)")
        try:
            numbers = [int(x) for x in numbers]
        except ValueError:
            die(f"not a number in {line.strip()!r}")
        if name == "quit":
            break
        if name == "train":
            ms = bench.timed(bench.train_step, *numbers)
            answer = {"ms": ms, "loss": bench.last_loss}
        elif name == "decode":
            ms = bench.timed(bench.decode, *numbers)
            answer = {"ms": ms, "steps": bench.last_steps}
        elif name == "beam":
            warmup, steps, K = numbers
            if K < 1:
                die(f"beam width must be >= 1, got {K}")
            ms = bench.timed(lambda: bench.beam(K), warmup, steps)
            answer = {"ms": ms, "steps": bench.last_steps, "tokens": bench.last_tokens}
        elif name == "rss":
            answer = memory_mib()
        else:
            reset_peak()
            answer = {"ok": True}
        print(json.dumps(answer), flush=True)


def standalone(args):
    info = setup_threads(args.threads, args.blas_threads)
    torch.manual_seed(args.seed)
    c = Config({"src_vocab": args.vocab, "tgt_vocab": args.vocab, "embed": args.embed,
                "hidden": args.hidden, "layers": args.layers, "cell": "lstm",
                "bidirectional": not args.unidirectional, "dropout": args.dropout,
                "attention": args.attention, "style": "luong"})
    batch = random_batch(np.random.default_rng(args.seed), c, args.batch, args.src_len,
                         args.tgt_len)
    model, decode_model = make_models(c, eos_bias=-30.0)
    bench = Bench(model, decode_model, batch, args.tgt_len)
    train_ms = bench.timed(bench.train_step, args.warmup, args.steps)
    decode_ms = bench.timed(bench.decode, args.warmup, args.steps)
    decode_steps = bench.last_steps
    beam_ms = bench.timed(lambda: bench.beam(args.beam), args.warmup, args.steps)
    info.update({"params": sum(p.numel() for p in model.parameters()),
                 "config": vars(args), "train_ms": train_ms,
                 "train_median_ms": float(np.median(train_ms)), "last_loss": bench.last_loss,
                 "decode_ms": decode_ms, "decode_median_ms": float(np.median(decode_ms)),
                 "decode_steps": decode_steps, "beam_ms": beam_ms,
                 "beam_median_ms": float(np.median(beam_ms)), "beam_steps": bench.last_steps,
                 **memory_mib()})
    print(json.dumps(info, indent=1))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", help="seqgrad's safetensors file (config, weights, batch)")
    p.add_argument("--serve", action="store_true", help="answer commands on stdin")
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--blas-threads", type=int, default=None,
                   help="OpenBLAS's own threads (default: --threads)")
    p.add_argument("--vocab", type=int, default=40)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--layers", type=int, default=1)
    p.add_argument("--attention", choices=sorted(SCORERS), default="concat")
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--unidirectional", action="store_true", help="a one-direction encoder")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--src-len", type=int, default=12)
    p.add_argument("--tgt-len", type=int, default=10)
    p.add_argument("--beam", type=int, default=5, help="beam width of the timed beam decodes")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    if args.serve != bool(args.weights):
        p.error("--serve and --weights go together")
    if args.threads < 1 or (args.blas_threads is not None and args.blas_threads < 1):
        p.error("--threads and --blas-threads must be >= 1")
    if args.blas_threads is None:
        args.blas_threads = args.threads
    if args.serve:
        serve(args)
    else:
        standalone(args)


if __name__ == "__main__":
    main()
