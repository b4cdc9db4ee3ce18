// Seq2Seq: encoder, bridge and decoder assembled from a ModelConfig, with the teacher-forced
// training loss (scheduled sampling when the ratio is below 1).
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "seq2seq/decoder.h"
#include "seq2seq/encoder.h"
#include "seq2seq/vocab.h"

namespace seqgrad {

// The token ids every vocabulary reserves, under the names the model code uses.
inline constexpr std::int64_t kPadId = Vocab::kPad, kBosId = Vocab::kBos, kEosId = Vocab::kEos,
                              kUnkId = Vocab::kUnk;

struct ModelConfig {
  std::int64_t src_vocab = 0, tgt_vocab = 0;
  // hidden: the decoder's size and the width of the encoder's states (a bidirectional encoder
  // gives each direction hidden/2, as OpenNMT's brnn does).
  std::int64_t embed = 64, hidden = 128, layers = 1;
  std::string cell = "lstm";
  bool bidirectional = true;
  double dropout = 0.1;
  std::string attention = "concat";  // a registered scorer, or "none"
  std::string style = "luong";       // luong | bahdanau
  std::int64_t attention_size = 0;   // 0: the hidden size
  std::int64_t heads = 4;
  DType dtype = DType::f32;  // not saved: checkpoints hold float32

  nlohmann::json to_json() const;
  // Unknown keys are refused (a typo must not silently fall back to a default).
  static ModelConfig from_json(const nlohmann::json& j);
};

struct LossOptions {
  double teacher_forcing = 1.0;  // probability of feeding the reference token
  double label_smoothing = 0.0;
};

struct LossResult {
  Variable loss;            // mean cross-entropy over real target tokens
  std::int64_t tokens = 0;  // real (non-pad) target tokens
};

class Seq2Seq : public Module {
 public:
  Seq2Seq(const ModelConfig& config, Generator& gen);

  const ModelConfig& config() const { return cfg_; }
  // With `trace`, every encoder step's state is kept as its own Variable (nn/rnn.h RNNTrace).
  EncoderOutput encode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                       RNNTrace* trace = nullptr) const;
  // The decoder's memory and initial state for an encoded batch.
  std::pair<DecoderMemory, DecoderState> start(const EncoderOutput& enc) const;
  const Decoder& decoder() const { return decoder_; }

  // src [B,S], tgt_in [B,T] (<s> y), tgt_out [B,T] (y </s>), pads 0. `gen` draws the scheduled
  // sampling choices.
  LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths, const Tensor& tgt_in,
                  const Tensor& tgt_out, const LossOptions& options, Generator& gen) const;

 private:
  ModelConfig cfg_;
  Encoder encoder_;
  Bridge bridge_;
  Decoder decoder_;
};

}  // namespace seqgrad
