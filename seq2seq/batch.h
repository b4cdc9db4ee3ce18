// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Padded batches of token ids. A Batcher tokenizes and encodes its examples once (source and
// target with their own vocabularies and tokenizations); for training it groups examples of
// similar source length so that little of a batch is padding, and shuffles the batches with a
// seeded generator each epoch; for evaluation it keeps the examples in order.
#pragma once

#include <cstdint>
#include <vector>

#include "seq2seq/data.h"
#include "seq2seq/vocab.h"
#include "tensor/tensor.h"

namespace seqgrad {

struct Batch {
  Tensor src;                              // [B,S] int64: x, then <pad> (0)
  std::vector<std::int64_t> src_lengths;   // B: tokens of x, pads not counted (all >= 1)
  Tensor tgt_in;                           // [B,T] int64: <s> y, then <pad>; the decoder's input
  Tensor tgt_out;                          // [B,T] int64: y </s>, then <pad>; what it predicts
  std::vector<std::size_t> example_index;  // B: each row's position in the Batcher's examples

  std::int64_t size() const { return static_cast<std::int64_t>(example_index.size()); }
  std::int64_t target_tokens() const;  // non-pad entries of tgt_out (what a loss averages over)
};

struct BatcherOptions {
  std::int64_t batch_size = 32;
  Tokenization source_tokenization = Tokenization::chars;
  Tokenization target_tokenization = Tokenization::chars;
  // Training sorts by source length within chunks of this many batches (after shuffling the
  // examples), cuts the chunks into batches and shuffles the batches. 1 turns bucketing off;
  // larger values pad less but make batches less random.
  std::int64_t bucket_batches = 50;
  std::uint64_t seed = 0;  // with the epoch, fixes the training order
};

class Batcher {
 public:
  // Encodes every example: source tokens unknown to `source_vocab` become <unk>, likewise for
  // targets. Training targets are the first reference of each example; all references stay in
  // examples() for scoring. ValueError for a bad option, no examples at all (a training loop
  // over no batches would never end), an example without targets, or a source or target with no
  // tokens.
  Batcher(std::vector<Example> examples, const Vocab& source_vocab, const Vocab& target_vocab,
          BatcherOptions options = {});

  std::size_t size() const { return examples_.size(); }
  const std::vector<Example>& examples() const { return examples_; }
  const BatcherOptions& options() const { return options_; }
  const std::vector<std::int64_t>& source_ids(std::size_t i) const { return src_ids_[i]; }
  const std::vector<std::int64_t>& target_ids(std::size_t i) const { return tgt_ids_[i]; }

  // Which examples go in which batch in training epoch `epoch`. A pure function of (seed,
  // epoch): resuming at epoch k gives the order an uninterrupted run would have had.
  std::vector<std::vector<std::size_t>> epoch_plan(std::uint64_t epoch) const;
  // Examples in order, batch_size at a time (the last batch may be smaller).
  std::vector<std::vector<std::size_t>> eval_plan() const;
  // The padded batch of the given examples, rows in the given order.
  Batch make_batch(const std::vector<std::size_t>& indices) const;

  std::vector<Batch> train_batches(std::uint64_t epoch) const;  // make_batch over epoch_plan
  std::vector<Batch> eval_batches() const;                      // make_batch over eval_plan

 private:
  std::vector<Example> examples_;
  BatcherOptions options_;
  std::vector<std::vector<std::int64_t>> src_ids_;
  std::vector<std::vector<std::int64_t>> tgt_ids_;  // the first reference, without <s> / </s>
};

// Vocabularies from examples (usually the training split): the sources, or every reference
// target, tokenized with `mode`; see Vocab::build for min_count and max_size.
Vocab build_source_vocab(const std::vector<Example>& examples, Tokenization mode,
                         std::size_t min_count = 1, std::size_t max_size = 0);
Vocab build_target_vocab(const std::vector<Example>& examples, Tokenization mode,
                         std::size_t min_count = 1, std::size_t max_size = 0);

}  // namespace seqgrad
