// Checkpoints: a model's parameters, the optimizer's state, the step count, the random
// generator's state and the model's configuration, in one safetensors file, so training resumes
// exactly. Parameters are stored under their own names ("encoder.rnn.weight_ih_l0"), so NumPy
// and PyTorch users read them directly; optimizer buffers under "optim.<buffer>.<index>"; the
// rest in the header's string metadata.
//
// Writes are atomic (temporary file beside the target, fsync, rename: save_safetensors), so a
// process killed mid-write leaves the previous file whole. Loading validates everything — format
// tag, parameter names, shapes and dtypes, optimizer kind and buffers — before it changes
// anything, and refuses a bad file with a message that names it.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "autograd/variable.h"
#include "optim/optimizer.h"

namespace seqgrad {

struct TrainingState {
  std::int64_t step = 0;
  std::int64_t epoch = 0;
  std::array<std::uint64_t, 5> rng{};        // Generator::state()
  std::string config;                        // the model's configuration (JSON text)
  std::map<std::string, std::string> extra;  // e.g. schedule state, best validation score
};

using NamedVariables = std::vector<std::pair<std::string, Variable>>;

// `optimizer` may be null (a model-only checkpoint, e.g. for export).
void save_checkpoint(const std::string& path, const NamedVariables& params,
                     const Optimizer* optimizer, const TrainingState& state);

// Copies the stored parameters into `params` (same names, shapes and dtypes, none missing or
// extra) and, when `optimizer` is given, restores its state. Throws CheckpointError.
TrainingState load_checkpoint(const std::string& path, const NamedVariables& params,
                              Optimizer* optimizer);

// Replaces `path` with `text` atomically, as checkpoints are replaced (for a run's other files:
// configuration, vocabularies, metrics). RuntimeError naming the path and the system's reason,
// in which case `path` is left as it was.
void save_text_file(const std::string& path, const std::string& text);
// Removes temporary files that writes to `path` left behind when their process was killed.
void remove_stale_temporaries(const std::string& path);

// Test hook: with the environment variable SEQGRAD_TEST_KILL_IN_CHECKPOINT=N, the N-th
// save_checkpoint of the process stops half-way: half of the file's bytes are in its temporary
// file, the target is untouched, and the process kills itself with SIGKILL, as if killed there.
inline constexpr const char* kKillInCheckpointEnv = "SEQGRAD_TEST_KILL_IN_CHECKPOINT";

// Reads only the metadata (e.g. the configuration needed to build the model before loading).
TrainingState read_checkpoint_state(const std::string& path);

struct CheckpointError : RuntimeError {
  using RuntimeError::RuntimeError;
};

}  // namespace seqgrad
