// Seeded parameter initialisers, each filling a tensor in place. The layers use PyTorch's
// defaults: Linear U(-1/sqrt(in), 1/sqrt(in)) for weight and bias, Embedding N(0, 1), the
// recurrent layers U(-1/sqrt(H), 1/sqrt(H)) for every weight and bias, LayerNorm ones/zeros.
#pragma once

#include "tensor/random.h"
#include "tensor/tensor.h"

namespace seqgrad {

void uniform_(Tensor& t, double low, double high, Generator& gen);
void normal_(Tensor& t, double mean, double std, Generator& gen);
// Glorot & Bengio (2010): U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)); for a 2-D
// [out, in] weight fan_in = in, fan_out = out.
void xavier_uniform_(Tensor& t, Generator& gen, double gain = 1.0);

}  // namespace seqgrad
