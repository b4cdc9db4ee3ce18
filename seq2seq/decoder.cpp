// Shape legend: B batch, S source length, E embedding, H hidden, V vocabulary, C context size.
#include "seq2seq/decoder.h"

#include <fmt/format.h>

#include "autograd/ops.h"

namespace seqgrad {

AttentionStyle parse_style(const std::string& name) {
  if (name == "luong") return AttentionStyle::luong;
  if (name == "bahdanau") return AttentionStyle::bahdanau;
  throw ValueError(fmt::format("unknown attention style '{}' (known: luong, bahdanau)", name));
}

std::string style_name(AttentionStyle style) {
  return style == AttentionStyle::luong ? "luong" : "bahdanau";
}

namespace {

std::unique_ptr<Attention> make_attention(const DecoderConfig& c, Generator& gen) {
  if (c.attention == "none") return nullptr;
  ScorerConfig sc{.query_size = c.hidden,
                  .key_size = c.key_size,
                  .attention_size = c.attention_size > 0 ? c.attention_size : c.hidden,
                  .heads = c.heads,
                  .dtype = c.dtype,
                  .gen = &gen};
  return std::make_unique<Attention>(make_scorer(c.attention, sc));
}

std::int64_t context_size_of(const DecoderConfig& c, const Attention* attention) {
  return attention != nullptr ? attention->heads() * c.key_size : c.key_size;
}

std::int64_t rnn_input_size(const DecoderConfig& c, const Attention* attention) {
  // Luong feeds o_{t-1} (H); Bahdanau and none feed the context (C).
  if (attention != nullptr && c.style == AttentionStyle::luong) return c.embed + c.hidden;
  return c.embed + context_size_of(c, attention);
}

}  // namespace

Decoder::Decoder(const DecoderConfig& config, Generator& gen)
    : cfg_(config),
      embed_(config.vocab, config.embed, 0, gen, config.dtype),
      drop_(config.dropout, gen),
      attention_(make_attention(config, gen)),
      rnn_(RNNOptions{.cell = config.cell,
                      .input_size = rnn_input_size(config, attention_.get()),
                      .hidden_size = config.hidden,
                      .num_layers = config.layers,
                      .dropout = config.dropout,
                      .dtype = config.dtype},
           gen),
      combine_(context_size_of(config, attention_.get()) + config.hidden, config.hidden, true, gen,
               config.dtype),
      project_(config.hidden, config.vocab, true, gen, config.dtype) {
  register_module("embedding", embed_);
  if (attention_) register_module("attention", *attention_);
  register_module("rnn", rnn_);
  register_module("combine", combine_);
  register_module("project", project_);
  register_module("dropout", drop_);
}

std::int64_t Decoder::context_size() const {
  return context_size_of(cfg_, attention_.get());
}

DecoderMemory Decoder::memory(const EncoderOutput& enc) const {
  DecoderMemory m;
  m.batch = enc.states.size(0);
  m.rnn_weights = rnn_.step_weights();
  m.combine = combine_.packed();
  if (attention_) {
    m.attention = attention_->memory(enc.states, enc.mask);
  } else {
    // The fixed context: each direction's top-layer final state, [B, D*H_enc].
    const std::int64_t D = cfg_.key_size / enc.final.h.size(2);
    const std::int64_t L = enc.final.h.size(0) / D;
    std::vector<Variable> parts;
    for (std::int64_t d = 0; d < D; ++d) parts.push_back(select(enc.final.h, 0, (L - 1) * D + d));
    m.fixed_context = parts.size() == 1 ? parts[0] : concat(parts, 1);
  }
  return m;
}

DecoderState Decoder::initial(const RNNState& bridged, std::int64_t batch) const {
  DecoderState s;
  s.rnn = bridged;
  if (attention_ && cfg_.style == AttentionStyle::luong) {
    s.feed = Variable(Tensor::zeros({batch, cfg_.hidden}, cfg_.dtype));
  }
  return s;
}

DecoderStep Decoder::step(const Tensor& y_prev, const DecoderState& state,
                          const DecoderMemory& m) const {
  const Variable e = drop_(embed_(y_prev));  // [B,E]
  const RNN::StepWeights* packed = m.rnn_weights.ih_t.empty() ? nullptr : &m.rnn_weights;
  DecoderStep out;
  Variable context;
  if (!attention_) {
    context = m.fixed_context;
    out.state.rnn = rnn_.step(concat({e, context}, 1), state.rnn, packed).state;
  } else if (cfg_.style == AttentionStyle::luong) {
    out.state.rnn = rnn_.step(concat({e, state.feed}, 1), state.rnn, packed).state;
    const AttentionResult a = attention_->attend(select(out.state.rnn.h, 0, -1), m.attention);
    context = a.context;
    out.weights = a.weights;
    out.scores = a.scores;
    out.head_weights = a.head_weights;
  } else {
    const AttentionResult a = attention_->attend(select(state.rnn.h, 0, -1), m.attention);
    context = a.context;
    out.weights = a.weights;
    out.scores = a.scores;
    out.head_weights = a.head_weights;
    out.state.rnn = rnn_.step(concat({e, context}, 1), state.rnn, packed).state;
  }
  const Variable h = select(out.state.rnn.h, 0, -1);  // top layer [B,H]
  const Variable both = concat({context, h}, 1);
  out.output = tanh(m.combine.w_t.defined() ? combine_.forward(both, m.combine) : combine_(both));
  if (attention_ && cfg_.style == AttentionStyle::luong) out.state.feed = out.output;
  return out;
}

}  // namespace seqgrad
