// The Transformer's layers and stacks, written from nn layers and autograd ops (no backward of
// their own). Post-norm and pre-norm differ only in where each block's LayerNorm sits; the
// cached step runs the same blocks with self-attention over the keys and values so far.
// Shape legend: B batch, S source length, T target length, E d_model, H heads, F feed-forward.
#include "nn/transformer.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "nn/init.h"
#include "tensor/index.h"

namespace seqgrad {

std::string_view activation_name(Activation activation) {
  switch (activation) {
    case Activation::relu:
      return "relu";
    case Activation::gelu:
      return "gelu";
  }
  return "?";
}

Activation parse_activation(std::string_view name) {
  if (name == "relu") return Activation::relu;
  if (name == "gelu") return Activation::gelu;
  throw ValueError(fmt::format("unknown activation '{}' (known: relu, gelu)", name));
}

namespace {

// Checked before any member is built (the members' sizes come from the options).
const TransformerOptions& checked(const TransformerOptions& o, std::string_view layer) {
  if (o.d_model <= 0 || o.nhead <= 0 || o.dim_feedforward <= 0) {
    throw ValueError(fmt::format("{}: d_model {}, nhead {} and dim_feedforward {} must be positive",
                                 layer, o.d_model, o.nhead, o.dim_feedforward));
  }
  if (o.d_model % o.nhead != 0) {
    throw ValueError(
        fmt::format("{}: d_model {} is not divisible by nhead {}", layer, o.d_model, o.nhead));
  }
  if (!(o.dropout >= 0 && o.dropout < 1)) {
    throw ValueError(fmt::format("{}: dropout {} is outside [0, 1)", layer, o.dropout));
  }
  if (!(o.layer_norm_eps > 0)) {
    throw ValueError(
        fmt::format("{}: layer_norm_eps {} must be positive", layer, o.layer_norm_eps));
  }
  return o;
}

void checked_layers(std::int64_t n, std::string_view stack) {
  if (n <= 0) throw ValueError(fmt::format("{}: num_layers {} must be positive", stack, n));
}

Variable activate(const Variable& x, Activation activation) {
  return activation == Activation::gelu ? gelu(x) : relu(x);
}

// x must be [B,T,E]; `what` names the layer and the argument in the error.
void check_sequence(const Variable& x, std::int64_t E, std::string_view layer,
                    std::string_view what) {
  if (x.dim() != 3 || x.size(2) != E) {
    throw ShapeError(fmt::format("{}: {} {} must be [B,T,E] with E = d_model {}", layer, what,
                                 shape_str(x.shape()), E));
  }
}

}  // namespace

// clang-format off
// y[t, 2i]   = sin(t / 10000^(2i/E))
// y[t, 2i+1] = cos(t / 10000^(2i/E))
// clang-format on
Tensor sinusoidal_positions(std::int64_t T, std::int64_t E, DType dtype) {
  if (T < 0 || E <= 0) {
    throw ValueError(
        fmt::format("sinusoidal_positions: T {} must be >= 0 and E {} positive", T, E));
  }
  std::vector<double> y(static_cast<std::size_t>(T * E));
  for (std::int64_t j = 0; j < E; ++j) {
    const double rate = std::pow(10000.0, -static_cast<double>(j - j % 2) / static_cast<double>(E));
    for (std::int64_t t = 0; t < T; ++t) {
      const double angle = static_cast<double>(t) * rate;
      y[static_cast<std::size_t>(t * E + j)] = j % 2 == 0 ? std::sin(angle) : std::cos(angle);
    }
  }
  return Tensor::from_vector(y, {T, E}).astype(dtype);
}

TransformerNorm::TransformerNorm(std::int64_t size, double eps, bool with_bias, DType dtype)
    : norm_(size, eps, /*affine=*/false, dtype) {
  weight = register_parameter("weight", Tensor::ones({size}, dtype));
  if (with_bias) bias = register_parameter("bias", Tensor::zeros({size}, dtype));
}

// y = normalise(x) * weight + bias
Variable TransformerNorm::forward(const Variable& x) const {
  const Variable y = norm_(x) * weight;
  return bias.defined() ? y + bias : y;
}

// --- encoder layer ---

TransformerEncoderLayer::TransformerEncoderLayer(const TransformerOptions& options, Generator& gen)
    : self_attn(checked(options, "TransformerEncoderLayer").d_model, options.nhead, options.dropout,
                options.bias, gen, options.dtype),
      linear1(options.d_model, options.dim_feedforward, options.bias, gen, options.dtype),
      dropout(options.dropout, gen),
      linear2(options.dim_feedforward, options.d_model, options.bias, gen, options.dtype),
      norm1(options.d_model, options.layer_norm_eps, options.bias, options.dtype),
      norm2(options.d_model, options.layer_norm_eps, options.bias, options.dtype),
      dropout1(options.dropout, gen),
      dropout2(options.dropout, gen),
      opt_(options) {
  register_module("self_attn", self_attn);
  register_module("linear1", linear1);
  register_module("dropout", dropout);
  register_module("linear2", linear2);
  register_module("norm1", norm1);
  register_module("norm2", norm2);
  register_module("dropout1", dropout1);
  register_module("dropout2", dropout2);
}

Variable TransformerEncoderLayer::feed_forward(const Variable& x) const {
  return dropout2(linear2(dropout(activate(linear1(x), opt_.activation))));
}

// clang-format off
// post-norm: x = norm1(x + sa(x));  x = norm2(x + ff(x))
// pre-norm:  x = x + sa(norm1(x));  x = x + ff(norm2(x))
// clang-format on
Variable TransformerEncoderLayer::blocks(const Variable& src, const Attend& sa) const {
  if (opt_.norm_first) {
    const Variable x = src + sa(norm1(src));
    return x + feed_forward(norm2(x));
  }
  const Variable x = norm1(src + sa(src));
  return norm2(x + feed_forward(x));
}

Variable TransformerEncoderLayer::forward(const Variable& src, const AttentionMasks& masks,
                                          Tensor* self_weights) const {
  check_sequence(src, opt_.d_model, "TransformerEncoderLayer", "src");
  return blocks(src, [&](const Variable& x) {
    AttentionOutput a = self_attn(x, x, x, masks, self_weights != nullptr);
    if (self_weights != nullptr) *self_weights = std::move(a.weights);
    return dropout1(a.output);
  });
}

Variable TransformerEncoderLayer::step(const Variable& x, KV& cache,
                                       const Tensor& key_padding_mask) const {
  check_sequence(x, opt_.d_model, "TransformerEncoderLayer", "step input");
  return blocks(x, [&](const Variable& y) {
    return dropout1(self_attn.step(y, cache, key_padding_mask).output);
  });
}

Variable TransformerEncoderLayer::forward_packed(const Variable& x, const TokenPacking& p,
                                                 const AttentionMasks& masks) const {
  return blocks(x,
                [&](const Variable& y) { return dropout1(self_attn.forward_packed(y, p, masks)); });
}

// --- decoder layer ---

TransformerDecoderLayer::TransformerDecoderLayer(const TransformerOptions& options, Generator& gen)
    : self_attn(checked(options, "TransformerDecoderLayer").d_model, options.nhead, options.dropout,
                options.bias, gen, options.dtype),
      multihead_attn(options.d_model, options.nhead, options.dropout, options.bias, gen,
                     options.dtype),
      linear1(options.d_model, options.dim_feedforward, options.bias, gen, options.dtype),
      dropout(options.dropout, gen),
      linear2(options.dim_feedforward, options.d_model, options.bias, gen, options.dtype),
      norm1(options.d_model, options.layer_norm_eps, options.bias, options.dtype),
      norm2(options.d_model, options.layer_norm_eps, options.bias, options.dtype),
      norm3(options.d_model, options.layer_norm_eps, options.bias, options.dtype),
      dropout1(options.dropout, gen),
      dropout2(options.dropout, gen),
      dropout3(options.dropout, gen),
      opt_(options) {
  register_module("self_attn", self_attn);
  register_module("multihead_attn", multihead_attn);
  register_module("linear1", linear1);
  register_module("dropout", dropout);
  register_module("linear2", linear2);
  register_module("norm1", norm1);
  register_module("norm2", norm2);
  register_module("norm3", norm3);
  register_module("dropout1", dropout1);
  register_module("dropout2", dropout2);
  register_module("dropout3", dropout3);
}

Variable TransformerDecoderLayer::feed_forward(const Variable& x) const {
  return dropout3(linear2(dropout(activate(linear1(x), opt_.activation))));
}

KV TransformerDecoderLayer::project_memory(const Variable& memory) const {
  check_sequence(memory, opt_.d_model, "TransformerDecoderLayer", "memory");
  return multihead_attn.project_kv(memory, memory);
}

// clang-format off
// post-norm: x = norm1(x + sa(x));  x = norm2(x + ca(x));  x = norm3(x + ff(x))
// pre-norm:  x = x + sa(norm1(x));  x = x + ca(norm2(x));  x = x + ff(norm3(x))
// clang-format on
Variable TransformerDecoderLayer::blocks(const Variable& tgt, const Attend& sa,
                                         const Attend& ca) const {
  if (opt_.norm_first) {
    const Variable x = tgt + sa(norm1(tgt));
    const Variable h = x + ca(norm2(x));
    return h + feed_forward(norm3(h));
  }
  const Variable x = norm1(tgt + sa(tgt));
  const Variable h = norm2(x + ca(x));
  return norm3(h + feed_forward(h));
}

// The cross-attention block's attention of queries y to the memory's keys and values, keeping
// the weights if asked.
Variable TransformerDecoderLayer::cross(const Variable& y, const KV& memory_kv,
                                        const AttentionMasks& memory_masks,
                                        Tensor* cross_weights) const {
  AttentionOutput a = multihead_attn.attend(y, memory_kv, memory_masks, cross_weights != nullptr);
  if (cross_weights != nullptr) *cross_weights = std::move(a.weights);
  return dropout2(a.output);
}

Variable TransformerDecoderLayer::forward(const Variable& tgt, const Variable& memory,
                                          const AttentionMasks& tgt_masks,
                                          const AttentionMasks& memory_masks,
                                          Tensor* cross_weights) const {
  check_sequence(tgt, opt_.d_model, "TransformerDecoderLayer", "tgt");
  check_sequence(memory, opt_.d_model, "TransformerDecoderLayer", "memory");
  if (memory.size(0) != tgt.size(0)) {
    throw ShapeError(fmt::format("TransformerDecoderLayer: tgt {} and memory {} differ in batch",
                                 shape_str(tgt.shape()), shape_str(memory.shape())));
  }
  const KV memory_kv = project_memory(memory);
  return blocks(
      tgt, [&](const Variable& y) { return dropout1(self_attn(y, y, y, tgt_masks).output); },
      [&](const Variable& y) { return cross(y, memory_kv, memory_masks, cross_weights); });
}

Variable TransformerDecoderLayer::step(const Variable& tgt, KV& self_cache, const KV& memory_kv,
                                       const Tensor& memory_key_padding_mask,
                                       Tensor* cross_weights) const {
  check_sequence(tgt, opt_.d_model, "TransformerDecoderLayer", "step input");
  AttentionMasks memory_masks;
  memory_masks.key_padding_mask = memory_key_padding_mask;
  return blocks(
      tgt, [&](const Variable& y) { return dropout1(self_attn.step(y, self_cache).output); },
      [&](const Variable& y) { return cross(y, memory_kv, memory_masks, cross_weights); });
}

Variable TransformerDecoderLayer::forward_packed(const Variable& tgt, const TokenPacking& tp,
                                                 const Variable& memory, const TokenPacking& sp,
                                                 const AttentionMasks& tgt_masks,
                                                 const AttentionMasks& memory_masks) const {
  if (tp.batch() != sp.batch()) {
    throw ShapeError(
        fmt::format("TransformerDecoderLayer: target batch {} and memory batch {} differ",
                    tp.batch(), sp.batch()));
  }
  const KV memory_kv = multihead_attn.project_kv_packed(memory, sp);
  return blocks(
      tgt, [&](const Variable& y) { return dropout1(self_attn.forward_packed(y, tp, tgt_masks)); },
      [&](const Variable& y) {
        return dropout2(multihead_attn.attend_packed(y, tp, memory_kv, memory_masks));
      });
}

// --- caches ---

EncoderCache reorder(const EncoderCache& cache, const Tensor& rows) {
  EncoderCache out;
  for (const KV& kv : cache.self) out.self.push_back(reorder(kv, rows));
  return out;
}

DecoderCache reorder(const DecoderCache& cache, const Tensor& rows) {
  DecoderCache out;
  for (const KV& kv : cache.self) out.self.push_back(reorder(kv, rows));
  for (const KV& kv : cache.cross) out.cross.push_back(reorder(kv, rows));
  if (cache.memory_key_padding_mask.defined()) {
    out.memory_key_padding_mask = index_select(cache.memory_key_padding_mask, 0, rows);
  }
  return out;
}

// --- stacks ---

TransformerEncoder::TransformerEncoder(const TransformerOptions& options, std::int64_t num_layers,
                                       bool final_norm, Generator& gen) {
  checked(options, "TransformerEncoder");
  checked_layers(num_layers, "TransformerEncoder");
  for (std::int64_t i = 0; i < num_layers; ++i) {
    layers.push_back(std::make_unique<TransformerEncoderLayer>(options, gen));
    register_module(fmt::format("layers.{}", i), *layers.back());
  }
  if (final_norm) {
    norm = std::make_unique<TransformerNorm>(options.d_model, options.layer_norm_eps, options.bias,
                                             options.dtype);
    register_module("norm", *norm);
  }
}

Variable TransformerEncoder::forward(const Variable& src, const AttentionMasks& masks,
                                     std::vector<Tensor>* self_weights) const {
  if (self_weights != nullptr) self_weights->assign(layers.size(), Tensor());
  Variable x = src;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    x = layers[i]->forward(x, masks, self_weights != nullptr ? &(*self_weights)[i] : nullptr);
  }
  return norm != nullptr ? (*norm)(x) : x;
}

Variable TransformerEncoder::forward_packed(const Variable& x, const TokenPacking& p,
                                            const AttentionMasks& masks) const {
  Variable h = x;
  for (const auto& layer : layers) h = layer->forward_packed(h, p, masks);
  return norm != nullptr ? (*norm)(h) : h;
}

EncoderCache TransformerEncoder::start_cache() const {
  EncoderCache cache;
  cache.self.resize(layers.size());
  return cache;
}

Variable TransformerEncoder::step(const Variable& x, EncoderCache& cache,
                                  const Tensor& key_padding_mask) const {
  if (cache.self.size() != layers.size()) {
    throw ValueError(fmt::format(
        "TransformerEncoder: the cache holds {} layers, this encoder has {} (use start_cache)",
        cache.self.size(), layers.size()));
  }
  Variable h = x;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    h = layers[i]->step(h, cache.self[i], key_padding_mask);
  }
  return norm != nullptr ? (*norm)(h) : h;
}

TransformerDecoder::TransformerDecoder(const TransformerOptions& options, std::int64_t num_layers,
                                       bool final_norm, Generator& gen) {
  checked(options, "TransformerDecoder");
  checked_layers(num_layers, "TransformerDecoder");
  for (std::int64_t i = 0; i < num_layers; ++i) {
    layers.push_back(std::make_unique<TransformerDecoderLayer>(options, gen));
    register_module(fmt::format("layers.{}", i), *layers.back());
  }
  if (final_norm) {
    norm = std::make_unique<TransformerNorm>(options.d_model, options.layer_norm_eps, options.bias,
                                             options.dtype);
    register_module("norm", *norm);
  }
}

Variable TransformerDecoder::forward(const Variable& tgt, const Variable& memory,
                                     const AttentionMasks& tgt_masks,
                                     const AttentionMasks& memory_masks,
                                     std::vector<Tensor>* cross_weights) const {
  if (cross_weights != nullptr) cross_weights->assign(layers.size(), Tensor());
  Variable x = tgt;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    x = layers[i]->forward(x, memory, tgt_masks, memory_masks,
                           cross_weights != nullptr ? &(*cross_weights)[i] : nullptr);
  }
  return norm != nullptr ? (*norm)(x) : x;
}

Variable TransformerDecoder::forward_packed(const Variable& tgt, const TokenPacking& tp,
                                            const Variable& memory, const TokenPacking& sp,
                                            const AttentionMasks& tgt_masks,
                                            const AttentionMasks& memory_masks) const {
  Variable x = tgt;
  for (const auto& layer : layers) {
    x = layer->forward_packed(x, tp, memory, sp, tgt_masks, memory_masks);
  }
  return norm != nullptr ? (*norm)(x) : x;
}

DecoderCache TransformerDecoder::start_cache(const Variable& memory,
                                             const Tensor& memory_key_padding_mask) const {
  const Tensor& m = memory_key_padding_mask;
  if (m.defined() && (memory.dim() != 3 || m.dtype() != DType::boolean ||
                      m.shape() != Shape{memory.size(0), memory.size(1)})) {
    throw ShapeError(fmt::format(
        "TransformerDecoder: memory_key_padding_mask {} {} must be bool [B,S] for memory {}",
        dtype_name(m.dtype()), shape_str(m.shape()), shape_str(memory.shape())));
  }
  DecoderCache cache;
  cache.self.resize(layers.size());
  for (const auto& layer : layers) cache.cross.push_back(layer->project_memory(memory));
  cache.memory_key_padding_mask = m;
  return cache;
}

Variable TransformerDecoder::step(const Variable& tgt, DecoderCache& cache,
                                  std::vector<Tensor>* cross_weights) const {
  if (cache.self.size() != layers.size() || cache.cross.size() != layers.size()) {
    throw ValueError(fmt::format(
        "TransformerDecoder: the cache holds {} self and {} cross layers, this decoder has {} "
        "(use start_cache)",
        cache.self.size(), cache.cross.size(), layers.size()));
  }
  if (cross_weights != nullptr) cross_weights->assign(layers.size(), Tensor());
  Variable x = tgt;
  for (std::size_t i = 0; i < layers.size(); ++i) {
    x = layers[i]->step(x, cache.self[i], cache.cross[i], cache.memory_key_padding_mask,
                        cross_weights != nullptr ? &(*cross_weights)[i] : nullptr);
  }
  return norm != nullptr ? (*norm)(x) : x;
}

Transformer::Transformer(const TransformerOptions& options, std::int64_t num_encoder_layers,
                         std::int64_t num_decoder_layers, Generator& gen)
    : encoder(checked(options, "Transformer"), num_encoder_layers, true, gen),
      decoder(options, num_decoder_layers, true, gen),
      opt_(options) {
  register_module("encoder", encoder);
  register_module("decoder", decoder);
  // PyTorch's _reset_parameters: Xavier-uniform for every matrix.
  for (auto& [name, p] : named_parameters()) {
    if (p.dim() > 1) xavier_uniform_(p.data(), gen);
  }
}

Variable Transformer::forward(const Variable& src, const Variable& tgt,
                              const AttentionMasks& src_masks, const AttentionMasks& tgt_masks,
                              const AttentionMasks& memory_masks,
                              std::vector<Tensor>* cross_weights) const {
  check_sequence(src, opt_.d_model, "Transformer", "src");
  check_sequence(tgt, opt_.d_model, "Transformer", "tgt");
  if (src.size(0) != tgt.size(0)) {
    throw ShapeError(fmt::format("Transformer: src {} and tgt {} differ in batch",
                                 shape_str(src.shape()), shape_str(tgt.shape())));
  }
  const Variable memory = encoder(src, src_masks);
  return decoder.forward(tgt, memory, tgt_masks, memory_masks, cross_weights);
}

}  // namespace seqgrad
