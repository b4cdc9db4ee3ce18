// The page `seqgrad explain` writes: one example, teacher-forced, as one self-contained XHTML
// document (inline SVG, no scripts, no network): per-step losses, the attention weights, the
// gradients with respect to the weights and the scores with the softmax backward written out,
// and the gradient reaching each encoder state (beside a second model's, with --compare).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "seq2seq/explain.h"

namespace seqgrad::app {

struct ExplainedModel {
  std::string dir;          // the run directory
  std::string description;  // e.g. "lstm 1x64, general attention (luong)"
  Explanation x;
  std::vector<std::string> predicted;  // x.predicted as tokens
};

struct ExplainPage {
  std::string source_text, target_text;
  bool target_given = false;                // else the target is the model's own greedy output
  std::vector<std::string> source, target;  // tokens; target ends with </s>
  ExplainedModel model;
  std::optional<ExplainedModel> compare;
};

std::string explain_page(const ExplainPage& page);

}  // namespace seqgrad::app
