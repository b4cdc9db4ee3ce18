// Factories of the built-in scorers, one file each under seq2seq/scorers/. The registry
// (registry.cpp) lists them by name. To add a scorer: write seq2seq/scorers/<name>.cpp with a
// Scorer subclass and a make_<name>_scorer factory, declare the factory here, and add one line
// to registry.cpp (and the .cpp to CMakeLists.txt). The generic tests gradcheck it from there.
// Shape legend: B batch, S source length, Hq query size, Hk key size, A attention size.
#pragma once

#include <memory>

#include "seq2seq/attention.h"

namespace seqgrad {

std::unique_ptr<Scorer> make_dot_scorer(const ScorerConfig& config);
std::unique_ptr<Scorer> make_scaled_dot_scorer(const ScorerConfig& config);
std::unique_ptr<Scorer> make_general_scorer(const ScorerConfig& config);
std::unique_ptr<Scorer> make_concat_scorer(const ScorerConfig& config);
std::unique_ptr<Scorer> make_multihead_scorer(const ScorerConfig& config);
std::unique_ptr<Scorer> make_cosine_scorer(const ScorerConfig& config);

// Shared by the dot-product family: scores[b,s] = <keys[b,s,:], query[b,:]>.
Variable dot_scores(const Variable& query, const Variable& keys);
// ValueError unless the query and key sizes agree (dot products need them equal).
void require_equal_sizes(const ScorerConfig& config, const char* scorer);
Generator& scorer_generator(const ScorerConfig& config);

}  // namespace seqgrad
