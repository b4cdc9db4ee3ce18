#include "nn/module.h"

#include <fmt/format.h>

namespace seqgrad {

Variable Module::register_parameter(std::string name, Tensor value) {
  for (const auto& [existing, p] : params_) {
    if (existing == name) {
      throw ValueError(fmt::format("register_parameter: '{}' is already registered", name));
    }
  }
  Variable v(std::move(value), true);
  params_.emplace_back(std::move(name), v);
  return v;
}

void Module::register_module(std::string name, Module& child) {
  children_.emplace_back(std::move(name), &child);
}

void Module::collect(const std::string& prefix, NamedParameters& out) const {
  for (const auto& [name, p] : params_) out.emplace_back(prefix + name, p);
  for (const auto& [name, child] : children_) {
    child->collect(name.empty() ? prefix : prefix + name + ".", out);
  }
}

NamedParameters Module::named_parameters() const {
  NamedParameters out;
  collect("", out);
  return out;
}

std::vector<Variable> Module::parameters() const {
  std::vector<Variable> out;
  for (auto& [name, p] : named_parameters()) out.push_back(p);
  return out;
}

std::int64_t Module::num_parameters() const {
  std::int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p.numel();
  return n;
}

Variable Module::parameter(const std::string& name) const {
  const NamedParameters all = named_parameters();
  for (const auto& [n, p] : all) {
    if (n == name) return p;
  }
  std::vector<std::string> names;
  for (std::size_t i = 0; i < all.size() && i < 8; ++i) names.push_back(all[i].first);
  throw ValueError(fmt::format("parameter: no parameter named '{}' (have: {}{})", name,
                               fmt::join(names, ", "), all.size() > 8 ? ", ..." : ""));
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

void Module::to(DType dtype) {
  for (auto& [name, p] : named_parameters()) {
    if (p.dtype() != dtype) {
      p.data() = p.data().astype(dtype);
      p.zero_grad();
    }
  }
}

}  // namespace seqgrad
