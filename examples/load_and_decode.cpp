// Saves a trained model as a checkpoint, loads it into a fresh model and decodes with it. The
// checkpoint (safetensors) holds the parameters under their own names and the model's config as
// JSON, so the loader builds the right model before copying the weights in. Self-contained: it
// trains and saves the tiny model it then loads, in ./load_and_decode_run/.
// Exit status 1 unless the loaded model decodes exactly as the saved one did, and correctly.
#include <fmt/format.h>

#include <filesystem>

#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "seq2seq/batch.h"
#include "seq2seq/search.h"
#include "seq2seq/tasks.h"

using namespace seqgrad;

const std::string kDir = "load_and_decode_run";
const std::vector<std::string> kInputs = {"abc", "hgfe", "badcafe", "eggbead"};

// Greedy decoding of every input (beam_search takes a padded batch).
std::vector<std::string> decode(const Seq2Seq& model, const Vocab& src, const Vocab& tgt) {
  std::vector<std::string> out;
  for (const std::string& text : kInputs) {
    const std::vector<std::int64_t> ids = src.encode(tokenize(text, Tokenization::chars));
    const auto S = static_cast<std::int64_t>(ids.size());
    const auto hyps = beam_search(model, Tensor::from_vector(ids, {1, S}), {S});
    out.push_back(detokenize(tgt.decode(hyps[0].tokens), Tokenization::chars));
  }
  return out;
}

// Trains a small reverser and saves it: checkpoint plus both vocabularies.
std::vector<std::string> train_and_save() {
  const DataSplits data = make_task_splits("reverse", {.train = 4000}, 4, 3, 8, "abcdefgh");
  const Vocab src = build_source_vocab(data.train, Tokenization::chars);
  const Vocab tgt = build_target_vocab(data.train, Tokenization::chars);
  const Batcher train(data.train, src, tgt, {.batch_size = 32, .seed = 4});
  Generator gen(4);
  Seq2Seq model({.src_vocab = src.size(),
                 .tgt_vocab = tgt.size(),
                 .embed = 16,
                 .hidden = 32,
                 .dropout = 0.0,
                 .attention = "general"},
                gen);
  Adam opt(model.parameters(), {.lr = 1e-2});
  for (int epoch = 0; epoch < 2; ++epoch) {
    for (const Batch& b : train.train_batches(epoch)) {
      opt.zero_grad();
      model.loss(b.src, b.src_lengths, b.tgt_in, b.tgt_out, {}, gen).loss.backward();
      opt.step();
    }
  }
  std::filesystem::create_directories(kDir);
  TrainingState state;  // a model-only checkpoint: no optimizer, no step count needed
  state.config = model.config().to_json().dump();
  save_checkpoint(kDir + "/model.safetensors", model.named_parameters(), nullptr, state);
  src.save(kDir + "/source.vocab");
  tgt.save(kDir + "/target.vocab");
  model.eval();
  return decode(model, src, tgt);
}

int main() {
  const std::vector<std::string> before = train_and_save();

  // What a separate program would do: read the config first, build that model, load weights.
  const std::string path = kDir + "/model.safetensors";
  const TrainingState state = read_checkpoint_state(path);
  Generator unused(0);  // initialisation, overwritten by the checkpoint
  Seq2Seq model(ModelConfig::from_json(nlohmann::json::parse(state.config)), unused);
  load_checkpoint(path, model.named_parameters(), nullptr);
  model.eval();
  const Vocab src = Vocab::load(kDir + "/source.vocab");
  const Vocab tgt = Vocab::load(kDir + "/target.vocab");
  const std::vector<std::string> after = decode(model, src, tgt);

  int failures = 0;
  for (std::size_t i = 0; i < kInputs.size(); ++i) {
    const std::string want(kInputs[i].rbegin(), kInputs[i].rend());
    fmt::print("{:8} -> {:8} (before saving: {})\n", kInputs[i], after[i], before[i]);
    failures += after[i] != before[i] || after[i] != want;
  }
  if (failures > 0) {
    fmt::print(stderr, "FAILED: {} of {} decoded wrongly\n", failures, kInputs.size());
    return 1;
  }
  return 0;
}
