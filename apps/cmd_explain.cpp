// seqgrad explain (one example's attention and gradients as an XHTML page) and seqgrad graph
// (the autograd graph of one decoder step as Graphviz DOT, and SVG when `dot` is installed).
#include <fmt/format.h>

#include <fstream>
#include <memory>

#include "apps/commands.h"
#include "apps/common.h"
#include "apps/explain_page.h"
#include "autograd/dot.h"
#include "autograd/ops.h"
#include "seq2seq/explain.h"
#include "seq2seq/search.h"
#include "tensor/reduce.h"

namespace seqgrad::app {

namespace {

struct ExplainArgs {
  std::string model, input, target, compare, out;
  std::string dot;  // graph
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  if (!out) throw RuntimeError(fmt::format("cannot write '{}'", path));
}

std::string describe(const ModelConfig& m) {
  if (m.arch != "rnn") return describe_model(m);
  const std::string attention = m.attention == "none"
                                    ? "no attention (the fixed-context encoder-decoder)"
                                    : fmt::format("{} attention ({})", m.attention, m.style);
  return fmt::format("{} {}x{}{}, {}", m.cell, m.layers, m.hidden,
                     m.bidirectional ? " bidirectional encoder" : "", attention);
}

std::vector<std::string> token_names(const Vocab& vocab, const std::vector<std::int64_t>& ids) {
  std::vector<std::string> out;
  for (auto id : ids) out.push_back(vocab.token(id));
  return out;
}

// The source as ids (one row, no padding), with input checks that name the option.
std::vector<std::int64_t> source_ids(const LoadedRun& run, const std::string& text) {
  const Tokenization mode = parse_tokenization(run.config.data.source_tokens);
  if (const std::string problem = source_problem(text, mode); !problem.empty()) {
    throw ValueError(fmt::format("--input: {}", problem));
  }
  if (tokenize(text, mode).empty()) throw ValueError("--input: the text has no tokens");
  return run.source_vocab.encode(tokenize(text, mode));
}

// --target's ids and </s>, or the model's own greedy output and </s>.
std::vector<std::int64_t> target_ids(const LoadedRun& run, const std::vector<std::int64_t>& src,
                                     const std::string& text) {
  std::vector<std::int64_t> ids;
  if (!text.empty()) {
    const Tokenization mode = parse_tokenization(run.config.data.target_tokens);
    ids = run.target_vocab.encode(tokenize(text, mode));
  } else {
    const auto S = static_cast<std::int64_t>(src.size());
    ids = beam_search(*run.model, Tensor::from_vector(src, {1, S}), {S}, {.beam = 1})[0].tokens;
  }
  ids.push_back(kEosId);
  return ids;
}

ExplainedModel explained(const LoadedRun& run, const std::string& dir,
                         const std::vector<std::int64_t>& src,
                         const std::vector<std::int64_t>& tgt) {
  ExplainedModel m{dir, describe(run.config.model), explain(*run.model, src, tgt), {}};
  m.predicted = token_names(run.target_vocab, m.x.predicted);
  return m;
}

void run_explain(const ExplainArgs& a) {
  const LoadedRun run = load_run(a.model);
  const std::vector<std::int64_t> src = source_ids(run, a.input);
  const std::vector<std::int64_t> tgt = target_ids(run, src, a.target);
  ExplainPage page;
  page.source_text = a.input;
  page.target_given = !a.target.empty();
  page.target_text =
      detokenize(run.target_vocab.decode(tgt), parse_tokenization(run.config.data.target_tokens));
  page.source = token_names(run.source_vocab, src);
  page.target = token_names(run.target_vocab, tgt);
  page.model = explained(run, a.model, src, tgt);
  if (!a.compare.empty()) {
    const LoadedRun other = load_run(a.compare);
    if (other.source_vocab.tokens() != run.source_vocab.tokens() ||
        other.target_vocab.tokens() != run.target_vocab.tokens()) {
      throw ValueError(
          fmt::format("--compare: '{}' and '{}' have different vocabularies", a.compare, a.model));
    }
    page.compare = explained(other, a.compare, src, tgt);
  }
  write_file(a.out, explain_page(page));
  fmt::print("{} -> {} (L = {:.4f}); page written to {}\n", a.input, page.target_text,
             page.model.x.loss, a.out);
}

// The loss of the first output token y_1: after the recurrent model's first decoder step, or
// after a Transformer's pass over the source and <s>.
Variable first_token_loss(const Seq2Seq& model, const std::vector<std::int64_t>& src,
                          std::int64_t y1) {
  const auto S = static_cast<std::int64_t>(src.size());
  const Tensor source = Tensor::from_vector(src, {1, S});
  const Tensor bos = Tensor::from_vector(std::vector{kBosId}, {1});
  const Tensor target = Tensor::from_vector(std::vector{y1}, {1});
  if (model.arch() != Arch::rnn) {
    Generator unused(0);  // draws only scheduled sampling, which the Transformers do not take
    return model.architecture()
        .loss(source, {S}, bos.reshape({1, 1}), target.reshape({1, 1}), {}, unused)
        .loss;
  }
  const EncoderOutput enc = model.encode(source, {S});
  auto [memory, state] = model.start(enc);
  const DecoderStep step = model.decoder().step(bos, state, memory);
  return cross_entropy(model.decoder().logits(step.output), target, -1, 0.0, Reduction::sum);
}

// The graph from the source to the loss of the first output token, backpropagated so every
// node shows its gradient's norm.
void run_graph(const ExplainArgs& a) {
  const LoadedRun run = load_run(a.model);
  const std::vector<std::int64_t> src = source_ids(run, a.input);
  const std::vector<std::int64_t> tgt = target_ids(run, src, a.target);
  for (auto& [name, p] : run.model->named_parameters()) Variable(p).set_name(name);
  const Variable loss = first_token_loss(*run.model, src, tgt[0]).set_name("loss");
  loss.backward({.keep_all_grads = true});
  write_file(a.dot, to_dot(loss));
  run.model->zero_grad();
  fmt::print("graph of the first output token's loss (target '{}') written to {}\n",
             run.target_vocab.token(tgt[0]), a.dot);
  if (std::system("command -v dot > /dev/null 2>&1") != 0) {
    fmt::print("(install graphviz for an SVG: dot -Tsvg {} -o graph.svg)\n", a.dot);
    return;
  }
  const std::string svg = a.dot.substr(0, a.dot.rfind('.')) + ".svg";
  if (std::system(fmt::format("dot -Tsvg '{}' -o '{}'", a.dot, svg).c_str()) != 0) {
    throw RuntimeError(fmt::format("dot could not render '{}'", a.dot));
  }
  fmt::print("and rendered to {}\n", svg);
}

}  // namespace

void add_explain_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "explain", "one example's attention weights and gradients as a self-contained HTML page");
  auto a = std::make_shared<ExplainArgs>();
  cmd->add_option("--model", a->model, "run directory written by train")->required();
  cmd->add_option("--input", a->input, "the source text")->required();
  cmd->add_option("--target", a->target, "teacher-force this target (default: greedy output)");
  cmd->add_option("--compare", a->compare, "a second run (e.g. --attention none) to set beside");
  cmd->add_option("--out", a->out, "the page to write (FILE.html)")->required();
  cmd->callback([a] { run_explain(*a); });
}

void add_graph_command(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "graph", "the autograd graph of one decoder step, with gradient norms, as Graphviz DOT");
  auto a = std::make_shared<ExplainArgs>();
  cmd->add_option("--model", a->model, "run directory written by train")->required();
  cmd->add_option("--input", a->input, "the source text")->required();
  cmd->add_option("--target", a->target,
                  "its first token is the step's target (default: "
                  "the greedy output's)");
  cmd->add_option("--dot", a->dot, "the DOT file to write")->required();
  cmd->callback([a] { run_graph(*a); });
}

}  // namespace seqgrad::app
