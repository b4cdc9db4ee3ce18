// Evaluation: teacher-forced loss and decoding of a split, shared over the worker threads and,
// under MPI, over the processes, whose parts are gathered and merged in batch order (see
// trainer.h).
// Shape legend: B batch, S source length, T target length, V vocabulary.
#include <fmt/format.h>

#include <cassert>
#include <cmath>

#include "autograd/ops.h"
#include "seq2seq/parallel.h"
#include "seq2seq/trainer.h"

namespace seqgrad {

double EvalResult::metric(Metric m) const {
  switch (m) {
    case Metric::exact_match:
      return scores.exact_match;
    case Metric::token_accuracy:
      return scores.token_accuracy;
    case Metric::wer:
      return scores.wer;
    case Metric::per:
      return scores.per;
    case Metric::loss:
      return loss;
    case Metric::perplexity:
      return perplexity;
  }
  assert(false && "every metric has a case");
  return 0;
}

nlohmann::json EvalResult::to_json() const {
  nlohmann::json j = scores.to_json();
  j["loss"] = loss;
  j["perplexity"] = perplexity;
  return j;
}

EvalResult evaluate(const Seq2Seq& model, const Batcher& data, const Vocab& target_vocab,
                    const SearchOptions& search, std::int64_t max_examples, int workers,
                    Collective& group) {
  return evaluate(std::vector<const Seq2Seq*>{&model}, data, target_vocab, search, max_examples,
                  workers, group);
}

namespace {

// One process's part of an evaluation, taking every size-th batch from `rank`:
// {"losses": [[batch, [[loss sum, tokens] per model]], ...], "predictions": [[example, text],
// ...]}.
nlohmann::json evaluate_part(const std::vector<const Seq2Seq*>& models, const Batcher& data,
                             const Vocab& target_vocab, const SearchOptions& search,
                             std::int64_t max_examples, int workers, const Collective& group) {
  Generator unused(0);
  nlohmann::json losses = nlohmann::json::array(), predictions = nlohmann::json::array();
  const auto plan = data.eval_plan();
  for (auto i = static_cast<std::size_t>(group.rank()); i < plan.size();
       i += static_cast<std::size_t>(group.size())) {
    const Batch b = data.make_batch(plan[i]);
    nlohmann::json terms = nlohmann::json::array();
    for (const Seq2Seq* model : models) {
      const LossResult l = model->loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, unused);
      terms.push_back({l.loss.item() * static_cast<double>(l.tokens), l.tokens});
    }
    losses.push_back({i, std::move(terms)});
    if (max_examples > 0 && static_cast<std::int64_t>(b.example_index.front()) >= max_examples) {
      continue;
    }
    // max_len 0: each source's own cap (search.h), so a prediction does not depend on its batch.
    const std::vector<Hypothesis> hyps =
        parallel_beam_search(models, b.src, b.src_lengths, search, workers);
    const Tokenization mode = data.options().target_tokenization;
    for (std::size_t k = 0; k < hyps.size(); ++k) {
      predictions.push_back(
          {b.example_index[k], detokenize(target_vocab.decode(hyps[k].tokens), mode)});
    }
  }
  return {{"losses", std::move(losses)}, {"predictions", std::move(predictions)}};
}

// Every process's part, on every process (CBOR: exact doubles, text passed as it is).
std::vector<nlohmann::json> gather_parts(nlohmann::json mine, Collective& group) {
  if (group.size() == 1) return {std::move(mine)};
  const std::vector<std::uint8_t> bytes = nlohmann::json::to_cbor(mine);
  std::vector<nlohmann::json> parts;
  for (const std::string& text : group.gather(std::string(bytes.begin(), bytes.end()))) {
    parts.push_back(nlohmann::json::from_cbor(text.begin(), text.end()));
  }
  return parts;
}

// The evaluation from its parts, summing the losses in batch order as one process does.
EvalResult merge_parts(const std::vector<nlohmann::json>& parts, const Batcher& data) {
  std::vector<nlohmann::json> by_batch(data.eval_plan().size());
  std::vector<std::string> predictions(data.size());
  std::vector<bool> decoded(data.size(), false);
  for (const nlohmann::json& part : parts) {
    for (const auto& entry : part.at("losses")) by_batch.at(entry.at(0)) = entry.at(1);
    for (const auto& entry : part.at("predictions")) {
      const auto i = entry.at(0).get<std::size_t>();
      predictions.at(i) = entry.at(1).get<std::string>();
      decoded.at(i) = true;
    }
  }
  double total = 0;
  std::int64_t tokens = 0;
  for (const nlohmann::json& terms : by_batch) {
    for (const auto& term : terms) {
      total += term.at(0).get<double>();
      tokens += term.at(1).get<std::int64_t>();
    }
  }
  EvalResult r;
  r.loss = tokens > 0 ? total / static_cast<double>(tokens) : 0.0;
  r.perplexity = perplexity(r.loss);
  std::vector<Example> scored;
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (!decoded[i]) continue;
    r.predictions.push_back(predictions[i]);
    scored.push_back(data.examples()[i]);
  }
  r.scores = score(r.predictions, scored, data.options().target_tokenization);
  return r;
}

}  // namespace

EvalResult evaluate(const std::vector<const Seq2Seq*>& models, const Batcher& data,
                    const Vocab& target_vocab, const SearchOptions& search,
                    std::int64_t max_examples, int workers, Collective& group) {
  if (models.empty()) throw ValueError("evaluate: needs at least one model");
  NoGradGuard no_grad;
  const nlohmann::json mine =
      evaluate_part(models, data, target_vocab, search, max_examples, workers, group);
  return merge_parts(gather_parts(mine, group), data);
}

}  // namespace seqgrad
