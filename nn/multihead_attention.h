// MultiheadAttention as torch.nn.MultiheadAttention(batch_first=True) (Vaswani et al. 2017):
// the query, key and value are projected by one packed weight in_proj_weight [3E,E] (rows
// 0..E-1 for the query, E..2E-1 the key, 2E..3E-1 the value) and in_proj_bias [3E], split into
// H heads of D = E / H features, attended with scaled_dot_product_attention and merged back
// through out_proj (a Linear E -> E). PyTorch's names, layout and initialisation (Xavier-uniform
// in_proj_weight, zero biases, out_proj.weight as Linear's), so weights move both ways.
//
// Masks are PyTorch's (true = NOT attended, the opposite of softmax's keep-mask); they become one
// keep-mask that broadcasts over the heads (at most [B,1,Tq,Tk], never [B,H,Tq,Tk]). A query
// with every key masked gets output 0 before out_proj (and zero gradient), where PyTorch gives NaN.
//
// Incremental decoding: project_kv projects keys and values once ([B,H,T,D] each), attend
// attends a query to given keys and values, step appends one step's self-attention keys and
// values to a cache and attends to everything so far.
// Shape legend: B batch, Tq queries, Tk keys, E embed_dim, H heads, D head size (E / H).
#pragma once

#include <vector>

#include "autograd/ops.h"
#include "nn/linear.h"
#include "nn/module.h"
#include "nn/token_packing.h"
#include "tensor/random.h"

namespace seqgrad {

// PyTorch's attention masks (each optional).
struct AttentionMasks {
  Tensor key_padding_mask{};  // bool [B,Tk]: true marks a padding key, which no query attends to
  Tensor attn_mask{};         // [Tq,Tk]: bool (true = not allowed), or float (0 allowed, -inf not)
  // Also drop key j > i + (Tk - Tq) for query i: bottom-right aligned, PyTorch's square causal
  // mask when Tq == Tk. Unlike PyTorch's hint of that name it needs no attn_mask beside it.
  bool is_causal = false;
};

// Keys and values of one attention layer, projected and split into heads: [B,H,T,D] each.
// Default-constructed it is an empty cache (length 0).
struct KV {
  Variable k{}, v{};
  std::int64_t length() const { return k.defined() ? k.size(2) : 0; }
};
// The cache of the batch rows `rows` (int64 [N], repeats allowed: beam search), [N,H,T,D] each.
KV reorder(const KV& kv, const Tensor& rows);

struct AttentionOutput {
  Variable output;  // [B,Tq,E]
  // [B,H,Tq,Tk] when need_weights: per head (PyTorch's average_attn_weights=False), after
  // masking; in training with dropout, before the dropout (PyTorch returns them after it).
  Tensor weights;
};

class MultiheadAttention : public Module {
 public:
  // bias = false drops in_proj_bias and out_proj.bias (as PyTorch's bias=False).
  MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads, double dropout = 0.0,
                     bool bias = true, Generator& gen = default_generator(),
                     DType dtype = DType::f32);

  // query [B,Tq,E], key and value [B,Tk,E]. Self-attention (query, key and value the same
  // Variable) projects once through the [3E,E] weight; key == value projects both at once.
  AttentionOutput forward(const Variable& query, const Variable& key, const Variable& value,
                          const AttentionMasks& masks = {}, bool need_weights = false) const;
  AttentionOutput operator()(const Variable& query, const Variable& key, const Variable& value,
                             const AttentionMasks& masks = {}, bool need_weights = false) const {
    return forward(query, key, value, masks, need_weights);
  }

  // key and value [B,T,E] -> their projections split into heads, [B,H,T,D] each.
  KV project_kv(const Variable& key, const Variable& value) const;
  // query [B,Tq,E] (not yet projected) attends to projected keys and values (kv.length() = Tk).
  AttentionOutput attend(const Variable& query, const KV& kv, const AttentionMasks& masks = {},
                         bool need_weights = false) const;
  // Causal self-attention of new positions x [B,n,E] that follow the cache's: x is projected
  // once ([3E,E]), its keys and values are appended to `cache`, and each new position attends
  // to the cache and to the new positions up to itself. key_padding_mask, if given, is bool
  // [B, cache length + n]. Stepping T positions one at a time gives what forward gives with
  // is_causal on all T.
  AttentionOutput step(const Variable& x, KV& cache, const Tensor& key_padding_mask = {},
                       bool need_weights = false) const;

  // The same on packed rows (nn/token_packing.h), for the position-wise layers around it to skip
  // padding: the projections run on the rows, the attention on them unpacked to [B,T,..].
  // Self-attention of rows x [N,E] of the padded batch `p` -> [N,E].
  Variable forward_packed(const Variable& x, const TokenPacking& p,
                          const AttentionMasks& masks = {}) const;
  // Key = value rows [Nk,E] of the padded batch `p` -> their projections [B,H,Tk,D] each.
  KV project_kv_packed(const Variable& memory, const TokenPacking& p) const;
  // Query rows [Nq,E] of the padded batch `p` attend to projected keys and values -> [Nq,E].
  Variable attend_packed(const Variable& query, const TokenPacking& p, const KV& kv,
                         const AttentionMasks& masks = {}) const;

  std::int64_t embed_dim() const { return embed_dim_; }
  std::int64_t num_heads() const { return num_heads_; }
  std::int64_t head_dim() const { return embed_dim_ / num_heads_; }
  double dropout() const { return dropout_; }

  // For views of attention: while `sink` is set, every call appends its scores and weights as
  // Variables of the graph ([B,H,Tq,Tk] each; see SdpaOptions::trace), so a backward leaves
  // their gradients. Not for training, nor for a module shared by threads.
  void trace_into(std::vector<SdpaTrace>* sink) const { trace_ = sink; }

  Variable in_proj_weight;  // [3E,E]
  Variable in_proj_bias;    // [3E], undefined without bias
  Linear out_proj;          // E -> E

 private:
  // x [B,T,E] through rows [first, first + count) of the packed projection: [B,T,count].
  Variable project(const Variable& x, std::int64_t first, std::int64_t count) const;
  // [B,T,n*E] -> n tensors [B,H,T,D]
  std::vector<Variable> split_heads(const Variable& x, std::int64_t n) const;
  // Projected queries [B,H,Tq,D] attend to kv; merges the heads into [B,Tq,E] (before out_proj).
  AttentionOutput attend_heads(const Variable& q, const KV& kv, const AttentionMasks& masks,
                               bool need_weights) const;
  // a's merged heads through out_proj
  AttentionOutput projected(AttentionOutput a) const {
    a.output = out_proj(a.output);
    return a;
  }
  // ShapeError unless x is [p.tokens(), E]; `what` names the argument.
  void check_rows(const Variable& x, const TokenPacking& p, const char* what) const;

  std::int64_t embed_dim_, num_heads_;
  double dropout_;
  Generator* gen_;
  mutable std::vector<SdpaTrace>* trace_ = nullptr;  // a probe, not the module's state
};

}  // namespace seqgrad
