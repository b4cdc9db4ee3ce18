// Seq2Seq: the model a ModelConfig describes, whatever its architecture: the recurrent
// encoder-decoder with attention (encoder, bridge and decoder, seq2seq/recurrent_model.h) or a
// Transformer (seq2seq/transformer_model.h). Training calls loss(), decoding decode(); the
// views that read an RNN's states use recurrent().
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "seq2seq/architecture.h"
#include "seq2seq/recurrent_model.h"

namespace seqgrad {

class Seq2Seq : public Module {
 public:
  Seq2Seq(const ModelConfig& config, Generator& gen);

  const ModelConfig& config() const { return cfg_; }
  Arch arch() const { return arch_; }

  LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths, const Tensor& tgt_in,
                  const Tensor& tgt_out, const LossOptions& options, Generator& gen) const {
    return impl_->loss(src, lengths, tgt_in, tgt_out, options, gen);
  }
  std::unique_ptr<DecodeSession> decode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                        std::int64_t repeat = 1) const {
    return impl_->decode(src, lengths, repeat);
  }

  const Architecture& architecture() const { return *impl_; }
  // The recurrent model, or nullptr for the other architectures.
  const Recurrent* recurrent() const { return recurrent_; }
  // The recurrent model's parts, for the views that read its states; ValueError for the other
  // architectures, naming `what` asked.
  const Recurrent& recurrent_only(const char* what) const;
  EncoderOutput encode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                       RNNTrace* trace = nullptr) const {
    return recurrent_only("encode").encode(src, lengths, trace);
  }
  std::pair<DecoderMemory, DecoderState> start(const EncoderOutput& enc) const {
    return recurrent_only("start").start(enc);
  }
  const Decoder& decoder() const { return recurrent_only("decoder").decoder(); }

 private:
  ModelConfig cfg_;
  Arch arch_;
  std::unique_ptr<Architecture> impl_;  // registered under no name: its parameters are ours
  const Recurrent* recurrent_ = nullptr;
};

}  // namespace seqgrad
