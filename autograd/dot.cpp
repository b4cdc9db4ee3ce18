#include "autograd/dot.h"

#include <fmt/format.h>

#include <cmath>
#include <unordered_map>

namespace seqgrad {

namespace {

std::string escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

double l2_norm(const Tensor& t) {
  double s = 0;
  for (double v : t.to_vector<double>()) s += v * v;
  return std::sqrt(s);
}

}  // namespace

std::string to_dot(const Variable& root) {
  if (!root.defined()) throw ValueError("to_dot: the variable is undefined");
  std::unordered_map<const VarImpl*, int> ids;
  std::vector<const VarImpl*> todo{root.impl().get()};
  ids[root.impl().get()] = 0;
  std::string nodes, edges;
  while (!todo.empty()) {
    const VarImpl* v = todo.back();
    todo.pop_back();
    const int id = ids[v];
    std::vector<std::string> lines;
    lines.push_back(v->is_leaf() ? (v->name.empty() ? "leaf" : v->name)
                                 : std::string(op_name(v->op)));
    if (!v->is_leaf() && !v->name.empty()) lines.back() += " (" + v->name + ")";
    lines.push_back(
        fmt::format("{} {}", dtype_name(v->value_dtype()), shape_str(v->value_shape())));
    if (v->grad.defined()) lines.push_back(fmt::format("|grad| = {:.4g}", l2_norm(v->grad)));
    std::string label;
    for (const auto& line : lines) label += (label.empty() ? "" : "\\n") + escape(line);
    const char* style =
        v->is_leaf()
            ? (v->requires_grad ? "shape=box,style=filled,fillcolor=lightblue" : "shape=box")
            : "shape=ellipse";
    nodes += fmt::format("  n{} [label=\"{}\",{}];\n", id, label, style);
    for (const auto& in : v->inputs) {
      auto [it, fresh] = ids.emplace(in.get(), static_cast<int>(ids.size()));
      if (fresh) todo.push_back(in.get());
      edges += fmt::format("  n{} -> n{};\n", it->second, id);
    }
  }
  return "digraph seqgrad {\n  rankdir=BT;\n" + nodes + edges + "}\n";
}

}  // namespace seqgrad
