// Decoder: embedding + unidirectional recurrent layer + attention + projection to the target
// vocabulary, one step at a time.
//   Luong style:    h_t = RNN([emb(y_{t-1}); o_{t-1}], s_{t-1})  (input feeding)
//                   c_t = attend(h_t);  o_t = tanh(W_c [c_t; h_t])
//   Bahdanau style: c_t = attend(h_{t-1});  h_t = RNN([emb(y_{t-1}); c_t], s_{t-1})
//                   o_t = tanh(W_c [c_t; h_t])
//   none:           c = the encoder's final state, the same fixed vector at every step, fed
//                   like Bahdanau's context: the classic encoder-decoder bottleneck.
// logits_t = W_o o_t.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden (decoder),
// V vocabulary, C context size (K*Hk with attention, D*H_enc without).
#pragma once

#include <memory>
#include <string>

#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "nn/rnn.h"
#include "seq2seq/attention.h"
#include "seq2seq/encoder.h"

namespace seqgrad {

enum class AttentionStyle { luong, bahdanau };
AttentionStyle parse_style(const std::string& name);  // "luong" | "bahdanau"
std::string style_name(AttentionStyle style);

struct DecoderConfig {
  std::int64_t vocab = 0, embed = 0, hidden = 0, layers = 1;
  CellType cell = CellType::lstm;
  double dropout = 0.0;
  AttentionStyle style = AttentionStyle::luong;
  std::string attention = "concat";  // a registered scorer, or "none"
  std::int64_t attention_size = 0;   // 0: the decoder's hidden size
  std::int64_t heads = 4;
  std::int64_t key_size = 0;  // the encoder's output size D*H_enc
  DType dtype = DType::f32;
};

// What the decoder reads from the encoder for one batch, computed once.
struct DecoderMemory {
  AttentionMemory attention;  // with attention
  Variable fixed_context;     // [B,C] without attention
  std::int64_t batch = 0;
  // The RNN's weights packed for its steps (RNN::step_weights), valid until
  // the weights next change: memory() makes them for each batch. Empty: the steps go without.
  RNN::StepWeights rnn_weights;
  Linear::Packed combine;  // the output layer's weight, packed alike (undefined: unpacked)
};

struct DecoderState {
  RNNState rnn;   // [L,B,H]
  Variable feed;  // Luong input feeding: o_{t-1} [B,H]
};

struct DecoderStep {
  Variable output;        // o_t [B,H]
  Variable weights;       // [B,S]; undefined without attention
  Variable scores;        // e_t [B,S] ([B,K,S] for K heads); undefined without attention
  Variable head_weights;  // [B,K,S] for K > 1 heads
  DecoderState state;
};

class Decoder : public Module {
 public:
  Decoder(const DecoderConfig& config, Generator& gen);
  DecoderMemory memory(const EncoderOutput& enc) const;
  DecoderState initial(const RNNState& bridged, std::int64_t batch) const;
  // y_prev [B] int64
  DecoderStep step(const Tensor& y_prev, const DecoderState& state, const DecoderMemory& m) const;
  // o [...,H] -> logits [...,V]
  Variable logits(const Variable& output) const { return project_(drop_(output)); }
  bool has_attention() const { return attention_ != nullptr; }
  const DecoderConfig& config() const { return cfg_; }
  std::int64_t context_size() const;

 private:
  DecoderConfig cfg_;
  Embedding embed_;
  Dropout drop_;
  std::unique_ptr<Attention> attention_;
  RNN rnn_;
  Linear combine_;  // W_c: [C + H] -> H
  Linear project_;  // W_o: H -> V
};

}  // namespace seqgrad
