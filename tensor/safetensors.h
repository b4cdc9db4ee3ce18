// The safetensors file format (Hugging Face's), so checkpoints can be read by NumPy, PyTorch and
// friends and we can read theirs. Layout: an 8-byte little-endian header length N, N bytes of
// JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets
// into the data that follows the header) plus an optional "__metadata__" object of strings, then
// the raw little-endian data. We read and write F32, F64, I64 and BOOL.
//
// Saving is atomic: the bytes go to a temporary file beside the target, which is fsynced and then
// renamed over it, so a crash mid-write leaves the previous file intact. Loading treats the file
// as hostile: every length and offset is checked before it is used, and any inconsistency throws
// RuntimeError naming the file and the problem.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tensor/tensor.h"

namespace seqgrad {

// The largest JSON header load_safetensors accepts (the reference implementation's limit too);
// real headers are a few MB at most, so anything larger is a corrupt or hostile file.
inline constexpr std::size_t kSafetensorsMaxHeaderBytes = 100u << 20;

struct SafetensorsFile {
  // In data-offset order, which for files we write is the order they were saved in.
  std::vector<std::pair<std::string, Tensor>> tensors;
  std::map<std::string, std::string> metadata;

  // nullptr when there is no tensor of that name.
  const Tensor* find(std::string_view name) const;
  // Throws ValueError listing the names the file does hold.
  const Tensor& at(std::string_view name) const;
};

// Writes `tensors` (dense, in this order) and `metadata` to `path`, replacing it atomically.
// Throws ValueError for an undefined tensor, a repeated or reserved ("__metadata__") name, or
// names and metadata that are not valid UTF-8; RuntimeError (naming the path and the system's
// reason) when the file cannot be written, in which case `path` is left as it was.
void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// Reads every tensor of `path` into fresh dense tensors. Throws RuntimeError naming the path when
// the file cannot be read or is not a well-formed safetensors file of supported dtypes.
SafetensorsFile load_safetensors(const std::string& path);
// The same on a whole file already in memory (the fuzz harness feeds it); errors say
// "parse_safetensors: <name>: ...".
SafetensorsFile parse_safetensors(std::string_view bytes, std::string_view name);

}  // namespace seqgrad
