// The shared optimizer machinery: parameter checks, the step loop, and state save/load with
// validation strong enough that a checkpoint for another model fails loudly instead of training
// on garbage.
#include "optim/optimizer.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <functional>
#include <set>

#include "tensor/parallel_for.h"

namespace seqgrad {

namespace {

void check_lr(double lr, std::string_view who) {
  if (!(std::isfinite(lr) && lr >= 0.0)) {
    throw ValueError(fmt::format("{}: the learning rate must be finite and >= 0, got {}", who, lr));
  }
}

std::string state_key(std::string_view buffer, std::size_t index) {
  return fmt::format("{}.{}", buffer, index);
}

// "exp_avg.3" -> {"exp_avg", 3}; false when the name has no ".<index>" suffix.
bool split_key(const std::string& key, std::string& buffer, std::size_t& index) {
  const auto dot = key.rfind('.');
  if (dot == std::string::npos || dot == 0 || dot + 1 == key.size()) return false;
  const char* first = key.data() + dot + 1;
  const char* last = key.data() + key.size();
  const auto [end, ec] = std::from_chars(first, last, index);
  if (ec != std::errc() || end != last) return false;
  buffer = key.substr(0, dot);
  return true;
}

constexpr std::string_view kStepBuffer = "step";

// Two parameters over the same memory would be moved twice a step, and raced over when the update
// runs on several threads.
void check_no_shared_memory(const std::vector<Variable>& params, std::string_view kind) {
  struct Span {
    const std::byte* begin;
    const std::byte* end;
    std::size_t index;
  };
  std::vector<Span> spans;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const Tensor& t = params[i].data();
    const auto* begin = static_cast<const std::byte*>(t.raw_data());
    const std::size_t bytes = static_cast<std::size_t>(t.numel()) * dtype_size(t.dtype());
    if (bytes > 0) spans.push_back({begin, begin + bytes, i});
  }
  const std::less<const std::byte*> before;  // a total order over unrelated buffers too
  std::sort(spans.begin(), spans.end(),
            [&](const Span& a, const Span& b) { return before(a.begin, b.begin); });
  for (std::size_t k = 1; k < spans.size(); ++k) {
    if (before(spans[k].begin, spans[k - 1].end)) {
      const auto [first, second] = std::minmax(spans[k - 1].index, spans[k].index);
      throw ValueError(fmt::format("{}: parameters {} and {} share memory", kind, first, second));
    }
  }
}

}  // namespace

Optimizer::Optimizer(std::vector<Variable> params, double lr, std::string_view kind)
    : params_(std::move(params)), states_(params_.size()), lr_(lr) {
  check_lr(lr, kind);
  if (params_.empty()) throw ValueError(fmt::format("{}: the parameter list is empty", kind));
  std::set<const VarImpl*> seen;
  for (std::size_t i = 0; i < params_.size(); ++i) {
    const Variable& p = params_[i];
    if (!p.defined()) throw ValueError(fmt::format("{}: parameter {} is undefined", kind, i));
    if (!p.is_leaf() || !p.requires_grad()) {
      throw ValueError(fmt::format("{}: parameter {} ({}{}) must be a leaf that requires grad",
                                   kind, i, dtype_name(p.dtype()), shape_str(p.shape())));
    }
    if (!is_floating(p.dtype())) {
      throw DTypeError(fmt::format("{}: parameter {} is {}, expected float32 or float64", kind, i,
                                   dtype_name(p.dtype())));
    }
    // The update kernels walk one flat buffer; a view of a larger tensor would be written wrongly.
    if (!p.data().is_contiguous()) {
      throw ValueError(
          fmt::format("{}: parameter {} {} is a strided view; parameters must be dense", kind, i,
                      shape_str(p.shape())));
    }
    // Listed twice, a parameter would be moved twice per step.
    if (!seen.insert(p.impl().get()).second) {
      throw ValueError(
          fmt::format("{}: parameter {} appears twice in the parameter list", kind, i));
    }
  }
  check_no_shared_memory(params_, kind);
}

void Optimizer::set_lr(double lr) {
  check_lr(lr, __func__);
  lr_ = lr;
}

void Optimizer::check_update(std::size_t i) const {
  const Tensor& p = params_[i].data();
  const Tensor& g = params_[i].grad();
  // Leaves' grads are dense buffers of the parameter's shape (autograd guarantees it), but the
  // caller may have replaced a parameter's data or grad by hand since construction; the kernels
  // walk flat buffers, so a mismatch here would write out of bounds.
  const auto what = [&] {
    return fmt::format("{}::step: parameter {} is {}{}{}, its grad {}{}{}", kind(), i,
                       dtype_name(p.dtype()), shape_str(p.shape()),
                       p.is_contiguous() ? "" : " (strided)", dtype_name(g.dtype()),
                       shape_str(g.shape()), g.is_contiguous() ? "" : " (strided)");
  };
  if (g.shape() != p.shape()) throw ShapeError(what());
  if (g.dtype() != p.dtype()) throw DTypeError(what());
  if (!p.is_contiguous() || !g.is_contiguous()) throw ValueError(what());
  for (const Tensor& b : states_[i].buffers) {
    if (b.shape() != p.shape() || b.dtype() != p.dtype()) {
      throw ShapeError(fmt::format("{}; its optimizer state is {}{} (was the data replaced?)",
                                   what(), dtype_name(b.dtype()), shape_str(b.shape())));
    }
  }
}

void Optimizer::step() {
  // Every check passes before anything moves, so a failed step leaves no parameter half-updated.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (params_[i].grad().defined()) check_update(i);
  }
  std::vector<std::int64_t> sizes(params_.size(), 0);  // elements to move, for the threads' split
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (!params_[i].grad().defined()) continue;
    const Tensor& p = params_[i].data();
    ParamState& st = states_[i];
    if (st.steps == 0) {
      // First update of this parameter: its buffers start at zero (allocated once, here).
      st.buffers.clear();
      for (std::size_t b = 0, n = buffer_names().size(); b < n; ++b) {
        st.buffers.push_back(Tensor::zeros(p.shape(), p.dtype()));
      }
    }
    sizes[i] = p.numel();
  }
  parallel_ranges(sizes, threads_, [this](std::size_t begin, std::size_t end) {
    NoGradGuard no_grad;
    for (std::size_t i = begin; i < end; ++i) {
      const Tensor& g = params_[i].grad();
      if (!g.defined()) continue;
      ++states_[i].steps;
      update(params_[i].data(), g, states_[i]);
    }
  });
  ++step_count_;
}

void Optimizer::zero_grad() {
  for (Variable& p : params_) p.zero_grad();
}

OptimizerState Optimizer::state() const {
  OptimizerState s;
  s.kind = kind();
  s.num_params = static_cast<std::int64_t>(params_.size());
  s.step_count = step_count_;
  s.lr = lr_;
  const std::vector<std::string> names = buffer_names();
  for (std::size_t i = 0; i < states_.size(); ++i) {
    const ParamState& st = states_[i];
    if (st.steps == 0) continue;
    s.tensors.emplace(state_key(kStepBuffer, i),
                      Tensor::scalar(static_cast<double>(st.steps), DType::i64));
    for (std::size_t b = 0; b < names.size(); ++b) {
      s.tensors.emplace(state_key(names[b], i), st.buffers[b].clone());
    }
  }
  return s;
}

void Optimizer::load_state(const OptimizerState& s) {
  const std::string who = fmt::format("{}::load_state", kind());
  if (s.kind != kind()) {
    throw ValueError(fmt::format("{}: the state was saved by a {} optimizer", who, s.kind));
  }
  if (s.num_params != static_cast<std::int64_t>(params_.size())) {
    throw ValueError(fmt::format("{}: the state is for {} parameters, this optimizer has {}", who,
                                 s.num_params, params_.size()));
  }
  if (s.step_count < 0) {
    throw ValueError(fmt::format("{}: negative step count {}", who, s.step_count));
  }
  check_lr(s.lr, who);

  // Sort every entry into its parameter slot, checking it as we go; nothing changes until all pass.
  const std::vector<std::string> names = buffer_names();
  std::vector<ParamState> loaded(params_.size());
  std::vector<std::size_t> found(params_.size(), 0);
  for (const auto& [key, t] : s.tensors) {
    std::string buffer;
    std::size_t index = 0;
    // The round trip rejects spellings such as "step.03" that would alias "step.3".
    if (!split_key(key, buffer, index) || index >= params_.size() ||
        state_key(buffer, index) != key) {
      throw ValueError(
          fmt::format("{}: unexpected entry '{}' (expected <buffer>.<index>, index < {})", who, key,
                      params_.size()));
    }
    if (!t.defined()) throw ValueError(fmt::format("{}: entry '{}' is undefined", who, key));
    ParamState& st = loaded[index];
    if (buffer == kStepBuffer) {
      if (t.dtype() != DType::i64) {
        throw DTypeError(
            fmt::format("{}: '{}' must be int64, got {}", who, key, dtype_name(t.dtype())));
      }
      if (t.numel() != 1) {
        throw ShapeError(fmt::format("{}: '{}' must hold one count, got shape {}", who, key,
                                     shape_str(t.shape())));
      }
      st.steps = static_cast<std::int64_t>(t.item());
      if (st.steps <= 0) {
        throw ValueError(
            fmt::format("{}: '{}' holds {}, expected a positive count", who, key, st.steps));
      }
      ++found[index];
      continue;
    }
    const auto it = std::find(names.begin(), names.end(), buffer);
    if (it == names.end()) {
      throw ValueError(fmt::format("{}: unknown buffer '{}' in '{}' (this optimizer keeps {})", who,
                                   buffer, key, fmt::join(names, ", ")));
    }
    const Tensor& p = params_[index].data();
    if (t.shape() != p.shape()) {
      throw ShapeError(fmt::format("{}: '{}' is {}, parameter {} is {}", who, key,
                                   shape_str(t.shape()), index, shape_str(p.shape())));
    }
    if (t.dtype() != p.dtype()) {
      throw DTypeError(fmt::format("{}: '{}' is {}, parameter {} is {}", who, key,
                                   dtype_name(t.dtype()), index, dtype_name(p.dtype())));
    }
    if (st.buffers.empty()) st.buffers.resize(names.size());
    st.buffers[static_cast<std::size_t>(it - names.begin())] = t.clone();
    ++found[index];
  }
  // A parameter has either nothing (never updated) or its step count and every buffer.
  for (std::size_t i = 0; i < params_.size(); ++i) {
    if (found[i] != 0 && found[i] != names.size() + 1) {
      throw ValueError(fmt::format("{}: parameter {} has {} of its {} entries (step, {})", who, i,
                                   found[i], names.size() + 1, fmt::join(names, ", ")));
    }
  }
  states_ = std::move(loaded);
  step_count_ = s.step_count;
  lr_ = s.lr;
}

}  // namespace seqgrad
