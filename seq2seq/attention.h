// Attention, split the way the design asks: a Scorer only maps a query and the keys to scores;
// masking of padded source positions, the softmax and the context sum c = sum_j a_j h_j are
// written once, here, for every scorer.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary;
// Hq query size, Hk key size, A attention size, K heads.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "nn/module.h"
#include "tensor/random.h"

namespace seqgrad {

struct ScorerConfig {
  std::int64_t query_size = 0;      // Hq: the decoder state that asks
  std::int64_t key_size = 0;        // Hk: the encoder states
  std::int64_t attention_size = 0;  // A: inner size of scorers that project (concat, multihead)
  std::int64_t heads = 1;           // K: for multihead
  DType dtype = DType::f32;
  Generator* gen = nullptr;  // for initialisation; default_generator() when null
};

// Maps query [B,Hq] and keys [B,S,Hk] to scores [B,S] (or [B,K,S] for K > 1 heads).
class Scorer : public Module {
 public:
  // Called once per batch: whatever per-key work does not depend on the query (e.g. U k for
  // additive attention). The default keeps the keys as they are.
  virtual Variable prepare(const Variable& keys) const { return keys; }
  // prepared: the result of prepare(keys).
  virtual Variable score(const Variable& query, const Variable& prepared) const = 0;
  virtual std::int64_t heads() const { return 1; }
};

using ScorerFactory = std::function<std::unique_ptr<Scorer>(const ScorerConfig&)>;

struct ScorerEntry {
  std::string name;
  std::string description;
  ScorerFactory make;
};

// The explicit list of scorers (seq2seq/scorers/registry.cpp).
const std::vector<ScorerEntry>& scorer_registry();
std::vector<std::string> scorer_names();
// ValueError naming the known scorers when `name` is not one of them.
std::unique_ptr<Scorer> make_scorer(const std::string& name, const ScorerConfig& config);

// The encoder side of attention for one batch, computed once.
struct AttentionMemory {
  Variable values;    // [B,S,Hk]: the encoder states the context sums
  Variable prepared;  // scorer->prepare(values)
  Tensor mask;        // [B,S] bool, true at real (non-padding) positions
};

struct AttentionResult {
  Variable context;       // [B,K*Hk]
  Variable weights;       // [B,S] (mean over heads when K > 1)
  Variable scores;        // e: [B,S], or [B,K,S] for K > 1 heads
  Variable head_weights;  // a per head [B,K,S] when K > 1 (the values the context uses)
};

class Attention : public Module {
 public:
  explicit Attention(std::unique_ptr<Scorer> scorer);
  AttentionMemory memory(const Variable& keys, const Tensor& mask) const;
  // scores = scorer(query, keys); a = softmax over kept positions; c = sum_j a_j h_j
  AttentionResult attend(const Variable& query, const AttentionMemory& memory) const;
  std::int64_t heads() const { return scorer_->heads(); }
  const Scorer& scorer() const { return *scorer_; }

 private:
  std::unique_ptr<Scorer> scorer_;
};

// The [B,S] mask of real source positions for per-sequence lengths.
Tensor length_mask(const std::vector<std::int64_t>& lengths, std::int64_t max_len);

}  // namespace seqgrad
