// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Scoring predicted token sequences against one or more references per example, as in the G2P
// literature (DATA.md): exact match / word error rate over examples, phoneme (token) error rate
// from the edit distance to the closest reference, and position-wise token accuracy. Plus loss
// to perplexity.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "seq2seq/data.h"
#include "seq2seq/vocab.h"

namespace seqgrad {

using TokenSeq = std::vector<std::string>;

// Levenshtein distance: the fewest insertions, deletions and substitutions of whole tokens
// turning `a` into `b`. O(|a| |b|) time, O(min) memory.
std::size_t edit_distance(const TokenSeq& a, const TokenSeq& b);
std::size_t edit_distance(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b);

struct Scores {
  std::size_t examples = 0;
  std::size_t exact = 0;             // examples whose prediction equals some reference
  std::size_t edits = 0;             // edit distances to the closest references, summed
  std::size_t reference_tokens = 0;  // lengths of those closest references, summed
  std::size_t matched_tokens = 0;    // position-wise matches against them, summed
  double exact_match = 0;            // exact / examples
  double wer = 0;                    // 1 - exact_match: the word (example) error rate
  double per = 0;                    // edits / reference_tokens: the phoneme (token) error rate
  double token_accuracy = 0;         // matched_tokens / reference_tokens

  // {"examples", "exact_match", "token_accuracy", "wer", "per"}.
  nlohmann::json to_json() const;
};

// predictions[i] is scored against every sequence in references[i]. The closest reference is
// the one with the smallest edit distance, the first such on ties; PER and token accuracy use
// it and its length. A prediction is exact when it equals ANY reference. ValueError when the two
// lists differ in size, an example has no reference, or there are no examples.
Scores score(const std::vector<TokenSeq>& predictions,
             const std::vector<std::vector<TokenSeq>>& references);
// The same on strings: predictions[i] against examples[i].targets, both tokenized with `mode`.
Scores score(const std::vector<std::string>& predictions, const std::vector<Example>& examples,
             Tokenization mode);

// exp(mean_loss), where mean_loss is the mean negative log-likelihood per token in nats.
double perplexity(double mean_loss);
// exp(total_loss / tokens); ValueError when tokens is 0.
double perplexity(double total_loss, std::size_t tokens);

}  // namespace seqgrad
