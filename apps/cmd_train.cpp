// seqgrad train: builds vocabularies and a model from the options, trains it, writes the run
// directory, and finishes with the test split's scores and one attention heatmap.
// Under mpirun every process does all of this alike, training data-parallel (seq2seq/trainer.h);
// rank 0 alone prints and writes the run directory.
//
// Every option is parsed and range-checked here, at start-up, before any data is read: a typo or
// an out-of-range value fails at once with a message that names the option.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/heatmap.h"
#include "apps/progress.h"
#include "apps/world.h"
#include "nn/rnn.h"
#include "nn/transformer.h"
#include "optim/checkpoint.h"
#include "seq2seq/attention.h"
#include "seq2seq/decoder.h"
#include "seq2seq/recipes.h"
#include "tensor/matmul.h"

namespace seqgrad::app {

namespace {

struct TrainArgs {
  RunConfig config;
  std::string out, resume;
  int threads = 0;
  std::int64_t test_beam = 5;
  bool detect_anomaly = false;
};

// The task's recipe (seq2seq/recipes.h) for every option the user did not give.
void apply_task_recipe(CLI::App& cmd, RunConfig& c) {
  const Chosen chosen = [&cmd](std::string_view key) {
    std::string flag = "--" + std::string(key);
    std::replace(flag.begin(), flag.end(), '_', '-');
    return cmd.get_option(flag)->count() > 0;
  };
  apply_recipe(c.data.task, chosen,
               {.model = c.model,
                .train = c.train,
                .target_tokens = c.data.target_tokens,
                .max_len = c.data.max_len});
}

// ValueError "OPTION VALUE: must be RULE" unless `ok`.
template <class T>
void require(bool ok, std::string_view option, T value, std::string_view rule) {
  if (!ok) throw ValueError(fmt::format("{} {}: must be {}", option, value, rule));
}

// Runs a parser of a name and puts the option in front of its complaint.
template <class F>
void check_name(std::string_view option, F&& parse) {
  try {
    parse();
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("{}: {}", option, e.what()));
  }
}

// The options the trainer does not check itself: the model's, the data's and the command's.
void check_options(const TrainArgs& a) {
  const RunConfig& c = a.config;
  const ModelConfig& m = c.model;
  const DataSpec& d = c.data;
  // clang-format off
  require(c.batch_size >= 1,                 "--batch-size",     c.batch_size,     "at least 1");
  require(a.test_beam >= 1,                  "--test-beam",      a.test_beam,      "at least 1");
  require(a.threads >= 0,                    "--threads",        a.threads,        "at least 0 (0: one per core)");
  require(m.embed >= 1,                      "--embed",          m.embed,          "at least 1");
  require(m.hidden >= 1,                     "--hidden",         m.hidden,         "at least 1");
  require(m.layers >= 1,                     "--layers",         m.layers,         "at least 1");
  require(m.heads >= 1,                      "--heads",          m.heads,          "at least 1");
  require(m.attention_size >= 0,             "--attention-size", m.attention_size, "at least 0 (0: the hidden size)");
  require(m.dropout >= 0 && m.dropout < 1,   "--dropout",        m.dropout,        "in [0, 1)");
  require(d.min_len >= 1,                    "--min-len",        d.min_len,        "at least 1");
  require(d.max_len >= d.min_len,            "--max-len",        d.max_len,        fmt::format("at least --min-len ({})", d.min_len));
  require(d.train_size >= 1,                 "--train-size",     d.train_size,     "at least 1");
  require(d.valid_size >= 1,                 "--valid-size",     d.valid_size,     "at least 1");
  require(d.test_size >= 0,                  "--test-size",      d.test_size,      "at least 0");
  // clang-format on
  check_name("--arch", [&] { parse_arch(m.arch); });
  if (m.arch != "rnn") {
    require(m.ff >= 0, "--ff", m.ff, "at least 0 (0: 4 x hidden)");
    require(m.hidden % m.heads == 0, "--heads", m.heads,
            fmt::format("a divisor of --hidden ({}) for a Transformer", m.hidden));
    require(c.train.teacher_forcing == 1.0, "--teacher-forcing", c.train.teacher_forcing,
            "1 for a Transformer (scheduled sampling is --arch rnn's)");
    check_name("--activation", [&] { parse_activation(m.activation); });
    check_name("--positions", [&] {
      if (m.positions != "sinusoidal" && m.positions != "learned") {
        throw ValueError(fmt::format("unknown '{}' (known: sinusoidal, learned)", m.positions));
      }
    });
  }
  check_name("--cell", [&] { parse_cell(m.cell); });
  check_name("--style", [&] { parse_style(m.style); });
  check_name("--source-tokens", [&] { parse_tokenization(d.source_tokens); });
  check_name("--target-tokens", [&] { parse_tokenization(d.target_tokens); });
  check_name("--train-targets", [&] {
    if (d.train_targets != "first" && d.train_targets != "all") {
      throw ValueError(fmt::format("unknown '{}' (known: first, all)", d.train_targets));
    }
  });
  std::vector<std::string> scorers = scorer_names();
  scorers.push_back("none");
  if (std::find(scorers.begin(), scorers.end(), m.attention) == scorers.end()) {
    throw ValueError(fmt::format("--attention '{}': unknown scorer (known: {})", m.attention,
                                 fmt::join(scorers, ", ")));
  }
  c.train.check();
}

// The run directory of a new run, with its vocabularies and configuration.
void start_run_directory(const std::string& out, const RunConfig& c, const Vocab& source_vocab,
                         const Vocab& target_vocab) {
  std::error_code ec;
  std::filesystem::create_directories(out, ec);
  if (ec) {
    throw RuntimeError(
        fmt::format("--out {}: cannot create the run directory: {}", out, ec.message()));
  }
  save_text_file(out + "/source_vocab.json", source_vocab.to_json().dump(1) + "\n");
  save_text_file(out + "/target_vocab.json", target_vocab.to_json().dump(1) + "\n");
  save_text_file(RunFiles{out}.config(), c.to_json().dump(2) + "\n");
}

// The configuration of this run: the resumed run's own, or the options with the task's recipe.
void settle_config(CLI::App& cmd, TrainArgs& a) {
  RunConfig& c = a.config;
  if (!a.resume.empty()) {
    a.out = a.resume;
    c = load_run_config(a.resume);
    // The run's own thread count unless one is asked for: resuming then repeats it exactly.
    if (a.threads > 0) c.train.threads = a.threads;
    a.threads = c.train.threads;
  } else {
    apply_task_recipe(cmd, c);
    if (a.out.empty()) a.out = "runs/" + (c.data.task.empty() ? std::string("tsv") : c.data.task);
  }
  check_options(a);
}

// Scores the best checkpoint on the test split, writes test_metrics.json and shows the
// attention of the first test example.
// Every process of a group decodes its part of the test split; rank 0 writes and shows.
void score_test(const TrainArgs& a, const DataSplits& data, const BatcherOptions& bo, int workers) {
  const RunConfig& c = a.config;
  Collective& group = world();
  group.barrier();  // rank 0 comes here after writing best.safetensors
  LoadedRun best = load_run(a.out);
  const Batcher test_batches(data.test, best.source_vocab, best.target_vocab, bo);
  const EvalResult er = evaluate(*best.model, test_batches, best.target_vocab,
                                 {.beam = a.test_beam, .max_len = 0}, 0, workers, group);
  if (group.rank() != 0) return;
  save_text_file(a.out + "/test_metrics.json", er.to_json().dump(2) + "\n");
  fmt::print(
      "test ({} examples, beam {}): exact match {:.2f}%  token accuracy {:.2f}%  WER "
      "{:.2f}%  PER {:.2f}%  loss {:.4f}\n",
      er.scores.examples, a.test_beam, 100 * er.scores.exact_match, 100 * er.scores.token_accuracy,
      100 * er.scores.wer, 100 * er.scores.per, er.loss);
  if (c.model.arch == "rnn" && c.model.attention == "none") return;
  const std::string& input = data.test.front().source;
  const SourceBatch sb = encode_sources({input}, best.source_vocab, bo.source_tokenization);
  const Hypothesis h = beam_search(*best.model, sb.src, sb.lengths,
                                   {.beam = 1, .max_len = 2 * sb.lengths[0] + 10})[0];
  if (h.attention.empty()) return;  // decoder-only: no cross-attention to draw
  std::vector<std::string> out = best.target_vocab.decode(h.tokens);
  out.push_back("</s>");
  fmt::print("\nattention for \"{}\" -> \"{}\":\n{}", input,
             detokenize(best.target_vocab.decode(h.tokens), bo.target_tokenization),
             heatmap_text(sb.tokens[0], out, h.attention));
}

// What rank 0 alone says: the run's start and end.
void say_started(const RunConfig& c, const DataSplits& data, std::size_t train_pairs,
                 const Vocab& source_vocab, const Vocab& target_vocab, const Seq2Seq& model,
                 int workers) {
  const std::string pairs =
      train_pairs == data.train.size() ? "" : fmt::format(" ({} pairs)", train_pairs);
  fmt::print("seqgrad train: {} ({} train{} / {} valid / {} test), vocab {} -> {}\n",
             c.data.task.empty() ? c.data.train_path : c.data.task, data.train.size(), pairs,
             data.valid.size(), data.test.size(), source_vocab.size(), target_vocab.size());
  const int ranks = world().size();
  fmt::print("model: {}, {} parameters, {} thread(s){}; OpenBLAS {}\n", describe_model(c.model),
             model.num_parameters(), workers,
             ranks > 1 ? fmt::format(" in each of {} processes (MPI)", ranks) : "",
             blas_core_name());
}

// SEQGRAD_CHECK_REPLICAS=1: compare the processes' weights after every step (seq2seq/trainer.h).
bool check_replicas_asked() {
  const char* v = std::getenv("SEQGRAD_CHECK_REPLICAS");
  return v != nullptr && std::string(v) == "1";
}

void run_train(CLI::App& cmd, TrainArgs& a) {
  settle_config(cmd, a);
  RunConfig& c = a.config;
  const bool resume = !a.resume.empty();
  Collective& group = world();
  const bool leader = group.rank() == 0;
  const int workers = set_threads(a.threads);
  c.train.threads = workers;
  // Not part of the run's configuration: it changes no number, only stops at the first bad one.
  set_detect_anomaly(a.detect_anomaly);
  const DataSplits data = load_data(c.data);
  const BatcherOptions bo{.batch_size = c.batch_size,
                          .source_tokenization = parse_tokenization(c.data.source_tokens),
                          .target_tokenization = parse_tokenization(c.data.target_tokens),
                          .seed = c.data.seed};
  Vocab source_vocab, target_vocab;
  if (resume) {
    source_vocab = Vocab::load(a.out + "/source_vocab.json");
    target_vocab = Vocab::load(a.out + "/target_vocab.json");
  } else {
    source_vocab = build_source_vocab(data.train, bo.source_tokenization);
    target_vocab = build_target_vocab(data.train, bo.target_tokenization);
    c.model.src_vocab = source_vocab.size();
    c.model.tgt_vocab = target_vocab.size();
    if (leader) start_run_directory(a.out, c, source_vocab, target_vocab);
  }
  const Batcher train_batches(
      c.data.train_targets == "all" ? one_per_target(data.train) : data.train, source_vocab,
      target_vocab, bo);
  const Batcher valid_batches(data.valid, source_vocab, target_vocab, bo);
  Generator gen(c.data.seed);
  Seq2Seq model(c.model, gen);
  if (leader)
    say_started(c, data, train_batches.size(), source_vocab, target_vocab, model, workers);
  // A run killed before its first checkpoints were written starts again from step 0, which
  // gives what the uninterrupted run would have.
  const bool has_checkpoint = std::filesystem::exists(RunFiles{a.out}.last());
  if (leader && resume && !has_checkpoint) {
    fmt::print("seqgrad train: {} holds no checkpoint yet; starting the run from step 0\n", a.out);
  }
  ProgressDisplay display;
  const TrainOutcome outcome =
      train(model, gen,
            {.train = train_batches, .valid = valid_batches, .target_vocab = target_vocab}, c.train,
            {.files = RunFiles{a.out},
             .config_text = c.to_json().dump(),
             .resume = resume && has_checkpoint,
             .group = &group,
             .check_replicas = check_replicas_asked()},
            display.hooks());
  if (!leader) {
    if (!outcome.already_complete && !data.test.empty()) score_test(a, data, bo, workers);
    return;
  }
  display.finish();
  if (outcome.replica_checks > 0) {
    fmt::print(
        "seqgrad train: the weights were identical on all {} processes after each of {} "
        "steps\n",
        group.size(), outcome.replica_checks);
  }
  if (outcome.already_complete) {
    fmt::print(
        "seqgrad train: the run in {} is complete (step {}); nothing to do, its files are left "
        "as they are (HINT: raise train.steps, train.epochs or train.time_limit in its config.json "
        "to "
        "go on)\n",
        a.out, outcome.steps);
    return;
  }
  if (outcome.time_up) {
    fmt::print("seqgrad train: the time limit stopped the run at step {}\n", outcome.steps);
  }
  if (!data.test.empty()) score_test(a, data, bo, workers);
  fmt::print("run written to {}/ (best.safetensors, last.safetensors, metrics.jsonl{})\n", a.out,
             data.test.empty() ? "" : ", test_metrics.json");
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
  cmd->add_option("--train-targets", c.data.train_targets,
                  "first or all: train on each example's first reference or on every one")
      ->capture_default_str();
  cmd->add_option("--min-len", c.data.min_len, "generated tasks: shortest source")
      ->capture_default_str();
  cmd->add_option("--max-len", c.data.max_len, "generated tasks: longest source")
      ->capture_default_str();
  cmd->add_option("--train-size", c.data.train_size, "generated tasks: training examples")
      ->capture_default_str();
  cmd->add_option("--valid-size", c.data.valid_size)->capture_default_str();
  cmd->add_option("--test-size", c.data.test_size)->capture_default_str();
  cmd->add_option("--arch", c.model.arch, "rnn, transformer or decoder-only")
      ->capture_default_str();
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
  cmd->add_option("--ff", c.model.ff, "Transformer feed-forward width (0: 4 x hidden)")
      ->capture_default_str();
  cmd->add_flag("--norm-first", c.model.norm_first, "Transformer: pre-norm layers");
  cmd->add_option("--activation", c.model.activation, "Transformer feed-forward: relu or gelu")
      ->capture_default_str();
  cmd->add_option("--positions", c.model.positions, "Transformer: sinusoidal or learned")
      ->capture_default_str();
  cmd->add_flag("--tie-embeddings", c.model.tie_embeddings,
                "Transformer: the output projection reuses the target embedding");
  cmd->add_option("--batch-size", c.batch_size)->capture_default_str();
  cmd->add_option("--epochs", c.train.epochs)->capture_default_str();
  cmd->add_option("--steps", c.train.steps, "stop after this many steps (overrides --epochs)");
  cmd->add_option_function<std::string>(
      "--time-limit", [a](const std::string& s) { a->config.train.time_limit = parse_duration(s); },
      "stop training when this much time is up, keeping time for a last validation: 90s, 45m, "
      "1.5h (a bare number: minutes)");
  cmd->add_option("--lr", c.train.lr)->capture_default_str();
  cmd->add_option("--adam-beta2", c.train.adam_beta2, "Adam's second-moment decay")
      ->capture_default_str();
  cmd->add_option("--weight-decay", c.train.weight_decay,
                  "decoupled weight decay (AdamW; 0: plain Adam)")
      ->capture_default_str();
  cmd->add_option_function<std::string>(
      "--schedule", [a](const std::string& s) { a->config.train.schedule = parse_schedule(s); },
      fmt::format("{} (default plateau)", fmt::join(schedule_names(), ", ")));
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
  cmd->add_option_function<std::string>(
      "--select-on", [a](const std::string& s) { a->config.train.select_on = parse_metric(s); },
      fmt::format("the validation number that picks the best checkpoint, ties going to the lower "
                  "loss: {} (default exact_match)",
                  fmt::join(metric_names(), ", ")));
  cmd->add_option("--seed", c.data.seed)->capture_default_str();
  cmd->add_option("--threads", a->threads,
                  "worker threads, each taking a share of every batch (0: one per core)");
  cmd->add_option("--out", a->out, "run directory (default runs/TASK)");
  cmd->add_option("--resume", a->resume, "continue the run in this directory exactly");
  cmd->add_flag("--detect-anomaly", a->detect_anomaly,
                "stop at the first op whose output or gradient is NaN or infinite, naming it "
                "(slow: every tensor is checked)");
  cmd->callback([cmd, a] { run_train(*cmd, *a); });
}

}  // namespace seqgrad::app
