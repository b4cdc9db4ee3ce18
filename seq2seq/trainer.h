// Training and evaluation loops for Seq2Seq: Adam with gradient clipping and a learning-rate
// schedule, teacher forcing (optionally decayed into scheduled sampling), periodic validation
// with decoding and metrics, checkpoints (best and last) and a metrics.jsonl log; and exact
// resumption from the last checkpoint.
// Shape legend: B batch, S source length, T target length, E embedding, H hidden, V vocabulary.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "seq2seq/batch.h"
#include "seq2seq/metrics.h"
#include "seq2seq/model.h"
#include "seq2seq/search.h"

namespace seqgrad {

struct TrainOptions {
  std::int64_t epochs = 10;
  std::int64_t steps = 0;  // > 0: stop after this many steps instead
  double lr = 2e-3;
  double clip = 5.0;                // global gradient-norm clip (0: off)
  double teacher_forcing = 1.0;     // ratio at the start
  double teacher_forcing_end = -1;  // >= 0: decays linearly to this by the end of training
  double label_smoothing = 0.0;
  double ema = 0.0;  // > 0: validate and keep best from a moving average of weights, this decay
  std::string schedule = "plateau";       // plateau | constant | cosine | inverse_sqrt
  std::int64_t warmup = 0;                // steps of linear warm-up (cosine, inverse_sqrt)
  std::int64_t valid_every = 0;           // steps between validations (0: once an epoch)
  std::int64_t valid_examples = 2000;     // decode at most this many validation examples
  std::int64_t beam = 1;                  // beam width used for validation decoding
  std::int64_t max_decode_len = 0;        // 0: 2 * longest source + 10
  std::string select_on = "exact_match";  // which validation number picks the best checkpoint
  // Data-parallel worker threads for training steps and validation decoding (seq2seq/parallel.h).
  // Saved with the run: the split of each batch changes float rounding and the dropout streams,
  // so a resumed run repeats the uninterrupted one exactly only with the same count.
  int threads = 1;

  nlohmann::json to_json() const;
  static TrainOptions from_json(const nlohmann::json& j);
};

struct EvalResult {
  double loss = 0;  // mean cross-entropy per target token, teacher-forced
  double perplexity = 0;
  Scores scores;  // from decoding
  std::vector<std::string> predictions;
  nlohmann::json to_json() const;  // loss, perplexity and every score
};

// Teacher-forced loss over every batch, then decoding of the first `max_examples` examples
// (all when <= 0) and their scores against every reference.
// `workers` threads share each batch's decoding.
EvalResult evaluate(const Seq2Seq& model, const Batcher& data, const Vocab& target_vocab,
                    const SearchOptions& search, std::int64_t max_examples = 0, int workers = 1);
// An ensemble decodes with beam_search's mean of log-probabilities; its loss is the mean of the
// members' teacher-forced losses.
EvalResult evaluate(const std::vector<const Seq2Seq*>& models, const Batcher& data,
                    const Vocab& target_vocab, const SearchOptions& search,
                    std::int64_t max_examples = 0, int workers = 1);

// Where a run lives: config.json, the vocabularies, best.safetensors, last.safetensors,
// metrics.jsonl.
struct RunFiles {
  std::string dir;
  std::string config() const { return dir + "/config.json"; }
  std::string best() const { return dir + "/best.safetensors"; }
  std::string last() const { return dir + "/last.safetensors"; }
  std::string metrics() const { return dir + "/metrics.jsonl"; }
};

// Called after each validation with its JSON line (for printing).
using ValidationHook = std::function<void(const nlohmann::json&)>;

// Trains `model` on `train`, validating on `valid`. With `resume`, continues exactly from
// files.last() (parameters, optimizer, schedule, data position, random state).
void train(Seq2Seq& model, Generator& gen, const Batcher& train, const Batcher& valid,
           const Vocab& target_vocab, const TrainOptions& options, const RunFiles& files,
           const std::string& config_text, bool resume, const ValidationHook& on_validation = {});

}  // namespace seqgrad
