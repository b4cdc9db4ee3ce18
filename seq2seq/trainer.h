// Training and evaluation loops for Seq2Seq: Adam with gradient clipping and a learning-rate
// schedule, teacher forcing (optionally decayed into scheduled sampling), periodic validation
// with decoding and metrics, checkpoints (best and last) and a metrics.jsonl log; and exact
// resumption from the last checkpoint.
//
// Reading order: train_step() is one update (forward, loss, backward, clip, update); train()
// runs it over the epochs, with resume, validation and checkpoints as named pieces around it
// (trainer.cpp). The display is the caller's: it gets a TrainHooks call after every step and
// every validation.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "optim/optimizer.h"
#include "seq2seq/batch.h"
#include "seq2seq/collective.h"
#include "seq2seq/metrics.h"
#include "seq2seq/model.h"
#include "seq2seq/parallel.h"
#include "seq2seq/search.h"

namespace seqgrad {

// The learning-rate schedule: reduce on a validation-loss plateau, constant, cosine decay
// after a linear warm-up, or the Transformer's inverse square root after a warm-up.
enum class Schedule { plateau, constant, cosine, inverse_sqrt };
// A validation number, e.g. the one that picks the best checkpoint.
enum class Metric { exact_match, token_accuracy, wer, per, loss, perplexity };

// Names as the command line and config.json spell them. parse_* throw ValueError naming
// `option` and listing the known names.
std::string_view schedule_name(Schedule s);
Schedule parse_schedule(std::string_view name, std::string_view option = "--schedule");
std::string_view metric_name(Metric m);
Metric parse_metric(std::string_view name, std::string_view option = "--select-on");
bool lower_is_better(Metric m);  // wer, per, loss, perplexity
std::vector<std::string> schedule_names();
std::vector<std::string> metric_names();
// "90s", "45m", "1.5h" or a bare number of minutes, in seconds; ValueError naming `option`.
double parse_duration(std::string_view text, std::string_view option = "--time-limit");

struct TrainOptions {
  std::int64_t epochs = 10;
  std::int64_t steps = 0;  // > 0: stop after this many steps instead
  double lr = 2e-3;
  double adam_beta2 = 0.999;        // Adam's second-moment decay (Transformers usually take 0.98)
  double weight_decay = 0.0;        // > 0: AdamW, shrinking each weight by lr * this a step
  double clip = 5.0;                // global gradient-norm clip (0: off)
  double teacher_forcing = 1.0;     // ratio at the start
  double teacher_forcing_end = -1;  // in [0, 1]: decays linearly to this by the end; -1: off
  double label_smoothing = 0.0;
  double ema = 0.0;  // > 0: validate and keep best from a moving average of weights, this decay
  Schedule schedule = Schedule::plateau;
  std::int64_t warmup = 0;                 // steps of linear warm-up (cosine, inverse_sqrt)
  std::int64_t valid_every = 0;            // steps between validations (0: once an epoch)
  std::int64_t valid_examples = 2000;      // decode at most this many validation examples (0: all)
  std::int64_t beam = 1;                   // beam width used for validation decoding
  std::int64_t max_decode_len = 0;         // 0: per source, 2 * its length + 10
  Metric select_on = Metric::exact_match;  // ties are broken by the lower validation loss
  // Data-parallel worker threads for training steps and validation decoding (seq2seq/parallel.h).
  // Saved with the run: the split of each batch changes float rounding and the dropout streams,
  // so a resumed run repeats the uninterrupted one exactly only with the same count.
  int threads = 1;
  // > 0: stop stepping when this many seconds of training (steps and validations, summed over
  // resumed sessions) are up, keeping time for a last validation; the schedule keeps its
  // horizon from --epochs or --steps.
  double time_limit = 0;

  // Throws ValueError for the first option out of its range, naming it as the seqgrad command
  // spells it ("--teacher-forcing 2: must be in [0, 1]"; config.json's key is the same name
  // with '_' for '-').
  void check() const;
  nlohmann::json to_json() const;
  // Parses the names into enums and check()s the values; ValueError on failure.
  static TrainOptions from_json(const nlohmann::json& j);
};

struct EvalResult {
  double loss = 0;  // mean cross-entropy per target token, teacher-forced
  double perplexity = 0;
  Scores scores;  // from decoding
  std::vector<std::string> predictions;
  double metric(Metric m) const;
  nlohmann::json to_json() const;  // loss, perplexity and every score
};

// Teacher-forced loss over every batch, then decoding of the first `max_examples` examples
// (all when <= 0) and their scores against every reference.
// `workers` threads share each batch's decoding. Over a group of processes, each takes every
// size()-th batch and the parts are gathered, so every process returns the same result, equal
// to one process's.
EvalResult evaluate(const Seq2Seq& model, const Batcher& data, const Vocab& target_vocab,
                    const SearchOptions& search, std::int64_t max_examples = 0, int workers = 1,
                    Collective& group = single_process());
// An ensemble decodes with beam_search's mean of log-probabilities; its loss is the mean of the
// members' teacher-forced losses.
EvalResult evaluate(const std::vector<const Seq2Seq*>& models, const Batcher& data,
                    const Vocab& target_vocab, const SearchOptions& search,
                    std::int64_t max_examples = 0, int workers = 1,
                    Collective& group = single_process());

// A training step whose loss or gradient norm is NaN or infinite: train_step throws it before
// the update, so the weights stay as they were.
struct NonFiniteLoss : RuntimeError {
  using RuntimeError::RuntimeError;
};

// One update on one batch: forward, loss and backward (the batch's rows shared among
// `parallel`'s workers), clip the global gradient norm to `clip` (0: off), update.
// NonFiniteLoss when the loss or (with clipping) the gradient norm is not finite.
// Over a group of processes (each with the same batch, model, optimizer and gen), each computes
// its shares of the batch, the gradients and the loss are summed over the group and gen takes
// rank 0's state, so every process makes the same update and returns the batch's mean loss.
StepLoss train_step(DataParallel& parallel, Optimizer& opt, const Batch& batch,
                    const LossOptions& loss, double clip, Generator& gen,
                    Collective& group = single_process());

// Where a run lives: config.json, the vocabularies, best.safetensors, last.safetensors,
// metrics.jsonl. Every file is replaced atomically (written beside, fsynced, renamed), so a run
// killed at any moment leaves each one whole.
struct RunFiles {
  std::string dir;
  std::string config() const { return dir + "/config.json"; }
  std::string best() const { return dir + "/best.safetensors"; }
  std::string last() const { return dir + "/last.safetensors"; }
  std::string metrics() const { return dir + "/metrics.jsonl"; }
};

// What the caller sees of a run as it goes (the seqgrad command draws a progress line from it).
struct StepReport {
  std::int64_t step = 0, total = 0, epoch = 0;  // step: updates made so far, of total
  double lr = 0;
  double train_loss = 0;    // mean loss per target token since the last validation
  std::int64_t tokens = 0;  // target tokens of this step's batch
  double time_left = -1;    // seconds to the time limit (-1: none)
};
struct TrainHooks {
  std::function<void(const StepReport&)> on_step;
  // After each validation, with its metrics.jsonl line.
  std::function<void(const nlohmann::json&)> on_validation;
};

// The data of a run and how it starts.
struct TrainData {
  const Batcher& train;
  const Batcher& valid;
  const Vocab& target_vocab;
};
struct RunSetup {
  RunFiles files;
  std::string config_text;  // stored in every checkpoint
  bool resume = false;      // continue exactly from files.last()
  // The processes the run is spread over (nullptr: this one alone). All train alike; rank 0
  // alone writes the run's files and gets the hooks' calls.
  Collective* group = nullptr;
  // After every step, check that the weights are the same on every process of the group
  // (RuntimeError naming the step when not).
  bool check_replicas = false;
};

struct TrainOutcome {
  std::int64_t steps = 0;           // the run's step count at the end
  bool already_complete = false;    // resumed a finished run: nothing was done or written
  bool time_up = false;             // stopped by the time limit before its last step
  std::int64_t replica_checks = 0;  // steps after which RunSetup::check_replicas compared weights
};

// Trains `model`, validating on data.valid. With run.resume, continues exactly from
// files.last() (parameters, optimizer, schedule, data position, random state, best so far); a
// finished run is left untouched. ValueError for bad options or training data with no batch.
TrainOutcome train(Seq2Seq& model, Generator& gen, const TrainData& data,
                   const TrainOptions& options, const RunSetup& run, const TrainHooks& hooks = {});

}  // namespace seqgrad
