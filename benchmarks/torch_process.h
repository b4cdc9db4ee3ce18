// The PyTorch side of the runner: benchmarks/seq2seq_torch.py --serve, started with a thread
// setting and extra environment, fed commands on its stdin and answering one JSON line each on
// its stdout (its stderr is ours). See the script's docstring for the protocol.
#pragma once

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace seqgrad::bench {

// How the torch process uses the cores: intra-op threads, OpenBLAS threads, OMP_WAIT_POLICY.
struct TorchThreads {
  std::string name;  // as the tables show it
  int intra = 1, blas = 1;
  bool passive = false;  // OMP_WAIT_POLICY=PASSIVE: idle OpenMP threads sleep instead of spin
};

class TorchProcess {
 public:
  TorchProcess(const std::string& script, const std::string& weights, const TorchThreads& t) {
    int to_child[2], from_child[2];
    if (::pipe2(to_child, O_CLOEXEC) != 0 || ::pipe2(from_child, O_CLOEXEC) != 0) {
      throw std::runtime_error("pipe2 failed");
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to_child[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from_child[1], 1);
    std::vector<std::string> args = {"/usr/bin/python3",
                                     script,
                                     "--serve",
                                     "--weights",
                                     weights,
                                     "--threads",
                                     std::to_string(t.intra),
                                     "--blas-threads",
                                     std::to_string(t.blas)};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "OMP_WAIT_POLICY=", 16) != 0) env.emplace_back(*e);
    }
    if (t.passive) env.emplace_back("OMP_WAIT_POLICY=PASSIVE");
    std::vector<char*> envp;
    for (auto& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    const int rc = posix_spawn(&pid_, argv[0], &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    ::close(to_child[0]);
    ::close(from_child[1]);
    if (rc != 0) {
      throw std::runtime_error(fmt::format("cannot start {}: {}", argv[0], std::strerror(rc)));
    }
    to_ = ::fdopen(to_child[1], "w");
    from_ = ::fdopen(from_child[0], "r");
    info_ = read();  // sent once the weights are read and parity computed
  }
  TorchProcess(const TorchProcess&) = delete;
  TorchProcess& operator=(const TorchProcess&) = delete;
  ~TorchProcess() {
    std::fputs("quit\n", to_);
    std::fclose(to_);
    std::fclose(from_);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  const nlohmann::json& info() const { return info_; }
  nlohmann::json request(const std::string& command) {
    if (std::fputs((command + "\n").c_str(), to_) < 0 || std::fflush(to_) != 0) {
      throw std::runtime_error("cannot write to the torch process (it has exited)");
    }
    return read();
  }

 private:
  nlohmann::json read() {
    std::string line;
    for (int ch; (ch = std::fgetc(from_)) != EOF && ch != '\n';)
      line.push_back(static_cast<char>(ch));
    if (line.empty()) {
      throw std::runtime_error(
          "the torch process ended without an answer (see its message above; HINT: it needs "
          "Debian's /usr/bin/python3 with python3-torch)");
    }
    return nlohmann::json::parse(line);
  }
  pid_t pid_ = 0;
  FILE* to_ = nullptr;
  FILE* from_ = nullptr;
  nlohmann::json info_;
};

}  // namespace seqgrad::bench
