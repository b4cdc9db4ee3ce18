#include "apps/common.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "optim/checkpoint.h"
#include "seq2seq/g2p.h"
#include "seq2seq/tasks.h"

namespace seqgrad::app {

nlohmann::json DataSpec::to_json() const {
  return {{"task", task},
          {"train_path", train_path},
          {"valid_path", valid_path},
          {"test_path", test_path},
          {"cmudict", cmudict},
          {"source_tokens", source_tokens},
          {"target_tokens", target_tokens},
          {"min_len", min_len},
          {"max_len", max_len},
          {"train_size", train_size},
          {"valid_size", valid_size},
          {"test_size", test_size},
          {"seed", seed}};
}

DataSpec DataSpec::from_json(const nlohmann::json& j) {
  DataSpec d;
  try {
    d.task = j.at("task");
    d.train_path = j.at("train_path");
    d.valid_path = j.at("valid_path");
    d.test_path = j.at("test_path");
    d.cmudict = j.at("cmudict");
    d.source_tokens = j.at("source_tokens");
    d.target_tokens = j.at("target_tokens");
    d.min_len = j.at("min_len");
    d.max_len = j.at("max_len");
    d.train_size = j.at("train_size");
    d.valid_size = j.at("valid_size");
    d.test_size = j.at("test_size");
    d.seed = j.at("seed");
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("data settings: {}", e.what()));
  }
  return d;
}

nlohmann::json RunConfig::to_json() const {
  return {{"model", model.to_json()},
          {"data", data.to_json()},
          {"train", train.to_json()},
          {"batch_size", batch_size}};
}

RunConfig RunConfig::from_json(const nlohmann::json& j) {
  RunConfig c;
  try {
    c.model = ModelConfig::from_json(j.at("model"));
    c.data = DataSpec::from_json(j.at("data"));
    c.train = TrainOptions::from_json(j.at("train"));
    c.batch_size = j.at("batch_size");
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("run configuration: {}", e.what()));
  }
  return c;
}

DataSplits load_data(const DataSpec& spec) {
  if (spec.task == "g2p") {
    if (!std::filesystem::exists(spec.cmudict)) {
      throw RuntimeError(
          fmt::format("the CMU dictionary is not at '{}' (HINT: run "
                      "scripts/fetch-cmudict, or pass --cmudict PATH)",
                      spec.cmudict));
    }
    return split_g2p(read_cmudict(spec.cmudict));
  }
  if (!spec.task.empty()) {
    return make_task_splits(
        spec.task,
        {static_cast<std::size_t>(spec.train_size), static_cast<std::size_t>(spec.valid_size),
         static_cast<std::size_t>(spec.test_size)},
        spec.seed, static_cast<std::size_t>(spec.min_len), static_cast<std::size_t>(spec.max_len));
  }
  if (spec.train_path.empty() || spec.valid_path.empty()) {
    throw ValueError("give either --task NAME or both --train FILE and --valid FILE");
  }
  DataSplits s;
  s.train = read_tsv(spec.train_path);
  s.valid = read_tsv(spec.valid_path);
  if (!spec.test_path.empty()) s.test = read_tsv(spec.test_path);
  return s;
}

const std::vector<Example>& pick_split(const DataSplits& splits, const std::string& name) {
  if (name == "train") return splits.train;
  if (name == "valid") return splits.valid;
  if (name == "test") return splits.test;
  throw ValueError(fmt::format("unknown split '{}' (known: train, valid, test)", name));
}

RunConfig load_run_config(const std::string& dir) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(dir)) {
    throw RuntimeError(
        fmt::format("model directory '{}' does not exist (HINT: train one with "
                    "`seqgrad train --out {}`)",
                    dir, dir));
  }
  const std::string path = RunFiles{dir}.config();
  std::ifstream in(path);
  if (!in) {
    throw RuntimeError(
        fmt::format("'{}' is not a model directory: config.json is missing (it is "
                    "written by `seqgrad train --out DIR`)",
                    dir));
  }
  nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (j.is_discarded()) throw RuntimeError(fmt::format("{}: not valid JSON", path));
  try {
    return RunConfig::from_json(j);
  } catch (const ValueError& e) {
    throw RuntimeError(fmt::format("{}: {}", path, e.what()));
  }
}

LoadedRun load_run(const std::string& dir) {
  namespace fs = std::filesystem;
  LoadedRun run;
  run.config = load_run_config(dir);
  const RunFiles files{dir};
  for (const std::string& f :
       {dir + "/source_vocab.json", dir + "/target_vocab.json", files.best()}) {
    if (!fs::exists(f)) {
      throw RuntimeError(
          fmt::format("'{}' is not a complete model directory: {} is missing "
                      "(it is written by `seqgrad train --out DIR`)",
                      dir, fs::path(f).filename().string()));
    }
  }
  run.source_vocab = Vocab::load(dir + "/source_vocab.json");
  run.target_vocab = Vocab::load(dir + "/target_vocab.json");
  if (run.source_vocab.size() != run.config.model.src_vocab ||
      run.target_vocab.size() != run.config.model.tgt_vocab) {
    throw RuntimeError(
        fmt::format("'{}': the vocabularies ({} and {} tokens) do not fit the model "
                    "configuration ({} and {})",
                    dir, run.source_vocab.size(), run.target_vocab.size(),
                    run.config.model.src_vocab, run.config.model.tgt_vocab));
  }
  run.model = std::make_unique<Seq2Seq>(run.config.model, run.gen);
  load_checkpoint(files.best(), run.model->named_parameters(), nullptr);
  run.model->eval();
  return run;
}

LoadedEnsemble load_ensemble(const std::vector<std::string>& dirs) {
  if (dirs.empty()) throw ValueError("an ensemble needs at least one model directory");
  LoadedEnsemble e;
  for (const std::string& dir : dirs) e.runs.push_back(load_run(dir));
  const LoadedRun& first = e.runs.front();
  for (std::size_t i = 1; i < e.runs.size(); ++i) {
    const LoadedRun& other = e.runs[i];
    if (other.source_vocab.tokens() != first.source_vocab.tokens() ||
        other.target_vocab.tokens() != first.target_vocab.tokens() ||
        other.config.data.source_tokens != first.config.data.source_tokens ||
        other.config.data.target_tokens != first.config.data.target_tokens) {
      throw RuntimeError(
          fmt::format("'{}' and '{}' cannot form an ensemble: their vocabularies or "
                      "tokenizations differ (train them on the same data)",
                      dirs.front(), dirs[i]));
    }
  }
  return e;
}

std::vector<const Seq2Seq*> LoadedEnsemble::members() const {
  std::vector<const Seq2Seq*> m;
  for (const LoadedRun& r : runs) m.push_back(r.model.get());
  return m;
}

SourceBatch encode_sources(const std::vector<std::string>& lines, const Vocab& vocab,
                           Tokenization mode) {
  SourceBatch b;
  std::set<std::string> warned;
  std::int64_t longest = 1;
  std::vector<std::vector<std::int64_t>> ids;
  for (const auto& line : lines) {
    b.tokens.push_back(tokenize(line, mode));
    for (const auto& t : b.tokens.back()) {
      if (!vocab.contains(t) && warned.insert(t).second) {
        fmt::print(stderr,
                   "seqgrad: warning: '{}' is not in the source vocabulary; read as <unk>\n", t);
      }
    }
    ids.push_back(vocab.encode(b.tokens.back()));
    if (ids.back().empty()) ids.back().push_back(kUnkId);  // an empty line still decodes
    longest = std::max<std::int64_t>(longest, static_cast<std::int64_t>(ids.back().size()));
  }
  const auto B = static_cast<std::int64_t>(lines.size());
  b.src = Tensor::zeros({B, longest}, DType::i64);
  auto* p = b.src.data<std::int64_t>();
  for (std::int64_t i = 0; i < B; ++i) {
    const auto& row = ids[static_cast<std::size_t>(i)];
    std::copy(row.begin(), row.end(), p + i * longest);
    b.lengths.push_back(static_cast<std::int64_t>(row.size()));
  }
  return b;
}

int set_threads(int threads) {
  if (threads < 0) throw ValueError(fmt::format("--threads {}: must be >= 0", threads));
  // The workers split each batch; every BLAS call then runs on its worker's thread alone.
  openblas_set_num_threads(1);
  if (threads > 0) return threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace seqgrad::app
