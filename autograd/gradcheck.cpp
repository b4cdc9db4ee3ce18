#include "autograd/gradcheck.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "tensor/random.h"

namespace seqgrad {

namespace {

// Storage offsets (relative to the view's first element) of each element in row-major order.
std::vector<std::int64_t> element_offsets(const Tensor& t) {
  std::vector<std::int64_t> out;
  out.reserve(t.numel());
  std::vector<std::int64_t> idx(t.dim(), 0);
  for (std::int64_t n = 0; n < t.numel(); ++n) {
    std::int64_t off = 0;
    for (std::int64_t d = 0; d < t.dim(); ++d) off += idx[d] * t.strides()[d];
    out.push_back(off);
    for (std::int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

std::vector<double> forward_values(const GradcheckFn& f, const std::vector<Variable>& vars) {
  NoGradGuard guard;
  return f(vars).data().to_vector<double>();
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options, const std::vector<Variable>& params) {
  // `vars` are what f receives; `checked` adds the params, and is what gets perturbed.
  std::vector<Variable> vars;
  for (const auto& t : inputs) {
    if (!t.defined() || t.dtype() != DType::f64) {
      throw DTypeError("gradcheck: every input must be a float64 tensor");
    }
    vars.emplace_back(t, true);
  }
  std::vector<Variable> checked = vars;
  for (const auto& p : params) {
    if (!p.defined() || !p.is_leaf() || !p.requires_grad() || p.dtype() != DType::f64) {
      throw DTypeError("gradcheck: every param must be a float64 leaf that requires grad");
    }
    checked.push_back(p);
  }
  std::vector<std::vector<std::int64_t>> offsets;
  for (std::size_t k = 0; k < checked.size(); ++k) {
    const Tensor& t = checked[k].data();
    offsets.push_back(element_offsets(t));
    auto sorted = offsets.back();
    std::sort(sorted.begin(), sorted.end());
    if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
      throw ValueError(fmt::format(
          "gradcheck: input {} {} has elements sharing storage (a broadcast view); pass a dense "
          "tensor and broadcast inside the function",
          k, shape_str(t.shape())));
    }
  }

  const Variable y = f(vars);
  if (y.dtype() != DType::f64) throw DTypeError("gradcheck: the output must be float64");
  if (!y.requires_grad()) throw ValueError("gradcheck: the output does not depend on any input");
  const std::int64_t m = y.numel();

  // Analytic Jacobian, one row per output element: rows[o][k][j] = d y_o / d x_kj.
  std::vector<std::vector<std::vector<double>>> rows(m);
  for (std::int64_t o = 0; o < m; ++o) {
    for (auto& v : checked) v.zero_grad();
    Tensor onehot = Tensor::zeros(y.shape(), DType::f64);
    onehot.data<double>()[o] = 1.0;
    y.backward(onehot);
    for (auto& v : checked) {
      rows[o].push_back(v.grad().defined() ? v.grad().to_vector<double>()
                                           : std::vector<double>(v.numel(), 0.0));
    }
  }
  // Random upstream gradient u: analytic J^T u in one pass.
  Generator gen(options.seed);
  const Tensor u = normal(y.shape(), 0.0, 1.0, DType::f64, gen);
  const std::vector<double> uv = u.to_vector<double>();
  for (auto& v : checked) v.zero_grad();
  y.backward(u);
  std::vector<std::vector<double>> vjp;
  for (auto& v : checked) {
    vjp.push_back(v.grad().defined() ? v.grad().to_vector<double>()
                                     : std::vector<double>(v.numel(), 0.0));
  }

  GradcheckResult r;
  // o < 0 marks the random-upstream comparison.
  auto compare = [&](double a, double n, std::size_t k, std::size_t j, std::int64_t o) {
    double err = std::abs(a - n) / std::max({1.0, std::abs(a), std::abs(n)});
    if (std::isnan(err)) err = INFINITY;
    ++r.entries;
    if (r.worst.empty() || err > r.max_error) {
      r.max_error = err;
      r.worst = fmt::format("input {} element {} / {} (analytic {:.10g}, numeric {:.10g})", k, j,
                            o < 0 ? "random upstream" : fmt::format("output {}", o), a, n);
    }
  };

  for (std::size_t k = 0; k < checked.size(); ++k) {
    double* base = checked[k].data().data<double>();
    for (std::size_t j = 0; j < offsets[k].size(); ++j) {
      double& x = base[offsets[k][j]];
      const double saved = x;
      x = saved + options.eps;
      const std::vector<double> plus = forward_values(f, vars);
      x = saved - options.eps;
      const std::vector<double> minus = forward_values(f, vars);
      x = saved;
      double numeric_vjp = 0;
      for (std::int64_t o = 0; o < m; ++o) {
        const double numeric = (plus[o] - minus[o]) / (2 * options.eps);
        numeric_vjp += numeric * uv[o];
        compare(rows[o][k][j], numeric, k, j, o);
      }
      compare(vjp[k][j], numeric_vjp, k, j, -1);
    }
  }
  r.passed = r.max_error < options.tolerance;
  return r;
}

}  // namespace seqgrad
