// Parity with PyTorch: the same Linear, Embedding, LSTM, GRU and cross-entropy, on the same
// weights and inputs, forward and backward. The C++ side writes every case to JSON, PyTorch
// (tests/python/nn_parity.py, loading our parameters by name with strict=True) computes its
// outputs and gradients, and each value must agree to 1e-10 in float64 and 1e-5 in float32.
#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "python_runner.h"

namespace seqgrad {
namespace {

using nlohmann::json;

json dump(const Tensor& t) {
  return {{"shape", t.shape()}, {"data", t.to_vector<double>()}};
}

// One case: what goes to PyTorch, and what seqgrad computed.
struct Case {
  std::string label;
  json spec;
  std::map<std::string, Tensor> outputs;  // forward results by name
  std::map<std::string, Tensor> grads;    // gradients by input or parameter name
};

// Random upstream gradients for each output, the backward pass, and the JSON spec.
Case finish(std::string label, json spec, const std::map<std::string, Variable>& outputs,
            const std::map<std::string, Variable>& inputs, const Module* module, Generator& gen) {
  Case c{std::move(label), std::move(spec), {}, {}};
  Variable total;
  for (const auto& [name, v] : outputs) {
    const Tensor u = normal(v.shape(), 0, 1, v.dtype(), gen);
    c.spec["upstream"][name] = dump(u);
    const Variable term = sum(v * Variable(u));
    total = total.defined() ? total + term : term;
    c.outputs[name] = v.data();
  }
  if (module != nullptr) {
    for (const auto& [name, p] : module->named_parameters())
      c.spec["params"][name] = dump(p.data());
  } else {
    c.spec["params"] = json::object();
  }
  total.backward();
  for (const auto& [name, v] : inputs) c.grads[name] = v.grad();
  if (module != nullptr) {
    for (const auto& [name, p] : module->named_parameters()) c.grads[name] = p.grad();
  }
  return c;
}

std::vector<Case> build_cases(DType dtype) {
  Generator gen(dtype == DType::f64 ? 101 : 202);
  const std::string dname(dtype_name(dtype));
  std::vector<Case> cases;
  {
    Linear lin(4, 5, true, gen, dtype);
    Variable x(normal({2, 3, 4}, 0, 1, dtype, gen), true);
    json spec = {{"kind", "linear"}, {"dtype", dname}, {"config", {{"in", 4}, {"out", 5}}}};
    spec["inputs"]["x"] = dump(x.data());
    cases.push_back(finish("linear", spec, {{"y", lin(x)}}, {{"x", x}}, &lin, gen));
  }
  {
    Embedding emb(6, 3, 0, gen, dtype);
    const Tensor ids = Tensor::from_list({1, 0, 5, 1, 2, 0, 0, 3}, {2, 4}, DType::i64);
    json spec = {{"kind", "embedding"},
                 {"dtype", dname},
                 {"config", {{"num", 6}, {"dim", 3}, {"padding_idx", 0}}}};
    spec["inputs"]["ids"] = dump(ids);
    cases.push_back(finish("embedding", spec, {{"y", emb(ids)}}, {}, &emb, gen));
  }
  for (CellType cell : {CellType::lstm, CellType::gru}) {
    RNN rnn(RNNOptions{.cell = cell,
                       .input_size = 3,
                       .hidden_size = 4,
                       .num_layers = 2,
                       .bidirectional = true,
                       .dtype = dtype},
            gen);
    const std::vector<std::int64_t> lengths{5, 2, 4};
    Variable x(normal({3, 5, 3}, 0, 1, dtype, gen), true);
    const RNNOutput o = rnn.forward(x, lengths);
    json spec = {
        {"kind", std::string(cell_name(cell))},
        {"dtype", dname},
        {"config",
         {{"input_size", 3}, {"hidden_size", 4}, {"num_layers", 2}, {"bidirectional", true}}}};
    spec["inputs"]["x"] = dump(x.data());
    spec["inputs"]["lengths"] = lengths;
    std::map<std::string, Variable> outs{{"output", o.output}, {"h", o.state.h}};
    if (cell == CellType::lstm) outs["c"] = o.state.c;
    cases.push_back(finish(std::string(cell_name(cell)), spec, outs, {{"x", x}}, &rnn, gen));
  }
  {
    Variable logits(normal({5, 7}, 0, 2, dtype, gen), true);
    const std::vector<std::int64_t> targets{3, -100, 0, 6, 3};
    const Tensor t = Tensor::from_vector(targets, {5});
    const Variable loss = cross_entropy(logits, t, {.ignore_index = -100, .label_smoothing = 0.1});
    json spec = {{"kind", "cross_entropy"},
                 {"dtype", dname},
                 {"config", {{"ignore_index", -100}, {"label_smoothing", 0.1}}}};
    spec["inputs"]["logits"] = dump(logits.data());
    spec["inputs"]["targets"] = targets;
    cases.push_back(
        finish("cross_entropy", spec, {{"loss", loss}}, {{"logits", logits}}, nullptr, gen));
  }
  return cases;
}

// Largest |ours - theirs| / max(1, |theirs|) over a tensor.
double max_error(const Tensor& ours, const json& theirs) {
  const auto a = ours.to_vector<double>();
  const auto b = theirs.at("data").get<std::vector<double>>();
  REQUIRE(Shape(theirs.at("shape").get<std::vector<std::int64_t>>()) == ours.shape());
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(b[i])));
  }
  return worst;
}

void check_parity(DType dtype, double tolerance) {
  std::vector<Case> cases = build_cases(dtype);
  testing::TempDir dir;
  json all = json::array();
  for (const auto& c : cases) all.push_back(c.spec);
  std::ofstream(dir.file("in.json")) << all.dump();
  const int status =
      testing::run_python("nn_parity.py", dir.file("in.json") + " " + dir.file("out.json"));
  REQUIRE_MESSAGE(status == 0,
                  "PyTorch parity script failed: is python3-torch installed for "
                  "/usr/bin/python3? (scripts/test installs it)");
  json results;
  std::ifstream(dir.file("out.json")) >> results;
  REQUIRE(results.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].label);
    const json& r = results[i];
    for (const auto& [name, t] : cases[i].outputs) {
      CAPTURE(name);
      CHECK(max_error(t, r.at("outputs").at(name)) < tolerance);
    }
    // every gradient PyTorch reports, we computed too, and vice versa
    CHECK(r.at("grads").size() == cases[i].grads.size());
    for (const auto& [name, t] : cases[i].grads) {
      CAPTURE(name);
      REQUIRE(t.defined());
      REQUIRE(r.at("grads").contains(name));
      CHECK(max_error(t, r.at("grads").at(name)) < tolerance);
    }
  }
}

TEST_CASE("torch parity: Linear, Embedding, LSTM, GRU, cross_entropy in float64 (1e-10)") {
  check_parity(DType::f64, 1e-10);
}

TEST_CASE("torch parity: the same in float32 (1e-5)") {
  check_parity(DType::f32, 1e-5);
}

}  // namespace
}  // namespace seqgrad
