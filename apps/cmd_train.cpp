// seqgrad train: builds vocabularies and a model from the options, trains it, writes the run
// directory, and finishes with the test split's scores and one attention heatmap.
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/heatmap.h"
#include "tensor/matmul.h"

namespace seqgrad::app {

namespace {

struct TrainArgs {
  RunConfig config;
  std::string out, resume;
  int threads = 0;
  std::int64_t test_beam = 5;
};

// Task-specific defaults for options the user did not give.
void apply_defaults(CLI::App& cmd, RunConfig& c) {
  auto unset = [&](const char* name) { return cmd.get_option(name)->count() == 0; };
  if (c.data.task == "g2p") {
    if (unset("--target-tokens")) c.data.target_tokens = "words";
    if (unset("--hidden")) c.model.hidden = 256;
    if (unset("--embed")) c.model.embed = 128;
    if (unset("--layers")) c.model.layers = 2;
    if (unset("--dropout")) c.model.dropout = 0.2;
    // The recipe behind the README's G2P figures: 20 epochs, cosine decay after a short warm-up,
    // label smoothing, and validation on a moving average of the weights.
    if (unset("--epochs")) c.train.epochs = 20;
    if (unset("--schedule")) c.train.schedule = "cosine";
    if (unset("--warmup")) c.train.warmup = 500;
    if (unset("--label-smoothing")) c.train.label_smoothing = 0.1;
    if (unset("--ema")) c.train.ema = 0.999;
    if (unset("--valid-every")) c.train.valid_every = 4000;
    if (unset("--select-on")) c.train.select_on = "wer";
  }
  if (c.data.task == "dates") {
    if (unset("--max-len")) c.data.max_len = 40;
  }
}

void run_train(CLI::App& cmd, TrainArgs& a) {
  RunConfig& c = a.config;
  const bool resume = !a.resume.empty();
  if (resume) {
    a.out = a.resume;
    c = load_run_config(a.resume);
    // The run's own thread count unless one is asked for: resuming then repeats it exactly.
    if (a.threads > 0) c.train.threads = a.threads;
    a.threads = c.train.threads;
  } else {
    apply_defaults(cmd, c);
    if (a.out.empty()) a.out = "runs/" + (c.data.task.empty() ? std::string("tsv") : c.data.task);
  }
  const int workers = set_threads(a.threads);
  c.train.threads = workers;
  const DataSplits data = load_data(c.data);
  const Tokenization src_mode = parse_tokenization(c.data.source_tokens);
  const Tokenization tgt_mode = parse_tokenization(c.data.target_tokens);
  Vocab source_vocab, target_vocab;
  if (resume) {
    source_vocab = Vocab::load(a.out + "/source_vocab.json");
    target_vocab = Vocab::load(a.out + "/target_vocab.json");
  } else {
    source_vocab = build_source_vocab(data.train, src_mode);
    target_vocab = build_target_vocab(data.train, tgt_mode);
    c.model.src_vocab = source_vocab.size();
    c.model.tgt_vocab = target_vocab.size();
    std::filesystem::create_directories(a.out);
    source_vocab.save(a.out + "/source_vocab.json");
    target_vocab.save(a.out + "/target_vocab.json");
    std::ofstream(RunFiles{a.out}.config()) << c.to_json().dump(2) << "\n";
  }
  const BatcherOptions bo{.batch_size = c.batch_size,
                          .source_tokenization = src_mode,
                          .target_tokenization = tgt_mode,
                          .seed = c.data.seed};
  const Batcher train_batches(data.train, source_vocab, target_vocab, bo);
  const Batcher valid_batches(data.valid, source_vocab, target_vocab, bo);
  Generator gen(c.data.seed);
  Seq2Seq model(c.model, gen);
  fmt::print("seqgrad train: {} ({} train / {} valid / {} test), vocab {} -> {}\n",
             c.data.task.empty() ? c.data.train_path : c.data.task, data.train.size(),
             data.valid.size(), data.test.size(), source_vocab.size(), target_vocab.size());
  fmt::print(
      "model: {} {}x{} (embed {}), attention {} ({}), {} parameters, {} thread(s); OpenBLAS "
      "{}\n",
      c.model.cell, c.model.layers, c.model.hidden, c.model.embed, c.model.attention, c.model.style,
      model.num_parameters(), workers, blas_core_name());
  train(model, gen, train_batches, valid_batches, target_vocab, c.train, RunFiles{a.out},
        c.to_json().dump(), resume, [](const nlohmann::json& line) {
          const auto& v = line.at("valid");
          fmt::print(
              "valid @ step {}: loss {:.4f}  exact {:.2f}%  token acc {:.2f}%  WER {:.2f}%  "
              "PER {:.2f}%  ({:.0f}s)\n",
              line.at("step").get<std::int64_t>(), v.at("loss").get<double>(),
              100 * v.at("exact_match").get<double>(), 100 * v.at("token_accuracy").get<double>(),
              100 * v.at("wer").get<double>(), 100 * v.at("per").get<double>(),
              line.at("elapsed_s").get<double>());
          std::fflush(stdout);
        });
  if (data.test.empty()) return;
  // Score the best checkpoint on the test split.
  LoadedRun best = load_run(a.out);
  const Batcher test_batches(data.test, source_vocab, target_vocab, bo);
  const EvalResult er = evaluate(*best.model, test_batches, target_vocab,
                                 {.beam = a.test_beam, .max_len = 0}, 0, workers);
  std::ofstream(a.out + "/test_metrics.json") << er.to_json().dump(2) << "\n";
  fmt::print(
      "test ({} examples, beam {}): exact match {:.2f}%  token accuracy {:.2f}%  WER "
      "{:.2f}%  PER {:.2f}%  loss {:.4f}\n",
      er.scores.examples, a.test_beam, 100 * er.scores.exact_match, 100 * er.scores.token_accuracy,
      100 * er.scores.wer, 100 * er.scores.per, er.loss);
  if (c.model.attention != "none") {
    const std::string& input = data.test.front().source;
    const SourceBatch sb = encode_sources({input}, source_vocab, src_mode);
    const Hypothesis h = beam_search(*best.model, sb.src, sb.lengths,
                                     {.beam = 1, .max_len = 2 * sb.lengths[0] + 10})[0];
    std::vector<std::string> out = target_vocab.decode(h.tokens);
    out.push_back("</s>");
    fmt::print("\nattention for \"{}\" -> \"{}\":\n{}", input,
               detokenize(target_vocab.decode(h.tokens), tgt_mode),
               heatmap_text(sb.tokens[0], out, h.attention));
  }
  fmt::print(
      "run written to {}/ (best.safetensors, last.safetensors, metrics.jsonl, "
      "test_metrics.json)\n",
      a.out);
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("train", "train a model on a built-in task, CMUdict G2P or TSV files");
  auto a = std::make_shared<TrainArgs>();
  RunConfig& c = a->config;
  c.data.task = "reverse";
  cmd->add_option("--task", c.data.task, "reverse, copy, sort, dates or g2p")
      ->capture_default_str();
  cmd->add_option_function<std::string>(
      "--train",
      [a](const std::string& p) {
        a->config.data.train_path = p;
        a->config.data.task.clear();
      },
      "training TSV (source<TAB>target), instead of --task");
  cmd->add_option("--valid", c.data.valid_path, "validation TSV");
  cmd->add_option("--test", c.data.test_path, "test TSV (optional)");
  cmd->add_option("--cmudict", c.data.cmudict, "CMU dictionary for --task g2p")
      ->capture_default_str();
  cmd->add_option("--source-tokens", c.data.source_tokens, "chars or words")->capture_default_str();
  cmd->add_option("--target-tokens", c.data.target_tokens, "chars or words")->capture_default_str();
  cmd->add_option("--min-len", c.data.min_len, "generated tasks: shortest source")
      ->capture_default_str();
  cmd->add_option("--max-len", c.data.max_len, "generated tasks: longest source")
      ->capture_default_str();
  cmd->add_option("--train-size", c.data.train_size, "generated tasks: training examples")
      ->capture_default_str();
  cmd->add_option("--valid-size", c.data.valid_size)->capture_default_str();
  cmd->add_option("--test-size", c.data.test_size)->capture_default_str();
  cmd->add_option("--attention", c.model.attention, "scorer name, or none")->capture_default_str();
  cmd->add_option("--style", c.model.style, "luong or bahdanau")->capture_default_str();
  cmd->add_option("--cell", c.model.cell, "lstm, gru or rnn")->capture_default_str();
  cmd->add_option("--embed", c.model.embed)->capture_default_str();
  cmd->add_option("--hidden", c.model.hidden)->capture_default_str();
  cmd->add_option("--layers", c.model.layers)->capture_default_str();
  cmd->add_flag("--unidirectional{false}", c.model.bidirectional, "one-directional encoder");
  cmd->add_option("--dropout", c.model.dropout)->capture_default_str();
  cmd->add_option("--heads", c.model.heads, "multihead attention heads")->capture_default_str();
  cmd->add_option("--attention-size", c.model.attention_size, "0: the hidden size")
      ->capture_default_str();
  cmd->add_option("--batch-size", c.batch_size)->capture_default_str();
  cmd->add_option("--epochs", c.train.epochs)->capture_default_str();
  cmd->add_option("--steps", c.train.steps, "stop after this many steps (overrides --epochs)");
  cmd->add_option("--lr", c.train.lr)->capture_default_str();
  cmd->add_option("--schedule", c.train.schedule, "plateau, constant, cosine, inverse_sqrt")
      ->capture_default_str();
  cmd->add_option("--warmup", c.train.warmup)->capture_default_str();
  cmd->add_option("--clip", c.train.clip)->capture_default_str();
  cmd->add_option("--teacher-forcing", c.train.teacher_forcing)->capture_default_str();
  cmd->add_option("--teacher-forcing-end", c.train.teacher_forcing_end,
                  "decay the ratio linearly to this");
  cmd->add_option("--label-smoothing", c.train.label_smoothing)->capture_default_str();
  cmd->add_option("--ema", c.train.ema,
                  "decay of a moving average of the weights, used for validation and the best "
                  "checkpoint (0: off)")
      ->capture_default_str();
  cmd->add_option("--beam", c.train.beam, "beam width for validation")->capture_default_str();
  cmd->add_option("--test-beam", a->test_beam, "beam width for the final test scores")
      ->capture_default_str();
  cmd->add_option("--valid-every", c.train.valid_every,
                  "steps between validations (0: each epoch)");
  cmd->add_option("--valid-examples", c.train.valid_examples)->capture_default_str();
  cmd->add_option("--select-on", c.train.select_on, "exact_match, loss, wer or per")
      ->capture_default_str();
  cmd->add_option("--seed", c.data.seed)->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "worker threads, each taking a share of every batch (0: one per core)");
  cmd->add_option("--out", a->out, "run directory (default runs/TASK)");
  cmd->add_option("--resume", a->resume, "continue the run in this directory exactly");
  cmd->callback([cmd, a] { run_train(*cmd, *a); });
}

}  // namespace seqgrad::app
