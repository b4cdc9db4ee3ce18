// What every sequence-to-sequence architecture is built from and offers: the model configuration
// (saved in a run's config.json), the training loss, and decoding sessions. Seq2Seq
// (seq2seq/model.h) builds the architecture a configuration names.
// Shape legend: B batch, S source length, T target length, V vocabulary.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "nn/module.h"
#include "seq2seq/decoding.h"
#include "seq2seq/vocab.h"
#include "tensor/random.h"

namespace seqgrad {

// The token ids every vocabulary reserves, under the names the model code uses.
inline constexpr std::int64_t kPadId = Vocab::kPad, kBosId = Vocab::kBos, kEosId = Vocab::kEos,
                              kUnkId = Vocab::kUnk;

// The architectures: the recurrent encoder-decoder with attention (seq2seq/recurrent_model.h),
// the Transformer encoder-decoder and the decoder-only Transformer (seq2seq/transformer_model.h).
enum class Arch { rnn, transformer, decoder_only };
Arch parse_arch(const std::string& name);  // rnn | transformer | decoder-only
std::string arch_name(Arch arch);

struct ModelConfig {
  std::string arch = "rnn";
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
  // The Transformer families: model width `hidden`, `layers` layers (each side), `heads` heads,
  // `dropout`; `embed` is not used (their embeddings are `hidden` wide).
  std::int64_t ff = 0;                   // feed-forward width; 0: 4 x hidden
  bool norm_first = false;               // pre-norm layers (post-norm, as Vaswani et al., if not)
  std::string activation = "relu";       // relu | gelu
  std::string positions = "sinusoidal";  // sinusoidal | learned
  bool tie_embeddings = false;           // the output projection reuses the target embedding
  DType dtype = DType::f32;              // not saved: checkpoints hold float32

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

// The architecture behind a Seq2Seq.
class Architecture : public Module {
 public:
  // src [B,S], tgt_in [B,T] (<s> y), tgt_out [B,T] (y </s>), pads 0. `gen` draws the scheduled
  // sampling choices (recurrent models).
  virtual LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths,
                          const Tensor& tgt_in, const Tensor& tgt_out, const LossOptions& options,
                          Generator& gen) const = 0;
  // A decoding session over the batch with every source repeated `repeat` times: row b*repeat+i.
  virtual std::unique_ptr<DecodeSession> decode(const Tensor& src,
                                                const std::vector<std::int64_t>& lengths,
                                                std::int64_t repeat) const = 0;
};

// The mean cross-entropy of logits [B,T,V] (or [B*T,V]) against tgt_out [B,T], padding ignored,
// with label smoothing; and the number of real target tokens.
LossResult target_loss(const Variable& logits, const Tensor& tgt_out, double label_smoothing);

// ValueError naming `op` when a model that decodes the whole target at once in training is asked
// for scheduled sampling (teacher forcing below 1).
void check_teacher_forcing(const char* op, const LossOptions& options, bool training);

// The checks every loss makes: source [B,S], target in and out [B,T], B lengths; the op named.
void check_loss_inputs(const char* op, const Tensor& src, const std::vector<std::int64_t>& lengths,
                       const Tensor& tgt_in, const Tensor& tgt_out);

}  // namespace seqgrad
