// MultiheadAttention and the Transformer layers and stacks (nn/multihead_attention.h,
// nn/transformer.h): PyTorch's parameter names, mask conventions, error messages, float64
// gradchecks of every layer kind in both norm placements, the cached step against the full
// causal forward (also after a beam reorder), and an encoder-only model that learns a per-token
// task. Parity of values with PyTorch itself is in test_torch_parity.cpp.
//
// To add a layer case: build it in float64 with a seeded Generator, then call check_layer_grad
// with a function of the inputs; the parameters are checked too.
// Shape legend: B batch, S source length, T target length, E d_model, H heads.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "attention_masks.h"
#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/adam.h"
#include "tensor/elementwise.h"
#include "tensor/index.h"

namespace seqgrad {
namespace {

constexpr DType f64 = DType::f64;

using testing::causal_mask;
using testing::padding_mask;

double max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double worst = 0;
  for (std::size_t i = 0; i < x.size(); ++i) worst = std::max(worst, std::abs(x[i] - y[i]));
  return worst;
}

std::vector<std::string> names_of(const Module& m) {
  std::vector<std::string> names;
  for (const auto& [n, p] : m.named_parameters()) names.push_back(n);
  return names;
}

void check_layer_grad(const GradcheckFn& f, const std::vector<Tensor>& inputs, const Module& m) {
  const GradcheckResult r = gradcheck(f, inputs, {}, m.parameters());
  CAPTURE(r.worst);
  CAPTURE(r.max_error);
  CHECK(r.passed);
}

TransformerOptions small(bool norm_first, double dropout = 0.0,
                         Activation activation = Activation::relu) {
  return TransformerOptions{.d_model = 4,
                            .nhead = 2,
                            .dim_feedforward = 6,
                            .dropout = dropout,
                            .activation = activation,
                            .norm_first = norm_first,
                            .dtype = f64};
}

// --- names, shapes and initialisation ---

TEST_CASE("transformer: parameter names and shapes are PyTorch's") {
  Generator gen(1);
  MultiheadAttention mha(8, 2, 0.0, true, gen);
  CHECK(names_of(mha) == std::vector<std::string>{"in_proj_weight", "in_proj_bias",
                                                  "out_proj.weight", "out_proj.bias"});
  CHECK(mha.in_proj_weight.shape() == Shape{24, 8});
  CHECK(mha.out_proj.weight.shape() == Shape{8, 8});
  CHECK(mha.head_dim() == 4);

  const TransformerOptions o{.d_model = 8, .nhead = 2, .dim_feedforward = 16};
  TransformerEncoderLayer enc(o, gen);
  CHECK(names_of(enc) ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.in_proj_bias",
                                 "self_attn.out_proj.weight", "self_attn.out_proj.bias",
                                 "linear1.weight", "linear1.bias", "linear2.weight", "linear2.bias",
                                 "norm1.weight", "norm1.bias", "norm2.weight", "norm2.bias"});
  CHECK(enc.parameter("linear1.weight").shape() == Shape{16, 8});
  CHECK(enc.parameter("linear2.weight").shape() == Shape{8, 16});

  TransformerDecoderLayer dec(o, gen);
  const auto dec_names = names_of(dec);
  CHECK(dec_names.size() == 4 + 4 + 4 + 6);
  CHECK(dec.parameter("multihead_attn.in_proj_weight").shape() == Shape{24, 8});
  CHECK(dec.parameter("norm3.bias").shape() == Shape{8});

  TransformerEncoder stack(o, 2, true, gen);
  CHECK(stack.parameter("layers.1.self_attn.out_proj.bias").shape() == Shape{8});
  CHECK(names_of(stack).back() == "norm.bias");
  CHECK(stack.num_parameters() == 2 * enc.num_parameters() + 16);
  TransformerEncoder bare(o, 1, false, gen);
  CHECK(bare.norm == nullptr);
  CHECK(bare.num_parameters() == enc.num_parameters());

  Transformer t(o, 2, 1, gen);
  CHECK(t.parameter("encoder.layers.1.linear2.bias").shape() == Shape{8});
  CHECK(t.parameter("encoder.norm.weight").shape() == Shape{8});
  CHECK(t.parameter("decoder.layers.0.multihead_attn.out_proj.weight").shape() == Shape{8, 8});
  CHECK(t.parameter("decoder.norm.bias").shape() == Shape{8});
  CHECK(t.num_parameters() == 2 * enc.num_parameters() + dec.num_parameters() + 2 * 16);
  CHECK_THROWS_WITH_AS(t.parameter("decoder.layers.1.norm1.weight"),
                       doctest::Contains("no parameter named"), ValueError);

  // bias = false: PyTorch's bias=False drops every bias, the LayerNorms' included
  TransformerOptions nb = o;
  nb.bias = false;
  TransformerDecoderLayer dec_nb(nb, gen);
  CHECK(names_of(dec_nb) ==
        std::vector<std::string>{"self_attn.in_proj_weight", "self_attn.out_proj.weight",
                                 "multihead_attn.in_proj_weight", "multihead_attn.out_proj.weight",
                                 "linear1.weight", "linear2.weight", "norm1.weight", "norm2.weight",
                                 "norm3.weight"});
}

TEST_CASE("transformer: MultiheadAttention starts as PyTorch's (Xavier in_proj, zero biases)") {
  Generator gen(2);
  MultiheadAttention mha(16, 4, 0.0, true, gen, f64);
  for (double b : mha.in_proj_bias.data().to_vector<double>()) CHECK(b == 0.0);
  for (double b : mha.out_proj.bias.data().to_vector<double>()) CHECK(b == 0.0);
  const double bound = std::sqrt(6.0 / (16 + 48));  // fan_in E, fan_out 3E
  double hi = 0;
  for (double w : mha.in_proj_weight.data().to_vector<double>()) {
    CHECK(std::abs(w) <= bound);
    hi = std::max(hi, std::abs(w));
  }
  CHECK(hi > bound * 0.9);
  // Transformer re-initialises every matrix Xavier-uniform (torch.nn.Transformer does)
  Transformer t(TransformerOptions{.d_model = 8, .nhead = 2, .dim_feedforward = 32}, 1, 1, gen);
  const double lin1 = std::sqrt(6.0 / (8 + 32));
  double lin1_hi = 0;
  for (double w : t.parameter("encoder.layers.0.linear1.weight").data().to_vector<double>()) {
    CHECK(std::abs(w) <= lin1);
    lin1_hi = std::max(lin1_hi, std::abs(w));
  }
  CHECK(lin1_hi > 1.0 / std::sqrt(8.0));  // beyond Linear's own U(-1/sqrt(in), 1/sqrt(in))
}

TEST_CASE("transformer: sinusoidal positions, sin on even and cos on odd features") {
  const Tensor p = sinusoidal_positions(7, 6, f64);
  CHECK(p.shape() == Shape{7, 6});
  for (std::int64_t j = 0; j < 6; ++j) CHECK(p.at({0, j}) == (j % 2 == 0 ? 0.0 : 1.0));
  for (std::int64_t t = 0; t < 7; ++t) {
    const double td = static_cast<double>(t);
    CHECK(p.at({t, 0}) == doctest::Approx(std::sin(td)));
    CHECK(p.at({t, 1}) == doctest::Approx(std::cos(td)));
    CHECK(p.at({t, 4}) == doctest::Approx(std::sin(td / std::pow(10000.0, 4.0 / 6))));
    CHECK(p.at({t, 5}) == doctest::Approx(std::cos(td / std::pow(10000.0, 4.0 / 6))));
  }
  CHECK(sinusoidal_positions(3, 5).shape() == Shape{3, 5});  // odd E: the last is a sin
  CHECK(sinusoidal_positions(3, 5).dtype() == DType::f32);
  CHECK_THROWS_AS(sinusoidal_positions(3, 0), ValueError);
  CHECK(parse_activation("gelu") == Activation::gelu);
  CHECK(activation_name(Activation::relu) == "relu");
  CHECK_THROWS_WITH_AS(parse_activation("tanh"), doctest::Contains("known: relu, gelu"),
                       ValueError);
}

// --- MultiheadAttention behaviour ---

TEST_CASE("transformer: MultiheadAttention masks (padding, bool and float attn_mask, causal)") {
  Generator gen(3);
  MultiheadAttention mha(8, 2, 0.0, true, gen, f64);
  mha.in_proj_bias.data().copy_from(normal({24}, 0, 0.5, f64, gen));
  const Tensor x = normal({2, 5, 8}, 0, 1, f64, gen);
  const Variable xv(x);

  SUBCASE("padded keys get zero weight and do not change the output") {
    const Tensor pad = padding_mask({5, 3}, 5);
    const AttentionOutput a = mha(xv, xv, xv, {.key_padding_mask = pad}, true);
    REQUIRE(a.weights.shape() == Shape{2, 2, 5, 5});
    for (std::int64_t h = 0; h < 2; ++h) {
      for (std::int64_t i = 0; i < 5; ++i) {
        double row = 0;
        for (std::int64_t j = 0; j < 5; ++j) row += a.weights.at({1, h, i, j});
        CHECK(row == doctest::Approx(1.0).epsilon(1e-12));
        CHECK(a.weights.at({1, h, i, 3}) == 0.0);
        CHECK(a.weights.at({1, h, i, 4}) == 0.0);
      }
    }
    // new values at the padded keys (as keys and values only: query stays x)
    Tensor k = x.clone();
    k.narrow(0, 1, 1).narrow(1, 3, 2).copy_from(normal({1, 2, 8}, 0, 5, f64, gen));
    const Variable kv(k);
    const AttentionOutput b = mha(xv, kv, kv, {.key_padding_mask = pad});
    CHECK(max_abs_diff(a.output.data(), b.output.data()) < 1e-12);
  }
  SUBCASE("bool attn_mask, float 0/-inf attn_mask and is_causal agree") {
    const Tensor causal = causal_mask(5);
    const Tensor neg_inf =
        masked_fill(Tensor::zeros({5, 5}, f64), causal, -std::numeric_limits<double>::infinity());
    const AttentionOutput a = mha(xv, xv, xv, {.attn_mask = causal}, true);
    const AttentionOutput b = mha(xv, xv, xv, {.attn_mask = neg_inf}, true);
    const AttentionOutput c = mha(xv, xv, xv, {.is_causal = true}, true);
    CHECK(max_abs_diff(a.output.data(), b.output.data()) == 0.0);
    CHECK(max_abs_diff(a.output.data(), c.output.data()) < 1e-14);
    CHECK(max_abs_diff(a.weights, c.weights) < 1e-14);
    CHECK(a.weights.at({0, 1, 1, 2}) == 0.0);
    CHECK(a.weights.at({0, 1, 4, 4}) > 0.0);
    // with a padding mask as well: the two combine
    const Tensor pad = padding_mask({5, 2}, 5);
    const AttentionOutput d = mha(xv, xv, xv, {.key_padding_mask = pad, .attn_mask = causal}, true);
    const AttentionOutput e = mha(xv, xv, xv, {.key_padding_mask = pad, .is_causal = true}, true);
    CHECK(max_abs_diff(d.weights, e.weights) < 1e-14);
    CHECK(d.weights.at({1, 0, 4, 2}) == 0.0);  // padding
    CHECK(d.weights.at({0, 0, 0, 1}) == 0.0);  // causal
  }
  SUBCASE("self-attention's packed projection equals three separate ones") {
    const Variable q(x.clone()), k(x.clone()), v(x.clone());  // distinct: no packing
    const AttentionOutput a = mha(xv, xv, xv);
    const AttentionOutput b = mha(q, k, v);
    CHECK(max_abs_diff(a.output.data(), b.output.data()) < 1e-13);
    // and project_kv + attend is forward in two pieces
    const AttentionOutput c = mha.attend(q, mha.project_kv(k, k));
    CHECK(max_abs_diff(a.output.data(), c.output.data()) < 1e-13);
  }
}

TEST_CASE("transformer: MultiheadAttention::step over a cache equals the causal forward") {
  Generator gen(4);
  MultiheadAttention mha(8, 4, 0.0, true, gen, f64);
  const Tensor x = normal({3, 6, 8}, 0, 1, f64, gen);
  const Variable xv(x);
  const Tensor pad = padding_mask({6, 4, 6}, 6);
  const AttentionOutput full = mha(xv, xv, xv, {.key_padding_mask = pad, .is_causal = true}, true);
  KV cache;
  // one position, then two at once, then three: the chunk is causal inside too
  std::int64_t t = 0;
  for (std::int64_t n : {1, 2, 3}) {
    const AttentionOutput s =
        mha.step(Variable(x.narrow(1, t, n)), cache, pad.narrow(1, 0, t + n), true);
    CHECK(cache.length() == t + n);
    CHECK(max_abs_diff(s.output.data(), full.output.data().narrow(1, t, n)) < 1e-12);
    CHECK(max_abs_diff(s.weights, full.weights.narrow(2, t, n).narrow(3, 0, t + n)) < 1e-12);
    t += n;
  }
}

TEST_CASE("transformer: errors name the layer and show the shapes") {
  Generator gen(5);
  MultiheadAttention mha(4, 2, 0.0, true, gen);
  const Variable x(Tensor::zeros({2, 3, 4}));
  CHECK_THROWS_WITH_AS(
      mha(Variable(Tensor::zeros({2, 3, 5})), x, x),
      doctest::Contains("MultiheadAttention: query [2,3,5], key [2,3,4], value [2,3,4] must be"),
      ShapeError);
  CHECK_THROWS_WITH_AS(mha(x, x, Variable(Tensor::zeros({2, 4, 4}))),
                       doctest::Contains("value [2,4,4]"), ShapeError);
  CHECK_THROWS_WITH_AS(mha(x, x, x, {.key_padding_mask = padding_mask({3, 3}, 4)}),
                       doctest::Contains("key_padding_mask bool [2,4] must be bool [B,Tk] = [2,3]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(mha(x, x, x, {.key_padding_mask = Tensor::zeros({2, 3})}),
                       doctest::Contains("key_padding_mask float32 [2,3]"), ShapeError);
  CHECK_THROWS_WITH_AS(mha(x, x, x, {.attn_mask = causal_mask(4)}),
                       doctest::Contains("attn_mask [4,4] must be [Tq,Tk] = [3,3]"), ShapeError);
  Tensor half = Tensor::zeros({3, 3});
  half.narrow(0, 1, 1).narrow(1, 2, 1).fill_(0.5);
  CHECK_THROWS_WITH_AS(mha(x, x, x, {.attn_mask = half}),
                       doctest::Contains("may hold only 0 (attend) and -inf (do not); found 0.5 "
                                         "at [1,2]"),
                       ValueError);
  CHECK_THROWS_WITH_AS(mha(x, x, x, {.attn_mask = Tensor::zeros({3, 3}, DType::i64)}),
                       doctest::Contains("attn_mask must be bool or floating, got int64"),
                       DTypeError);
  CHECK_THROWS_WITH_AS(MultiheadAttention(6, 4),
                       doctest::Contains("embed_dim 6 is not divisible by num_heads 4"),
                       ValueError);
  CHECK_THROWS_AS(MultiheadAttention(4, 2, 1.0), ValueError);
  CHECK_THROWS_WITH_AS(mha.attend(x, KV{}), doctest::Contains("Tk > 0"), ShapeError);
  KV cache = mha.project_kv(x, x);
  CHECK(cache.k.shape() == Shape{2, 2, 3, 2});
  CHECK_THROWS_WITH_AS(mha.step(Variable(Tensor::zeros({3, 1, 4})), cache),
                       doctest::Contains("step input [3,1,4]"), ShapeError);

  const TransformerOptions o{.d_model = 4, .nhead = 2, .dim_feedforward = 8};
  TransformerEncoderLayer enc(o, gen);
  CHECK_THROWS_WITH_AS(
      enc(Variable(Tensor::zeros({2, 3, 5}))),
      doctest::Contains("TransformerEncoderLayer: src [2,3,5] must be [B,T,E] with E = d_model 4"),
      ShapeError);
  TransformerDecoderLayer dec(o, gen);
  CHECK_THROWS_WITH_AS(dec.forward(x, Variable(Tensor::zeros({3, 5, 4}))),
                       doctest::Contains("TransformerDecoderLayer: tgt [2,3,4] and memory [3,5,4] "
                                         "differ in batch"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(dec.forward(x, Variable(Tensor::zeros({2, 5}))),
                       doctest::Contains("TransformerDecoderLayer: memory [2,5] must be"),
                       ShapeError);
  TransformerDecoder stack(o, 2, true, gen);
  DecoderCache c;
  CHECK_THROWS_WITH_AS(stack.step(x, c), doctest::Contains("use start_cache"), ValueError);
  CHECK_THROWS_WITH_AS(stack.start_cache(x, padding_mask({1, 2}, 2)),
                       doctest::Contains("memory_key_padding_mask bool [2,2] must be bool [B,S] "
                                         "for memory [2,3,4]"),
                       ShapeError);
  CHECK_THROWS_WITH_AS(TransformerEncoderLayer(TransformerOptions{.d_model = 6, .nhead = 4}),
                       doctest::Contains("TransformerEncoderLayer: d_model 6 is not divisible"),
                       ValueError);
  CHECK_THROWS_WITH_AS(TransformerEncoder(o, 0),
                       doctest::Contains("TransformerEncoder: num_layers 0 must be positive"),
                       ValueError);
  CHECK_THROWS_AS(
      TransformerDecoderLayer(TransformerOptions{.d_model = 4, .nhead = 2, .layer_norm_eps = 0}),
      ValueError);
}

TEST_CASE("transformer: dropout acts in training only, train/eval reaching every dropout") {
  Generator gen(6);
  TransformerDecoderLayer dec(small(false, 0.5), gen);
  const Variable tgt(normal({2, 3, 4}, 0, 1, f64, gen)), mem(normal({2, 4, 4}, 0, 1, f64, gen));
  const auto run = [&] { return dec.forward(tgt, mem, {.is_causal = true}).data(); };
  CHECK(max_abs_diff(run(), run()) > 1e-3);  // fresh masks each call
  dec.eval();
  CHECK_FALSE(dec.self_attn.training());
  CHECK_FALSE(dec.dropout3.training());
  const Tensor a = run();
  CHECK(max_abs_diff(a, run()) == 0.0);
  // in eval, the same as the layer with dropout 0 and the same weights
  Generator same(6);
  TransformerDecoderLayer plain(small(false, 0.0), same);
  CHECK(max_abs_diff(a, plain.forward(tgt, mem, {.is_causal = true}).data()) == 0.0);
}

// --- gradchecks, float64, parameters included ---

TEST_CASE("transformer gradcheck: MultiheadAttention, self and cross, with masks") {
  Generator gen(11);
  MultiheadAttention mha(4, 2, 0.0, true, gen, f64);
  mha.in_proj_bias.data().copy_from(normal({12}, 0, 0.5, f64, gen));
  mha.out_proj.bias.data().copy_from(normal({4}, 0, 0.5, f64, gen));
  const Tensor pad = padding_mask({3, 2}, 3);
  // self-attention: the same Variable three times, through the packed projection
  check_layer_grad(
      [&](const std::vector<Variable>& x) {
        return mha(x[0], x[0], x[0], {.key_padding_mask = pad, .is_causal = true}).output;
      },
      {normal({2, 3, 4}, 0, 1, f64, gen)}, mha);
  // cross-attention: key == value (memory), with an attn_mask
  Tensor am = Tensor::zeros({2, 4}, DType::boolean);
  static_cast<std::uint8_t*>(am.raw_data())[1] = 1;
  check_layer_grad(
      [&](const std::vector<Variable>& x) {
        return mha(x[0], x[1], x[1], {.key_padding_mask = padding_mask({4, 3}, 4), .attn_mask = am})
            .output;
      },
      {normal({2, 2, 4}, 0, 1, f64, gen), normal({2, 4, 4}, 0, 1, f64, gen)}, mha);
  // separate key and value
  check_layer_grad([&](const std::vector<Variable>& x) { return mha(x[0], x[1], x[2]).output; },
                   {normal({2, 2, 4}, 0, 1, f64, gen), normal({2, 3, 4}, 0, 1, f64, gen),
                    normal({2, 3, 4}, 0, 1, f64, gen)},
                   mha);
}

TEST_CASE(
    "transformer gradcheck: encoder and decoder layers, post-norm and pre-norm, relu and gelu") {
  for (const auto& [norm_first, act] :
       {std::pair{false, Activation::relu}, std::pair{true, Activation::relu},
        std::pair{false, Activation::gelu}, std::pair{true, Activation::gelu}}) {
    CAPTURE(norm_first);
    CAPTURE(activation_name(act));
    Generator gen(12);
    const Tensor src_pad = padding_mask({4, 2}, 4);
    const Tensor tgt_pad = padding_mask({3, 2}, 3);
    TransformerEncoderLayer enc(small(norm_first, 0.0, act), gen);
    check_layer_grad(
        [&](const std::vector<Variable>& x) {
          return enc(x[0], {.key_padding_mask = src_pad, .is_causal = true});
        },
        {normal({2, 4, 4}, 0, 1, f64, gen)}, enc);
    TransformerDecoderLayer dec(small(norm_first, 0.0, act), gen);
    check_layer_grad(
        [&](const std::vector<Variable>& x) {
          return dec.forward(x[0], x[1], {.key_padding_mask = tgt_pad, .is_causal = true},
                             {.key_padding_mask = src_pad});
        },
        {normal({2, 3, 4}, 0, 1, f64, gen), normal({2, 4, 4}, 0, 1, f64, gen)}, dec);
  }
}

TEST_CASE("transformer gradcheck: a layer with dropout (one fixed mask per evaluation)") {
  // Reseeding inside the function gives every evaluation the same masks (as the Dropout
  // gradcheck in test_nn.cpp): the attention weights', after attention, in the feed-forward.
  Generator gen(13);
  TransformerEncoderLayer enc(small(false, 0.25), gen);
  check_layer_grad(
      [&](const std::vector<Variable>& x) {
        gen.manual_seed(3);
        return enc(x[0]);
      },
      {normal({2, 3, 4}, 0, 1, f64, gen)}, enc);
}

TEST_CASE("transformer gradcheck: 2-layer stacks with final norm, and a Transformer") {
  Generator gen(14);
  const Tensor src_pad = padding_mask({4, 3}, 4);
  TransformerEncoder enc(small(true, 0.0, Activation::gelu), 2, true, gen);
  check_layer_grad(
      [&](const std::vector<Variable>& x) { return enc(x[0], {.key_padding_mask = src_pad}); },
      {normal({2, 4, 4}, 0, 1, f64, gen)}, enc);
  TransformerDecoder dec(small(false), 2, true, gen);
  check_layer_grad(
      [&](const std::vector<Variable>& x) {
        return dec.forward(x[0], x[1], {.is_causal = true}, {.key_padding_mask = src_pad});
      },
      {normal({2, 3, 4}, 0, 1, f64, gen), normal({2, 4, 4}, 0, 1, f64, gen)}, dec);
  Transformer t(small(false), 1, 1, gen);
  check_layer_grad(
      [&](const std::vector<Variable>& x) {
        return t.forward(x[0], x[1], {.key_padding_mask = src_pad}, {.is_causal = true},
                         {.key_padding_mask = src_pad});
      },
      {normal({2, 4, 4}, 0, 1, f64, gen), normal({2, 3, 4}, 0, 1, f64, gen)}, t);
}

// --- packed rows (nn/token_packing.h) ---

TEST_CASE("transformer: TokenPacking keeps the tokens in order and unpacks zeros at padding") {
  const Tensor pad = padding_mask({3, 1, 2}, 3);
  const TokenPacking p = TokenPacking::from_padding(pad);
  CHECK(p.tokens() == 6);
  CHECK_FALSE(p.dense());
  CHECK(p.rows().to_vector<std::int64_t>() == std::vector<std::int64_t>{0, 1, 2, 3, 6, 7});
  Generator gen(21);
  const Tensor x = normal({3, 3, 2}, 0, 1, f64, gen);
  const Variable packed = p.pack(Variable(x));
  REQUIRE(packed.shape() == Shape{6, 2});
  CHECK(packed.data().at({4, 1}) == x.at({2, 0, 1}));
  const Tensor back = p.unpack(packed).data();
  REQUIRE(back.shape() == x.shape());
  for (std::int64_t b = 0; b < 3; ++b) {
    for (std::int64_t t = 0; t < 3; ++t) {
      const bool is_pad = pad.at({b, t}) != 0;
      for (std::int64_t c = 0; c < 2; ++c) {
        CHECK(back.at({b, t, c}) == (is_pad ? 0.0 : x.at({b, t, c})));
      }
    }
  }
  const GradcheckResult r = gradcheck(
      [&](const std::vector<Variable>& v) { return p.unpack(p.pack(v[0]) * p.pack(v[0])); }, {x});
  CHECK(r.passed);
  // without padding, packing is a reshape
  const TokenPacking dense = TokenPacking::from_padding(padding_mask({3, 3, 3}, 3));
  CHECK(dense.dense());
  CHECK(max_abs_diff(dense.pack(Variable(x)).data(), x.reshape({9, 2})) == 0);
  CHECK_THROWS_WITH_AS(p.pack(Variable(normal({2, 3, 2}, 0, 1, f64, gen))),
                       "TokenPacking::pack: input [2,3,2] must be [B,T,C] with B = 3, T = 3",
                       ShapeError);
  CHECK_THROWS_WITH_AS(p.unpack(Variable(normal({5, 2}, 0, 1, f64, gen))),
                       "TokenPacking::unpack: input [5,2] must be [N,C] with N = 6 tokens",
                       ShapeError);
  CHECK_THROWS_AS(TokenPacking::from_padding(Tensor::zeros({3}, DType::boolean)), ShapeError);
}

// A weighted sum of the rows: the same loss for a packed output and a packed full one.
Variable weighted(const Variable& rows, const Tensor& w) {
  return sum(rows * Variable(w));
}

// Every parameter's gradient after loss(), starting from none.
std::vector<Tensor> param_grads(const Module& m, const std::function<Variable()>& loss) {
  for (Variable p : m.parameters()) p.zero_grad();
  loss().backward();
  std::vector<Tensor> g;
  for (const Variable& p : m.parameters()) g.push_back(p.grad().clone());
  return g;
}

void check_same(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CAPTURE(i);
    CHECK(max_abs_diff(a[i], b[i]) < 1e-12);
  }
}

TEST_CASE("transformer: layers on packed rows give forward's outputs and gradients at the tokens") {
  for (const bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    Generator gen(22);
    const Tensor src_pad = padding_mask({4, 2, 3}, 4), tgt_pad = padding_mask({1, 3, 2}, 3);
    const TokenPacking sp = TokenPacking::from_padding(src_pad);
    const TokenPacking tp = TokenPacking::from_padding(tgt_pad);
    const Variable src(normal({3, 4, 4}, 0, 1, f64, gen)), tgt(normal({3, 3, 4}, 0, 1, f64, gen));
    const AttentionMasks src_masks{.key_padding_mask = src_pad, .is_causal = false};
    const AttentionMasks tgt_masks{.key_padding_mask = {}, .is_causal = true};

    TransformerEncoder enc(small(norm_first, 0.0, Activation::gelu), 2, true, gen);
    const Tensor we = normal({sp.tokens(), 4}, 0, 1, f64, gen);
    const auto packed_enc = [&] { return enc.forward_packed(sp.pack(src), sp, src_masks); };
    const auto full_enc = [&] { return sp.pack(enc.forward(src, src_masks)); };
    CHECK(max_abs_diff(packed_enc().data(), full_enc().data()) < 1e-12);
    check_same(param_grads(enc, [&] { return weighted(packed_enc(), we); }),
               param_grads(enc, [&] { return weighted(full_enc(), we); }));

    TransformerDecoder dec(small(norm_first), 2, true, gen);
    const Tensor wd = normal({tp.tokens(), 4}, 0, 1, f64, gen);
    const Variable memory_rows = sp.pack(src);
    const auto packed_dec = [&] {
      return dec.forward_packed(tp.pack(tgt), tp, memory_rows, sp, tgt_masks, src_masks);
    };
    const auto full_dec = [&] { return tp.pack(dec.forward(tgt, src, tgt_masks, src_masks)); };
    CHECK(max_abs_diff(packed_dec().data(), full_dec().data()) < 1e-12);
    check_same(param_grads(dec, [&] { return weighted(packed_dec(), wd); }),
               param_grads(dec, [&] { return weighted(full_dec(), wd); }));
    check_layer_grad(
        [&](const std::vector<Variable>& x) {
          return dec.forward_packed(x[0], tp, x[1], sp, tgt_masks, src_masks);
        },
        {normal({tp.tokens(), 4}, 0, 1, f64, gen), normal({sp.tokens(), 4}, 0, 1, f64, gen)}, dec);
  }
}

TEST_CASE("transformer: packed rows of the wrong shape are named in the error") {
  Generator gen(23);
  const TokenPacking p = TokenPacking::from_padding(padding_mask({2, 1}, 2));
  MultiheadAttention mha(4, 2, 0.0, true, gen, f64);
  CHECK_THROWS_WITH_AS(mha.forward_packed(Variable(normal({2, 4}, 0, 1, f64, gen)), p),
                       "MultiheadAttention: self-attention rows [2,4] must be [N,E] with N = 3 "
                       "tokens, E = 4",
                       ShapeError);
  TransformerDecoderLayer dec(small(false), gen);
  const TokenPacking other = TokenPacking::from_padding(padding_mask({2}, 2));
  CHECK_THROWS_WITH_AS(dec.forward_packed(Variable(normal({3, 4}, 0, 1, f64, gen)), p,
                                          Variable(normal({2, 4}, 0, 1, f64, gen)), other),
                       "TransformerDecoderLayer: target batch 2 and memory batch 1 differ",
                       ShapeError);
}

// --- incremental decoding ---

void check_decoder_steps(bool norm_first) {
  CAPTURE(norm_first);
  Generator gen(21);
  TransformerOptions o{.d_model = 8, .nhead = 2, .dim_feedforward = 16, .dropout = 0.0};
  o.norm_first = norm_first;
  o.dtype = f64;
  TransformerDecoder dec(o, 2, true, gen);
  const std::int64_t B = 3, T = 5, S = 4;
  const Tensor tgt = normal({B, T, 8}, 0, 1, f64, gen);
  const Tensor memory = normal({B, S, 8}, 0, 1, f64, gen);
  const Tensor mem_pad = padding_mask({4, 2, 3}, S);
  std::vector<Tensor> full_weights;
  const Variable full = dec.forward(Variable(tgt), Variable(memory), {.is_causal = true},
                                    {.key_padding_mask = mem_pad}, &full_weights);
  REQUIRE(full_weights.size() == 2);
  CHECK(full_weights[1].shape() == Shape{B, 2, T, S});

  NoGradGuard no_grad;
  DecoderCache cache = dec.start_cache(Variable(memory), mem_pad);
  for (std::int64_t t = 0; t < T; ++t) {
    std::vector<Tensor> w;
    const Variable y = dec.step(Variable(tgt.narrow(1, t, 1)), cache, &w);
    CHECK(cache.length() == t + 1);
    CHECK(max_abs_diff(y.data(), full.data().narrow(1, t, 1)) < 1e-12);
    for (std::size_t l = 0; l < 2; ++l) {
      CHECK(max_abs_diff(w[l], full_weights[l].narrow(2, t, 1)) < 1e-12);
    }
  }

  // Beam search's reorder after 3 steps: rows 2, 0, 0 carry on. The reference is the full
  // forward on those rows of every input.
  const Tensor rows = Tensor::from_list({2, 0, 0}, {3}, DType::i64);
  const Tensor tgt_r = index_select(tgt, 0, rows), mem_r = index_select(memory, 0, rows);
  const Tensor pad_r = index_select(mem_pad, 0, rows);
  Variable full_r;
  {
    const Variable y = dec.forward(Variable(tgt_r), Variable(mem_r), {.is_causal = true},
                                   {.key_padding_mask = pad_r});
    full_r = y;
  }
  DecoderCache c = dec.start_cache(Variable(memory), mem_pad);
  for (std::int64_t t = 0; t < 3; ++t) dec.step(Variable(tgt.narrow(1, t, 1)), c);
  c = reorder(c, rows);
  CHECK(max_abs_diff(c.memory_key_padding_mask.astype(f64), pad_r.astype(f64)) == 0.0);
  for (std::int64_t t = 3; t < T; ++t) {
    const Variable y = dec.step(Variable(tgt_r.narrow(1, t, 1)), c);
    CHECK(max_abs_diff(y.data(), full_r.data().narrow(1, t, 1)) < 1e-12);
  }
}

TEST_CASE("transformer: decoder steps with a cache equal the full causal forward, and reorder") {
  check_decoder_steps(false);
  check_decoder_steps(true);
}

TEST_CASE("transformer: encoder steps (decoder-only generation) equal the causal forward") {
  for (bool norm_first : {false, true}) {
    CAPTURE(norm_first);
    Generator gen(22);
    TransformerOptions o{.d_model = 8, .nhead = 4, .dim_feedforward = 16, .dropout = 0.0};
    o.norm_first = norm_first;
    o.dtype = f64;
    TransformerEncoder enc(o, 2, norm_first, gen);
    const Tensor x = normal({2, 6, 8}, 0, 1, f64, gen);
    const Variable full = enc(Variable(x), {.is_causal = true});
    // a prompt of 4 at once, then one at a time, then a reorder
    EncoderCache cache = enc.start_cache();
    const Variable prompt = enc.step(Variable(x.narrow(1, 0, 4)), cache);
    CHECK(max_abs_diff(prompt.data(), full.data().narrow(1, 0, 4)) < 1e-12);
    const Variable y4 = enc.step(Variable(x.narrow(1, 4, 1)), cache);
    CHECK(max_abs_diff(y4.data(), full.data().narrow(1, 4, 1)) < 1e-12);
    const Tensor rows = Tensor::from_list({1, 1}, {2}, DType::i64);
    cache = reorder(cache, rows);
    const Variable y5 =
        enc.step(Variable(x.narrow(0, 1, 1).narrow(1, 5, 1).expand({2, 1, 8}).contiguous()), cache);
    for (std::int64_t b = 0; b < 2; ++b) {
      CHECK(max_abs_diff(y5.data().narrow(0, b, 1), full.data().narrow(0, 1, 1).narrow(1, 5, 1)) <
            1e-12);
    }
  }
}

// --- encoder-only: a tiny per-token task ---

TEST_CASE(
    "transformer: an encoder + Linear trained with Adam predicts each token's left neighbour") {
  // y[b,t] = x[b,t-1], and a class of its own at t = 0: attention must learn to look one
  // position back, which the sinusoidal positions make possible.
  Generator gen(31);
  const std::int64_t V = 6, E = 32, T = 8, B = 32;
  Embedding embed(V, E, -1, gen);
  TransformerEncoder enc(
      TransformerOptions{.d_model = E, .nhead = 4, .dim_feedforward = 64, .dropout = 0.0}, 2, false,
      gen);
  Linear head(E, V + 1, true, gen);
  std::vector<Variable> params = embed.parameters();
  for (const auto& m : std::vector<const Module*>{&enc, &head}) {
    for (const Variable& p : m->parameters()) params.push_back(p);
  }
  Adam opt(params, {.lr = 3e-3});
  const Variable positions(sinusoidal_positions(T, E));
  const auto batch = [&](std::int64_t n, Tensor& ids, Tensor& targets) {
    std::vector<std::int64_t> x(static_cast<std::size_t>(n * T)), y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = static_cast<std::int64_t>(gen.next_u64() % static_cast<std::uint64_t>(V));
    for (std::size_t i = 0; i < x.size(); ++i) y[i] = i % T == 0 ? V : x[i - 1];
    ids = Tensor::from_vector(x, {n, T});
    targets = Tensor::from_vector(y, {n * T});
  };
  const auto logits = [&](const Tensor& ids) {
    return reshape(head(enc(embed(ids) + positions)), {-1, V + 1});
  };
  for (int step = 0; step < 400; ++step) {
    Tensor ids, targets;
    batch(B, ids, targets);
    const Variable loss = cross_entropy(logits(ids), targets);
    opt.zero_grad();
    loss.backward();
    opt.step();
  }
  NoGradGuard no_grad;
  Tensor ids, targets;
  batch(128, ids, targets);
  const auto z = logits(ids).data().to_vector<double>();
  const auto want = targets.to_vector<std::int64_t>();
  std::int64_t right = 0;
  for (std::size_t r = 0; r < want.size(); ++r) {
    std::int64_t best = 0;
    for (std::int64_t c = 1; c <= V; ++c) {
      if (z[r * (V + 1) + c] > z[r * (V + 1) + best]) best = c;
    }
    right += best == want[r];
  }
  const double accuracy = static_cast<double>(right) / static_cast<double>(want.size());
  CAPTURE(accuracy);
  CHECK(accuracy >= 0.99);
}

}  // namespace
}  // namespace seqgrad
