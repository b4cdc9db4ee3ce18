// seqgrad eval: scores a trained model, or an ensemble of several (--model repeated), on a TSV
// file or a split of the (first) model's own data.
#include <fmt/format.h>

#include "apps/commands.h"
#include "apps/common.h"

namespace seqgrad::app {

namespace {

struct EvalArgs {
  std::vector<std::string> models;
  std::string data, task, split = "test";
  std::int64_t beam = 5, max_examples = 0;
  double length_penalty = 1.0;
  bool json = false;
  int threads = 0;
};

// The TSV file given, or the split of the run's own data; DataError naming the file or split
// when it holds no example or one longer than a model takes.
std::vector<Example> examples_to_score(const EvalArgs& a, const DataSpec& spec) {
  const Tokenization src = parse_tokenization(spec.source_tokens);
  const Tokenization tgt = parse_tokenization(spec.target_tokens);
  if (!a.data.empty()) {
    std::vector<Example> examples = read_tsv_nonempty(a.data);
    check_examples(examples, a.data, src, tgt);
    return examples;
  }
  std::vector<Example> examples = pick_split(load_data(spec), a.split);
  if (examples.empty()) {
    throw DataError(fmt::format(
        "eval: the run's data has no {} split (the run was trained without one; HINT: --data "
        "FILE or --split valid)",
        a.split));
  }
  return examples;
}

void run_eval(const EvalArgs& a) {
  if (a.beam < 1) throw ValueError(fmt::format("--beam {}: must be at least 1", a.beam));
  check_length_penalty(a.length_penalty);
  if (a.max_examples < 0) {
    throw ValueError(fmt::format("--max-examples {}: must be >= 0 (0: all)", a.max_examples));
  }
  const int workers = set_threads(a.threads);
  const LoadedEnsemble ensemble = load_ensemble(a.models);
  const LoadedRun& run = ensemble.first();
  DataSpec spec = run.config.data;
  if (!a.task.empty()) spec.task = a.task;
  const std::vector<Example> examples = examples_to_score(a, spec);
  const BatcherOptions bo{.batch_size = run.config.batch_size,
                          .source_tokenization = parse_tokenization(spec.source_tokens),
                          .target_tokenization = parse_tokenization(spec.target_tokens)};
  const Batcher batches(examples, run.source_vocab, run.target_vocab, bo);
  const EvalResult r = evaluate(ensemble.members(), batches, run.target_vocab,
                                {.beam = a.beam, .max_len = 0, .length_penalty = a.length_penalty},
                                a.max_examples, workers);
  if (a.json) {
    nlohmann::json j = r.to_json();
    j["beam"] = a.beam;
    j["length_penalty"] = a.length_penalty;
    j["models"] = a.models.size();
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print(
      "{} examples, beam {}, length penalty {}{}\n  exact match    {:.2f}%\n  token accuracy "
      "{:.2f}%\n  WER   "
      "         {:.2f}%\n  PER            {:.2f}%\n  loss           {:.4f} (perplexity "
      "{:.3f})\n",
      r.scores.examples, a.beam, a.length_penalty,
      a.models.size() > 1 ? fmt::format(", ensemble of {} models", a.models.size()) : std::string(),
      100 * r.scores.exact_match, 100 * r.scores.token_accuracy, 100 * r.scores.wer,
      100 * r.scores.per, r.loss, r.perplexity);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "score a trained model");
  auto a = std::make_shared<EvalArgs>();
  cmd->add_option("--model", a->models,
                  "run directory written by train; repeat it to score an ensemble")
      ->required();
  cmd->add_option("--data", a->data, "TSV file to score (default: the run's own data)");
  cmd->add_option("--task", a->task, "score a built-in task instead");
  cmd->add_option("--split", a->split, "train, valid or test")->capture_default_str();
  cmd->add_option("--beam", a->beam)->capture_default_str();
  cmd->add_option("--length-penalty", a->length_penalty,
                  "alpha: rank finished outputs by log-probability / length^alpha (0: none)")
      ->capture_default_str();
  cmd->add_option("--max-examples", a->max_examples, "decode at most this many (0: all)");
  cmd->add_flag("--json", a->json, "print the metrics as one JSON object");
  cmd->add_option("--threads", a->threads,
                  "worker threads, each decoding a share of every batch (0: one per core)");
  cmd->callback([a] { run_eval(*a); });
}

}  // namespace seqgrad::app
