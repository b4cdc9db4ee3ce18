#include "apps/common.h"

#include <cblas.h>
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string_view>
#include <thread>
#include <type_traits>

#include "optim/checkpoint.h"
#include "seq2seq/g2p.h"
#include "seq2seq/json_fields.h"
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
          {"train_targets", train_targets},
          {"min_len", min_len},
          {"max_len", max_len},
          {"train_size", train_size},
          {"valid_size", valid_size},
          {"test_size", test_size},
          {"seed", seed}};
}

namespace {

// A JSON value's kind as a message says it.
std::string json_kind(const nlohmann::json& v) {
  std::string text = v.dump();
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return fmt::format("{} {}", v.type_name(), text);
}

// j[key] of section `where` as a T, or ValueError "<where>.<key>: ..." naming what is wrong.
template <class T>
T field(const nlohmann::json& j, std::string_view where, const char* key) {
  const std::string name = where.empty() ? key : fmt::format("{}.{}", where, key);
  const auto it = j.find(key);
  if (it == j.end()) throw ValueError(fmt::format("{} is missing", name));
  bool ok = false;
  if constexpr (std::is_same_v<T, std::string>) {
    ok = it->is_string();
  } else if constexpr (std::is_unsigned_v<T>) {
    ok = it->is_number_unsigned();
  } else {
    ok = it->is_number_integer();
  }
  if (!ok) {
    const char* want = std::is_same_v<T, std::string> ? "a string"
                       : std::is_unsigned_v<T>        ? "an integer >= 0"
                                                      : "an integer";
    throw ValueError(fmt::format("{} must be {}, not {}", name, want, json_kind(*it)));
  }
  // A signed field given an unsigned literal over INT64_MAX would wrap: json_integer refuses it.
  if constexpr (std::is_same_v<T, std::int64_t>) return json_integer(*it, name);
  return it->get<T>();
}

const nlohmann::json& section(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  if (it == j.end()) throw ValueError(fmt::format("\"{}\" is missing", key));
  if (!it->is_object()) {
    throw ValueError(fmt::format("\"{}\" must be an object, not {}", key, json_kind(*it)));
  }
  return *it;
}

}  // namespace

DataSpec DataSpec::from_json(const nlohmann::json& j) {
  if (!j.is_object()) throw ValueError(fmt::format("data must be an object, not {}", json_kind(j)));
  DataSpec d;
  d.task = field<std::string>(j, "data", "task");
  d.train_path = field<std::string>(j, "data", "train_path");
  d.valid_path = field<std::string>(j, "data", "valid_path");
  d.test_path = field<std::string>(j, "data", "test_path");
  d.cmudict = field<std::string>(j, "data", "cmudict");
  d.source_tokens = field<std::string>(j, "data", "source_tokens");
  d.target_tokens = field<std::string>(j, "data", "target_tokens");
  // Absent in run directories written before it existed.
  d.train_targets = j.contains("train_targets") ? field<std::string>(j, "data", "train_targets")
                                                : std::string("first");
  d.min_len = field<std::int64_t>(j, "data", "min_len");
  d.max_len = field<std::int64_t>(j, "data", "max_len");
  d.train_size = field<std::int64_t>(j, "data", "train_size");
  d.valid_size = field<std::int64_t>(j, "data", "valid_size");
  d.test_size = field<std::int64_t>(j, "data", "test_size");
  d.seed = field<std::uint64_t>(j, "data", "seed");
  return d;
}

nlohmann::json RunConfig::to_json() const {
  return {{"model", model.to_json()},
          {"data", data.to_json()},
          {"train", train.to_json()},
          {"batch_size", batch_size}};
}

RunConfig RunConfig::from_json(const nlohmann::json& j) {
  if (!j.is_object()) {
    throw ValueError(fmt::format("a run configuration is a JSON object, not {}", json_kind(j)));
  }
  RunConfig c;
  try {
    c.model = ModelConfig::from_json(section(j, "model"));
    c.data = DataSpec::from_json(section(j, "data"));
    c.train = TrainOptions::from_json(section(j, "train"));
    c.batch_size = field<std::int64_t>(j, "", "batch_size");
  } catch (const nlohmann::json::exception& e) {
    throw ValueError(fmt::format("run configuration: {}", e.what()));
  }
  if (c.batch_size < 1) {
    throw ValueError(fmt::format("batch_size must be at least 1, not {}", c.batch_size));
  }
  return c;
}

namespace {

// The generated tasks' sizes and lengths, checked before anything is drawn (a negative size
// would become a huge unsigned count).
void check_task_spec(const DataSpec& spec) {
  const auto at_least = [](const char* option, std::int64_t value, std::int64_t low) {
    if (value < low) {
      throw ValueError(fmt::format("{} {}: must be at least {}", option, value, low));
    }
  };
  at_least("--train-size", spec.train_size, 1);
  at_least("--valid-size", spec.valid_size, 1);
  at_least("--test-size", spec.test_size, 0);
  if (spec.task == "dates") return;  // the dates task has its own lengths
  at_least("--min-len", spec.min_len, 1);
  at_least("--max-len", spec.max_len, spec.min_len);
  const auto limit = static_cast<std::int64_t>(kMaxSequenceTokens);
  if (spec.max_len > limit) {
    throw ValueError(
        fmt::format("--max-len {}: longer than the {} tokens a model takes", spec.max_len, limit));
  }
}

DataSplits read_splits(const DataSpec& spec) {
  if (spec.task == "g2p") {
    if (!std::filesystem::exists(spec.cmudict)) {
      throw RuntimeError(
          fmt::format("the CMU dictionary is not at '{}' (HINT: run "
                      "scripts/fetch-cmudict, or pass --cmudict PATH)",
                      spec.cmudict));
    }
    const std::vector<Example> words = read_cmudict(spec.cmudict);
    if (words.empty()) {
      throw DataError(fmt::format("{}: no words (every line is blank or a comment)", spec.cmudict));
    }
    return split_g2p(words);
  }
  if (!spec.task.empty()) {
    check_task_spec(spec);
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
  s.train = read_tsv_nonempty(spec.train_path);
  s.valid = read_tsv_nonempty(spec.valid_path);
  if (!spec.test_path.empty()) s.test = read_tsv_nonempty(spec.test_path);
  return s;
}

// What a split is called in messages: its file, or the task and the split.
std::string split_label(const DataSpec& spec, const std::string& split) {
  if (spec.task == "g2p") return fmt::format("{} ({} split of G2P)", spec.cmudict, split);
  if (!spec.task.empty()) return fmt::format("task {}, {} split", spec.task, split);
  return split == "train" ? spec.train_path : split == "valid" ? spec.valid_path : spec.test_path;
}

}  // namespace

DataSplits load_data(const DataSpec& spec) {
  const Tokenization src = parse_tokenization(spec.source_tokens);
  const Tokenization tgt = parse_tokenization(spec.target_tokens);
  DataSplits s = read_splits(spec);
  check_examples(s.train, split_label(spec, "train"), src, tgt);
  check_examples(s.valid, split_label(spec, "valid"), src, tgt);
  if (!s.test.empty()) check_examples(s.test, split_label(spec, "test"), src, tgt);
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
  if (!fs::exists(path)) {
    throw RuntimeError(
        fmt::format("'{}' is not a model directory: config.json is missing (it is "
                    "written by `seqgrad train --out DIR`)",
                    dir));
  }
  std::string text;
  try {
    text = read_file(path, "load_run_config");
  } catch (const DataError& e) {
    throw RuntimeError(e.what());
  }
  if (text.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw RuntimeError(fmt::format("{}: the file is empty", path));
  }
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (j.is_discarded()) throw RuntimeError(fmt::format("{}: not valid JSON (cut short?)", path));
  try {
    return RunConfig::from_json(j);
  } catch (const ValueError& e) {
    throw RuntimeError(fmt::format("{}: {}", path, e.what()));
  }
}

LoadedRun::LoadedRun(const std::string& dir) : config(load_run_config(dir)) {
  namespace fs = std::filesystem;
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
  source_vocab = Vocab::load(dir + "/source_vocab.json");
  target_vocab = Vocab::load(dir + "/target_vocab.json");
  if (source_vocab.size() != config.model.src_vocab ||
      target_vocab.size() != config.model.tgt_vocab) {
    throw RuntimeError(
        fmt::format("'{}': the vocabularies ({} and {} tokens) do not fit the model "
                    "configuration ({} and {})",
                    dir, source_vocab.size(), target_vocab.size(), config.model.src_vocab,
                    config.model.tgt_vocab));
  }
  model = std::make_unique<Seq2Seq>(config.model, gen);
  load_checkpoint(files.best(), model->named_parameters(), nullptr);
  model->eval();
}

LoadedRun load_run(const std::string& dir) {
  return LoadedRun(dir);
}

LoadedEnsemble load_ensemble(const std::vector<std::string>& dirs) {
  if (dirs.empty()) throw ValueError("an ensemble needs at least one model directory");
  LoadedEnsemble e;
  for (const std::string& dir : dirs) e.runs.push_back(std::make_unique<LoadedRun>(dir));
  const LoadedRun& first = e.first();
  for (std::size_t i = 1; i < e.runs.size(); ++i) {
    const LoadedRun& other = *e.runs[i];
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
  for (const auto& r : runs) m.push_back(r->model.get());
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

std::string source_problem(std::string_view line, Tokenization mode) {
  if (const std::size_t bad = find_invalid_utf8(line); bad != std::string_view::npos) {
    return fmt::format("invalid UTF-8 at byte {} of the line", bad + 1);
  }
  const std::size_t n = tokenize(line, mode).size();
  if (n > kMaxSequenceTokens) {
    return fmt::format("{} tokens ({} tokenization), more than the {} a model takes", n,
                       tokenization_name(mode), kMaxSequenceTokens);
  }
  return "";
}

void check_length_penalty(double alpha) {
  if (!std::isfinite(alpha) || alpha < 0) {
    throw ValueError(
        fmt::format("--length-penalty {}: must be finite and >= 0 (0: no penalty)", alpha));
  }
}

int set_threads(int threads) {
  if (threads < 0) throw ValueError(fmt::format("--threads {}: must be >= 0", threads));
  // The workers split each batch; every BLAS call then runs on its worker's thread alone.
  openblas_set_num_threads(1);
  if (threads > 0) return threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

// "lstm 2x256 (embed 128), attention concat (luong)" or "transformer 3+3 layers of 256, 4 heads,
// feed-forward 1024, post-norm, relu"
std::string describe_model(const ModelConfig& m) {
  if (m.arch == "rnn") {
    return fmt::format("{} {}x{} (embed {}), attention {} ({})", m.cell, m.layers, m.hidden,
                       m.embed, m.attention, m.style);
  }
  return fmt::format("{} {} layers of {}, {} heads, feed-forward {}, {}, {}{}", m.arch,
                     m.arch == "transformer" ? fmt::format("{}+{}", m.layers, m.layers)
                                             : fmt::format("{}", m.layers),
                     m.hidden, m.heads, m.ff > 0 ? m.ff : 4 * m.hidden,
                     m.norm_first ? "pre-norm" : "post-norm", m.activation,
                     m.tie_embeddings ? ", tied embeddings" : "");
}

}  // namespace seqgrad::app
