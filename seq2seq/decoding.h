// What decoding asks of every architecture: a session that holds one batch's encoded source and
// decoder state (an RNN's hidden state, or a Transformer's key/value cache), steps one token at a
// time, and reorders its rows when beam search keeps some hypotheses and drops others.
// Shape legend: N rows (batch x beam), S source length, V vocabulary.
#pragma once

#include "autograd/variable.h"

namespace seqgrad {

struct DecodeStepResult {
  Variable logits;   // [N,V]
  Variable weights;  // [N,S] attention over the source for views; undefined without attention
};

class DecodeSession {
 public:
  virtual ~DecodeSession() = default;
  // One step on the previous tokens y_prev [N] (int64; <s> first). Advances the session.
  virtual DecodeStepResult step(const Tensor& y_prev) = 0;
  // Row r continues row order[r] (int64 [N]).
  virtual void reorder(const Tensor& order) = 0;
};

}  // namespace seqgrad
