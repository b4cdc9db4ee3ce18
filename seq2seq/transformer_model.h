// The Transformer families beside the recurrent model, built from nn/transformer.h:
//   transformer (Vaswani et al. 2017): an encoder stack over the source and a decoder stack that
//     attends causally to the target so far and across to the encoder's output;
//   decoder-only (as GPT, Radford et al. 2018): one causal stack over the source followed by the
//     target, <s> separating them, the loss on the target positions only.
// Tokens are embedded `hidden` wide, scaled by sqrt(hidden), plus a position (sinusoidal or
// learned; each segment counts its positions from 0, so a source's result does not depend on the
// padding of its batch), then dropout. Decoding keeps each layer's keys and values, so a new
// token costs one step.
// Shape legend: B batch, S source length, T target length, E model width (hidden), V vocabulary,
// N decoding rows (batch x beam).
#pragma once

#include <memory>

#include "nn/dropout.h"
#include "nn/embedding.h"
#include "nn/linear.h"
#include "nn/transformer.h"
#include "seq2seq/architecture.h"

namespace seqgrad {

// Embeddings and output projection shared by both families: "src_embed", "tgt_embed",
// "src_positions"/"tgt_positions" (learned positions only) and "generator" (its weight absent
// when tied to the target embedding).
class TokenIO : public Module {
 public:
  TokenIO(const ModelConfig& config, Generator& gen);
  // ids [B,n] at positions first..first+n-1 of their segment -> [B,n,E]
  Variable source(const Tensor& ids, std::int64_t first = 0) const;
  Variable target(const Tensor& ids, std::int64_t first = 0) const;
  // h [...,E] -> logits [...,V]
  Variable logits(const Variable& h) const;

 private:
  Variable embed(const Embedding& table, const Embedding* learned, const Tensor& ids,
                 std::int64_t first) const;
  std::int64_t width_;
  Embedding src_embed_, tgt_embed_;
  std::unique_ptr<Embedding> src_positions_, tgt_positions_;  // learned positions
  Tensor sinusoid_;                                           // [P,E] otherwise
  Dropout drop_;
  Linear generator_;  // without its weight when tied
  bool tied_;
};

// A teacher-forced pass with what views of one example read (seq2seq/explain.h).
struct TracedPass {
  Variable logits;         // [B,T,V]
  Variable source_states;  // [B,S,E]: the encoder's output; decoder-only: the embedded source
  // One per layer, in the graph: the cross-attention [B,H,T,S]; decoder-only: the
  // self-attention over [source | <s> y], [B,H,S+T,S+T].
  std::vector<SdpaTrace> attention;
};

// The nn options a ModelConfig implies (d_model = hidden, F = ff or 4 x hidden).
TransformerOptions transformer_options(const ModelConfig& config);

class TransformerSeq2Seq : public Architecture {
 public:
  TransformerSeq2Seq(const ModelConfig& config, Generator& gen);
  LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths, const Tensor& tgt_in,
                  const Tensor& tgt_out, const LossOptions& options, Generator& gen) const override;
  std::unique_ptr<DecodeSession> decode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                        std::int64_t repeat) const override;

  const TokenIO& io() const { return io_; }
  const Transformer& transformer() const { return transformer_; }
  // The encoder's output [B,S,E] for src [B,S].
  Variable encode(const Tensor& src) const;
  // Teacher-forced logits [B,T,V] of tgt_in [B,T] (<s> y), all positions at once.
  Variable logits(const Tensor& src, const Tensor& tgt_in) const;
  // The same pass, keeping the encoder's output and each layer's cross-attention.
  TracedPass traced(const Tensor& src, const Tensor& tgt_in) const;

 private:
  // The teacher-forced pass; with trace, each probed attention appends to p.attention.
  TracedPass pass(const Tensor& src, const Tensor& tgt_in, bool trace) const;
  TokenIO io_;
  Transformer transformer_;  // "encoder.*", "decoder.*"
};

class DecoderOnly : public Architecture {
 public:
  DecoderOnly(const ModelConfig& config, Generator& gen);
  LossResult loss(const Tensor& src, const std::vector<std::int64_t>& lengths, const Tensor& tgt_in,
                  const Tensor& tgt_out, const LossOptions& options, Generator& gen) const override;
  std::unique_ptr<DecodeSession> decode(const Tensor& src, const std::vector<std::int64_t>& lengths,
                                        std::int64_t repeat) const override;

  const TokenIO& io() const { return io_; }
  const TransformerEncoder& stack() const { return stack_; }
  // Teacher-forced logits [B,T,V] of tgt_in [B,T] (<s> y) after the source, all at once.
  Variable logits(const Tensor& src, const Tensor& tgt_in) const;
  // The same pass, keeping the embedded source and each layer's self-attention.
  TracedPass traced(const Tensor& src, const Tensor& tgt_in) const;

 private:
  // The teacher-forced pass; with trace, each probed attention appends to p.attention.
  TracedPass pass(const Tensor& src, const Tensor& tgt_in, bool trace) const;
  TokenIO io_;
  TransformerEncoder stack_;  // "decoder.*": causal self-attention layers, a final norm if pre-norm
};

}  // namespace seqgrad
