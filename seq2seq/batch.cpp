// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Encoding examples into padded id tensors, and the order of batches: bucketed by source length
// and shuffled for training, in file order for evaluation.
#include "seq2seq/batch.h"

#include <fmt/format.h>

#include <algorithm>
#include <numeric>

#include "seq2seq/sampling.h"
#include "tensor/errors.h"

namespace seqgrad {

std::int64_t Batch::target_tokens() const {
  std::int64_t n = 0;
  const Tensor out = tgt_out.contiguous();
  const std::int64_t* p = out.data<std::int64_t>();
  for (std::int64_t i = 0; i < out.numel(); ++i) n += p[i] != Vocab::kPad ? 1 : 0;
  return n;
}

Batcher::Batcher(std::vector<Example> examples, const Vocab& source_vocab,
                 const Vocab& target_vocab, BatcherOptions options)
    : examples_(std::move(examples)), options_(options) {
  if (options_.batch_size < 1) {
    throw ValueError(
        fmt::format("Batcher: batch_size must be at least 1, got {}", options_.batch_size));
  }
  if (options_.bucket_batches < 1) {
    throw ValueError(
        fmt::format("Batcher: bucket_batches must be at least 1, got {}", options_.bucket_batches));
  }
  if (examples_.empty()) {
    throw ValueError("Batcher: no examples (HINT: check that the data file or split is not empty)");
  }
  src_ids_.reserve(examples_.size());
  tgt_ids_.reserve(examples_.size());
  for (std::size_t i = 0; i < examples_.size(); ++i) {
    const Example& ex = examples_[i];
    if (ex.targets.empty()) {
      throw ValueError(fmt::format("Batcher: example {} (\"{}\") has no target", i, ex.source));
    }
    src_ids_.push_back(source_vocab.encode(tokenize(ex.source, options_.source_tokenization)));
    tgt_ids_.push_back(
        target_vocab.encode(tokenize(ex.targets.front(), options_.target_tokenization)));
    // An empty source would leave attention nothing to attend to; an empty target is likely a
    // words-mode line of only spaces.
    if (src_ids_.back().empty() || tgt_ids_.back().empty()) {
      throw ValueError(fmt::format(
          "Batcher: example {} (\"{}\" -> \"{}\") has an empty {} after {} tokenization", i,
          ex.source, ex.targets.front(), src_ids_.back().empty() ? "source" : "target",
          tokenization_name(src_ids_.back().empty() ? options_.source_tokenization
                                                    : options_.target_tokenization)));
    }
  }
}

std::vector<std::vector<std::size_t>> Batcher::epoch_plan(std::uint64_t epoch) const {
  Generator gen(derive_seed(options_.seed, epoch));
  std::vector<std::size_t> order(examples_.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  shuffle(order, gen);
  const auto batch = static_cast<std::size_t>(options_.batch_size);
  const std::size_t chunk = batch * static_cast<std::size_t>(options_.bucket_batches);
  std::vector<std::vector<std::size_t>> plan;
  const auto at = [&](std::size_t i) { return order.begin() + static_cast<std::ptrdiff_t>(i); };
  for (std::size_t c = 0; c < order.size(); c += chunk) {
    const std::size_t c_end = std::min(c + chunk, order.size());
    // Stable, so equal lengths keep their shuffled order and batches still mix examples.
    std::stable_sort(at(c), at(c_end), [&](std::size_t a, std::size_t b) {
      return src_ids_[a].size() < src_ids_[b].size();
    });
    for (std::size_t start = c; start < c_end; start += batch) {
      plan.emplace_back(at(start), at(std::min(start + batch, c_end)));
    }
  }
  shuffle(plan, gen);
  return plan;
}

std::vector<std::vector<std::size_t>> Batcher::eval_plan() const {
  const auto batch = static_cast<std::size_t>(options_.batch_size);
  std::vector<std::vector<std::size_t>> plan;
  for (std::size_t i = 0; i < examples_.size(); i += batch) {
    auto& b = plan.emplace_back();
    for (std::size_t j = i; j < std::min(i + batch, examples_.size()); ++j) b.push_back(j);
  }
  return plan;
}

Batch Batcher::make_batch(const std::vector<std::size_t>& indices) const {
  if (indices.empty()) throw ValueError("Batcher::make_batch: no examples");
  std::size_t max_src = 0;
  std::size_t max_tgt = 0;
  for (const std::size_t i : indices) {
    if (i >= examples_.size()) {
      throw IndexError(
          fmt::format("Batcher::make_batch: example {} out of range [0, {})", i, examples_.size()));
    }
    max_src = std::max(max_src, src_ids_[i].size());
    max_tgt = std::max(max_tgt, tgt_ids_[i].size());
  }
  const std::size_t rows = indices.size();
  const std::size_t s_len = max_src;
  const std::size_t t_len = max_tgt + 1;  // room for <s> in front / </s> behind
  std::vector<std::int64_t> src(rows * s_len, Vocab::kPad);
  std::vector<std::int64_t> tgt_in(rows * t_len, Vocab::kPad);
  std::vector<std::int64_t> tgt_out(rows * t_len, Vocab::kPad);
  Batch b;
  b.example_index = indices;
  b.src_lengths.reserve(rows);
  for (std::size_t r = 0; r < rows; ++r) {
    const auto& x = src_ids_[indices[r]];
    const auto& y = tgt_ids_[indices[r]];
    std::copy(x.begin(), x.end(), src.begin() + static_cast<std::ptrdiff_t>(r * s_len));
    b.src_lengths.push_back(static_cast<std::int64_t>(x.size()));
    std::int64_t* in = tgt_in.data() + r * t_len;
    std::int64_t* out = tgt_out.data() + r * t_len;
    in[0] = Vocab::kBos;
    std::copy(y.begin(), y.end(), in + 1);
    std::copy(y.begin(), y.end(), out);
    out[y.size()] = Vocab::kEos;
  }
  const auto b_dim = static_cast<std::int64_t>(rows);
  b.src = Tensor::from_vector(src, {b_dim, static_cast<std::int64_t>(s_len)});
  b.tgt_in = Tensor::from_vector(tgt_in, {b_dim, static_cast<std::int64_t>(t_len)});
  b.tgt_out = Tensor::from_vector(tgt_out, {b_dim, static_cast<std::int64_t>(t_len)});
  return b;
}

std::vector<Batch> Batcher::train_batches(std::uint64_t epoch) const {
  std::vector<Batch> out;
  for (const auto& idx : epoch_plan(epoch)) out.push_back(make_batch(idx));
  return out;
}

std::vector<Batch> Batcher::eval_batches() const {
  std::vector<Batch> out;
  for (const auto& idx : eval_plan()) out.push_back(make_batch(idx));
  return out;
}

namespace {

Vocab build_vocab(const std::vector<Example>& examples, Tokenization mode, bool targets,
                  std::size_t min_count, std::size_t max_size) {
  std::vector<std::vector<std::string>> seqs;
  for (const auto& ex : examples) {
    if (!targets) {
      seqs.push_back(tokenize(ex.source, mode));
      continue;
    }
    for (const auto& t : ex.targets) seqs.push_back(tokenize(t, mode));
  }
  return Vocab::build(seqs, min_count, max_size);
}

}  // namespace

Vocab build_source_vocab(const std::vector<Example>& examples, Tokenization mode,
                         std::size_t min_count, std::size_t max_size) {
  return build_vocab(examples, mode, false, min_count, max_size);
}

Vocab build_target_vocab(const std::vector<Example>& examples, Tokenization mode,
                         std::size_t min_count, std::size_t max_size) {
  return build_vocab(examples, mode, true, min_count, max_size);
}

}  // namespace seqgrad
