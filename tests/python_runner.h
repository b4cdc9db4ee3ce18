// Runs a Python helper from tests/python with Debian's interpreter (/usr/bin/python3, which has
// python3-numpy and python3-torch; a pyenv `python3` on PATH may not). Tests that compare with
// NumPy or PyTorch go through here, so a missing interpreter or package fails loudly.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace seqgrad::testing {

inline std::string python_script(const std::string& name) {
  return std::string(SEQGRAD_SOURCE_DIR) + "/tests/python/" + name;
}

// Returns the exit status of `/usr/bin/python3 tests/python/<script> <args>`.
inline int run_python(const std::string& script, const std::string& args) {
  const std::string cmd = "/usr/bin/python3 '" + python_script(script) + "' " + args;
  return std::system(cmd.c_str());
}

// A fresh directory under the system temp dir, removed with the object.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           ("seqgrad-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// Writes `in` to a temporary in.json, runs tests/python/SCRIPT in.json out.json and returns what
// the script wrote; nothing when it failed.
inline std::optional<nlohmann::json> run_python_json(const std::string& script,
                                                     const nlohmann::json& in) {
  TempDir dir;
  std::ofstream(dir.file("in.json")) << in.dump();
  if (run_python(script, dir.file("in.json") + " " + dir.file("out.json")) != 0) return {};
  nlohmann::json out;
  std::ifstream(dir.file("out.json")) >> out;
  return out;
}

}  // namespace seqgrad::testing
