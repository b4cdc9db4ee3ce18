// Sections of the explain page, one function each, in the order a reader meets them.
#include "apps/explain_page.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "apps/figure.h"

namespace seqgrad::app {

namespace {

constexpr const char* kStyle =
    "body{font-family:sans-serif;max-width:1100px;margin:24px auto;color:#222;line-height:1.45}"
    "h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;"
    "font-family:monospace}th{background:#f3f3f3}.miss{color:#b22222;font-weight:bold}"
    "pre{background:#f7f7f7;padding:8px 12px;border-left:3px solid #1f4e96}"
    ".pair{display:flex;gap:24px;flex-wrap:wrap;align-items:flex-start}figure{margin:0}"
    "figcaption{font-size:13px;color:#555;max-width:520px}";

std::string figure(const HeatmapSpec& spec, const std::string& caption) {
  return "<figure>\n" + heatmap_figure(spec) + "<figcaption>" + caption +
         "</figcaption>\n</figure>\n";
}

std::string header(const ExplainPage& p) {
  return fmt::format(
      "<h1>Backprop through attention: one example</h1>\n"
      "<p>Model <code>{}</code>: {}.<br/>Source: <code>{}</code><br/>Target ({}): "
      "<code>{}</code></p>\n<p>The decoder is teacher-forced on the target: at step i it reads "
      "the reference y<sub>i-1</sub> and is scored on y<sub>i</sub>. The loss is the sum "
      "L = \u03a3<sub>i</sub> loss<sub>i</sub>, loss<sub>i</sub> = \u2212log p(y<sub>i</sub> | "
      "y<sub>&lt;i</sub>, x) = {:.4f} in all. Hover a cell for its exact value.</p>\n",
      xml_escape(p.model.dir), xml_escape(p.model.description), xml_escape(p.source_text),
      p.target_given ? "given" : "the model's own greedy output", xml_escape(p.target_text),
      p.model.x.loss);
}

std::string loss_table(const ExplainPage& p) {
  std::string out =
      "<h2>1. Loss at each output step</h2>\n<table>\n<tr><th>step i</th><th>reference "
      "y<sub>i</sub></th><th>predicted (argmax)</th><th>loss<sub>i</sub></th><th>p(y<sub>i</sub>)"
      "</th></tr>\n";
  const Explanation& x = p.model.x;
  for (std::size_t i = 0; i < x.step_loss.size(); ++i) {
    const std::string& pred = p.model.predicted[i];
    out += fmt::format(
        "<tr><td>{}</td><td>{}</td><td{}>{}</td><td data-value=\"{:.17g}\">{:.4f}</td>"
        "<td>{:.3f}</td></tr>\n",
        i, xml_escape(p.target[i]), pred == p.target[i] ? "" : " class=\"miss\"", xml_escape(pred),
        x.step_loss[i], x.step_loss[i], std::exp(-x.step_loss[i]));
  }
  return out + "</table>\n";
}

HeatmapSpec grid(const ExplainPage& p, std::string id, std::string title, const Grid& values,
                 ColourScale scale) {
  HeatmapSpec s;
  s.id = std::move(id);
  s.title = std::move(title);
  s.rows = p.target;
  s.cols = p.source;
  s.values = values;
  s.scale = scale;
  return s;
}

// View v of the attention: a head of the recurrent model's, or layer v / K, head v % K.
std::string head_label(const Explanation& x, std::size_t v) {
  const auto K = static_cast<std::size_t>(x.heads);
  if (x.arch == Arch::rnn) return x.heads > 1 ? fmt::format(", head {}", v) : "";
  return fmt::format(", layer {} head {}", v / K, v % K);
}

// An attention view's grid: decoder-only attention also has the target inputs as columns.
HeatmapSpec attention_grid(const ExplainPage& p, std::string id, std::string title,
                           const Grid& values, ColourScale scale) {
  HeatmapSpec s = grid(p, std::move(id), std::move(title), values, scale);
  if (p.model.x.target_keys > 0) {
    s.cols.push_back("<s>");
    s.cols.insert(s.cols.end(), p.target.begin(), p.target.end() - 1);
    s.col_axis = "key position j: source, then <s> y";
  }
  return s;
}

std::string attention_intro(const Explanation& x) {
  switch (x.arch) {
    case Arch::rnn:
      return "<p>e<sub>ij</sub> = score(s<sub>i</sub>, h<sub>j</sub>) compares the decoder state "
             "at step i with encoder state j; a<sub>ij</sub> = exp(e<sub>ij</sub>) / "
             "\u03a3<sub>k</sub> exp(e<sub>ik</sub>) (each row sums to 1); the context is "
             "c<sub>i</sub> = \u03a3<sub>j</sub> a<sub>ij</sub> h<sub>j</sub> "
             "(<code>Attention::attend</code>, seq2seq/attention.cpp).</p>\n";
    case Arch::transformer:
      return fmt::format(
          "<p>Each of the decoder's {} layers attends across to the encoder's output with {} "
          "heads (<code>decoder.layers.N.multihead_attn</code>): e<sub>ij</sub> = q<sub>i</sub> "
          "\u00b7 k<sub>j</sub> / \u221aD compares the query of output step i with the key of "
          "source position j; a<sub>ij</sub> = exp(e<sub>ij</sub>) / \u03a3<sub>k</sub> "
          "exp(e<sub>ik</sub>) (each row sums to 1); the head's context is c<sub>i</sub> = "
          "\u03a3<sub>j</sub> a<sub>ij</sub> v<sub>j</sub> "
          "(<code>scaled_dot_product_attention</code>, autograd/ops_sdpa.cpp, here in its traced "
          "form: the same numbers from matmul, masked softmax and matmul, so that the weights "
          "and scores keep their gradients).</p>\n",
          x.layers, x.heads);
    case Arch::decoder_only:
      return fmt::format(
          "<p>One causal stack of {} layers reads [source | &lt;s&gt; y]; row i is the position "
          "that predicts y<sub>i</sub>, and its columns are every position up to it: the source, "
          "then the target inputs (none after it). Each layer's self-attention has {} heads "
          "(<code>decoder.layers.N.self_attn</code>): e<sub>ij</sub> = q<sub>i</sub> \u00b7 "
          "k<sub>j</sub> / \u221aD, a<sub>ij</sub> = exp(e<sub>ij</sub>) / \u03a3<sub>k</sub> "
          "exp(e<sub>ik</sub>) over those columns, the context c<sub>i</sub> = "
          "\u03a3<sub>j</sub> a<sub>ij</sub> v<sub>j</sub> "
          "(<code>scaled_dot_product_attention</code>, autograd/ops_sdpa.cpp, in its traced "
          "form).</p>\n",
          x.layers, x.heads);
  }
  return {};
}

std::string weights_section(const ExplainPage& p) {
  const Explanation& x = p.model.x;
  std::string out =
      "<h2>2. Attention weights a[i,j]</h2>\n" + attention_intro(x) + "<div class=\"pair\">\n";
  for (std::size_t k = 0; k < x.weights.size(); ++k) {
    HeatmapSpec spec = attention_grid(p, fmt::format("weights-{}", k), "a[i,j]" + head_label(x, k),
                                      x.weights[k], ColourScale::sequential);
    spec.limit = 1.0;  // probabilities
    out += figure(spec, "Row i: where output step i looks in the source.");
  }
  return out + "</div>\n";
}

double max_abs_difference(const Grid& a, const Grid& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    for (std::size_t j = 0; j < a[i].size(); ++j) m = std::max(m, std::abs(a[i][j] - b[i][j]));
  }
  return m;
}

std::string gradients_section(const ExplainPage& p) {
  const Explanation& x = p.model.x;
  std::string out =
      "<h2>3. Gradients of L with respect to the weights and the scores</h2>\n"
      "<p>Backward reaches a<sub>ij</sub> from the context sum: dL/da<sub>ij</sub> = "
      "dL/dc<sub>i</sub> \u00b7 " +
      std::string(x.arch == Arch::rnn ? "h" : "v") +
      "<sub>j</sub>. The softmax backward then turns it into the "
      "scores' gradient (<code>softmax_backward</code>, tensor/softmax.cpp):</p>\n"
      "<pre>dL/de_ij = a_ij (dL/da_ij \u2212 \u03a3_k a_ik dL/da_ik)</pre>\n"
      "<p>A score gains gradient only where its weight is large <em>and</em> its "
      "dL/da differs from the row's a-weighted mean; each row of dL/de sums to 0.</p>\n";
  for (std::size_t k = 0; k < x.weights.size(); ++k) {
    const Grid formula = softmax_backward_rows(x.weights[k], x.dweights[k]);
    out += fmt::format(
        "<p>The formula applied to the numbers of section 2 and the left figure gives the right "
        "figure to within {:.2g} (largest difference from autograd{}).</p>\n<div "
        "class=\"pair\">\n",
        max_abs_difference(formula, x.dscores[k]), head_label(x, k));
    out += figure(attention_grid(p, fmt::format("dweights-{}", k), "dL/da[i,j]" + head_label(x, k),
                                 x.dweights[k], ColourScale::diverging),
                  "Red: raising a<sub>ij</sub> would raise the loss; blue: lower it.");
    out += figure(attention_grid(p, fmt::format("dscores-{}", k), "dL/de[i,j]" + head_label(x, k),
                                 x.dscores[k], ColourScale::diverging),
                  "What the scorer's parameters receive, position by position.");
    out += "</div>\n";
  }
  return out;
}

// What h_j is, for each arch.
std::string source_state(Arch arch) {
  switch (arch) {
    case Arch::rnn:
      return "the encoder's top-layer state at source position j (both directions), through "
             "attention and through the recurrence";
    case Arch::transformer:
      return "the encoder's output at source position j (the memory every cross-attention layer "
             "reads), through every decoder layer";
    case Arch::decoder_only:
      return "the embedded source token j (token and position: the stack's input), through "
             "every self-attention layer";
  }
  return {};
}

std::string states_section(const ExplainPage& p) {
  std::string out =
      "<h2>4. Gradient reaching each source position</h2>\n<p>||d loss<sub>i</sub> "
      "/ d h<sub>j</sub>||: how strongly the loss at output step i reaches " +
      source_state(p.model.x.arch) + " (<code>explain</code>, seq2seq/explain.cpp).</p>\n";
  double limit = 0;
  for (const Grid* g : {&p.model.x.state_grad, p.compare ? &p.compare->x.state_grad : nullptr}) {
    if (g == nullptr) continue;
    for (const auto& row : *g) {
      for (double v : row) limit = std::max(limit, v);
    }
  }
  HeatmapSpec mine =
      grid(p, "state-grad", "||d loss_i / d h_j||", p.model.x.state_grad, ColourScale::sequential);
  mine.limit = limit;
  out += "<div class=\"pair\">\n" + figure(mine, xml_escape(p.model.description));
  if (p.compare) {
    HeatmapSpec theirs = grid(p, "state-grad-compare", "||d loss_i / d h_j||, compared",
                              p.compare->x.state_grad, ColourScale::sequential);
    theirs.limit = limit;
    out += figure(theirs, xml_escape(p.compare->dir + ": " + p.compare->description) +
                              ". The same colour scale. Without attention every gradient must "
                              "pass through the final state and back along the recurrence: "
                              "the fixed-context bottleneck, seen as gradients.");
  }
  return out + "</div>\n";
}

}  // namespace

std::string explain_page(const ExplainPage& p) {
  std::string out =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html>\n<html "
      "xmlns=\"http://www.w3.org/1999/xhtml\" lang=\"en\">\n<head>\n<meta charset=\"UTF-8\"/>\n" +
      fmt::format("<title>seqgrad explain: {}</title>\n<style>{}</style>\n</head>\n<body>\n",
                  xml_escape(p.source_text), kStyle);
  out += header(p) + loss_table(p);
  if (!p.model.x.weights.empty()) out += weights_section(p) + gradients_section(p);
  out += states_section(p);
  return out + "<p><small>Written by seqgrad explain.</small></p>\n</body>\n</html>\n";
}

}  // namespace seqgrad::app
