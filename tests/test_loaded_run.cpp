// Loaded run directories (apps/common.h): each LoadedRun owns the generator its model's dropout
// and recurrent layers point at, and stays where it was built, so an ensemble's members can be
// switched to training mode and run with dropout safely (under ASan this read a destroyed
// Generator when runs were moved into the ensemble's vector).
//
// To add a case: make a run with tiny_run, load it, and check what the loaded objects do.
#include <doctest/doctest.h>

#include <cstdio>
#include <type_traits>

#include "apps/common.h"
#include "python_runner.h"

namespace seqgrad {
namespace {

// Same data (an ensemble needs one vocabulary), different weights after a step at another rate.
std::string tiny_run(const testing::TempDir& dir, const std::string& name, const char* lr) {
  const std::string out = dir.file(name);
  const std::string cmd = std::string(SEQGRAD_CLI) +
                          " train --task reverse --min-len 3 --max-len 6 --train-size 100 "
                          "--valid-size 10 --test-size 0 --embed 8 --hidden 8 --layers 2 "
                          "--dropout 0.5 --steps 1 --threads 1 --lr " +
                          std::string(lr) + " --out " + out + " > /dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  return out;
}

// The loss of one small batch with the model in training mode (dropout on).
double train_mode_loss(app::LoadedRun& run, std::uint64_t seed) {
  run.gen.manual_seed(seed);
  run.model->train(true);
  const app::SourceBatch b =
      app::encode_sources({"abc", "de"}, run.source_vocab, Tokenization::chars);
  const Tensor tgt_in =
      Tensor::from_vector(std::vector<std::int64_t>{kBosId, 4, 5, kBosId, 6, 7}, {2, 3});
  const Tensor tgt_out =
      Tensor::from_vector(std::vector<std::int64_t>{4, 5, kEosId, 6, 7, kEosId}, {2, 3});
  Generator sampling(0);
  const double loss = run.model->loss(b.src, b.lengths, tgt_in, tgt_out, {}, sampling).loss.item();
  run.model->eval();
  return loss;
}

TEST_CASE("LoadedRun: an ensemble member runs with dropout on its own generator") {
  static_assert(!std::is_move_constructible_v<app::LoadedRun>);
  static_assert(!std::is_copy_constructible_v<app::LoadedRun>);
  testing::TempDir dir;
  const std::string a = tiny_run(dir, "a", "0.01");
  const std::string b = tiny_run(dir, "b", "0.1");
  app::LoadedEnsemble e = app::load_ensemble({a, b});
  REQUIRE(e.runs.size() == 2);
  for (auto& run : e.runs) {
    // Dropout draws from run->gen: the same seed gives the same loss, another seed another.
    const double first = train_mode_loss(*run, 7);
    CHECK(train_mode_loss(*run, 7) == first);
    CHECK(train_mode_loss(*run, 8) != first);
  }
  // A run loaded on its own (load_run's value, built in place) does the same.
  app::LoadedRun single = app::load_run(a);
  CHECK(train_mode_loss(single, 7) == train_mode_loss(*e.runs.front(), 7));
  CHECK(e.members().size() == 2);
}

}  // namespace
}  // namespace seqgrad
