// A task's recipe: the settings that go with a task unless the user chose otherwise, e.g. the
// G2P hyperparameters behind the README's figures. The command line applies a recipe after
// parsing, to every setting the user did not give.
// Shape legend: E embedding, H hidden.
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "seq2seq/model.h"
#include "seq2seq/trainer.h"

namespace seqgrad {

// The settings a recipe may change, by reference.
struct RecipeTarget {
  ModelConfig& model;
  TrainOptions& train;
  std::string& target_tokens;  // chars | words
  std::int64_t& max_len;       // generated tasks: longest source
};

// Whether the user chose a setting, by its config.json key ("hidden", "select_on",
// "target_tokens", ...).
using Chosen = std::function<bool(std::string_view key)>;

// Applies `task`'s recipe to the settings not chosen; tasks without one are left alone.
void apply_recipe(const std::string& task, const Chosen& chosen, const RecipeTarget& target);

}  // namespace seqgrad
