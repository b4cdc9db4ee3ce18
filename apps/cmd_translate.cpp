// seqgrad translate (stdin to stdout) and seqgrad attention (an SVG heatmap of one input).
#include <fmt/format.h>

#include <fstream>
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/heatmap.h"

namespace seqgrad::app {

namespace {

struct TranslateArgs {
  std::vector<std::string> models;  // translate: several make an ensemble
  std::string model, input, svg;
  std::int64_t beam = 5;
  bool show_attention = false;
};

std::vector<std::string> with_end(std::vector<std::string> tokens) {
  tokens.push_back("</s>");
  return tokens;
}

void translate_lines(const LoadedEnsemble& ensemble, const std::vector<std::string>& lines,
                     const TranslateArgs& a) {
  const LoadedRun& run = ensemble.runs.front();
  const Tokenization src_mode = parse_tokenization(run.config.data.source_tokens);
  const Tokenization tgt_mode = parse_tokenization(run.config.data.target_tokens);
  const SourceBatch b = encode_sources(lines, run.source_vocab, src_mode);
  std::int64_t longest = 1;
  for (auto len : b.lengths) longest = std::max(longest, len);
  const auto hyps = beam_search(ensemble.members(), b.src, b.lengths,
                                {.beam = a.beam, .max_len = 2 * longest + 10});
  for (std::size_t i = 0; i < hyps.size(); ++i) {
    const auto tokens = run.target_vocab.decode(hyps[i].tokens);
    fmt::print("{}\n", detokenize(tokens, tgt_mode));
    if (a.show_attention && !hyps[i].attention.empty()) {
      fmt::print("{}\n", heatmap_text(b.tokens[i], with_end(tokens), hyps[i].attention));
    }
  }
  std::fflush(stdout);
}

void run_translate(const TranslateArgs& a) {
  const LoadedEnsemble ensemble = load_ensemble(a.models);
  if (a.show_attention && ensemble.runs.front().config.model.attention == "none") {
    fmt::print(stderr, "seqgrad: warning: this model has no attention to show\n");
  }
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(std::cin, line)) {
    lines.push_back(line);
    if (lines.size() == 64) {
      translate_lines(ensemble, lines, a);
      lines.clear();
    }
  }
  if (!lines.empty()) translate_lines(ensemble, lines, a);
}

void run_attention(const TranslateArgs& a) {
  const LoadedRun run = load_run(a.model);
  if (run.config.model.attention == "none") {
    throw ValueError(
        fmt::format("the model in '{}' was trained without attention (--attention "
                    "none): there is no heatmap to draw",
                    a.model));
  }
  const Tokenization src_mode = parse_tokenization(run.config.data.source_tokens);
  const Tokenization tgt_mode = parse_tokenization(run.config.data.target_tokens);
  const SourceBatch b = encode_sources({a.input}, run.source_vocab, src_mode);
  const Hypothesis h = beam_search(*run.model, b.src, b.lengths,
                                   {.beam = a.beam, .max_len = 2 * b.lengths[0] + 10})[0];
  const auto tokens = run.target_vocab.decode(h.tokens);
  std::ofstream out(a.svg);
  if (!out) throw RuntimeError(fmt::format("cannot write '{}'", a.svg));
  out << heatmap_svg(b.tokens[0], with_end(tokens), h.attention);
  fmt::print("{} -> {}\nheatmap written to {}\n", a.input, detokenize(tokens, tgt_mode), a.svg);
}

}  // namespace

void add_translate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("translate", "read inputs from stdin, write outputs to stdout");
  auto a = std::make_shared<TranslateArgs>();
  cmd->add_option("--model", a->models,
                  "run directory written by train; repeat it to decode with an ensemble "
                  "(attention shown is the first model's)")
      ->required();
  cmd->add_option("--beam", a->beam)->capture_default_str();
  cmd->add_flag("--show-attention", a->show_attention, "print each attention matrix as text");
  cmd->callback([a] { run_translate(*a); });
}

void add_attention_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("attention", "draw the attention weights for one input as SVG");
  auto a = std::make_shared<TranslateArgs>();
  cmd->add_option("--model", a->model, "run directory written by train")->required();
  cmd->add_option("--input", a->input, "the source text")->required();
  cmd->add_option("--svg", a->svg, "output file")->required();
  cmd->add_option("--beam", a->beam)->capture_default_str();
  cmd->callback([a] { run_attention(*a); });
}

}  // namespace seqgrad::app
