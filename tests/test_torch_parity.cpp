// Parity with PyTorch: the same Linear, Embedding, LSTM, GRU, cross-entropy,
// MultiheadAttention and Transformer layers and stacks, on the same weights and inputs, forward
// and backward (attention weights forward only). The C++ side writes every case to JSON, PyTorch
// (tests/python/nn_parity.py, loading our parameters by name with strict=True) computes its
// outputs and gradients, and each value must agree to 1e-10 in float64 and 1e-5 in float32.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <array>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "attention_masks.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "python_runner.h"
#include "tensor/elementwise.h"

namespace seqgrad {
namespace {

using nlohmann::json;

// The feed-forward activations the Transformer parity cases cover.
constexpr std::array kParityActivations{Activation::relu, Activation::gelu};

json dump(const Tensor& t) {
  return {{"shape", t.shape()}, {"data", t.to_vector<double>()}};
}

// One case: what goes to PyTorch, and what seqgrad computed.
struct Case {
  std::string label;
  json spec;
  std::map<std::string, Tensor> outputs;  // forward results by name
  std::map<std::string, Tensor> grads;    // gradients by input or parameter name
  std::map<std::string, Tensor> values;   // compared, not differentiated (attention weights)
};

// Random upstream gradients for each output, the backward pass, and the JSON spec.
Case finish(std::string label, json spec, const std::map<std::string, Variable>& outputs,
            const std::map<std::string, Variable>& inputs, const Module* module, Generator& gen) {
  Case c{std::move(label), std::move(spec), {}, {}, {}};
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

// --- MultiheadAttention and the Transformer layers ---

// The masks of one attention, as seqgrad takes them and as the spec carries them to PyTorch:
// JSON has no -inf, so a float attn_mask travels as its bool form and both sides build the
// 0/-inf floats from it; is_causal becomes PyTorch's attn_mask (1.13 has no is_causal).
struct MaskSpec {
  Tensor key_padding{};  // bool [B,Tk] or undefined
  Tensor attn{};         // bool [Tq,Tk], true = not allowed, or undefined
  bool attn_float = false;
  bool causal = false;

  AttentionMasks masks(DType dtype) const {
    AttentionMasks m{key_padding, attn, causal};
    if (attn.defined() && attn_float) {
      m.attn_mask = masked_fill(Tensor::zeros(attn.shape(), dtype), attn,
                                -std::numeric_limits<double>::infinity());
    }
    return m;
  }
  json spec(std::int64_t Tq, std::int64_t Tk) const {
    json j = {{"float", attn_float}, {"is_causal", causal}, {"tq", Tq}, {"tk", Tk}};
    if (key_padding.defined()) j["key_padding_mask"] = dump(key_padding);
    if (attn.defined()) j["attn_mask"] = dump(attn);
    return j;
  }
};

// Moves every parameter off its initial value (LayerNorm's ones and zeros, the attention's zero
// biases), so no gradient or product is checked only at a trivial point.
void perturb(const Module& m, Generator& gen) {
  for (auto [name, p] : m.named_parameters()) {
    add_(p.data(), normal(p.shape(), 0, 0.2, p.dtype(), gen));
  }
}

json layer_config(const TransformerOptions& o) {
  return {{"d_model", o.d_model},
          {"nhead", o.nhead},
          {"dim_feedforward", o.dim_feedforward},
          {"activation", std::string(activation_name(o.activation))},
          {"layer_norm_eps", o.layer_norm_eps},
          {"norm_first", o.norm_first}};
}

Variable input(const Shape& shape, DType dtype, Generator& gen) {
  return Variable(normal(shape, 0, 1, dtype, gen), true);
}

std::vector<Case> build_transformer_cases(DType dtype) {
  Generator gen(dtype == DType::f64 ? 303 : 404);
  const std::string dname(dtype_name(dtype));
  std::vector<Case> cases;
  const std::int64_t E = 8, H = 2;

  // MultiheadAttention: self-attention under each kind of mask, then cross-attention
  const std::vector<std::pair<std::string, MaskSpec>> self_masks{
      {"padding", MaskSpec{.key_padding = testing::padding_mask({5, 3}, 5)}},
      {"causal bool", MaskSpec{.attn = testing::causal_mask(5)}},
      {"causal float -inf", MaskSpec{.attn = testing::causal_mask(5), .attn_float = true}},
      {"is_causal + padding",
       MaskSpec{.key_padding = testing::padding_mask({4, 5}, 5), .causal = true}}};
  for (const auto& [what, ms] : self_masks) {
    MultiheadAttention mha(E, H, 0.0, true, gen, dtype);
    perturb(mha, gen);
    const Variable x = input({2, 5, E}, dtype, gen);
    const AttentionOutput a = mha(x, x, x, ms.masks(dtype), true);
    json spec = {
        {"kind", "mha"},
        {"dtype", dname},
        {"config", {{"embed_dim", E}, {"num_heads", H}, {"bias", true}, {"mode", "self"}}}};
    spec["masks"]["self"] = ms.spec(5, 5);
    spec["inputs"]["x"] = dump(x.data());
    Case c =
        finish(fmt::format("mha self, {}", what), spec, {{"y", a.output}}, {{"x", x}}, &mha, gen);
    c.values["weights"] = a.weights;
    cases.push_back(std::move(c));
  }
  {
    MultiheadAttention mha(E, H, 0.0, true, gen, dtype);
    perturb(mha, gen);
    const Variable q = input({2, 3, E}, dtype, gen), mem = input({2, 6, E}, dtype, gen);
    const MaskSpec ms{.key_padding = testing::padding_mask({6, 4}, 6)};
    const AttentionOutput a = mha(q, mem, mem, ms.masks(dtype), true);
    json spec = {
        {"kind", "mha"},
        {"dtype", dname},
        {"config", {{"embed_dim", E}, {"num_heads", H}, {"bias", true}, {"mode", "cross"}}}};
    spec["masks"]["self"] = ms.spec(3, 6);
    spec["inputs"]["query"] = dump(q.data());
    spec["inputs"]["memory"] = dump(mem.data());
    Case c = finish("mha cross, padding", spec, {{"y", a.output}}, {{"query", q}, {"memory", mem}},
                    &mha, gen);
    c.values["weights"] = a.weights;
    cases.push_back(std::move(c));
  }
  {
    MultiheadAttention mha(E, H, 0.0, false, gen, dtype);
    perturb(mha, gen);
    const Variable q = input({2, 3, E}, dtype, gen), k = input({2, 4, E}, dtype, gen),
                   v = input({2, 4, E}, dtype, gen);
    Tensor am = Tensor::zeros({3, 4}, DType::boolean);
    auto* p = static_cast<std::uint8_t*>(am.raw_data());
    p[1] = p[6] = p[7] = p[8] = 1;  // every row keeps at least one key
    const MaskSpec ms{.attn = am, .attn_float = true};
    const AttentionOutput a = mha(q, k, v, ms.masks(dtype), true);
    json spec = {
        {"kind", "mha"},
        {"dtype", dname},
        {"config", {{"embed_dim", E}, {"num_heads", H}, {"bias", false}, {"mode", "qkv"}}}};
    spec["masks"]["self"] = ms.spec(3, 4);
    spec["inputs"]["query"] = dump(q.data());
    spec["inputs"]["key"] = dump(k.data());
    spec["inputs"]["value"] = dump(v.data());
    Case c = finish("mha q, k, v apart, no bias, float attn_mask", spec, {{"y", a.output}},
                    {{"query", q}, {"key", k}, {"value", v}}, &mha, gen);
    c.values["weights"] = a.weights;
    cases.push_back(std::move(c));
  }

  // Encoder and decoder layers: both norm placements, both activations, padding and causal
  const MaskSpec src_ms{.key_padding = testing::padding_mask({5, 3}, 5)};
  const MaskSpec src_causal{.key_padding = testing::padding_mask({5, 3}, 5), .causal = true};
  const MaskSpec tgt_ms{.key_padding = testing::padding_mask({4, 2}, 4), .causal = true};
  for (Activation act : kParityActivations) {
    for (bool norm_first : {false, true}) {
      TransformerOptions o{.d_model = E,
                           .nhead = H,
                           .dim_feedforward = 16,
                           .dropout = 0.0,
                           .activation = act,
                           .norm_first = norm_first,
                           .dtype = dtype};
      const std::string label =
          fmt::format("{}, {}", activation_name(act), norm_first ? "pre-norm" : "post-norm");
      {
        TransformerEncoderLayer layer(o, gen);
        perturb(layer, gen);
        const Variable src = input({2, 5, E}, dtype, gen);
        const Variable y = layer(src, src_causal.masks(dtype));
        json spec = {{"kind", "encoder_layer"}, {"dtype", dname}, {"config", layer_config(o)}};
        spec["masks"]["src"] = src_causal.spec(5, 5);
        spec["inputs"]["src"] = dump(src.data());
        cases.push_back(finish(fmt::format("encoder layer, {}", label), spec, {{"y", y}},
                               {{"src", src}}, &layer, gen));
      }
      {
        TransformerDecoderLayer layer(o, gen);
        perturb(layer, gen);
        const Variable tgt = input({2, 4, E}, dtype, gen), mem = input({2, 5, E}, dtype, gen);
        const Variable y = layer.forward(tgt, mem, tgt_ms.masks(dtype), src_ms.masks(dtype));
        json spec = {{"kind", "decoder_layer"}, {"dtype", dname}, {"config", layer_config(o)}};
        spec["masks"]["tgt"] = tgt_ms.spec(4, 4);
        spec["masks"]["memory"] = src_ms.spec(4, 5);
        spec["inputs"]["tgt"] = dump(tgt.data());
        spec["inputs"]["memory"] = dump(mem.data());
        cases.push_back(finish(fmt::format("decoder layer, {}", label), spec, {{"y", y}},
                               {{"tgt", tgt}, {"memory", mem}}, &layer, gen));
      }
    }
  }

  // 2-layer stacks with a final norm, and a small Transformer
  const TransformerOptions o{.d_model = E,
                             .nhead = H,
                             .dim_feedforward = 16,
                             .dropout = 0.0,
                             .activation = kParityActivations.back(),
                             .norm_first = true,
                             .dtype = dtype};
  {
    TransformerEncoder enc(o, 2, true, gen);
    perturb(enc, gen);
    const Variable src = input({2, 5, E}, dtype, gen);
    const Variable y = enc(src, src_causal.masks(dtype));
    json spec = {{"kind", "encoder"}, {"dtype", dname}, {"config", layer_config(o)}};
    spec["config"]["num_layers"] = 2;
    spec["masks"]["src"] = src_causal.spec(5, 5);
    spec["inputs"]["src"] = dump(src.data());
    cases.push_back(
        finish("encoder, 2 layers + norm", spec, {{"y", y}}, {{"src", src}}, &enc, gen));
  }
  {
    TransformerOptions post = o;
    post.norm_first = false;
    TransformerDecoder dec(post, 2, true, gen);
    perturb(dec, gen);
    const Variable tgt = input({2, 4, E}, dtype, gen), mem = input({2, 5, E}, dtype, gen);
    const Variable y = dec.forward(tgt, mem, tgt_ms.masks(dtype), src_ms.masks(dtype));
    json spec = {{"kind", "decoder"}, {"dtype", dname}, {"config", layer_config(post)}};
    spec["config"]["num_layers"] = 2;
    spec["masks"]["tgt"] = tgt_ms.spec(4, 4);
    spec["masks"]["memory"] = src_ms.spec(4, 5);
    spec["inputs"]["tgt"] = dump(tgt.data());
    spec["inputs"]["memory"] = dump(mem.data());
    cases.push_back(finish("decoder, 2 layers + norm", spec, {{"y", y}},
                           {{"tgt", tgt}, {"memory", mem}}, &dec, gen));
  }
  {
    TransformerOptions post = o;
    post.norm_first = false;
    Transformer t(post, 2, 2, gen);
    perturb(t, gen);
    const Variable src = input({2, 5, E}, dtype, gen), tgt = input({2, 4, E}, dtype, gen);
    const Variable y =
        t.forward(src, tgt, src_ms.masks(dtype), tgt_ms.masks(dtype), src_ms.masks(dtype));
    json spec = {{"kind", "transformer"}, {"dtype", dname}, {"config", layer_config(post)}};
    spec["config"]["num_encoder_layers"] = 2;
    spec["config"]["num_decoder_layers"] = 2;
    spec["masks"]["src"] = src_ms.spec(5, 5);
    spec["masks"]["tgt"] = tgt_ms.spec(4, 4);
    spec["masks"]["memory"] = src_ms.spec(4, 5);
    spec["inputs"]["src"] = dump(src.data());
    spec["inputs"]["tgt"] = dump(tgt.data());
    cases.push_back(finish("transformer, 2 + 2 layers", spec, {{"y", y}},
                           {{"src", src}, {"tgt", tgt}}, &t, gen));
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

void check_parity(const std::vector<Case>& cases, double tolerance) {
  json all = json::array();
  for (const auto& c : cases) all.push_back(c.spec);
  const std::optional<json> found = testing::run_python_json("nn_parity.py", all);
  REQUIRE_MESSAGE(found.has_value(),
                  "PyTorch parity script failed: is python3-torch installed for "
                  "/usr/bin/python3? (scripts/test installs it)");
  const json& results = *found;
  REQUIRE(results.size() == cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    CAPTURE(cases[i].label);
    const json& r = results[i];
    for (const auto& [name, t] : cases[i].outputs) {
      CAPTURE(name);
      CHECK(max_error(t, r.at("outputs").at(name)) < tolerance);
    }
    for (const auto& [name, t] : cases[i].values) {
      CAPTURE(name);
      REQUIRE(r.at("values").contains(name));
      CHECK(max_error(t, r.at("values").at(name)) < tolerance);
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
  check_parity(build_cases(DType::f64), 1e-10);
}

TEST_CASE("torch parity: the same in float32 (1e-5)") {
  check_parity(build_cases(DType::f32), 1e-5);
}

TEST_CASE("torch parity: MultiheadAttention and the Transformer layers in float64 (1e-10)") {
  check_parity(build_transformer_cases(DType::f64), 1e-10);
}

TEST_CASE("torch parity: MultiheadAttention and the Transformer layers in float32 (1e-5)") {
  check_parity(build_transformer_cases(DType::f32), 1e-5);
}

}  // namespace
}  // namespace seqgrad
