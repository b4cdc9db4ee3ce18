// Shape legend: B batch, S source length, E embedding, H hidden, L layers, D directions.
#include "seq2seq/encoder.h"

#include <fmt/format.h>

#include "autograd/ops.h"
#include "seq2seq/attention.h"

namespace seqgrad {

Encoder::Encoder(const EncoderConfig& config, Generator& gen)
    : cfg_(config),
      embed_(config.vocab, config.embed, 0, gen, config.dtype),
      drop_(config.dropout, gen),
      rnn_(RNNOptions{.cell = config.cell,
                      .input_size = config.embed,
                      .hidden_size = config.hidden,
                      .num_layers = config.layers,
                      .bidirectional = config.bidirectional,
                      .dropout = config.dropout,
                      .dtype = config.dtype},
           gen) {
  register_module("embedding", embed_);
  register_module("rnn", rnn_);
  register_module("dropout", drop_);
}

std::int64_t Encoder::output_size() const {
  return cfg_.hidden * (cfg_.bidirectional ? 2 : 1);
}

EncoderOutput Encoder::forward(const Tensor& src, const std::vector<std::int64_t>& lengths,
                               RNNTrace* trace) const {
  if (!src.defined() || src.dim() != 2 ||
      static_cast<std::int64_t>(lengths.size()) != src.size(0)) {
    throw ShapeError(fmt::format("Encoder: source {} must be [B,S] with B lengths, got {} lengths",
                                 src.defined() ? shape_str(src.shape()) : "undefined",
                                 lengths.size()));
  }
  const Variable x = drop_(embed_(src));  // [B,S,E]
  RNNOutput r = rnn_.forward(x, lengths, {}, trace);
  return {r.output, length_mask(lengths, src.size(1)), lengths, r.state};
}

Bridge::Bridge(const EncoderConfig& enc, std::int64_t decoder_hidden, Generator& gen)
    : layers_(enc.layers),
      directions_(enc.bidirectional ? 2 : 1),
      hidden_(enc.hidden),
      h_(enc.hidden * (enc.bidirectional ? 2 : 1), decoder_hidden, true, gen, enc.dtype),
      c_(enc.hidden * (enc.bidirectional ? 2 : 1), decoder_hidden, true, gen, enc.dtype),
      lstm_(enc.cell == CellType::lstm) {
  register_module("h", h_);
  if (lstm_) register_module("c", c_);
}

// states [L*D,B,H] -> [L,D,B,H] -> [L,B,D,H] -> [L,B,D*H] -> tanh(W x + b) [L,B,Hd]
Variable Bridge::map(const Linear& layer, const Variable& states) const {
  const std::int64_t B = states.size(1);
  const Variable per_layer =
      reshape(permute(reshape(states, {layers_, directions_, B, hidden_}), {0, 2, 1, 3}),
              {layers_, B, directions_ * hidden_});
  return tanh(layer(per_layer));
}

RNNState Bridge::forward(const RNNState& final) const {
  RNNState s;
  s.h = map(h_, final.h);
  if (lstm_) s.c = map(c_, final.c);
  return s;
}

}  // namespace seqgrad
