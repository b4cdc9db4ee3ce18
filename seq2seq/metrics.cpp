// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Edit distance, the multi-reference scores (exact match, WER, PER, token accuracy) and
// perplexity.
#include "seq2seq/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "tensor/errors.h"

namespace seqgrad {

namespace {

template <class T>
std::size_t levenshtein(const std::vector<T>& a, const std::vector<T>& b) {
  // One row of the DP table over the shorter sequence: row[j] = distance(a[:i], b[:j]).
  const std::vector<T>& longer = a.size() >= b.size() ? a : b;
  const std::vector<T>& shorter = a.size() >= b.size() ? b : a;
  std::vector<std::size_t> row(shorter.size() + 1);
  for (std::size_t j = 0; j <= shorter.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= longer.size(); ++i) {
    std::size_t diag = row[0];  // distance(longer[:i-1], shorter[:j-1])
    row[0] = i;
    for (std::size_t j = 1; j <= shorter.size(); ++j) {
      const std::size_t up = row[j];
      const std::size_t substitute = diag + (longer[i - 1] == shorter[j - 1] ? 0 : 1);
      row[j] = std::min({substitute, up + 1, row[j - 1] + 1});
      diag = up;
    }
  }
  return row[shorter.size()];
}

}  // namespace

std::size_t edit_distance(const TokenSeq& a, const TokenSeq& b) {
  return levenshtein(a, b);
}

std::size_t edit_distance(const std::vector<std::int64_t>& a, const std::vector<std::int64_t>& b) {
  return levenshtein(a, b);
}

nlohmann::json Scores::to_json() const {
  return {{"examples", examples},
          {"exact_match", exact_match},
          {"token_accuracy", token_accuracy},
          {"wer", wer},
          {"per", per}};
}

Scores score(const std::vector<TokenSeq>& predictions,
             const std::vector<std::vector<TokenSeq>>& references) {
  if (predictions.size() != references.size()) {
    throw ValueError(fmt::format("score: {} predictions but {} reference lists", predictions.size(),
                                 references.size()));
  }
  if (predictions.empty()) throw ValueError("score: no examples to score");
  Scores s;
  s.examples = predictions.size();
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    const TokenSeq& pred = predictions[i];
    const auto& refs = references[i];
    if (refs.empty()) throw ValueError(fmt::format("score: example {} has no reference", i));
    std::size_t best = 0;
    std::size_t best_dist = edit_distance(pred, refs[0]);
    for (std::size_t r = 1; r < refs.size() && best_dist > 0; ++r) {
      const std::size_t d = edit_distance(pred, refs[r]);
      if (d < best_dist) {
        best = r;
        best_dist = d;
      }
    }
    // Distance 0 means equal, so "matches any reference" is the closest one being at 0.
    const TokenSeq& ref = refs[best];
    if (best_dist == 0) ++s.exact;
    s.edits += best_dist;
    s.reference_tokens += ref.size();
    const std::size_t overlap = std::min(pred.size(), ref.size());
    for (std::size_t t = 0; t < overlap; ++t) s.matched_tokens += pred[t] == ref[t] ? 1 : 0;
  }
  const auto ratio = [](std::size_t num, std::size_t den) {
    // All closest references empty: a perfect score if nothing was predicted either.
    if (den == 0) return num == 0 ? 0.0 : 1.0;
    return static_cast<double>(num) / static_cast<double>(den);
  };
  s.exact_match = ratio(s.exact, s.examples);
  s.wer = 1.0 - s.exact_match;
  s.per = ratio(s.edits, s.reference_tokens);
  s.token_accuracy = s.reference_tokens == 0 ? 1.0 : ratio(s.matched_tokens, s.reference_tokens);
  return s;
}

Scores score(const std::vector<std::string>& predictions, const std::vector<Example>& examples,
             Tokenization mode) {
  if (predictions.size() != examples.size()) {
    throw ValueError(
        fmt::format("score: {} predictions but {} examples", predictions.size(), examples.size()));
  }
  std::vector<TokenSeq> preds;
  std::vector<std::vector<TokenSeq>> refs;
  preds.reserve(predictions.size());
  refs.reserve(examples.size());
  for (std::size_t i = 0; i < predictions.size(); ++i) {
    preds.push_back(tokenize(predictions[i], mode));
    auto& r = refs.emplace_back();
    for (const auto& t : examples[i].targets) r.push_back(tokenize(t, mode));
  }
  return score(preds, refs);
}

double perplexity(double mean_loss) {
  return std::exp(mean_loss);
}

double perplexity(double total_loss, std::size_t tokens) {
  if (tokens == 0) throw ValueError("perplexity: no tokens");
  return std::exp(total_loss / static_cast<double>(tokens));
}

}  // namespace seqgrad
