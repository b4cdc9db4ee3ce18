// MultiheadAttention, written from autograd ops (projections as matmuls, heads as reshapes and
// permutes, attention as scaled_dot_product_attention), so it needs no backward of its own.
// Shape legend: B batch, Tq queries, Tk keys, E embed_dim, H heads, D head size (E / H).
#include "nn/multihead_attention.h"

#include <fmt/format.h>

#include <cmath>
#include <limits>

#include "autograd/ops.h"
#include "nn/init.h"
#include "tensor/elementwise.h"

namespace seqgrad {

namespace {

constexpr const char* kName = "MultiheadAttention";

// Checked before any member is built: out_proj's size comes from here.
std::int64_t checked_embed_dim(std::int64_t embed_dim, std::int64_t num_heads, double dropout) {
  if (embed_dim <= 0 || num_heads <= 0) {
    throw ValueError(fmt::format("{}: embed_dim {} and num_heads {} must be positive", kName,
                                 embed_dim, num_heads));
  }
  if (embed_dim % num_heads != 0) {
    throw ValueError(fmt::format("{}: embed_dim {} is not divisible by num_heads {}", kName,
                                 embed_dim, num_heads));
  }
  if (!(dropout >= 0 && dropout < 1)) {
    throw ValueError(fmt::format("{}: dropout {} is outside [0, 1)", kName, dropout));
  }
  return embed_dim;
}

// The keep-mask (true = attend) of PyTorch's masks, which mark what is NOT attended, for scores
// [B,H,Tq,Tk]: [B,1,1,Tk] from a key padding mask, [Tq,Tk] from an attention mask, [B,1,Tq,Tk]
// from both; undefined when neither is given (is_causal goes to the attention as a flag).
Tensor keep_mask(const AttentionMasks& m, std::int64_t B, std::int64_t Tq, std::int64_t Tk) {
  Tensor keep_pad, keep_attn;
  if (m.key_padding_mask.defined()) {
    const Tensor& p = m.key_padding_mask;
    if (p.dtype() != DType::boolean || p.shape() != Shape{B, Tk}) {
      throw ShapeError(fmt::format(
          "{}: key_padding_mask {} {} must be bool [B,Tk] = [{},{}] (true marks padding)", kName,
          dtype_name(p.dtype()), shape_str(p.shape()), B, Tk));
    }
    keep_pad = logical_not(p).reshape({B, 1, 1, Tk});
  }
  if (m.attn_mask.defined()) {
    const Tensor& a = m.attn_mask;
    if (a.shape() != Shape{Tq, Tk}) {
      throw ShapeError(fmt::format("{}: attn_mask {} must be [Tq,Tk] = [{},{}]", kName,
                                   shape_str(a.shape()), Tq, Tk));
    }
    if (a.dtype() == DType::boolean) {
      keep_attn = logical_not(a);
    } else if (is_floating(a.dtype())) {
      // Only 0 and -inf are masks; any other value would be an additive bias, which the
      // keep-mask cannot carry.
      const std::vector<double> values = a.to_vector<double>();
      keep_attn = Tensor::zeros({Tq, Tk}, DType::boolean);
      auto* keep = static_cast<std::uint8_t*>(keep_attn.raw_data());
      for (std::size_t i = 0; i < values.size(); ++i) {
        const double v = values[i];
        if (v != 0 && v != -std::numeric_limits<double>::infinity()) {
          throw ValueError(fmt::format(
              "{}: a float attn_mask may hold only 0 (attend) and -inf (do not); found {} at "
              "[{},{}] (an additive bias is not supported; a bool mask, true = not allowed, "
              "says the same)",
              kName, v, static_cast<std::int64_t>(i) / Tk, static_cast<std::int64_t>(i) % Tk));
        }
        keep[i] = v == 0;
      }
    } else {
      throw DTypeError(fmt::format("{}: attn_mask must be bool or floating, got {}", kName,
                                   dtype_name(a.dtype())));
    }
  }
  if (!keep_pad.defined()) return keep_attn;
  if (!keep_attn.defined()) return keep_pad;
  // both: [B,1,Tq,Tk] = pad and attn (keep_attn is ours, so writing into it is safe)
  Tensor both = keep_attn.reshape({1, 1, Tq, Tk}).expand({B, 1, Tq, Tk}).contiguous();
  const Tensor pad = keep_pad.expand({B, 1, Tq, Tk}).contiguous();
  auto* b = static_cast<std::uint8_t*>(both.raw_data());
  const auto* p = static_cast<const std::uint8_t*>(pad.raw_data());
  for (std::int64_t i = 0; i < both.numel(); ++i) b[i] = b[i] && p[i];
  return both;
}

}  // namespace

KV reorder(const KV& kv, const Tensor& rows) {
  if (kv.length() == 0) return kv;
  return {index_select(kv.k, 0, rows), index_select(kv.v, 0, rows)};
}

MultiheadAttention::MultiheadAttention(std::int64_t embed_dim, std::int64_t num_heads,
                                       double dropout, bool bias, Generator& gen, DType dtype)
    : out_proj(checked_embed_dim(embed_dim, num_heads, dropout), embed_dim, bias, gen, dtype),
      embed_dim_(embed_dim),
      num_heads_(num_heads),
      dropout_(dropout),
      gen_(&gen) {
  // PyTorch's _reset_parameters: Xavier-uniform over the whole [3E,E], zero biases.
  Tensor w = Tensor::empty({3 * embed_dim, embed_dim}, dtype);
  xavier_uniform_(w, gen);
  in_proj_weight = register_parameter("in_proj_weight", w);
  if (bias) {
    in_proj_bias = register_parameter("in_proj_bias", Tensor::zeros({3 * embed_dim}, dtype));
    out_proj.bias.data().fill_(0);
  }
  register_module("out_proj", out_proj);
}

// y = x W[first:first+count]^T + b[first:first+count]
Variable MultiheadAttention::project(const Variable& x, std::int64_t first,
                                     std::int64_t count) const {
  const bool whole = first == 0 && count == 3 * embed_dim_;
  const Variable w = whole ? in_proj_weight : narrow(in_proj_weight, 0, first, count);
  Variable y = matmul(x, transpose(w, 0, 1));
  if (in_proj_bias.defined())
    y = y + (whole ? in_proj_bias : narrow(in_proj_bias, 0, first, count));
  return y;
}

// [B,T,n*E] -> [B,T,n,H,D] -> [n,B,H,T,D] -> n views [B,H,T,D]
std::vector<Variable> MultiheadAttention::split_heads(const Variable& x, std::int64_t n) const {
  const std::int64_t B = x.size(0), T = x.size(1);
  const Variable heads = permute(reshape(x, {B, T, n, num_heads_, head_dim()}), {2, 0, 3, 1, 4});
  std::vector<Variable> out;
  for (std::int64_t i = 0; i < n; ++i) out.push_back(select(heads, 0, i));
  return out;
}

AttentionOutput MultiheadAttention::attend_heads(const Variable& q, const KV& kv,
                                                 const AttentionMasks& masks,
                                                 bool need_weights) const {
  const std::int64_t B = q.size(0), Tq = q.size(2);
  SdpaOptions o;
  o.mask = keep_mask(masks, B, Tq, kv.length());
  o.causal = masks.is_causal;
  o.dropout = training() ? dropout_ : 0.0;
  o.gen = gen_;
  o.need_weights = need_weights;
  if (trace_ != nullptr) o.trace = &trace_->emplace_back();
  SdpaResult r = scaled_dot_product_attention(q, kv.k, kv.v, o);
  // [B,H,Tq,D] -> [B,Tq,H,D] -> [B,Tq,E]
  return {reshape(permute(r.out, {0, 2, 1, 3}), {B, Tq, embed_dim_}), std::move(r.weights)};
}

AttentionOutput MultiheadAttention::forward(const Variable& query, const Variable& key,
                                            const Variable& value, const AttentionMasks& masks,
                                            bool need_weights) const {
  const std::int64_t E = embed_dim_;
  const bool ok = query.dim() == 3 && key.dim() == 3 && value.dim() == 3 && query.size(2) == E &&
                  key.size(2) == E && value.size(2) == E && key.size(0) == query.size(0) &&
                  value.size(0) == query.size(0) && key.size(1) == value.size(1);
  if (!ok) {
    throw ShapeError(fmt::format(
        "{}: query {}, key {}, value {} must be [B,Tq,E], [B,Tk,E] and [B,Tk,E] with E = "
        "embed_dim {}",
        kName, shape_str(query.shape()), shape_str(key.shape()), shape_str(value.shape()), E));
  }
  if (query.impl() == key.impl() && key.impl() == value.impl()) {
    // self-attention: one [3E,E] projection
    const std::vector<Variable> qkv = split_heads(project(query, 0, 3 * E), 3);
    return projected(attend_heads(qkv[0], KV{qkv[1], qkv[2]}, masks, need_weights));
  }
  const Variable q = split_heads(project(query, 0, E), 1)[0];
  return projected(attend_heads(q, project_kv(key, value), masks, need_weights));
}

KV MultiheadAttention::project_kv(const Variable& key, const Variable& value) const {
  const std::int64_t E = embed_dim_;
  if (key.dim() != 3 || value.dim() != 3 || key.size(2) != E || value.size(2) != E ||
      key.size(0) != value.size(0) || key.size(1) != value.size(1)) {
    throw ShapeError(fmt::format("{}: key {} and value {} must both be [B,Tk,E] with E = {}", kName,
                                 shape_str(key.shape()), shape_str(value.shape()), E));
  }
  if (key.impl() == value.impl()) {
    // one [2E,E] projection for both
    const std::vector<Variable> kv = split_heads(project(key, E, 2 * E), 2);
    return {kv[0], kv[1]};
  }
  return {split_heads(project(key, E, E), 1)[0], split_heads(project(value, 2 * E, E), 1)[0]};
}

AttentionOutput MultiheadAttention::attend(const Variable& query, const KV& kv,
                                           const AttentionMasks& masks, bool need_weights) const {
  const Shape want{query.dim() == 3 ? query.size(0) : -1, num_heads_, kv.length(), head_dim()};
  if (query.dim() != 3 || query.size(2) != embed_dim_ || kv.length() == 0 || kv.k.shape() != want ||
      kv.v.shape() != want) {
    throw ShapeError(fmt::format(
        "{}: query {} must be [B,Tq,E] with E = {}, and the keys {} and values {} [B,H,Tk,D] "
        "with H = {}, D = {}, Tk > 0 (from project_kv)",
        kName, shape_str(query.shape()), embed_dim_,
        kv.k.defined() ? shape_str(kv.k.shape()) : "(none)",
        kv.v.defined() ? shape_str(kv.v.shape()) : "(none)", num_heads_, head_dim()));
  }
  const Variable q = split_heads(project(query, 0, embed_dim_), 1)[0];
  return projected(attend_heads(q, kv, masks, need_weights));
}

AttentionOutput MultiheadAttention::step(const Variable& x, KV& cache,
                                         const Tensor& key_padding_mask, bool need_weights) const {
  const std::int64_t E = embed_dim_;
  const bool cache_ok =
      cache.length() == 0 || (x.dim() == 3 && cache.k.dim() == 4 && cache.k.size(0) == x.size(0) &&
                              cache.k.size(1) == num_heads_ && cache.k.size(3) == head_dim() &&
                              cache.v.shape() == cache.k.shape());
  if (x.dim() != 3 || x.size(2) != E || !cache_ok) {
    throw ShapeError(fmt::format(
        "{}: step input {} must be [B,n,E] with E = {}, and the cache {} [B,H,t,D] with H = {}, "
        "D = {} and the same B",
        kName, shape_str(x.shape()), E, cache.k.defined() ? shape_str(cache.k.shape()) : "(empty)",
        num_heads_, head_dim()));
  }
  const std::vector<Variable> qkv = split_heads(project(x, 0, 3 * E), 3);
  if (cache.length() == 0) {
    cache = KV{qkv[1], qkv[2]};
  } else {
    cache = KV{concat({cache.k, qkv[1]}, 2), concat({cache.v, qkv[2]}, 2)};
  }
  AttentionMasks masks;
  masks.key_padding_mask = key_padding_mask;
  masks.is_causal = true;
  return projected(attend_heads(qkv[0], cache, masks, need_weights));
}

// --- packed rows ---

void MultiheadAttention::check_rows(const Variable& x, const TokenPacking& p,
                                    const char* what) const {
  if (x.dim() != 2 || x.size(1) != embed_dim_ || x.size(0) != p.tokens()) {
    throw ShapeError(fmt::format("{}: {} rows {} must be [N,E] with N = {} tokens, E = {}", kName,
                                 what, shape_str(x.shape()), p.tokens(), embed_dim_));
  }
}

Variable MultiheadAttention::forward_packed(const Variable& x, const TokenPacking& p,
                                            const AttentionMasks& masks) const {
  check_rows(x, p, "self-attention");
  const std::vector<Variable> qkv = split_heads(p.unpack(project(x, 0, 3 * embed_dim_)), 3);
  const AttentionOutput a = attend_heads(qkv[0], KV{qkv[1], qkv[2]}, masks, false);
  return out_proj(p.pack(a.output));
}

KV MultiheadAttention::project_kv_packed(const Variable& memory, const TokenPacking& p) const {
  check_rows(memory, p, "key/value");
  const std::vector<Variable> kv =
      split_heads(p.unpack(project(memory, embed_dim_, 2 * embed_dim_)), 2);
  return {kv[0], kv[1]};
}

Variable MultiheadAttention::attend_packed(const Variable& query, const TokenPacking& p,
                                           const KV& kv, const AttentionMasks& masks) const {
  check_rows(query, p, "query");
  const Variable q = split_heads(p.unpack(project(query, 0, embed_dim_)), 1)[0];
  return out_proj(p.pack(attend_heads(q, kv, masks, false).output));
}

}  // namespace seqgrad
