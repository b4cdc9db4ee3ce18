// The Transformer's layers and stacks (Vaswani et al. 2017) as torch.nn names them, batch-first:
// TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder and TransformerDecoder
// (N layers, "layers.N.", and an optional final "norm"), and Transformer (encoder and decoder,
// each with its final norm, "encoder.layers.N..." / "decoder.norm"). Every parameter name, shape
// and placement of LayerNorm and dropout is PyTorch's, so a state dict loads either way.
//
//   post-norm (norm_first = false): x = norm1(x + sa(x)); x = norm2(x + ff(x))
//   pre-norm  (norm_first = true):  x = x + sa(norm1(x)); x = x + ff(norm2(x))
// with sa = dropout1(self_attn(x, x, x)), ff = dropout2(linear2(dropout(act(linear1(x))))); the
// decoder layer puts cross-attention to the memory, dropout2(multihead_attn(x, mem, mem)), between
// the two (norm2), and its feed-forward uses norm3 and dropout3.
//
// Incremental decoding: a cache holds each layer's self-attention keys and values so far (and,
// for the decoder, the memory's keys and values projected once), so a new token costs one step.
// Packed rows: forward_packed runs a layer or stack on the tokens of a padded batch only
// (nn/token_packing.h), giving forward's outputs at those positions; training uses it to skip
// the padding's products.
// Positions: sinusoidal_positions below, or a learned Embedding the caller owns.
// Shape legend: B batch, S source length, T target length, E d_model, H heads, F feed-forward.
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <vector>

#include "nn/dropout.h"
#include "nn/layer_norm.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/multihead_attention.h"
#include "tensor/random.h"

namespace seqgrad {

enum class Activation { relu, gelu };  // gelu: the exact (erf) form, PyTorch's "gelu"
std::string_view activation_name(Activation activation);
Activation parse_activation(std::string_view name);  // "relu", "gelu"; ValueError otherwise

// The sizes and choices of every layer (torch.nn.Transformer's arguments and defaults).
struct TransformerOptions {
  std::int64_t d_model = 512;
  std::int64_t nhead = 8;
  std::int64_t dim_feedforward = 2048;
  double dropout = 0.1;
  Activation activation = Activation::relu;
  double layer_norm_eps = 1e-5;
  bool norm_first = false;  // pre-norm
  bool bias = true;         // false: no bias in the attention, the Linears and the LayerNorms
  DType dtype = DType::f32;
};

// y[t, 2i] = sin(t / 10000^(2i/E)), y[t, 2i+1] = cos(t / 10000^(2i/E)): [T,E], to be added to
// the scaled embeddings.
Tensor sinusoidal_positions(std::int64_t T, std::int64_t E, DType dtype = DType::f32);

// LayerNorm over d_model as PyTorch's Transformer builds it, LayerNorm(d_model, eps, bias=bias):
// a "weight" always, a "bias" only with bias.
class TransformerNorm : public Module {
 public:
  TransformerNorm(std::int64_t size, double eps, bool with_bias, DType dtype);
  Variable forward(const Variable& x) const;
  Variable operator()(const Variable& x) const { return forward(x); }
  Variable weight, bias;  // [E]; bias undefined without bias

 private:
  LayerNorm norm_;  // without its own affine part: the normalisation only
};

class TransformerEncoderLayer : public Module {
 public:
  explicit TransformerEncoderLayer(const TransformerOptions& options,
                                   Generator& gen = default_generator());
  // src [B,S,E] -> [B,S,E]; masks are the self-attention's (src_mask, src_key_padding_mask,
  // is_causal). self_weights, if given, receives the self-attention weights [B,H,S,S].
  Variable forward(const Variable& src, const AttentionMasks& masks = {},
                   Tensor* self_weights = nullptr) const;
  Variable operator()(const Variable& src, const AttentionMasks& masks = {}) const {
    return forward(src, masks);
  }
  // Causal: new positions x [B,n,E] after the cached ones (decoder-only generation);
  // key_padding_mask, if given, is bool [B, cache length + n].
  Variable step(const Variable& x, KV& cache, const Tensor& key_padding_mask = {}) const;
  // forward on the rows [N,E] of the padded batch `p` (nn/token_packing.h) -> [N,E]: what
  // forward gives at the positions that are not padding.
  Variable forward_packed(const Variable& x, const TokenPacking& p,
                          const AttentionMasks& masks = {}) const;
  const TransformerOptions& options() const { return opt_; }

  MultiheadAttention self_attn;
  Linear linear1;
  Dropout dropout;
  Linear linear2;
  TransformerNorm norm1, norm2;
  Dropout dropout1, dropout2;

 private:
  using Attend = std::function<Variable(const Variable&)>;
  Variable feed_forward(const Variable& x) const;  // dropout2(linear2(dropout(act(linear1(x)))))
  // The two blocks with their norms and residuals, self-attention given as sa (with dropout1).
  Variable blocks(const Variable& x, const Attend& sa) const;
  TransformerOptions opt_;
};

class TransformerDecoderLayer : public Module {
 public:
  explicit TransformerDecoderLayer(const TransformerOptions& options,
                                   Generator& gen = default_generator());
  // tgt [B,T,E], memory [B,S,E] -> [B,T,E]. tgt_masks are the self-attention's (tgt_mask,
  // tgt_key_padding_mask, is_causal), memory_masks the cross-attention's (memory_mask [T,S],
  // memory_key_padding_mask [B,S]). cross_weights, if given, receives [B,H,T,S].
  Variable forward(const Variable& tgt, const Variable& memory,
                   const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {},
                   Tensor* cross_weights = nullptr) const;
  // The memory's cross-attention keys and values, [B,H,S,D] each, for step.
  KV project_memory(const Variable& memory) const;
  // Causal: new target positions tgt [B,n,E] after those in self_cache (appended to it), with
  // cross-attention to memory_kv; memory_key_padding_mask bool [B,S] or undefined.
  Variable step(const Variable& tgt, KV& self_cache, const KV& memory_kv,
                const Tensor& memory_key_padding_mask = {}, Tensor* cross_weights = nullptr) const;
  // forward on rows: tgt [Nt,E] of the padded target batch tp, memory [Ns,E] of the padded
  // source batch sp -> [Nt,E], what forward gives at the target positions that are not padding.
  Variable forward_packed(const Variable& tgt, const TokenPacking& tp, const Variable& memory,
                          const TokenPacking& sp, const AttentionMasks& tgt_masks = {},
                          const AttentionMasks& memory_masks = {}) const;
  const TransformerOptions& options() const { return opt_; }

  MultiheadAttention self_attn;
  MultiheadAttention multihead_attn;  // cross-attention to the memory
  Linear linear1;
  Dropout dropout;
  Linear linear2;
  TransformerNorm norm1, norm2, norm3;
  Dropout dropout1, dropout2, dropout3;

 private:
  using Attend = std::function<Variable(const Variable&)>;
  Variable feed_forward(const Variable& x) const;  // dropout3(linear2(dropout(act(linear1(x)))))
  // The three blocks with their norms and residuals, the attentions given as sa and ca (with
  // dropout1 and dropout2).
  Variable blocks(const Variable& x, const Attend& sa, const Attend& ca) const;
  Variable cross(const Variable& y, const KV& memory_kv, const AttentionMasks& memory_masks,
                 Tensor* cross_weights) const;
  TransformerOptions opt_;
};

// An encoder stack's self-attention cache, one KV per layer (empty at the start).
struct EncoderCache {
  std::vector<KV> self;
  std::int64_t length() const { return self.empty() ? 0 : self.front().length(); }  // positions
};

// The decoder's state between steps.
struct DecoderCache {
  std::vector<KV> self;            // per layer: the target's keys and values so far [B,H,t,D]
  std::vector<KV> cross;           // per layer: the memory's keys and values [B,H,S,D]
  Tensor memory_key_padding_mask;  // bool [B,S] or undefined, as given to start_cache
  std::int64_t length() const { return self.empty() ? 0 : self.front().length(); }  // positions
};

// The caches of the batch rows `rows` (int64 [N], repeats allowed): beam search's reordering.
EncoderCache reorder(const EncoderCache& cache, const Tensor& rows);
DecoderCache reorder(const DecoderCache& cache, const Tensor& rows);

class TransformerEncoder : public Module {
 public:
  // num_layers layers "layers.N." and, with final_norm, a last LayerNorm "norm".
  TransformerEncoder(const TransformerOptions& options, std::int64_t num_layers,
                     bool final_norm = false, Generator& gen = default_generator());
  // src [B,S,E] -> [B,S,E]; the masks go to every layer. self_weights, if given, receives one
  // [B,H,S,S] per layer.
  Variable forward(const Variable& src, const AttentionMasks& masks = {},
                   std::vector<Tensor>* self_weights = nullptr) const;
  Variable operator()(const Variable& src, const AttentionMasks& masks = {}) const {
    return forward(src, masks);
  }
  // Causal generation (decoder-only): new positions x [B,n,E] through every layer, appending to
  // the cache; key_padding_mask, if given, is bool [B, cache length + n]. Stepping T positions
  // gives what forward gives with is_causal.
  EncoderCache start_cache() const;
  Variable step(const Variable& x, EncoderCache& cache, const Tensor& key_padding_mask = {}) const;
  // forward on the rows [N,E] of the padded batch `p` -> [N,E] (see the layer's).
  Variable forward_packed(const Variable& x, const TokenPacking& p,
                          const AttentionMasks& masks = {}) const;

  std::int64_t num_layers() const { return static_cast<std::int64_t>(layers.size()); }
  std::vector<std::unique_ptr<TransformerEncoderLayer>> layers;
  std::unique_ptr<TransformerNorm> norm;  // null without a final norm
};

class TransformerDecoder : public Module {
 public:
  TransformerDecoder(const TransformerOptions& options, std::int64_t num_layers,
                     bool final_norm = false, Generator& gen = default_generator());
  // tgt [B,T,E], memory [B,S,E] -> [B,T,E]. cross_weights, if given, receives one [B,H,T,S]
  // per layer.
  Variable forward(const Variable& tgt, const Variable& memory,
                   const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {},
                   std::vector<Tensor>* cross_weights = nullptr) const;
  // Projects the memory's keys and values once per layer; the self-attention caches start empty.
  DecoderCache start_cache(const Variable& memory,
                           const Tensor& memory_key_padding_mask = {}) const;
  // Causal: new target positions tgt [B,n,E] (n = 1 for a token at a time) -> [B,n,E], appending
  // each layer's keys and values to the cache. Stepping T positions gives what forward gives
  // with tgt_masks.is_causal. cross_weights, if given, receives one [B,H,n,S] per layer.
  Variable step(const Variable& tgt, DecoderCache& cache,
                std::vector<Tensor>* cross_weights = nullptr) const;
  // forward on rows (see the layer's): tgt [Nt,E] of tp, memory [Ns,E] of sp -> [Nt,E].
  Variable forward_packed(const Variable& tgt, const TokenPacking& tp, const Variable& memory,
                          const TokenPacking& sp, const AttentionMasks& tgt_masks = {},
                          const AttentionMasks& memory_masks = {}) const;

  std::int64_t num_layers() const { return static_cast<std::int64_t>(layers.size()); }
  std::vector<std::unique_ptr<TransformerDecoderLayer>> layers;
  std::unique_ptr<TransformerNorm> norm;  // null without a final norm
};

// torch.nn.Transformer: an encoder and a decoder, each with a final norm; every parameter of
// two or more dimensions re-initialised Xavier-uniform, as PyTorch's _reset_parameters does.
class Transformer : public Module {
 public:
  explicit Transformer(const TransformerOptions& options, std::int64_t num_encoder_layers = 6,
                       std::int64_t num_decoder_layers = 6, Generator& gen = default_generator());
  // src [B,S,E], tgt [B,T,E] -> [B,T,E]; src_masks go to the encoder's self-attention, tgt_masks
  // to the decoder's, memory_masks to its cross-attention. cross_weights: one [B,H,T,S] a layer.
  Variable forward(const Variable& src, const Variable& tgt, const AttentionMasks& src_masks = {},
                   const AttentionMasks& tgt_masks = {}, const AttentionMasks& memory_masks = {},
                   std::vector<Tensor>* cross_weights = nullptr) const;
  const TransformerOptions& options() const { return opt_; }

  TransformerEncoder encoder;
  TransformerDecoder decoder;

 private:
  TransformerOptions opt_;
};

}  // namespace seqgrad
