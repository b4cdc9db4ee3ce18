// optim/ against torch.optim: the C++ side writes cases as JSON, tests/python/optim_parity.py
// replays them with torch.optim (Debian's python3-torch under /usr/bin/python3), and every
// parameter after every step must agree.
//
// To add a case: one more entry in parity_cases().
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "optim/optim.h"
#include "optim_test_helpers.h"
#include "tensor/random.h"

namespace seqgrad {
namespace {

using namespace optim_test;

// --- parity with torch.optim ---
// The C++ side writes cases as JSON, tests/python/optim_parity.py replays them with torch.optim
// (Debian's python3-torch under /usr/bin/python3), and every parameter after every step must agree.

struct ParityCase {
  std::string optimizer;  // "SGD", "Adam", "AdamW"
  DType dtype;
  nlohmann::json options;  // torch keyword arguments; absent ones test that defaults agree
  std::vector<Shape> shapes;
  std::vector<Values> params;
  std::vector<std::vector<std::optional<Values>>> grads;  // [step][parameter]; nullopt: no grad
};

// Values representable in the case's dtype, so both sides start from identical numbers.
Values random_values(std::int64_t n, DType dtype, Generator& gen) {
  Values v = normal({n}, 0, 1, DType::f64, gen).to_vector<double>();
  if (dtype == DType::f32) {
    for (double& x : v) x = static_cast<double>(static_cast<float>(x));
  }
  return v;
}

ParityCase parity_case(std::string optimizer, DType dtype, nlohmann::json options, int steps,
                       std::vector<std::pair<int, int>> missing = {}) {
  static Generator gen(11);
  // 35 elements run whole SIMD batches and a tail; 3 elements run the tail alone.
  ParityCase c{std::move(optimizer), dtype, std::move(options), {{5, 7}, {3}}, {}, {}};
  for (const Shape& s : c.shapes) c.params.push_back(random_values(shape_numel(s), dtype, gen));
  for (int step = 0; step < steps; ++step) {
    std::vector<std::optional<Values>> gs;
    for (std::size_t i = 0; i < c.shapes.size(); ++i) {
      const bool skip = std::find(missing.begin(), missing.end(),
                                  std::pair<int, int>(step, static_cast<int>(i))) != missing.end();
      gs.push_back(skip ? std::nullopt
                        : std::optional(random_values(shape_numel(c.shapes[i]), dtype, gen)));
    }
    c.grads.push_back(std::move(gs));
  }
  return c;
}

std::vector<ParityCase> parity_cases() {
  using nlohmann::json;
  const DType f64 = DType::f64, f32 = DType::f32;
  return {
      // Empty options: both sides use their own defaults, so these check that the defaults agree.
      parity_case("Adam", f64, json::object(), 1),
      parity_case("AdamW", f64, json::object(), 1),
      parity_case("Adam", f64,
                  {{"lr", 0.05}, {"betas", {0.8, 0.99}}, {"eps", 1e-6}, {"weight_decay", 0.1}}, 5),
      parity_case("AdamW", f64, {{"lr", 0.05}, {"betas", {0.8, 0.99}}, {"weight_decay", 0.1}}, 5),
      // Parameter 1 has no grad on steps 0 and 2: torch skips it and its bias correction lags.
      parity_case("Adam", f64, {{"lr", 0.01}}, 4, {{0, 1}, {2, 1}}),
      parity_case("Adam", f32, {{"lr", 0.01}, {"weight_decay", 0.01}}, 5),
      parity_case("AdamW", f32, {{"lr", 0.01}}, 5),
      parity_case("SGD", f64,
                  {{"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 0.01}, {"nesterov", true}}, 4),
      parity_case("SGD", f64, {{"lr", 0.1}, {"momentum", 0.9}, {"dampening", 0.3}}, 4, {{1, 0}}),
      parity_case("SGD", f32, {{"lr", 0.1}, {"momentum", 0.5}}, 3),
  };
}

std::unique_ptr<Optimizer> make_like_torch(const ParityCase& c, std::vector<Variable> ps) {
  const nlohmann::json& o = c.options;
  auto get = [&](const char* key, double fallback) { return o.value(key, fallback); };
  auto beta = [&](std::size_t i, double fallback) {
    return o.contains("betas") ? o["betas"][i].get<double>() : fallback;
  };
  if (c.optimizer == "SGD") {
    const SGDOptions d;
    return std::make_unique<SGD>(ps, SGDOptions{.lr = get("lr", d.lr),
                                                .momentum = get("momentum", d.momentum),
                                                .dampening = get("dampening", d.dampening),
                                                .weight_decay = get("weight_decay", d.weight_decay),
                                                .nesterov = o.value("nesterov", d.nesterov)});
  }
  // AdamW differs from Adam only in its weight-decay default.
  const AdamOptions d;
  const double wd = o.value("weight_decay",
                            c.optimizer == "AdamW" ? AdamWOptions{}.weight_decay : d.weight_decay);
  const AdamOptions a{.lr = get("lr", d.lr),
                      .beta1 = beta(0, d.beta1),
                      .beta2 = beta(1, d.beta2),
                      .eps = get("eps", d.eps),
                      .weight_decay = wd};
  if (c.optimizer == "Adam") return std::make_unique<Adam>(ps, a);
  return std::make_unique<AdamW>(ps, AdamWOptions{a.lr, a.beta1, a.beta2, a.eps, a.weight_decay});
}

// Our parameters after every step: [step][parameter][element].
std::vector<std::vector<Values>> run_ours(const ParityCase& c) {
  std::vector<Variable> ps;
  for (std::size_t i = 0; i < c.shapes.size(); ++i) {
    ps.push_back(param(c.params[i], c.shapes[i], c.dtype));
  }
  auto opt = make_like_torch(c, ps);
  std::vector<std::vector<Values>> history;
  for (const auto& step_grads : c.grads) {
    for (std::size_t i = 0; i < ps.size(); ++i) {
      if (step_grads[i]) {
        set_grad(ps[i], *step_grads[i]);
      } else {
        ps[i].zero_grad();
      }
    }
    opt->step();
    std::vector<Values> now;
    for (const Variable& p : ps) now.push_back(values(p));
    history.push_back(std::move(now));
  }
  return history;
}

nlohmann::json to_json(const ParityCase& c) {
  nlohmann::json j{{"optimizer", c.optimizer},
                   {"dtype", std::string(dtype_name(c.dtype))},
                   {"options", c.options},
                   {"params", nlohmann::json::array()},
                   {"grads", nlohmann::json::array()}};
  for (std::size_t i = 0; i < c.shapes.size(); ++i) {
    j["params"].push_back({{"values", c.params[i]}, {"shape", c.shapes[i]}});
  }
  for (const auto& step_grads : c.grads) {
    nlohmann::json gs = nlohmann::json::array();
    for (const auto& g : step_grads) gs.push_back(g ? nlohmann::json(*g) : nlohmann::json());
    j["grads"].push_back(gs);
  }
  return j;
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST_CASE("optim: parity with torch.optim (SGD, Adam, AdamW, float64 and float32)") {
  namespace fs = std::filesystem;
  const std::vector<ParityCase> cases = parity_cases();
  const fs::path dir = fs::temp_directory_path() / fmt::format("seqgrad_optim_parity_{}", getpid());
  fs::create_directories(dir);
  const fs::path in = dir / "in.json", out = dir / "out.json", err = dir / "stderr.txt";
  {
    nlohmann::json j = nlohmann::json::array();
    for (const ParityCase& c : cases) j.push_back(to_json(c));
    std::ofstream(in) << j.dump();
  }
  const std::string script = std::string(SEQGRAD_SOURCE_DIR) + "/tests/python/optim_parity.py";
  const std::string command = fmt::format("/usr/bin/python3 '{}' '{}' '{}' 2>'{}'", script,
                                          in.string(), out.string(), err.string());
  const int status = std::system(command.c_str());
  const int code = status != -1 && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  const std::string stderr_text = read_text(err), output = code == 0 ? read_text(out) : "";
  fs::remove_all(dir);
  // Not a skip: CI installs python3-torch, and a parity test that quietly stops running is worse
  // than none.
  REQUIRE_MESSAGE(code != 3,
                  "/usr/bin/python3 cannot import torch; install Debian's "
                  "python3-torch (apt-get install python3-torch). "
                      << stderr_text);
  REQUIRE_MESSAGE(code == 0, "`" << command << "` exited with " << code << ": " << stderr_text);
  const nlohmann::json result = nlohmann::json::parse(output);
  REQUIRE(result["results"].size() == cases.size());

  double worst_f64 = 0.0, worst_f32 = 0.0;
  for (std::size_t k = 0; k < cases.size(); ++k) {
    const ParityCase& c = cases[k];
    CAPTURE(k);
    CAPTURE(c.optimizer);
    CAPTURE(c.options.dump());
    const auto ours = run_ours(c);
    const auto theirs = result["results"][k].get<std::vector<std::vector<Values>>>();
    REQUIRE(theirs.size() == ours.size());
    double worst = 0.0;
    for (std::size_t s = 0; s < ours.size(); ++s) {
      for (std::size_t i = 0; i < ours[s].size(); ++i) {
        REQUIRE(theirs[s][i].size() == ours[s][i].size());
        for (std::size_t e = 0; e < ours[s][i].size(); ++e) {
          worst = std::max(worst, std::abs(ours[s][i][e] - theirs[s][i][e]));
        }
      }
    }
    const bool f32 = c.dtype == DType::f32;
    CHECK(worst <= (f32 ? 1e-5 : 1e-10));
    double& worst_of_dtype = f32 ? worst_f32 : worst_f64;
    worst_of_dtype = std::max(worst_of_dtype, worst);
  }
  MESSAGE(fmt::format("torch {}: max |ours - torch| over {} cases: float64 {:.3g}, float32 {:.3g}",
                      result["torch_version"].get<std::string>(), cases.size(), worst_f64,
                      worst_f32));
}

}  // namespace
}  // namespace seqgrad
