// Shape legend: B batch, S source length, T target length, H hidden, V vocabulary, K repeats.
#include "seq2seq/recurrent_model.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/loss.h"
#include "tensor/index.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"

namespace seqgrad {

namespace {

// A bidirectional encoder gives each direction hidden/2 units, so its states are `hidden` wide
// like the decoder's and every scorer (dot products included) fits.
EncoderConfig encoder_config(const ModelConfig& c) {
  if (c.bidirectional && c.hidden % 2 != 0) {
    throw ValueError(
        fmt::format("model config: a bidirectional encoder splits hidden {} between "
                    "two directions; it must be even",
                    c.hidden));
  }
  return {.vocab = c.src_vocab,
          .embed = c.embed,
          .hidden = c.bidirectional ? c.hidden / 2 : c.hidden,
          .layers = c.layers,
          .cell = parse_cell(c.cell),
          .bidirectional = c.bidirectional,
          .dropout = c.dropout,
          .dtype = c.dtype};
}

DecoderConfig decoder_config(const ModelConfig& c) {
  return {.vocab = c.tgt_vocab,
          .embed = c.embed,
          .hidden = c.hidden,
          .layers = c.layers,
          .cell = parse_cell(c.cell),
          .dropout = c.dropout,
          .style = parse_style(c.style),
          .attention = c.attention,
          .attention_size = c.attention_size,
          .heads = c.heads,
          .key_size = c.hidden,
          .dtype = c.dtype};
}

}  // namespace

Recurrent::Recurrent(const ModelConfig& config, Generator& gen)
    : encoder_(encoder_config(config), gen),
      bridge_(encoder_config(config), config.hidden, gen),
      decoder_(decoder_config(config), gen) {
  register_module("encoder", encoder_);
  register_module("bridge", bridge_);
  register_module("decoder", decoder_);
}

EncoderOutput Recurrent::encode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                RNNTrace* trace) const {
  return encoder_.forward(src, lengths, trace);
}

std::pair<DecoderMemory, DecoderState> Recurrent::start(const EncoderOutput& enc) const {
  const std::int64_t B = enc.states.size(0);
  return {decoder_.memory(enc), decoder_.initial(bridge_.forward(enc.final), B)};
}

LossResult Recurrent::loss(const Tensor& src, const std::vector<std::int64_t>& lengths,
                           const Tensor& tgt_in, const Tensor& tgt_out, const LossOptions& options,
                           Generator& gen) const {
  check_loss_inputs("Seq2Seq::loss", src, lengths, tgt_in, tgt_out);
  const std::int64_t B = tgt_in.size(0), T = tgt_in.size(1);
  auto [memory, state] = start(encode(src, lengths));
  const bool sampling = options.teacher_forcing < 1.0 && training();
  std::vector<Variable> outputs;  // o_t, projected once after the loop when not sampling
  Tensor y_prev = tgt_in.select(1, 0);
  for (std::int64_t t = 0; t < T; ++t) {
    DecoderStep s = decoder_.step(y_prev, state, memory);
    state = s.state;
    if (!sampling) {
      outputs.push_back(s.output);
      if (t + 1 < T) y_prev = tgt_in.select(1, t + 1);
      continue;
    }
    // Scheduled sampling (Bengio et al. 2015): per example, feed the reference with
    // probability teacher_forcing, else the model's own argmax.
    const Variable logits_t = decoder_.logits(s.output);
    outputs.push_back(logits_t);
    if (t + 1 < T) {
      const Tensor predicted = argmax(logits_t.data(), 1);
      const Tensor use_ref = bernoulli({B}, options.teacher_forcing, gen);
      y_prev = where(use_ref, tgt_in.select(1, t + 1), predicted);
    }
  }
  const Variable stacked = stack(outputs, 1);  // [B,T,H] or [B,T,V]
  return target_loss(sampling ? stacked : decoder_.logits(stacked), tgt_out,
                     options.label_smoothing);
}

namespace {

Variable pick_rows(const Variable& v, std::int64_t axis, const Tensor& index) {
  return v.defined() ? index_select(v, axis, index) : v;
}

// A decoding session: the decoder's memory of the (repeated) batch and its state, which each
// step advances and beam search reorders.
class RecurrentSession : public DecodeSession {
 public:
  RecurrentSession(const Decoder& decoder, DecoderMemory memory, DecoderState state)
      : decoder_(decoder), memory_(std::move(memory)), state_(std::move(state)) {}

  DecodeStepResult step(const Tensor& y_prev) override {
    DecoderStep s = decoder_.step(y_prev, state_, memory_);
    state_ = std::move(s.state);
    return {decoder_.logits(s.output), s.weights};
  }
  void reorder(const Tensor& order) override {
    state_ = {{pick_rows(state_.rnn.h, 1, order), pick_rows(state_.rnn.c, 1, order)},
              pick_rows(state_.feed, 0, order)};
  }

 private:
  const Decoder& decoder_;
  DecoderMemory memory_;
  DecoderState state_;
};

}  // namespace

// The batch is encoded once; its rows are then repeated (row b*K + i is source b).
std::unique_ptr<DecodeSession> Recurrent::decode(const Tensor& src,
                                                 const std::vector<std::int64_t>& lengths,
                                                 std::int64_t repeat) const {
  EncoderOutput enc = encode(src, lengths);
  if (repeat > 1) {
    std::vector<std::int64_t> rows, rep_lengths;
    for (std::size_t b = 0; b < lengths.size(); ++b) {
      for (std::int64_t i = 0; i < repeat; ++i) {
        rows.push_back(static_cast<std::int64_t>(b));
        rep_lengths.push_back(lengths[b]);
      }
    }
    const Tensor index = Tensor::from_vector(rows, {static_cast<std::int64_t>(rows.size())});
    enc.states = index_select(enc.states, 0, index);
    enc.mask = index_select(enc.mask, 0, index);
    enc.lengths = rep_lengths;
    enc.final = {pick_rows(enc.final.h, 1, index), pick_rows(enc.final.c, 1, index)};
  }
  auto [memory, state] = start(enc);
  return std::make_unique<RecurrentSession>(decoder_, std::move(memory), std::move(state));
}

}  // namespace seqgrad
