// Encoder: embedding + recurrent layer (LSTM/GRU/RNN, layers, bidirectional, dropout) over a
// padded source batch. Returns every state for attention, the mask of real positions, and the
// final states, which the bridge maps to the decoder's initial state.
// Shape legend: B batch, S source length, E embedding, H hidden, L layers, D directions.
#pragma once

#include <vector>

#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "nn/rnn.h"

namespace seqgrad {

struct EncoderConfig {
  std::int64_t vocab = 0, embed = 0, hidden = 0, layers = 1;
  CellType cell = CellType::lstm;
  bool bidirectional = true;
  double dropout = 0.0;
  DType dtype = DType::f32;
};

struct EncoderOutput {
  Variable states;                    // [B,S,D*H]; zero past each sequence's length
  Tensor mask;                        // [B,S] bool, true at real positions
  std::vector<std::int64_t> lengths;  // B
  RNNState final;                     // [L*D,B,H]
};

class Encoder : public Module {
 public:
  Encoder(const EncoderConfig& config, Generator& gen);
  // src [B,S] int64 (0 = <pad>), lengths B values in [1,S]
  // With `trace`, every step's state is kept as its own Variable (nn/rnn.h RNNTrace).
  EncoderOutput forward(const Tensor& src, const std::vector<std::int64_t>& lengths,
                        RNNTrace* trace = nullptr) const;
  std::int64_t output_size() const;  // D*H

 private:
  EncoderConfig cfg_;
  Embedding embed_;
  Dropout drop_;
  RNN rnn_;
};

// Maps the encoder's final states [L*D,B,H] to a decoder's initial states [L,B,Hd]: for each
// layer, the directions' states are concatenated and passed through tanh(W x + b).
class Bridge : public Module {
 public:
  Bridge(const EncoderConfig& enc, std::int64_t decoder_hidden, Generator& gen);
  RNNState forward(const RNNState& final) const;

 private:
  Variable map(const Linear& layer, const Variable& states) const;
  std::int64_t layers_, directions_, hidden_;
  Linear h_, c_;
  bool lstm_;
};

}  // namespace seqgrad
