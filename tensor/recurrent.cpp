// Fused LSTM cell kernels: each row of the batch is walked once, on xsimd batches with a scalar
// tail, by the same templated body.
#include "tensor/recurrent.h"

#include <fmt/format.h>

#include "tensor/simd.h"

namespace seqgrad {

namespace {

// Loads W lanes (a batch) or one value (a scalar) from p. Not named load/store: for a batch
// argument, lookup would also find xsimd::store, which requires aligned memory.
template <class V, class T>
V get(const T* p) {
  if constexpr (std::is_arithmetic_v<V>) {
    return *p;
  } else {
    return V::load_unaligned(p);
  }
}
template <class V, class T>
void put(T* p, V v) {
  if constexpr (std::is_arithmetic_v<V>) {
    *p = v;
  } else {
    v.store_unaligned(p);
  }
}

// Calls body.template operator()<V>(j) for j = 0, W, 2W, ... on batches, then on scalars.
template <class T, class Body>
void for_each_column(std::int64_t H, const Body& body) {
  constexpr std::int64_t W = simd::Batch<T>::size;
  std::int64_t j = 0;
  for (; j + W <= H; j += W) body.template operator()<simd::Batch<T>>(j);
  for (; j < H; ++j) body.template operator()<T>(j);
}

void check_cell(const Tensor& gates, const Tensor& c_prev) {
  const bool ok = gates.dim() == 2 && c_prev.dim() == 2 && gates.size(0) == c_prev.size(0) &&
                  gates.size(1) == 4 * c_prev.size(1) && gates.dtype() == c_prev.dtype();
  if (!ok) {
    throw ShapeError(
        fmt::format("lstm_cell: gates {} and c_prev {} must be [B,4H] and [B,H] of "
                    "one dtype",
                    shape_str(gates.shape()), shape_str(c_prev.shape())));
  }
}

}  // namespace

LstmCellOutput lstm_cell(const Tensor& gates_in, const Tensor& c_prev_in) {
  check_cell(gates_in, c_prev_in);
  const Tensor gates = gates_in.contiguous(), c_prev = c_prev_in.contiguous();
  const std::int64_t B = c_prev.size(0), H = c_prev.size(1);
  LstmCellOutput out{Tensor::empty({B, 2 * H}, gates.dtype()),
                     Tensor::empty({B, 4 * H}, gates.dtype()),
                     Tensor::empty({B, H}, gates.dtype())};
  dispatch_floating(gates.dtype(), "lstm_cell", [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* a = gates.data<T>() + b * 4 * H;
      const T* cp = c_prev.data<T>() + b * H;
      T* act = out.act.data<T>() + b * 4 * H;
      T* hc = out.hc.data<T>() + b * 2 * H;
      T* tc = out.tanh_c.data<T>() + b * H;
      for_each_column<T>(H, [&]<class V>(std::int64_t j) {
        const V i = simd::sigmoid(get<V>(a + j));
        const V f = simd::sigmoid(get<V>(a + H + j));
        const V g = xsimd::tanh(get<V>(a + 2 * H + j));
        const V o = simd::sigmoid(get<V>(a + 3 * H + j));
        const V c = f * get<V>(cp + j) + i * g;
        const V t = xsimd::tanh(c);
        put(act + j, i);
        put(act + H + j, f);
        put(act + 2 * H + j, g);
        put(act + 3 * H + j, o);
        put(tc + j, t);
        put(hc + j, V(o * t));
        put(hc + H + j, c);
      });
    }
  });
  return out;
}

LstmCellGrads lstm_cell_backward(const Tensor& act_in, const Tensor& tanh_c_in,
                                 const Tensor& c_prev_in, const Tensor& dhc_in) {
  check_cell(act_in, c_prev_in);
  const std::int64_t B = c_prev_in.size(0), H = c_prev_in.size(1);
  if (tanh_c_in.shape() != c_prev_in.shape() || dhc_in.shape() != Shape{B, 2 * H}) {
    throw ShapeError(
        fmt::format("lstm_cell_backward: tanh_c {} and dhc {} must be [{},{}] and "
                    "[{},{}]",
                    shape_str(tanh_c_in.shape()), shape_str(dhc_in.shape()), B, H, B, 2 * H));
  }
  const Tensor act = act_in.contiguous(), tanh_c = tanh_c_in.contiguous();
  const Tensor c_prev = c_prev_in.contiguous(), dhc = dhc_in.contiguous();
  LstmCellGrads grads{Tensor::empty({B, 4 * H}, act.dtype()), Tensor::empty({B, H}, act.dtype())};
  dispatch_floating(act.dtype(), "lstm_cell_backward", [&]<class T>() {
    for (std::int64_t b = 0; b < B; ++b) {
      const T* ac = act.data<T>() + b * 4 * H;
      const T* tc = tanh_c.data<T>() + b * H;
      const T* cp = c_prev.data<T>() + b * H;
      const T* d = dhc.data<T>() + b * 2 * H;
      T* dg = grads.gates.data<T>() + b * 4 * H;
      T* dcp = grads.c_prev.data<T>() + b * H;
      for_each_column<T>(H, [&]<class V>(std::int64_t j) {
        const V i = get<V>(ac + j), f = get<V>(ac + H + j);
        const V g = get<V>(ac + 2 * H + j), o = get<V>(ac + 3 * H + j);
        const V t = get<V>(tc + j), dh = get<V>(d + j);
        const V one(1);
        const V dc = get<V>(d + H + j) + dh * o * (one - t * t);
        put(dg + j, V(dc * g * i * (one - i)));
        put(dg + H + j, V(dc * get<V>(cp + j) * f * (one - f)));
        put(dg + 2 * H + j, V(dc * i * (one - g * g)));
        put(dg + 3 * H + j, V(dh * t * o * (one - o)));
        put(dcp + j, V(dc * f));
      });
    }
  });
  return grads;
}

}  // namespace seqgrad
