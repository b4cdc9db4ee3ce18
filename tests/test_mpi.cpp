// Data-parallel training over MPI: the seqgrad command under `mpirun -np 2` (the build's mpirun,
// as root in CI: --allow-run-as-root --oversubscribe). Two processes of one thread train
// exactly as one process of two threads (the same shares of each batch and the same dropout
// streams; the sum of two gradients is commutative), with the weights checked identical on both
// after every step (the recurrent and the Transformer archs); against one process of one thread
// the losses agree to float32 rounding. A
// run killed mid-way resumes to the uninterrupted run byte for byte; a process that fails or
// dies ends the whole job with a clear message instead of leaving the other waiting.
// Compiled in only when CMake found MPI (SEQGRAD_MPI).
#include <dirent.h>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "python_runner.h"

namespace seqgrad {
namespace {

using namespace std::chrono_literals;

// Open MPI keeps some memory to the end of the process: LeakSanitizer (in the sanitizer build)
// is told not to count it, other sanitizer options kept. Open MPI's shared-memory transport
// copies through its own buffers, not from one process's memory into another's (CMA, which
// containers that forbid ptrace refuse), so the tests do not depend on the machine allowing it.
std::string mpi_environment() {
  const char* asan = std::getenv("ASAN_OPTIONS");
  return fmt::format("ASAN_OPTIONS={}detect_leaks=0 OMPI_MCA_btl_vader_single_copy_mechanism=none",
                     asan != nullptr && *asan != '\0' ? std::string(asan) + ":" : "");
}

constexpr const char* kMpirun = SEQGRAD_MPIRUN " --allow-run-as-root --oversubscribe";

std::vector<std::string> mpirun_words(int np) {
  return {SEQGRAD_MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", std::to_string(np)};
}

struct Run {
  int status;
  std::string out;  // stdout and stderr together
};

// Runs a shell command line (under `timeout`, so that a hang fails the test rather than CI).
Run shell(const std::string& line) {
  const std::string cmd = "env " + mpi_environment() + " timeout -s KILL 300 " + line + " 2>&1";
  Run r{0, ""};
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(pipe);
  return r;
}

bool ok(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// `seqgrad ARGS` in one process, or under mpirun with `np` processes.
Run seqgrad(const std::string& args, int np = 0, const std::string& env = "") {
  std::string line = env.empty() ? "" : "env " + env + " ";
  if (np > 0) line += fmt::format("{} ", fmt::join(mpirun_words(np), " "));
  return shell(line + SEQGRAD_CLI + " " + args);
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<nlohmann::json> metrics_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

// A safetensors file's tensor bytes, without its header (whose metadata holds the run's
// configuration, --threads included).
std::string tensor_bytes(const std::string& path) {
  const std::string text = file_text(path);
  REQUIRE(text.size() >= 8);
  std::uint64_t header = 0;
  for (int i = 7; i >= 0; --i) {
    header = header << 8 | static_cast<unsigned char>(text[static_cast<std::size_t>(i)]);
  }
  return text.substr(8 + header);
}

// A small recurrent model (unless `extra` gives --hidden) trained 60 steps (unless `extra` gives
// --steps), a validation every 20, and a test split.
std::string small_run(const std::string& out, const std::string& extra,
                      const std::string& test_size = "20") {
  const auto has = [&](const char* option) { return extra.find(option) != std::string::npos; };
  return "train --task reverse --min-len 3 --max-len 6 --train-size 600 --valid-size 40 "
         "--batch-size 15 --valid-every 20 --test-size " +
         test_size + (has("--hidden") ? " " : " --embed 8 --hidden 16 ") +
         (has("--steps") ? "" : "--steps 60 ") + extra + " --out " + out;
}

TEST_CASE("mpi: 2 processes of 1 thread train exactly as 1 process of 2 threads") {
  testing::TempDir dir;
  // Dropout and scheduled sampling draw random numbers in every share.
  const std::string random = "--dropout 0.3 --teacher-forcing-end 0.5 ";
  const Run one = seqgrad(small_run(dir.file("one"), random + "--threads 2"));
  CAPTURE(one.out);
  REQUIRE(ok(one.status));
  const Run two =
      seqgrad(small_run(dir.file("two"), random + "--threads 1"), 2, "SEQGRAD_CHECK_REPLICAS=1");
  CAPTURE(two.out);
  REQUIRE(ok(two.status));
  CHECK(two.out.find("in each of 2 processes (MPI)") != std::string::npos);
  CHECK(two.out.find("the weights were identical on all 2 processes after each of 60 steps") !=
        std::string::npos);
  // Rank 0 alone prints: one progress line per validation.
  std::size_t validations = 0;
  for (std::size_t at = 0; (at = two.out.find("valid @ step", at)) != std::string::npos; ++at) {
    ++validations;
  }
  CHECK(validations == 3);
  CHECK(file_text(dir.file("two/metrics.jsonl")) == file_text(dir.file("one/metrics.jsonl")));
  CHECK(file_text(dir.file("two/test_metrics.json")) ==
        file_text(dir.file("one/test_metrics.json")));
  for (const char* f : {"last.safetensors", "best.safetensors"}) {
    CAPTURE(f);
    CHECK(tensor_bytes(dir.file(std::string("two/") + f)) ==
          tensor_bytes(dir.file(std::string("one/") + f)));
  }
}

TEST_CASE("mpi: the Transformer archs train on 2 processes exactly as on 2 threads") {
  for (const std::string arch : {"transformer", "decoder-only"}) {
    CAPTURE(arch);
    testing::TempDir dir;
    const std::string model =
        "--arch " + arch + " --hidden 32 --heads 2 --layers 1 --dropout 0.2 --steps 40 ";
    const Run one = seqgrad(small_run(dir.file("one"), model + "--threads 2"));
    CAPTURE(one.out);
    REQUIRE(ok(one.status));
    const Run two =
        seqgrad(small_run(dir.file("two"), model + "--threads 1"), 2, "SEQGRAD_CHECK_REPLICAS=1");
    CAPTURE(two.out);
    REQUIRE(ok(two.status));
    CHECK(two.out.find("identical on all 2 processes after each of 40 steps") != std::string::npos);
    CHECK(file_text(dir.file("two/metrics.jsonl")) == file_text(dir.file("one/metrics.jsonl")));
    CHECK(tensor_bytes(dir.file("two/last.safetensors")) ==
          tensor_bytes(dir.file("one/last.safetensors")));
  }
}

TEST_CASE("mpi: 2 processes give 1 process's losses of the same global batch to float rounding") {
  testing::TempDir dir;
  // No dropout: one thread and two shares then compute the same function; a validation (and
  // so a train_loss of one step) after every step.
  const std::string run =
      "train --task reverse --min-len 3 --max-len 6 --train-size 600 "
      "--valid-size 40 --test-size 0 --embed 8 --hidden 16 --batch-size 16 "
      "--steps 40 --valid-every 1 --dropout 0 --threads 1 --out ";
  const Run one = seqgrad(run + dir.file("one"));
  CAPTURE(one.out);
  REQUIRE(ok(one.status));
  const Run two = seqgrad(run + dir.file("two"), 2, "SEQGRAD_CHECK_REPLICAS=1");
  CAPTURE(two.out);
  REQUIRE(ok(two.status));
  CHECK(two.out.find("identical on all 2 processes after each of 40 steps") != std::string::npos);
  const auto a = metrics_lines(dir.file("one/metrics.jsonl"));
  const auto b = metrics_lines(dir.file("two/metrics.jsonl"));
  REQUIRE(a.size() == 40);
  REQUIRE(b.size() == 40);
  // Measured: at most 2.3e-7 relative in a step's loss over the 40 steps, 5.7e-8 in the
  // validation loss (float32's epsilon is 1.2e-7).
  double worst = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double x = a[i].at("train_loss"), y = b[i].at("train_loss");
    worst = std::max(worst, std::abs(x - y) / std::abs(x));
    const double vx = a[i].at("valid").at("loss"), vy = b[i].at("valid").at("loss");
    worst = std::max(worst, std::abs(vx - vy) / std::abs(vx));
  }
  CAPTURE(worst);
  CHECK(worst < 2e-6);
}

// The processes whose parent is `pid` (mpirun's ranks on this host).
std::vector<pid_t> children_of(pid_t pid) {
  std::vector<pid_t> kids;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    const std::string name = e.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream stat(e.path() / "stat");
    std::string line;
    if (!std::getline(stat, line)) continue;
    // pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
    const std::size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    char state = 0;
    int ppid = 0;
    if (std::sscanf(line.c_str() + close + 1, " %c %d", &state, &ppid) == 2 && ppid == pid) {
      kids.push_back(static_cast<pid_t>(std::stoi(name)));
    }
  }
  return kids;
}

// Whether `pid` is a process that has not ended (a zombie has).
bool running(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t close = line.rfind(')');
  return close != std::string::npos && close + 2 < line.size() && line[close + 2] != 'Z';
}

// The words of a command line (split at spaces).
std::vector<std::string> words_of(const std::string& line) {
  std::vector<std::string> words;
  std::size_t at = 0;
  while ((at = line.find_first_not_of(' ', at)) != std::string::npos) {
    const std::size_t end = std::min(line.find(' ', at), line.size());
    words.push_back(line.substr(at, end - at));
    at = end;
  }
  return words;
}

// Starts mpirun with `args` (its output to `log`); returns its pid.
pid_t spawn_mpirun(int np, const std::vector<std::string>& args, const std::string& log) {
  std::vector<std::string> words = mpirun_words(np);
  words.push_back(SEQGRAD_CLI);
  words.insert(words.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& w : words) argv.push_back(w.data());
  argv.push_back(nullptr);
  std::vector<std::string> env = words_of(mpi_environment());
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
    }
    for (std::string& e : env) ::putenv(e.data());
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

// Waits for `pid` at most `limit`; SIGKILLs it (and fails) when it does not end.
int wait_at_most(pid_t pid, std::chrono::seconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      for (const pid_t kid : children_of(pid)) ::kill(kid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL("mpirun did not end within the limit");
    }
    std::this_thread::sleep_for(10ms);
  }
  return status;
}

TEST_CASE("mpi: a 2-process run killed mid-way resumes to the uninterrupted run exactly") {
  testing::TempDir dir;
  const std::string longer = "--steps 200 --dropout 0.3 --threads 1";
  const std::string reference = dir.file("reference");
  const Run full = seqgrad(small_run(reference, longer, "0"), 2);
  CAPTURE(full.out);
  REQUIRE(ok(full.status));
  const std::string out = dir.file("killed");
  const pid_t pid = spawn_mpirun(2, words_of(small_run(out, longer, "0")), out + ".log");
  // After the first validation's checkpoints (step 20), kill every process of the job at once,
  // as a lost machine would.
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  while (file_text(out + "/metrics.jsonl").empty() && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(1ms);
  }
  const std::vector<pid_t> ranks = children_of(pid);
  CHECK(ranks.size() == 2);
  for (const pid_t rank : ranks) ::kill(rank, SIGKILL);
  ::kill(pid, SIGKILL);
  wait_at_most(pid, 60s);
  for (const pid_t rank : ranks) {
    while (running(rank)) std::this_thread::sleep_for(1ms);  // no rank writes any more
  }
  CAPTURE(file_text(out + ".log"));
  const auto lines = metrics_lines(out + "/metrics.jsonl");
  REQUIRE(!lines.empty());
  CHECK(lines.back().at("step").get<int>() < 200);  // killed before the end
  const Run resumed = seqgrad("train --resume " + out, 2);
  CAPTURE(resumed.out);
  REQUIRE(ok(resumed.status));
  CHECK(file_text(out + "/metrics.jsonl") == file_text(reference + "/metrics.jsonl"));
  CHECK(file_text(out + "/last.safetensors") == file_text(reference + "/last.safetensors"));
  CHECK(file_text(out + "/best.safetensors") == file_text(reference + "/best.safetensors"));
}

TEST_CASE("mpi: a process that fails stops the whole job with a clear message") {
  testing::TempDir dir;
  // Rank 1 is given a training file that does not exist; rank 0 goes on into training, where it
  // waits for rank 1 in the first collective operation until the job is ended.
  const std::string good = small_run(dir.file("run"), "--threads 1");
  const std::string bad =
      good + " --train " + dir.file("missing.tsv") + " --valid " + dir.file("missing.tsv");
  const Run r = shell(
      fmt::format("{} -np 1 {} {} : -np 1 {} {}", kMpirun, SEQGRAD_CLI, good, SEQGRAD_CLI, bad));
  CAPTURE(r.out);
  CHECK(!ok(r.status));
  CHECK(!(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 137));  // not ended by the timeout
  CHECK(r.out.find("seqgrad: error (rank 1 of 2): ") != std::string::npos);
  CHECK(r.out.find("missing.tsv") != std::string::npos);
}

TEST_CASE("mpi: a process that dies stops the whole job") {
  testing::TempDir dir;
  const std::string out = dir.file("run");
  const pid_t pid =
      spawn_mpirun(2, words_of(small_run(out, "--steps 100000 --threads 1")), out + ".log");
  const auto give_up = std::chrono::steady_clock::now() + 120s;
  std::vector<pid_t> ranks;
  while (ranks.size() < 2 && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);
    ranks = children_of(pid);
  }
  REQUIRE(ranks.size() == 2);
  while (!std::filesystem::exists(out + "/last.safetensors") &&
         std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(10ms);  // training has started
  }
  std::this_thread::sleep_for(200ms);
  ::kill(ranks[1], SIGKILL);
  const int status = wait_at_most(pid, 60s);
  CAPTURE(file_text(out + ".log"));
  CHECK(!ok(status));
  for (const pid_t rank : ranks) CHECK(!running(rank));  // none left behind
}

TEST_CASE("mpi: commands other than train refuse to run in several processes") {
  const Run r = seqgrad("eval --model nowhere", 2);
  CAPTURE(r.out);
  CHECK(!ok(r.status));
  CHECK(r.out.find("seqgrad eval runs in one process; under mpirun only train is data-parallel") !=
        std::string::npos);
}

}  // namespace
}  // namespace seqgrad
