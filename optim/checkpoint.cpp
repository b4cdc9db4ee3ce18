// Checkpoints in safetensors files, and the atomic replacement of a run's other files.
#include "optim/checkpoint.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <system_error>

#include "tensor/safetensors.h"

namespace seqgrad {

namespace {

constexpr const char* kFormat = "seqgrad-checkpoint-1";
constexpr const char* kOptimPrefix = "optim.";

std::string rng_text(const std::array<std::uint64_t, 5>& s) {
  return fmt::format("{:016x}", fmt::join(s, ","));
}

std::map<std::string, std::string> metadata_of(const TrainingState& st) {
  std::map<std::string, std::string> m{{"format", kFormat},
                                       {"step", std::to_string(st.step)},
                                       {"epoch", std::to_string(st.epoch)},
                                       {"rng", rng_text(st.rng)},
                                       {"config", st.config}};
  for (const auto& [k, v] : st.extra) m["extra." + k] = v;
  return m;
}

[[noreturn]] void refuse(const std::string& path, const std::string& problem) {
  throw CheckpointError(fmt::format("checkpoint {}: {}", path, problem));
}

const std::string& need(const std::map<std::string, std::string>& m, const std::string& key,
                        const std::string& path) {
  auto it = m.find(key);
  if (it == m.end()) refuse(path, fmt::format("metadata '{}' is missing", key));
  return it->second;
}

std::int64_t to_int(const std::string& text, const std::string& key, const std::string& path) {
  try {
    std::size_t used = 0;
    const std::int64_t v = std::stoll(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  refuse(path, fmt::format("metadata '{}' is '{}', not an integer", key, text));
}

double to_double(const std::string& text, const std::string& key, const std::string& path) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size()) return v;
  } catch (const std::exception&) {
  }
  refuse(path, fmt::format("metadata '{}' is '{}', not a number", key, text));
}

TrainingState state_of(const std::map<std::string, std::string>& m, const std::string& path) {
  if (need(m, "format", path) != kFormat) {
    refuse(path, fmt::format("format '{}' is not '{}'", m.at("format"), kFormat));
  }
  TrainingState st;
  st.step = to_int(need(m, "step", path), "step", path);
  st.epoch = to_int(need(m, "epoch", path), "epoch", path);
  st.config = need(m, "config", path);
  const std::string& rng = need(m, "rng", path);
  std::size_t pos = 0;
  for (std::size_t i = 0; i < st.rng.size(); ++i) {
    const std::size_t end = rng.find(',', pos);
    const std::string word =
        rng.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
    if (word.size() != 16 || word.find_first_not_of("0123456789abcdef") != std::string::npos ||
        (i + 1 < st.rng.size()) == (end == std::string::npos)) {
      refuse(path, fmt::format("metadata 'rng' is not 5 hexadecimal words: '{}'", rng));
    }
    st.rng[i] = std::stoull(word, nullptr, 16);
    pos = end + 1;
  }
  for (const auto& [k, v] : m) {
    if (k.rfind("extra.", 0) == 0) st.extra[k.substr(6)] = v;
  }
  return st;
}

std::string temporary_name(const std::string& target) {
  static std::atomic<unsigned> counter{0};  // keeps two threads saving one path apart
  return fmt::format("{}.tmp.{}.{}", target, ::getpid(), counter++);
}

[[noreturn]] void write_failed(const std::string& path, const std::string& what, int err) {
  throw RuntimeError(
      fmt::format("cannot write {}: {}: {}", path, what, std::generic_category().message(err)));
}

// The test hook of checkpoint.h: true when this save is the one to stop in.
bool kill_in_this_checkpoint() {
  static std::atomic<long> saves{0};
  const char* n = std::getenv(kKillInCheckpointEnv);
  return n != nullptr && ++saves == std::atol(n);
}

[[noreturn]] void stop_half_way(const std::string& path,
                                const std::vector<std::pair<std::string, Tensor>>& tensors,
                                const std::map<std::string, std::string>& meta) {
  const std::string temporary = temporary_name(path);
  save_safetensors(temporary, tensors, meta);
  std::filesystem::resize_file(temporary, std::filesystem::file_size(temporary) / 2);
  std::raise(SIGKILL);
  std::abort();  // not reached
}

}  // namespace

void save_text_file(const std::string& path, const std::string& text) {
  const std::string temporary = temporary_name(path);
  const int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) write_failed(path, fmt::format("cannot create {}", temporary), errno);
  auto fail = [&](const char* what) {
    const int err = errno;
    ::close(fd);
    ::unlink(temporary.c_str());
    write_failed(path, fmt::format("{} {}", what, temporary), err);
  };
  for (std::size_t done = 0; done < text.size();) {
    const ssize_t w = ::write(fd, text.data() + done, text.size() - done);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("cannot write");
    done += static_cast<std::size_t>(w);
  }
  // fsync before rename: otherwise a crash can leave the new name pointing at missing data.
  if (::fsync(fd) != 0) fail("cannot fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    write_failed(path, fmt::format("cannot close {}", temporary), err);
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(temporary.c_str());
    write_failed(path, fmt::format("cannot rename {} over it", temporary), err);
  }
  // Make the rename itself durable. Best effort: the file is already whole and in place, and
  // some file systems refuse fsync on a directory.
  const std::filesystem::path dir = std::filesystem::absolute(path).parent_path();
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void remove_stale_temporaries(const std::string& path) {
  namespace fs = std::filesystem;
  const fs::path target(path);
  const std::string prefix = target.filename().string() + ".tmp.";
  std::error_code ec;
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  for (const fs::directory_entry& e : fs::directory_iterator(dir, ec)) {
    if (e.path().filename().string().rfind(prefix, 0) == 0) fs::remove(e.path(), ec);
  }
}

void save_checkpoint(const std::string& path, const NamedVariables& params,
                     const Optimizer* optimizer, const TrainingState& state) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const auto& [name, p] : params) {
    if (name.rfind(kOptimPrefix, 0) == 0) {
      throw ValueError(
          fmt::format("save_checkpoint: parameter name '{}' uses the reserved "
                      "prefix '{}'",
                      name, kOptimPrefix));
    }
    tensors.emplace_back(name, p.data());
  }
  std::map<std::string, std::string> meta = metadata_of(state);
  if (optimizer != nullptr) {
    const OptimizerState os = optimizer->state();
    meta["optim.kind"] = os.kind;
    meta["optim.num_params"] = std::to_string(os.num_params);
    meta["optim.step_count"] = std::to_string(os.step_count);
    meta["optim.lr"] = fmt::format("{:.17g}", os.lr);
    for (const auto& [name, t] : os.tensors) tensors.emplace_back(kOptimPrefix + name, t);
  }
  if (kill_in_this_checkpoint()) stop_half_way(path, tensors, meta);
  save_safetensors(path, tensors, meta);
}

TrainingState read_checkpoint_state(const std::string& path) {
  return state_of(load_safetensors(path).metadata, path);
}

TrainingState load_checkpoint(const std::string& path, const NamedVariables& params,
                              Optimizer* optimizer) {
  const SafetensorsFile file = load_safetensors(path);  // refuses corrupt files itself
  const TrainingState st = state_of(file.metadata, path);
  // Validate everything before touching the model.
  std::set<std::string> expected;
  for (const auto& [name, p] : params) {
    expected.insert(name);
    const Tensor* t = file.find(name);
    if (t == nullptr) refuse(path, fmt::format("parameter '{}' is missing", name));
    if (t->shape() != p.shape() || t->dtype() != p.dtype()) {
      refuse(path, fmt::format("parameter '{}' is {}{} in the file but {}{} in the model", name,
                               dtype_name(t->dtype()), shape_str(t->shape()), dtype_name(p.dtype()),
                               shape_str(p.shape())));
    }
  }
  OptimizerState os;
  for (const auto& [name, t] : file.tensors) {
    if (name.rfind(kOptimPrefix, 0) == 0) {
      os.tensors[name.substr(6)] = t;
    } else if (!expected.count(name)) {
      refuse(path, fmt::format("it holds parameter '{}', which the model does not have", name));
    }
  }
  if (optimizer != nullptr) {
    if (!file.metadata.count("optim.kind")) refuse(path, "it holds no optimizer state");
    os.kind = file.metadata.at("optim.kind");
    os.num_params = to_int(need(file.metadata, "optim.num_params", path), "optim.num_params", path);
    os.step_count = to_int(need(file.metadata, "optim.step_count", path), "optim.step_count", path);
    os.lr = to_double(need(file.metadata, "optim.lr", path), "optim.lr", path);
    try {
      optimizer->load_state(os);  // validates before it changes anything
    } catch (const std::invalid_argument& e) {
      refuse(path, fmt::format("optimizer state does not fit: {}", e.what()));
    }
  }
  for (const auto& [name, p] : params) {
    Tensor dst = p.data();
    dst.copy_from(*file.find(name));
  }
  return st;
}

}  // namespace seqgrad
