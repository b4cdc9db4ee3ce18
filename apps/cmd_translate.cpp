// seqgrad translate (stdin to stdout) and seqgrad attention (an SVG heatmap of one input). Each
// input decodes as it would alone: its length cap is its own. A line that cannot be decoded
// (invalid UTF-8, too long) is reported on stderr by number and gives an empty output line, so
// the output stays aligned with the input; the run goes on and exits 1 at the end.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <fstream>
#include <iostream>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/heatmap.h"
#include "seq2seq/explain.h"
#include "seq2seq/parallel.h"

namespace seqgrad::app {

namespace {

struct TranslateArgs {
  std::vector<std::string> models;  // translate: several make an ensemble
  std::string model, input, svg;
  std::int64_t beam = 5;
  std::int64_t max_len = 0;  // 0: per source, 2 x its length + 10
  double length_penalty = 1.0;
  bool show_attention = false;
  bool json = false;
  int threads = 0;
};

// One line of standard input: its number (from 1), its text, and why it cannot be decoded
// ("" when it can).
struct InputLine {
  std::size_t number = 0;
  std::string text;
  std::string problem;
};

std::vector<std::string> with_end(std::vector<std::string> tokens) {
  tokens.push_back("</s>");
  return tokens;
}

std::int64_t cap_of(const TranslateArgs& a, std::int64_t source_length) {
  return a.max_len > 0 ? a.max_len : max_len_for(source_length);
}

void warn_capped(std::string_view where, std::int64_t cap) {
  fmt::print(stderr,
             "seqgrad: warning: {}: the output reached the cap of {} tokens without </s> and may "
             "be cut short (HINT: --max-len N raises the cap)\n",
             where, cap);
}

// Prints one input's result: a line of text (and the attention matrix with --show-attention),
// or one JSON record. An input that could not be decoded gives an empty line or a record with
// "error", so the output stays aligned with the input.
void print_result(const InputLine& in, const Hypothesis* h, const SourceBatch& b, std::size_t row,
                  const LoadedRun& run, const TranslateArgs& a) {
  const Tokenization tgt_mode = parse_tokenization(run.config.data.target_tokens);
  if (h == nullptr) {
    fmt::print(stderr, "seqgrad: error: stdin:{}: {}; its output is left empty\n", in.number,
               in.problem);
    fmt::print("{}\n", a.json ? nlohmann::json{{"line", in.number}, {"error", in.problem}}.dump()
                              : std::string());
    return;
  }
  const auto tokens = run.target_vocab.decode(h->tokens);
  const std::int64_t cap = cap_of(a, b.lengths[row]);
  if (h->capped) warn_capped(fmt::format("stdin:{}", in.number), cap);
  if (a.json) {
    nlohmann::json j{{"line", in.number},
                     {"source", in.text},
                     {"output", detokenize(tokens, tgt_mode)},
                     {"score", h->score},
                     {"capped", h->capped}};
    if (a.show_attention && !h->attention.empty()) j["attention"] = h->attention;
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("{}\n", detokenize(tokens, tgt_mode));
  if (a.show_attention && !h->attention.empty()) {
    fmt::print("{}\n", heatmap_text(b.tokens[row], with_end(tokens), h->attention));
  }
}

// Decodes the lines that can be decoded, then prints every line's result in input order.
void translate_lines(const LoadedEnsemble& ensemble, const std::vector<InputLine>& lines,
                     const TranslateArgs& a, int workers) {
  const LoadedRun& run = ensemble.first();
  std::vector<std::string> good;
  for (const InputLine& in : lines) {
    if (in.problem.empty()) good.push_back(in.text);
  }
  SourceBatch b;
  std::vector<Hypothesis> hyps;
  if (!good.empty()) {
    b = encode_sources(good, run.source_vocab, parse_tokenization(run.config.data.source_tokens));
    hyps = parallel_beam_search(
        ensemble.members(), b.src, b.lengths,
        {.beam = a.beam, .max_len = a.max_len, .length_penalty = a.length_penalty}, workers);
  }
  std::size_t row = 0;
  for (const InputLine& in : lines) {
    const bool ok = in.problem.empty();
    print_result(in, ok ? &hyps[row] : nullptr, b, row, run, a);
    if (ok) ++row;
  }
  std::fflush(stdout);
}

void check_search_options(const TranslateArgs& a) {
  if (a.beam < 1) throw ValueError(fmt::format("--beam {}: must be at least 1", a.beam));
  if (a.max_len < 0) {
    throw ValueError(
        fmt::format("--max-len {}: must be >= 0 (0: 2 x the source's length + 10)", a.max_len));
  }
  check_length_penalty(a.length_penalty);
}

void run_translate(const TranslateArgs& a) {
  check_search_options(a);
  const int workers = set_threads(a.threads);
  const LoadedEnsemble ensemble = load_ensemble(a.models);
  const LoadedRun& run = ensemble.first();
  if (a.show_attention && run.config.model.attention == "none") {
    fmt::print(stderr, "seqgrad: warning: this model has no attention to show\n");
  }
  const Tokenization src_mode = parse_tokenization(run.config.data.source_tokens);
  std::vector<InputLine> lines;
  std::vector<std::size_t> failed;
  std::string text;
  std::size_t number = 0;
  while (std::getline(std::cin, text)) {
    if (text.ends_with('\r')) text.pop_back();
    InputLine& in = lines.emplace_back(InputLine{++number, std::move(text), ""});
    in.problem = source_problem(in.text, src_mode);
    if (!in.problem.empty()) failed.push_back(in.number);
    if (lines.size() == 64) {
      translate_lines(ensemble, lines, a, workers);
      lines.clear();
    }
  }
  if (!lines.empty()) translate_lines(ensemble, lines, a, workers);
  if (!failed.empty()) {
    const bool one = failed.size() == 1;
    throw RuntimeError(
        fmt::format("{} of {} input lines could not be translated (line{} {}); {} left empty",
                    failed.size(), number, one ? "" : "s", fmt::join(failed, ", "),
                    one ? "its output is" : "their outputs are"));
  }
}

// A Transformer's attention for its own output, teacher-forced (the same weights as its cached
// decoding), a panel per layer and head.
std::string layers_svg(Seq2Seq& model, const SourceBatch& b, const std::vector<std::int64_t>& ids,
                       const std::vector<std::string>& tokens, const std::string& input) {
  std::vector<std::int64_t> target = ids;
  target.push_back(kEosId);
  const std::vector<std::int64_t> all = b.src.to_vector<std::int64_t>();
  const std::vector<std::int64_t> source(all.begin(), all.begin() + b.lengths[0]);
  const Explanation x = explain(model, source, target);
  std::vector<std::string> columns = b.tokens[0];
  const std::vector<std::string> output = with_end(tokens);
  std::string what = "cross-attention", axis = "source position j";
  if (x.target_keys > 0) {
    columns.push_back("<s>");
    columns.insert(columns.end(), output.begin(), output.end() - 1);
    what = "self-attention of the output positions";
    axis = "key position j: source, then <s> y";
  }
  return heatmap_layers_svg(columns, output, x.weights, static_cast<std::size_t>(x.heads),
                            fmt::format("{} a[i,j] by layer (rows) and head (columns): {} -> {}",
                                        what, input, fmt::join(tokens, " ")),
                            axis);
}

void run_attention(const TranslateArgs& a) {
  check_search_options(a);
  const LoadedRun run = load_run(a.model);
  if (run.config.model.arch == "rnn" && run.config.model.attention == "none") {
    throw ValueError(
        fmt::format("the model in '{}' was trained without attention (--attention "
                    "none): there is no heatmap to draw",
                    a.model));
  }
  const Tokenization src_mode = parse_tokenization(run.config.data.source_tokens);
  const Tokenization tgt_mode = parse_tokenization(run.config.data.target_tokens);
  if (const std::string problem = source_problem(a.input, src_mode); !problem.empty()) {
    throw ValueError(fmt::format("--input: {}", problem));
  }
  const SourceBatch b = encode_sources({a.input}, run.source_vocab, src_mode);
  const Hypothesis h =
      beam_search(*run.model, b.src, b.lengths,
                  {.beam = a.beam, .max_len = a.max_len, .length_penalty = a.length_penalty})[0];
  if (h.capped) warn_capped("--input", cap_of(a, b.lengths[0]));
  const auto tokens = run.target_vocab.decode(h.tokens);
  const std::string svg = run.model->arch() == Arch::rnn
                              ? heatmap_svg(b.tokens[0], with_end(tokens), h.attention)
                              : layers_svg(*run.model, b, h.tokens, tokens, a.input);
  std::ofstream out(a.svg);
  if (!out) throw RuntimeError(fmt::format("cannot write '{}'", a.svg));
  out << svg;
  out.close();
  if (!out) throw RuntimeError(fmt::format("cannot write '{}'", a.svg));
  fmt::print("{} -> {}\nheatmap written to {}\n", a.input, detokenize(tokens, tgt_mode), a.svg);
}

void add_search_options(CLI::App* cmd, TranslateArgs& a) {
  cmd->add_option("--beam", a.beam)->capture_default_str();
  cmd->add_option("--max-len", a.max_len,
                  "most tokens an output may have (0: 2 x its source's length + 10)")
      ->capture_default_str();
  cmd->add_option("--length-penalty", a.length_penalty,
                  "alpha: rank finished outputs by log-probability / length^alpha (0: none)")
      ->capture_default_str();
}

}  // namespace

void add_translate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("translate", "read inputs from stdin, write outputs to stdout");
  auto a = std::make_shared<TranslateArgs>();
  cmd->add_option("--model", a->models,
                  "run directory written by train; repeat it to decode with an ensemble "
                  "(attention shown is the first model's)")
      ->required();
  add_search_options(cmd, *a);
  cmd->add_flag("--show-attention", a->show_attention, "print each attention matrix as text");
  cmd->add_flag("--json", a->json,
                "one JSON object a line: line, source, output, score, capped (and attention); "
                "an input that cannot be decoded gives line and error");
  cmd->add_option("--threads", a->threads,
                  "worker threads, each decoding a share of every batch (0: one per core)");
  cmd->callback([a] { run_translate(*a); });
}

void add_attention_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("attention", "draw the attention weights for one input as SVG");
  auto a = std::make_shared<TranslateArgs>();
  cmd->add_option("--model", a->model, "run directory written by train")->required();
  cmd->add_option("--input", a->input, "the source text")->required();
  cmd->add_option("--svg", a->svg, "output file")->required();
  add_search_options(cmd, *a);
  cmd->callback([a] { run_attention(*a); });
}

}  // namespace seqgrad::app
