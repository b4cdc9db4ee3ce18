// Shape legend: B batch, S source length, T target length, H hidden, V vocabulary.
#include "seq2seq/model.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "nn/loss.h"
#include "seq2seq/json_fields.h"
#include "tensor/elementwise.h"
#include "tensor/reduce.h"

namespace seqgrad {

nlohmann::json ModelConfig::to_json() const {
  return {{"src_vocab", src_vocab},
          {"tgt_vocab", tgt_vocab},
          {"embed", embed},
          {"hidden", hidden},
          {"layers", layers},
          {"cell", cell},
          {"bidirectional", bidirectional},
          {"dropout", dropout},
          {"attention", attention},
          {"style", style},
          {"attention_size", attention_size},
          {"heads", heads}};
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j) {
  ModelConfig c;
  if (!j.is_object()) throw ValueError("model config: expected a JSON object");
  for (const auto& [key, value] : j.items()) {
    try {
      if (key == "src_vocab")
        c.src_vocab = json_integer(value, key);
      else if (key == "tgt_vocab")
        c.tgt_vocab = json_integer(value, key);
      else if (key == "embed")
        c.embed = json_integer(value, key);
      else if (key == "hidden")
        c.hidden = json_integer(value, key);
      else if (key == "layers")
        c.layers = json_integer(value, key);
      else if (key == "cell")
        c.cell = value.get<std::string>();
      else if (key == "bidirectional")
        c.bidirectional = value.get<bool>();
      else if (key == "dropout")
        c.dropout = value.get<double>();
      else if (key == "attention")
        c.attention = value.get<std::string>();
      else if (key == "style")
        c.style = value.get<std::string>();
      else if (key == "attention_size")
        c.attention_size = json_integer(value, key);
      else if (key == "heads")
        c.heads = json_integer(value, key);
      else
        throw ValueError(fmt::format("model config: unknown key '{}'", key));
    } catch (const nlohmann::json::exception& e) {
      throw ValueError(
          fmt::format("model config: key '{}' has the wrong type ({})", key, e.what()));
    }
  }
  return c;
}

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

Seq2Seq::Seq2Seq(const ModelConfig& config, Generator& gen)
    : cfg_(config),
      encoder_(encoder_config(config), gen),
      bridge_(encoder_config(config), config.hidden, gen),
      decoder_(decoder_config(config), gen) {
  register_module("encoder", encoder_);
  register_module("bridge", bridge_);
  register_module("decoder", decoder_);
}

EncoderOutput Seq2Seq::encode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                              RNNTrace* trace) const {
  return encoder_.forward(src, lengths, trace);
}

std::pair<DecoderMemory, DecoderState> Seq2Seq::start(const EncoderOutput& enc) const {
  const std::int64_t B = enc.states.size(0);
  return {decoder_.memory(enc), decoder_.initial(bridge_.forward(enc.final), B)};
}

LossResult Seq2Seq::loss(const Tensor& src, const std::vector<std::int64_t>& lengths,
                         const Tensor& tgt_in, const Tensor& tgt_out, const LossOptions& options,
                         Generator& gen) const {
  if (!tgt_in.defined() || tgt_in.dim() != 2 || tgt_in.shape() != tgt_out.shape() ||
      tgt_in.size(0) != src.size(0)) {
    throw ShapeError(
        fmt::format("Seq2Seq::loss: source {}, target in {} and out {} must be "
                    "[B,S], [B,T], [B,T]",
                    shape_str(src.shape()), shape_str(tgt_in.shape()), shape_str(tgt_out.shape())));
  }
  const std::int64_t B = tgt_in.size(0), T = tgt_in.size(1), V = cfg_.tgt_vocab;
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
  const Variable logits = reshape(sampling ? stacked : decoder_.logits(stacked), {B * T, V});
  const Tensor targets = tgt_out.reshape({-1});
  LossResult r;
  r.loss = cross_entropy(logits, targets,
                         {.ignore_index = kPadId, .label_smoothing = options.label_smoothing});
  const Tensor real = ne(targets, Tensor::scalar(kPadId, DType::i64));
  r.tokens = static_cast<std::int64_t>(sum(real.astype(DType::f64)).item());
  return r;
}

}  // namespace seqgrad
