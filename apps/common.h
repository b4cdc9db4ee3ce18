// Shared pieces of the seqgrad command: the run configuration (model, data, training), loading
// data for it, and reading a model directory back.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "seq2seq/batch.h"
#include "seq2seq/data.h"
#include "seq2seq/model.h"
#include "seq2seq/trainer.h"
#include "seq2seq/vocab.h"

namespace seqgrad::app {

// Where the examples come from: a generated task, CMUdict G2P, or TSV files.
struct DataSpec {
  std::string task;  // reverse, copy, sort, dates, g2p; empty for TSV files
  std::string train_path, valid_path, test_path;
  std::string cmudict = "data/cmudict-en-us.dict";
  std::string source_tokens = "chars", target_tokens = "chars";
  // Which references of a training example are trained on: "first", or "all" (one training
  // pair per reference, as for CMUdict's words with several pronunciations).
  std::string train_targets = "first";
  std::int64_t min_len = 3, max_len = 12;
  std::int64_t train_size = 20000, valid_size = 500, test_size = 1000;
  std::uint64_t seed = 1;

  nlohmann::json to_json() const;
  static DataSpec from_json(const nlohmann::json& j);
};

struct RunConfig {
  ModelConfig model;
  DataSpec data;
  TrainOptions train;
  std::int64_t batch_size = 64;
  nlohmann::json to_json() const;
  static RunConfig from_json(const nlohmann::json& j);
};

// Reads the splits a DataSpec names; DataError / RuntimeError with the file on failure, and
// for a train or valid split with no examples (a test split may be empty: it is then skipped)
// or with a source or target longer than kMaxSequenceTokens. ValueError naming the option for
// sizes or lengths out of range.
DataSplits load_data(const DataSpec& spec);
// One split by name (train, valid, test).
const std::vector<Example>& pick_split(const DataSplits& splits, const std::string& name);

// A trained model directory, loaded. The model's dropout and recurrent layers keep a pointer to
// `gen`, so a LoadedRun is never copied or moved: it stays where it was built (load_run's result
// initializes a variable in place; an ensemble holds its runs by unique_ptr). `gen` is declared
// before `model`, so it outlives it.
struct LoadedRun {
  // Reads DIR/config.json, the vocabularies and DIR/best.safetensors, with errors that say
  // what is missing or malformed and how to make it.
  explicit LoadedRun(const std::string& dir);
  LoadedRun(const LoadedRun&) = delete;
  LoadedRun& operator=(const LoadedRun&) = delete;
  LoadedRun(LoadedRun&&) = delete;
  LoadedRun& operator=(LoadedRun&&) = delete;

  RunConfig config;
  Vocab source_vocab, target_vocab;
  Generator gen{0};
  std::unique_ptr<Seq2Seq> model;
};
// Reads DIR/config.json; RuntimeError naming the file when it is missing, empty, cut short or
// holds the wrong JSON types.
RunConfig load_run_config(const std::string& dir);
// LoadedRun(dir), as a value (C++17 guaranteed elision: no move).
LoadedRun load_run(const std::string& dir);
// Several run directories as an ensemble: RuntimeError unless they share vocabularies and
// tokenizations. members() gives the models for beam_search / evaluate.
struct LoadedEnsemble {
  std::vector<std::unique_ptr<LoadedRun>> runs;  // the first supplies configuration, vocabularies
  const LoadedRun& first() const { return *runs.front(); }
  std::vector<const Seq2Seq*> members() const;
};
LoadedEnsemble load_ensemble(const std::vector<std::string>& dirs);

// Source lines as a padded batch; tokens not in the vocabulary become <unk>, and each distinct
// one is reported once on stderr.
struct SourceBatch {
  Tensor src;  // [B,S]
  std::vector<std::int64_t> lengths;
  std::vector<std::vector<std::string>> tokens;
};
SourceBatch encode_sources(const std::vector<std::string>& lines, const Vocab& vocab,
                           Tokenization mode);
// Why a line of user input cannot be decoded (invalid UTF-8, more than kMaxSequenceTokens
// tokens), or "" when it can.
std::string source_problem(std::string_view line, Tokenization mode);

// --threads: how many data-parallel worker threads to use (0: one per core); BLAS runs
// single-threaded inside each. Returns the worker count.
int set_threads(int threads);

// --length-penalty (eval, translate): ValueError naming the option unless finite and >= 0.
void check_length_penalty(double alpha);

// One line on a model: "lstm 2x256 (embed 128), attention concat (luong)" or "transformer 3+3
// layers of 256, 4 heads, feed-forward 1024, post-norm, relu".
std::string describe_model(const ModelConfig& m);

}  // namespace seqgrad::app
