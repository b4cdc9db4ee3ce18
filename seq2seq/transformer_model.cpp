// Shape legend: B batch, S source length, T target length, E model width, V vocabulary, H heads,
// N decoding rows (batch x beam), P positions.
#include "seq2seq/transformer_model.h"

#include <fmt/format.h>

#include <cmath>

#include "autograd/ops.h"
#include "seq2seq/data.h"
#include "tensor/elementwise.h"
#include "tensor/index.h"
#include "tensor/reduce.h"

namespace seqgrad {

namespace {

// Positions a segment may use: the longest source, or the longest decode of one (its cap).
constexpr std::int64_t kMaxPositions = 2 * static_cast<std::int64_t>(kMaxSequenceTokens) + 16;

bool learned_positions(const ModelConfig& c) {
  if (c.positions != "sinusoidal" && c.positions != "learned") {
    throw ValueError(
        fmt::format("model config: positions '{}' (known: sinusoidal, learned)", c.positions));
  }
  return c.positions == "learned";
}

// N(0, 1/E): with the sqrt(E) scale the embedded tokens have unit variance, as the positions.
void init_embedding(Embedding& e, std::int64_t E, Generator& gen) {
  Tensor w =
      normal(e.weight.shape(), 0.0, 1.0 / std::sqrt(static_cast<double>(E)), e.weight.dtype(), gen);
  if (e.padding_idx() >= 0) w.select(0, e.padding_idx()).fill_(0.0);
  e.weight.data().copy_from(w);
}

// true at the padding of ids [B,n] (PyTorch's key_padding_mask convention)
Tensor padding(const Tensor& ids) {
  return eq(ids, Tensor::scalar(static_cast<double>(kPadId), DType::i64));
}

// PyTorch's masks: padding keys (true = ignored), optionally causal.
AttentionMasks masks(Tensor key_padding, bool causal = false) {
  AttentionMasks m;
  m.key_padding_mask = std::move(key_padding);
  m.is_causal = causal;
  return m;
}

// Points the attention probes of `modules` at a sink (if any) for one pass, and clears them
// however the pass ends.
class ProbeScope {
 public:
  ProbeScope(std::vector<const MultiheadAttention*> modules, std::vector<SdpaTrace>* sink)
      : modules_(sink != nullptr ? std::move(modules) : std::vector<const MultiheadAttention*>{}) {
    for (const auto* m : modules_) m->trace_into(sink);
  }
  ~ProbeScope() {
    for (const auto* m : modules_) m->trace_into(nullptr);
  }
  ProbeScope(const ProbeScope&) = delete;
  ProbeScope& operator=(const ProbeScope&) = delete;

 private:
  std::vector<const MultiheadAttention*> modules_;
};

// Rows b*repeat + i = row b.
Tensor repeat_rows(std::int64_t B, std::int64_t repeat) {
  std::vector<std::int64_t> rows;
  for (std::int64_t b = 0; b < B; ++b) {
    for (std::int64_t i = 0; i < repeat; ++i) rows.push_back(b);
  }
  return Tensor::from_vector(rows, {B * repeat});
}

}  // namespace

TransformerOptions transformer_options(const ModelConfig& c) {
  if (c.heads < 1 || c.hidden % c.heads != 0) {
    throw ValueError(fmt::format(
        "model config: a Transformer splits hidden {} into heads {}; it must divide evenly",
        c.hidden, c.heads));
  }
  return {.d_model = c.hidden,
          .nhead = c.heads,
          .dim_feedforward = c.ff > 0 ? c.ff : 4 * c.hidden,
          .dropout = c.dropout,
          .activation = parse_activation(c.activation),
          .norm_first = c.norm_first,
          .dtype = c.dtype};
}

TokenIO::TokenIO(const ModelConfig& c, Generator& gen)
    : width_(c.hidden),
      src_embed_(c.src_vocab, c.hidden, kPadId, gen, c.dtype),
      tgt_embed_(c.tgt_vocab, c.hidden, kPadId, gen, c.dtype),
      drop_(c.dropout, gen),
      generator_(c.hidden, c.tgt_vocab, true, gen, c.dtype),
      tied_(c.tie_embeddings) {
  init_embedding(src_embed_, width_, gen);
  init_embedding(tgt_embed_, width_, gen);
  register_module("src_embed", src_embed_);
  register_module("tgt_embed", tgt_embed_);
  register_module("dropout", drop_);  // no parameters: registered to follow train/eval
  if (learned_positions(c)) {
    src_positions_ = std::make_unique<Embedding>(kMaxPositions, width_, -1, gen, c.dtype);
    tgt_positions_ = std::make_unique<Embedding>(kMaxPositions, width_, -1, gen, c.dtype);
    init_embedding(*src_positions_, width_, gen);
    init_embedding(*tgt_positions_, width_, gen);
    register_module("src_positions", *src_positions_);
    register_module("tgt_positions", *tgt_positions_);
  } else {
    sinusoid_ = sinusoidal_positions(kMaxPositions, width_, c.dtype);
  }
  if (tied_) {
    // The projection is the target embedding's transpose; only the bias is the generator's.
    generator_.weight = Variable();
    register_parameter("generator.bias", generator_.bias.data());
    generator_.bias = parameter("generator.bias");
  } else {
    register_module("generator", generator_);
  }
}

Variable TokenIO::embed(const Embedding& table, const Embedding* learned, const Tensor& ids,
                        std::int64_t first) const {
  const std::int64_t n = ids.size(1);
  if (first < 0 || first + n > kMaxPositions) {
    throw ValueError(fmt::format("TokenIO: positions {}..{} are beyond the {} a model has", first,
                                 first + n - 1, kMaxPositions));
  }
  const Variable x = table(ids) * std::sqrt(static_cast<double>(width_));
  Variable pos;
  if (learned != nullptr) {
    std::vector<std::int64_t> at(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) at[static_cast<std::size_t>(i)] = first + i;
    pos = learned->forward(Tensor::from_vector(at, {n}));
  } else {
    pos = Variable(sinusoid_.narrow(0, first, n));
  }
  return drop_(x + pos);  // [B,n,E] + [n,E]
}

Variable TokenIO::source(const Tensor& ids, std::int64_t first) const {
  return embed(src_embed_, src_positions_.get(), ids, first);
}

Variable TokenIO::target(const Tensor& ids, std::int64_t first) const {
  return embed(tgt_embed_, tgt_positions_.get(), ids, first);
}

Variable TokenIO::logits(const Variable& h) const {
  if (!tied_) return generator_(h);
  return matmul(h, transpose(tgt_embed_.weight, 0, 1)) + generator_.bias;
}

// --- encoder-decoder ---

TransformerSeq2Seq::TransformerSeq2Seq(const ModelConfig& c, Generator& gen)
    : io_(c, gen), transformer_(transformer_options(c), c.layers, c.layers, gen) {
  register_module("", io_);
  register_module("", transformer_);
}

Variable TransformerSeq2Seq::encode(const Tensor& src) const {
  return transformer_.encoder.forward(io_.source(src), masks(padding(src)));
}

LossResult TransformerSeq2Seq::loss(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                    const Tensor& tgt_in, const Tensor& tgt_out,
                                    const LossOptions& options, Generator& /*gen*/) const {
  check_loss_inputs("TransformerSeq2Seq::loss", src, lengths, tgt_in, tgt_out);
  check_teacher_forcing("TransformerSeq2Seq::loss", options, training());
  // On packed rows, so that the padding costs no products (nn/token_packing.h); the logits of
  // logits() at the target's tokens, in the order of tgt_out's.
  const Tensor src_pad = padding(src);
  const TokenPacking sp = TokenPacking::from_padding(src_pad);
  const TokenPacking tp = TokenPacking::from_padding(padding(tgt_in));
  const Variable memory =
      transformer_.encoder.forward_packed(sp.pack(io_.source(src)), sp, masks(src_pad));
  const Variable h = transformer_.decoder.forward_packed(tp.pack(io_.target(tgt_in)), tp, memory,
                                                         sp, masks({}, true), masks(src_pad));
  return target_loss(io_.logits(h), index_select(tgt_out.reshape({-1}), 0, tp.rows()),
                     options.label_smoothing);
}

Variable TransformerSeq2Seq::logits(const Tensor& src, const Tensor& tgt_in) const {
  return pass(src, tgt_in, false).logits;
}

TracedPass TransformerSeq2Seq::traced(const Tensor& src, const Tensor& tgt_in) const {
  return pass(src, tgt_in, true);
}

TracedPass TransformerSeq2Seq::pass(const Tensor& src, const Tensor& tgt_in, bool trace) const {
  TracedPass p;
  std::vector<const MultiheadAttention*> cross;
  for (const auto& layer : transformer_.decoder.layers) cross.push_back(&layer->multihead_attn);
  const ProbeScope probes(cross, trace ? &p.attention : nullptr);
  p.source_states = encode(src);
  const Variable h = transformer_.decoder.forward(io_.target(tgt_in), p.source_states,
                                                  masks({}, true), masks(padding(src)));
  p.logits = io_.logits(h);
  return p;
}

namespace {

// The decoder's key/value cache of the (repeated) batch, one target position per step.
class TransformerSession : public DecodeSession {
 public:
  TransformerSession(const TransformerSeq2Seq& model, DecoderCache cache)
      : model_(model), cache_(std::move(cache)) {}

  DecodeStepResult step(const Tensor& y_prev) override {
    const std::int64_t N = y_prev.size(0);
    std::vector<Tensor> cross;  // per layer [N,H,1,S]
    const Variable h = model_.transformer().decoder.step(
        model_.io().target(y_prev.reshape({N, 1}), t_), cache_, &cross);
    ++t_;
    const Variable logits = model_.io().logits(h);
    // The view's weights: the last layer's cross-attention, the mean of its heads.
    const Tensor w = mean(cross.back(), {1}).reshape({N, -1});
    return {reshape(logits, {N, logits.size(-1)}), Variable(w)};
  }
  void reorder(const Tensor& order) override { cache_ = seqgrad::reorder(cache_, order); }

 private:
  const TransformerSeq2Seq& model_;
  DecoderCache cache_;
  std::int64_t t_ = 0;
};

}  // namespace

std::unique_ptr<DecodeSession> TransformerSeq2Seq::decode(const Tensor& src,
                                                          const std::vector<std::int64_t>& lengths,
                                                          std::int64_t repeat) const {
  (void)lengths;  // the padding of src says the same
  Variable memory = encode(src);
  Tensor pad = padding(src);
  if (repeat > 1) {
    const Tensor rows = repeat_rows(src.size(0), repeat);
    memory = index_select(memory, 0, rows);
    pad = index_select(pad, 0, rows);
  }
  return std::make_unique<TransformerSession>(*this, transformer_.decoder.start_cache(memory, pad));
}

// --- decoder-only ---

DecoderOnly::DecoderOnly(const ModelConfig& c, Generator& gen)
    : io_(c, gen), stack_(transformer_options(c), c.layers, c.norm_first, gen) {
  register_module("", io_);
  register_module("decoder", stack_);
}

LossResult DecoderOnly::loss(const Tensor& src, const std::vector<std::int64_t>& lengths,
                             const Tensor& tgt_in, const Tensor& tgt_out,
                             const LossOptions& options, Generator& /*gen*/) const {
  check_loss_inputs("DecoderOnly::loss", src, lengths, tgt_in, tgt_out);
  check_teacher_forcing("DecoderOnly::loss", options, training());
  // On packed rows of [source | <s> y], as TransformerSeq2Seq::loss.
  const std::int64_t S = src.size(1), T = tgt_in.size(1);
  const Tensor pad = concat({padding(src), padding(tgt_in)}, 1);
  const TokenPacking p = TokenPacking::from_padding(pad);
  const Variable x = concat({io_.source(src), io_.target(tgt_in)}, 1);
  const Variable h = stack_.forward_packed(p.pack(x), p, masks(pad, true));
  // the packed rows at target positions, and where each is in tgt_out [B,T]
  std::vector<std::int64_t> rows, targets;
  const std::vector<std::int64_t> flat = p.rows().to_vector<std::int64_t>();
  for (std::size_t i = 0; i < flat.size(); ++i) {
    const std::int64_t b = flat[i] / (S + T), t = flat[i] % (S + T);
    if (t < S) continue;
    rows.push_back(static_cast<std::int64_t>(i));
    targets.push_back(b * T + t - S);
  }
  const auto n = static_cast<std::int64_t>(rows.size());
  const Variable logits = io_.logits(index_select(h, 0, Tensor::from_vector(rows, {n})));
  return target_loss(logits,
                     index_select(tgt_out.reshape({-1}), 0, Tensor::from_vector(targets, {n})),
                     options.label_smoothing);
}

Variable DecoderOnly::logits(const Tensor& src, const Tensor& tgt_in) const {
  return pass(src, tgt_in, false).logits;
}

TracedPass DecoderOnly::traced(const Tensor& src, const Tensor& tgt_in) const {
  return pass(src, tgt_in, true);
}

TracedPass DecoderOnly::pass(const Tensor& src, const Tensor& tgt_in, bool trace) const {
  TracedPass p;
  std::vector<const MultiheadAttention*> self;
  for (const auto& layer : stack_.layers) self.push_back(&layer->self_attn);
  const ProbeScope probes(self, trace ? &p.attention : nullptr);
  const std::int64_t S = src.size(1), T = tgt_in.size(1);
  p.source_states = io_.source(src);
  // [source | <s> y]: the source's padding sits between the two, masked as a key
  const Variable x = concat({p.source_states, io_.target(tgt_in)}, 1);
  const Tensor pad = concat({padding(src), padding(tgt_in)}, 1);
  const Variable h = stack_.forward(x, masks(pad, true));
  p.logits = io_.logits(narrow(h, 1, S, T));
  return p;
}

namespace {

// The stack's key/value cache over the source and the target so far, with the padding of every
// cached position.
class DecoderOnlySession : public DecodeSession {
 public:
  DecoderOnlySession(const DecoderOnly& model, EncoderCache cache, Tensor padding)
      : model_(model), cache_(std::move(cache)), padding_(std::move(padding)) {}

  DecodeStepResult step(const Tensor& y_prev) override {
    const std::int64_t N = y_prev.size(0);
    // as the loss masks them: a <pad> fed back (an untrained model may emit one) is a padding key
    padding_ = concat({padding_, padding(y_prev.reshape({N, 1}))}, 1);
    const Variable h =
        model_.stack().step(model_.io().target(y_prev.reshape({N, 1}), t_), cache_, padding_);
    ++t_;
    const Variable logits = model_.io().logits(h);
    return {reshape(logits, {N, logits.size(-1)}), Variable()};
  }
  void reorder(const Tensor& order) override {
    cache_ = seqgrad::reorder(cache_, order);
    padding_ = index_select(padding_, 0, order);
  }

 private:
  const DecoderOnly& model_;
  EncoderCache cache_;
  Tensor padding_;  // [N, cached positions], true at padding
  std::int64_t t_ = 0;
};

}  // namespace

// The source runs through the stack once (filling the cache); its rows are then repeated.
std::unique_ptr<DecodeSession> DecoderOnly::decode(const Tensor& src,
                                                   const std::vector<std::int64_t>& lengths,
                                                   std::int64_t repeat) const {
  (void)lengths;
  EncoderCache cache = stack_.start_cache();
  Tensor pad = padding(src);
  (void)stack_.step(io_.source(src), cache, pad);
  if (repeat > 1) {
    const Tensor rows = repeat_rows(src.size(0), repeat);
    cache = reorder(cache, rows);
    pad = index_select(pad, 0, rows);
  }
  return std::make_unique<DecoderOnlySession>(*this, std::move(cache), std::move(pad));
}

}  // namespace seqgrad
