// The recurrent encoder-decoder with attention (Bahdanau et al. 2015, Luong et al. 2015): an
// RNN encoder, a bridge from its final state to the decoder's initial one, and a decoder that
// attends over the encoder's states one step at a time; the teacher-forced training loss, with
// scheduled sampling when the ratio is below 1.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#pragma once

#include "seq2seq/architecture.h"
#include "seq2seq/decoder.h"
#include "seq2seq/encoder.h"

namespace seqgrad {

class Recurrent : public Architecture {
 public:
  Recurrent(const ModelConfig& config, Generator& gen);

  // With `trace`, every encoder step's state is kept as its own Variable (nn/rnn.h RNNTrace).
  EncoderOutput encode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                       RNNTrace* trace = nullptr) const;
  // The decoder's memory and initial state for an encoded batch.
  std::pair<DecoderMemory, DecoderState> start(const EncoderOutput& enc) const;
  const Decoder& decoder() const { return decoder_; }

  LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths, const Tensor& tgt_in,
                  const Tensor& tgt_out, const LossOptions& options, Generator& gen) const override;
  std::unique_ptr<DecodeSession> decode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                        std::int64_t repeat) const override;

 private:
  Encoder encoder_;
  Bridge bridge_;
  Decoder decoder_;
};

}  // namespace seqgrad
