// Joining, splitting and indexing: concat, stack, split; index_select with its adjoint
// index_add (embedding lookup and its gradient); gather with its adjoint scatter_add.
// Indices are int64 and checked against the axis size before anything is allocated.
#pragma once

#include <vector>

#include "tensor/tensor.h"

namespace seqgrad {

// y = [x_0, x_1, ...] along axis; other axes must agree.
Tensor concat(const std::vector<Tensor>& xs, std::int64_t axis);
// y = a new axis at `axis` holding x_0, x_1, ...; all shapes equal.
Tensor stack(const std::vector<Tensor>& xs, std::int64_t axis);
// Views of consecutive pieces of the given sizes along axis (sizes must sum to the axis).
std::vector<Tensor> split(const Tensor& x, const std::vector<std::int64_t>& sizes,
                          std::int64_t axis);

// y[..., i, ...] = x[..., index[i], ...] along axis; index is 1-D int64.
Tensor index_select(const Tensor& x, std::int64_t axis, const Tensor& index);
// out[..., index[i], ...] += src[..., i, ...] along axis (repeated indices accumulate).
void index_add_(Tensor& out, std::int64_t axis, const Tensor& index, const Tensor& src);

// y[i][j][k] = x[i][index[i][j][k]][k] for axis 1 (likewise for any axis); index has x's rank
// and, off the axis, sizes no larger than x's.
Tensor gather(const Tensor& x, std::int64_t axis, const Tensor& index);
// out[i][index[i][j][k]][k] += src[i][j][k] for axis 1; src has index's shape.
void scatter_add_(Tensor& out, std::int64_t axis, const Tensor& index, const Tensor& src);

}  // namespace seqgrad
