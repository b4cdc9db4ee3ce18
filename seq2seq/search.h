// Decoding: batched beam search (greedy is beam width 1), of one model or an ensemble. Returns,
// for each source, the best finished hypothesis: its tokens (without </s>), total
// log-probability, and the attention matrix [T_out, S] (one row per emitted token, including
// </s>). Every source is decoded as it would be alone: its length cap is its own, never its
// neighbours' in the batch.
// Shape legend: B batch, S source length, T target length, V vocabulary, K beam width.
#pragma once

#include <vector>

#include "seq2seq/model.h"

namespace seqgrad {

struct SearchOptions {
  std::int64_t beam = 1;  // K; 1 = greedy
  // Tokens before giving up (the hypothesis ends there, marked capped). 0: per source,
  // max_len_for(that source's length).
  std::int64_t max_len = 0;
  // alpha: finished hypotheses are ranked by score / len^alpha, len counting </s> (0: the raw
  // log-probability, which favours short outputs; 1: the mean per token).
  double length_penalty = 1.0;
};

// The default cap for a source of `source_length` tokens: 2 * source_length + 10.
std::int64_t max_len_for(std::int64_t source_length);

struct Hypothesis {
  std::vector<std::int64_t> tokens;
  double score = 0;                           // sum of log-probabilities, </s> included
  std::vector<std::vector<float>> attention;  // [T_out][S_b]; empty without attention
  bool capped = false;  // stopped by the length cap, not by </s> (may be cut short)
};

std::vector<Hypothesis> beam_search(const Seq2Seq& model, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options = {});

// An ensemble: every model steps on the same hypotheses, and a candidate's score is the mean of
// the models' log-probabilities (as Marian combines its ensembles). The models must share the
// target vocabulary; the attention matrix returned is the first model's.
std::vector<Hypothesis> beam_search(const std::vector<const Seq2Seq*>& models, const Tensor& src,
                                    const std::vector<std::int64_t>& lengths,
                                    const SearchOptions& options = {});

}  // namespace seqgrad
