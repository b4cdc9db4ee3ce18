// What a scorer's file needs beyond the Scorer interface (seq2seq/attention.h): the helpers the
// built-in scorers share, and register_scorer for scorers defined outside the library.
//
// To add a built-in scorer: write seq2seq/scorers/<name>.cpp with a Scorer subclass and a
// factory `std::unique_ptr<Scorer> make_<name>_scorer(const ScorerConfig&)` in namespace
// seqgrad, then add one line `X(<name>, "description")` to the list in registry.cpp. CMake
// picks the new file up and the generic test in tests/test_attention.cpp gradchecks it.
// Shape legend: B batch, S source length, Hq query size, Hk key size, A attention size.
#pragma once

#include <memory>

#include "seq2seq/attention.h"

namespace seqgrad {

// Adds a scorer defined in the caller's code (say, an experiment) after the built-ins, so
// make_scorer and ModelConfig::attention find it by name. Call it from main before building
// models, not concurrently with them: it invalidates references into scorer_registry().
// ValueError for an empty name, "none" (no attention), a missing factory or a name already
// registered.
void register_scorer(ScorerEntry entry);

// Shared by the dot-product family: scores[b,s] = <keys[b,s,:], query[b,:]>.
Variable dot_scores(const Variable& query, const Variable& keys);
// ValueError unless the query and key sizes agree (dot products need them equal).
void require_equal_sizes(const ScorerConfig& config, const char* scorer);
Generator& scorer_generator(const ScorerConfig& config);

}  // namespace seqgrad
