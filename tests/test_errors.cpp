// Error types and messages. A user mistake throws a typed exception whose message names the op
// (taken from code, so it cannot drift), shows every shape involved and what was expected.
#include <doctest/doctest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "tensor/ops.h"

using namespace seqgrad;

namespace {

// The what() of the E that f throws; fails the check (and returns "") if f throws nothing or
// something else.
template <class E>
std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    FAIL_CHECK("threw a different exception: " << e.what());
    return "";
  }
  FAIL_CHECK("did not throw");
  return "";
}

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool starts_with(const std::string& s, const std::string& prefix) {
  return s.rfind(prefix, 0) == 0;
}

}  // namespace

TEST_CASE("error types derive from the standard exceptions") {
  static_assert(std::is_base_of_v<std::invalid_argument, ShapeError>);
  static_assert(std::is_base_of_v<std::invalid_argument, DTypeError>);
  static_assert(std::is_base_of_v<std::invalid_argument, ValueError>);
  static_assert(std::is_base_of_v<std::out_of_range, IndexError>);
  static_assert(std::is_base_of_v<std::runtime_error, RuntimeError>);
  const Tensor a = Tensor::zeros({2, 3});
  CHECK_THROWS_AS(matmul(a, a), std::invalid_argument);
  CHECK_THROWS_AS(sum(a, {5}), std::out_of_range);
  CHECK_THROWS_AS(add(a, a.astype(DType::f64)), std::invalid_argument);
  CHECK_THROWS_AS(a.item(), std::logic_error);
}

TEST_CASE("matmul errors show both shapes") {
  const Tensor a = Tensor::zeros({32, 64}), b = Tensor::zeros({128, 16});
  CHECK_THROWS_WITH_AS(
      matmul(a, b), "matmul: [32,64] @ [128,16]: inner dimensions differ (64 vs 128)", ShapeError);
  CHECK_THROWS_WITH_AS(matmul_reference(a, b),
                       "matmul: [32,64] @ [128,16]: inner dimensions differ (64 vs 128)",
                       ShapeError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({2, 3, 4}), Tensor::zeros({5, 4, 6})),
                       "matmul: [2,3,4] @ [5,4,6]: batch sizes differ (2 vs 5)", ShapeError);
  CHECK_THROWS_WITH_AS(matmul(Tensor::zeros({4}), Tensor::zeros({4, 2})),
                       "matmul: [4] @ [4,2]: operands must be 2-D or 3-D", ShapeError);
  const std::string dt = message_of<DTypeError>([] {
    matmul(Tensor::zeros({2, 2}), Tensor::zeros({2, 2}, DType::f64));
  });
  CHECK(dt == "matmul: dtypes differ (float32[2,2] @ float64[2,2])");
  Tensor out = Tensor::zeros({3, 3});
  const std::string into = message_of<ShapeError>([&] {
    matmul_into(Tensor::zeros({2, 4}), Tensor::zeros({4, 3}), out, 1, 0);
  });
  CHECK(starts_with(into, "matmul_into: "));
  CHECK(contains(into, "[3,3]"));
  CHECK(contains(into, "[2,3]"));
}

TEST_CASE("broadcasting errors name the op and both shapes") {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  CHECK_THROWS_WITH_AS(add(a, b),
                       "add: shapes [2,3] and [4] do not broadcast (dimension 1 of the result: 3 "
                       "vs 4)",
                       ShapeError);
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"add", [&] { add(a, b); }},
      {"sub", [&] { sub(a, b); }},
      {"mul", [&] { mul(a, b); }},
      {"div", [&] { div(a, b); }},
      {"maximum", [&] { maximum(a, b); }},
      {"minimum", [&] { minimum(a, b); }},
      {"eq", [&] { eq(a, b); }},
      {"ne", [&] { ne(a, b); }},
      {"lt", [&] { lt(a, b); }},
      {"le", [&] { le(a, b); }},
      {"gt", [&] { gt(a, b); }},
      {"ge", [&] { ge(a, b); }},
      {"tanh_backward", [&] { tanh_backward(a, b); }},
      {"sigmoid_backward", [&] { sigmoid_backward(a, b); }},
      {"relu_backward", [&] { relu_backward(a, b); }},
      {"where",
       [&] {
         where(Tensor::zeros({2, 3}, DType::boolean), a, b);
       }},
      {"sum_to_shape", [&] { sum_to_shape(a, {4}); }},
  };
  for (const auto& [name, f] : ops) {
    CAPTURE(name);
    const std::string msg = message_of<ShapeError>(f);
    CHECK(starts_with(msg, name + ": "));
    CHECK(contains(msg, "[2,3]"));
    CHECK(contains(msg, "[4]"));
  }
  // Three-operand broadcasting in where names the condition's shape too.
  const std::string w = message_of<ShapeError>([&] {
    where(Tensor::zeros({5}, DType::boolean), Tensor::zeros({2, 3}), Tensor::zeros({3}));
  });
  CHECK(starts_with(w, "where: "));
  CHECK(contains(w, "[5]"));
  // In-place and mask ops say what the destination is.
  Tensor small = Tensor::zeros({3});
  const std::string ip = message_of<ShapeError>([&] { add_(small, a); });
  CHECK(starts_with(ip, "add_: "));
  CHECK(contains(ip, "[3]"));
  CHECK(contains(ip, "[2,3]"));
  const std::string mf = message_of<ShapeError>([&] {
    masked_fill(Tensor::zeros({3}), Tensor::zeros({2, 3}, DType::boolean), 0);
  });
  CHECK(mf == "masked_fill: mask [2,3] does not broadcast to the input [3]");
  const std::string sm = message_of<ShapeError>([&] {
    softmax(a, 1, Tensor::zeros({2, 2}, DType::boolean));
  });
  CHECK(starts_with(sm, "softmax: "));
  CHECK(contains(sm, "[2,2]"));
  CHECK(contains(sm, "[2,3]"));
}

TEST_CASE("dtype mismatches throw DTypeError") {
  const Tensor f = Tensor::zeros({2}), d = Tensor::zeros({2}, DType::f64);
  const Tensor i = Tensor::zeros({2}, DType::i64);
  CHECK_THROWS_WITH_AS(add(f, d), "add: dtypes differ (float32[2] vs float64[2])", DTypeError);
  CHECK_THROWS_WITH_AS(exp(i), "exp: expected a float32 or float64 tensor, got int64", DTypeError);
  CHECK_THROWS_WITH_AS(sum(i), "sum: expected a float32 or float64 tensor, got int64", DTypeError);
  CHECK_THROWS_WITH_AS(f.data<double>(), "data: tensor holds float32, asked for float64",
                       DTypeError);
  Tensor dst = Tensor::zeros({2});
  CHECK_THROWS_WITH_AS(dst.copy_from(d), "copy_from: source is float64, destination is float32",
                       DTypeError);
  CHECK_THROWS_WITH_AS(masked_fill(f, f, 0), "masked_fill: the mask must be bool, got float32[2]",
                       DTypeError);
  CHECK_THROWS_AS(where(f, f, f), DTypeError);
  CHECK_THROWS_AS(where(Tensor::zeros({2}, DType::boolean), f, d), DTypeError);
  CHECK_THROWS_AS(softmax(f, 0, f), DTypeError);
  CHECK_THROWS_AS(add_(dst, d), DTypeError);
  CHECK_THROWS_AS(axpy_(dst, 1.0, d), DTypeError);
  CHECK_THROWS_AS(matmul(Tensor::zeros({2, 2}, DType::i64), Tensor::zeros({2, 2}, DType::i64)),
                  DTypeError);
  // Two inputs whose dtypes differ, in ops that take several tensors.
  CHECK_THROWS_AS(concat({f, d}, 0), DTypeError);
  CHECK_THROWS_AS(stack({f, d}, 0), DTypeError);
  Tensor acc = Tensor::zeros({3, 2});
  CHECK_THROWS_AS(
      index_add_(acc, 0, Tensor::zeros({1}, DType::i64), Tensor::zeros({1, 2}, DType::f64)),
      DTypeError);
  CHECK_THROWS_AS(
      scatter_add_(acc, 0, Tensor::zeros({1, 1}, DType::i64), Tensor::zeros({1, 1}, DType::f64)),
      DTypeError);
  Tensor out64 = Tensor::zeros({2, 2}, DType::f64);
  CHECK_THROWS_AS(matmul_into(Tensor::zeros({2, 2}), Tensor::zeros({2, 2}), out64, 1, 0),
                  DTypeError);
  CHECK_THROWS_AS(softmax_backward(f, d, 0), DTypeError);
  CHECK_THROWS_AS(log_softmax_backward(f, d, 0), DTypeError);
  // The op that was called is the one named, also when it delegates.
  CHECK(starts_with(message_of<DTypeError>([&] { stack({f, d}, 0); }), "stack: "));
  CHECK(starts_with(message_of<DTypeError>([&] { concat({f, d}, 0); }), "concat: "));
  for (const auto& [name, fn] : std::vector<std::pair<std::string, std::function<void()>>>{
           {"sum", [&] { sum(i); }},
           {"mean", [&] { mean(i); }},
           {"amax", [&] { amax(i, {0}); }},
           {"max", [&] { max(i, 0); }},
           {"softmax", [&] { softmax(i, 0); }},
           {"log_softmax", [&] { log_softmax(i, 0); }},
           {"matmul",
            [&] {
              matmul(i.reshape({1, 2}), i.reshape({2, 1}));
            }},
           {"index_add_", [&] {
              Tensor o = Tensor::zeros({2}, DType::i64);
              index_add_(o, 0, i, i);
            }}}) {
    CAPTURE(name);
    CHECK(message_of<DTypeError>(fn) == name + ": expected a float32 or float64 tensor, got int64");
  }
  // Indices must be int64.
  CHECK_THROWS_WITH_AS(index_select(Tensor::zeros({3}), 0, f),
                       "index_select: indices must be an int64 tensor, got float32", DTypeError);
}

TEST_CASE("axes out of range throw IndexError naming the op") {
  const Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(sum(x, {2}), "sum: axis 2 is out of range for a tensor with 2 dimensions",
                       IndexError);
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"sum", [&] { sum(x, {-3}); }},
      {"mean", [&] { mean(x, {2}); }},
      {"amax", [&] { amax(x, {2}); }},
      {"max", [&] { max(x, 2); }},
      {"softmax", [&] { softmax(x, 2); }},
      {"log_softmax", [&] { log_softmax(x, -3); }},
      {"softmax_backward", [&] { softmax_backward(x, x, 2); }},
      {"log_softmax_backward", [&] { log_softmax_backward(x, x, 2); }},
      {"transpose", [&] { x.transpose(0, 2); }},
      {"permute",
       [&] {
         x.permute({0, 2});
       }},
      {"narrow", [&] { x.narrow(2, 0, 1); }},
      {"select", [&] { x.select(-3, 0); }},
      {"unsqueeze", [&] { x.unsqueeze(3); }},
      {"squeeze", [&] { x.squeeze(2); }},
      {"size", [&] { x.size(2); }},
      {"concat",
       [&] {
         concat({x, x}, 2);
       }},
      {"stack",
       [&] {
         stack({x, x}, 3);
       }},
      {"split", [&] { split(x, {2}, 2); }},
      {"index_select", [&] { index_select(x, 2, Tensor::zeros({1}, DType::i64)); }},
      {"gather",
       [&] {
         gather(x, 2, Tensor::zeros({1, 1}, DType::i64));
       }},
  };
  for (const auto& [name, f] : ops) {
    CAPTURE(name);
    const std::string msg = message_of<IndexError>(f);
    CHECK(starts_with(msg, name + ": axis "));
    CHECK(contains(msg, "out of range"));
  }
}

TEST_CASE("index errors show the index and the axis size") {
  const Tensor x = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH_AS(index_select(x, 0, Tensor::from_list({1, 5}, {2}, DType::i64)),
                       "index_select: index 5 is out of range for an axis of size 4", IndexError);
  CHECK_THROWS_WITH_AS(gather(x, 1, Tensor::from_list({-1}, {1, 1}, DType::i64)),
                       "gather: index -1 is out of range for an axis of size 3", IndexError);
  Tensor out = Tensor::zeros({4, 3});
  CHECK_THROWS_WITH_AS(
      index_add_(out, 0, Tensor::from_list({4}, {1}, DType::i64), Tensor::zeros({1, 3})),
      "index_add_: index 4 is out of range for an axis of size 4", IndexError);
  CHECK_THROWS_WITH_AS(
      scatter_add_(out, 1, Tensor::from_list({3}, {1, 1}, DType::i64), Tensor::zeros({1, 1})),
      "scatter_add_: index 3 is out of range for an axis of size 3", IndexError);
  CHECK_THROWS_WITH_AS(x.narrow(0, 3, 2),
                       "narrow: range [3, 5) is outside axis 0 of size 4 in [4,3]", IndexError);
  CHECK_THROWS_WITH_AS(x.at({4, 0}), "at: index 4 is out of range for axis 0 of [4,3]", IndexError);
}

TEST_CASE("shape errors of views and factories") {
  const Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_WITH_AS(x.reshape({4}), "reshape: cannot view [2,3] (6 elements) as [4]",
                       ShapeError);
  CHECK_THROWS_WITH_AS(x.expand({4, 3}),
                       "expand: cannot expand [2,3] to [4,3] (axis 0: 2 is not 1)", ShapeError);
  CHECK_THROWS_WITH_AS(x.squeeze(1), "squeeze: axis 1 of [2,3] has size 3, not 1", ShapeError);
  CHECK_THROWS_WITH_AS(Tensor::from_list({1, 2, 3}, {2, 2}),
                       "from_list: 3 values do not fill shape [2,2]", ShapeError);
  const std::string c = message_of<ShapeError>([&] { concat({x, Tensor::zeros({3, 2})}, 0); });
  CHECK(starts_with(c, "concat: "));
  CHECK(contains(c, "[2,3], [3,2]"));
  const std::string s = message_of<ShapeError>([&] { stack({x, Tensor::zeros({3, 2})}, 0); });
  CHECK(contains(s, "[2,3], [3,2]"));
  const std::string sp = message_of<ShapeError>([&] { split(x, {1, 1}, 1); });
  CHECK(sp == "split: sizes [1,1] do not add up to axis 1 of [2,3]");
}

TEST_CASE("value errors") {
  CHECK_THROWS_WITH_AS(Tensor::zeros({2, 3}).item(), "item: tensor [2,3] has 6 elements, not 1",
                       ValueError);
  CHECK_THROWS_WITH_AS(Tensor::empty({2, -1}), "empty: negative size in shape [2,-1]", ValueError);
  CHECK_THROWS_WITH_AS(Tensor().raw_data(), "data: the tensor is undefined", ValueError);
  CHECK_THROWS_WITH_AS(exp(Tensor()), "exp: input tensor is undefined", ValueError);
  CHECK_THROWS_WITH_AS(mean(Tensor::zeros({0})), "mean: mean over zero elements of [0]",
                       ValueError);
  Generator g;
  CHECK_THROWS_WITH_AS(uniform({1}, 2, 1, DType::f32, g), "uniform: low 2 must not exceed high 1",
                       ValueError);
  CHECK_THROWS_WITH_AS(bernoulli({1}, 2, g), "bernoulli: probability 2 is outside [0, 1]",
                       ValueError);
  CHECK_THROWS_WITH_AS(normal({1}, 0, -1, DType::f32, g), "normal: std -1 must be >= 0",
                       ValueError);
  Tensor t = Tensor::zeros({2, 1}).expand({2, 3});
  CHECK_THROWS_WITH_AS(add_(t, Tensor::zeros({2, 3})),
                       "add_: the destination [2,3] is a broadcast view", ValueError);
}

TEST_CASE("unary op names in messages come from the op") {
  const Tensor i = Tensor::zeros({2}, DType::i64);
  const std::vector<std::pair<std::string, std::function<void()>>> ops = {
      {"neg", [&] { neg(i); }},
      {"exp", [&] { exp(i); }},
      {"log", [&] { log(i); }},
      {"tanh", [&] { tanh(i); }},
      {"sigmoid", [&] { sigmoid(i); }},
      {"relu", [&] { relu(i); }},
      {"sqrt", [&] { sqrt(i); }},
      {"pow", [&] { pow(i, 2.0); }},
      {"affine", [&] { affine(i, 1, 0); }},
  };
  for (const auto& [name, f] : ops) {
    CAPTURE(name);
    CHECK(message_of<DTypeError>(f) == name + ": expected a float32 or float64 tensor, got int64");
  }
}
