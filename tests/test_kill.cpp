// A killed run loses nothing: a real `seqgrad train` process (the build's binary) is killed with
// SIGKILL at random moments and half-way through a checkpoint write (the checkpoint writer's
// test hook, optim/checkpoint.h), and a write that fails part way (a file-size limit); after
// each, the run directory's checkpoints load, and `--resume` ends with the uninterrupted run's
// metrics.jsonl and checkpoints byte for byte.
// To add a case: kill or limit a child with spawn(), then call check_loadable() and
// check_resumes().
#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "optim/adam.h"
#include "optim/checkpoint.h"
#include "python_runner.h"
#include "seq2seq/model.h"

extern char** environ;

namespace seqgrad {
namespace {

using namespace std::chrono_literals;

// A tiny run: 120 steps, a validation (and checkpoints) every 20.
std::vector<std::string> tiny_run(const std::string& out) {
  return {"train", "--task",       "reverse", "--min-len",     "3",  "--max-len",
          "6",     "--train-size", "600",     "--valid-size",  "40", "--test-size",
          "0",     "--embed",      "8",       "--hidden",      "16", "--batch-size",
          "16",    "--steps",      "120",     "--valid-every", "20", "--threads",
          "1",     "--out",        out};
}

struct ChildOptions {
  std::string env;                       // "NAME=value" added to the environment, if not empty
  rlim_t max_file_size = RLIM_INFINITY;  // RLIMIT_FSIZE, with SIGXFSZ ignored (writes fail)
  std::string log = "/dev/null";         // stdout and stderr
};

// Starts `seqgrad ARGS...`; returns its pid.
pid_t spawn(const std::vector<std::string>& args, const ChildOptions& o = {}) {
  // Everything the child needs is built before fork: after it, only async-signal-safe calls.
  std::vector<std::string> words{SEQGRAD_CLI};
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  std::string extra = o.env;
  std::vector<char*> envp;
  for (char** e = environ; *e != nullptr; ++e) envp.push_back(*e);
  if (!extra.empty()) envp.push_back(extra.data());
  envp.push_back(nullptr);
  const rlimit limit{o.max_file_size, o.max_file_size};
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(o.log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    if (o.max_file_size != RLIM_INFINITY) {
      ::signal(SIGXFSZ, SIG_IGN);  // kept across exec: a write past the limit fails with EFBIG
      ::setrlimit(RLIMIT_FSIZE, &limit);
    }
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  return pid;
}

int wait_for(pid_t pid) {
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  return status;
}

bool exited_ok(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The uninterrupted run, and how long it took.
struct Reference {
  testing::TempDir dir;
  std::string out = dir.file("run");
  std::string metrics, best, last;
  std::chrono::duration<double> took{};
  Reference() {
    const auto start = std::chrono::steady_clock::now();
    REQUIRE(exited_ok(wait_for(spawn(tiny_run(out)))));
    took = std::chrono::steady_clock::now() - start;
    metrics = file_text(out + "/metrics.jsonl");
    best = file_text(out + "/best.safetensors");
    last = file_text(out + "/last.safetensors");
  }
};

const Reference& reference() {
  static const Reference r;
  return r;
}

// Both checkpoints of `out` load into the model its config.json describes (last with the
// optimizer's state). Before the first checkpoints are complete there may be none yet.
void check_loadable(const std::string& out, bool must_exist) {
  namespace fs = std::filesystem;
  nlohmann::json config;
  std::ifstream(out + "/config.json") >> config;
  Generator gen(0);
  Seq2Seq model(ModelConfig::from_json(config.at("model")), gen);
  Adam opt(model.parameters());
  const std::string best = out + "/best.safetensors", last = out + "/last.safetensors";
  if (must_exist || fs::exists(best)) {
    CHECK_NOTHROW(load_checkpoint(best, model.named_parameters(), nullptr));
  }
  if (must_exist || fs::exists(last)) {
    CHECK_NOTHROW(load_checkpoint(last, model.named_parameters(), &opt));
  }
}

// `--resume` finishes the run as the uninterrupted one did, byte for byte.
void check_resumes(const std::string& out) {
  const std::string log = out + ".resume.log";
  const int status = wait_for(spawn({"train", "--resume", out}, {.env = "", .log = log}));
  CAPTURE(file_text(log));
  REQUIRE(exited_ok(status));
  CHECK(file_text(out + "/metrics.jsonl") == reference().metrics);
  CHECK(file_text(out + "/best.safetensors") == reference().best);
  CHECK(file_text(out + "/last.safetensors") == reference().last);
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);  // cleaned up
  }
}

TEST_CASE("kill: SIGKILL at random moments of a run, then --resume, equals the run unkilled") {
  const Reference& ref = reference();
  CAPTURE(ref.took.count());
  std::mt19937 rng(11);
  testing::TempDir dir;
  for (int k = 0; k < 5; ++k) {
    const std::string out = dir.file("run" + std::to_string(k));
    const pid_t pid = spawn(tiny_run(out));
    // From the moment the run exists (its step-0 checkpoint), a moment within its length.
    while (!std::filesystem::exists(out + "/last.safetensors")) std::this_thread::sleep_for(1ms);
    const auto delay = std::chrono::duration<double>(
        std::uniform_real_distribution<double>(0, 0.9)(rng) * ref.took.count());
    CAPTURE(delay.count());
    std::this_thread::sleep_for(delay);
    ::kill(pid, SIGKILL);
    const int status = wait_for(pid);
    CHECK((WIFSIGNALED(status) || exited_ok(status)));
    check_loadable(out, true);
    check_resumes(out);
  }
}

TEST_CASE("kill: SIGKILL half-way through a checkpoint write, then --resume") {
  reference();
  testing::TempDir dir;
  // Writes 1 and 2 are the step-0 best and last (none exists yet), 3 and 4 the first
  // validation's, 9 a later one.
  for (const int n : {1, 2, 3, 4, 9}) {
    CAPTURE(n);
    const std::string out = dir.file("run" + std::to_string(n));
    const int status = wait_for(
        spawn(tiny_run(out), {.env = std::string(kKillInCheckpointEnv) + "=" + std::to_string(n)}));
    REQUIRE(WIFSIGNALED(status));
    CHECK(WTERMSIG(status) == SIGKILL);
    bool half_written = false;  // the hook's temporary file is there, the target untouched
    for (const auto& e : std::filesystem::directory_iterator(out)) {
      half_written |= e.path().filename().string().find(".safetensors.tmp.") != std::string::npos;
    }
    CHECK(half_written);
    check_loadable(out, n > 2);
    check_resumes(out);
  }
}

TEST_CASE("kill: a checkpoint write that fails part way is a clear error, the last one intact") {
  reference();
  testing::TempDir dir;
  const std::string out = dir.file("run");
  // Run the first 60 steps, then resume towards 120 under a file-size limit below a checkpoint.
  std::vector<std::string> first = tiny_run(out);
  first[std::find(first.begin(), first.end(), "--steps") - first.begin() + 1] = "60";
  REQUIRE(exited_ok(wait_for(spawn(first))));
  nlohmann::json config;
  std::ifstream(out + "/config.json") >> config;
  config["train"]["steps"] = 120;
  std::ofstream(out + "/config.json") << config.dump(2) << "\n";
  const std::string best = file_text(out + "/best.safetensors");
  const std::string last = file_text(out + "/last.safetensors");
  const std::string log = dir.file("limited.log");
  const int status = wait_for(
      spawn({"train", "--resume", out}, {.env = "", .max_file_size = best.size() / 2, .log = log}));
  const std::string said = file_text(log);
  CAPTURE(said);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(said.find("seqgrad: error: save_safetensors: " + out) != std::string::npos);
  CHECK(said.find("File too large") != std::string::npos);
  CHECK(file_text(out + "/best.safetensors") == best);
  CHECK(file_text(out + "/last.safetensors") == last);
  check_loadable(out, true);
  check_resumes(out);
}

}  // namespace
}  // namespace seqgrad
