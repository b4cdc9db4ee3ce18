// Reading and writing safetensors files (layout in safetensors.h). Writing goes through a
// temporary file that is fsynced and renamed into place; reading checks every number in the
// header against the file (with overflow checks) before it is used to size or place a read.
#include "tensor/safetensors.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>

namespace seqgrad {
namespace {

// ordered_json so a header we write lists tensors in the order they were given.
using Json = nlohmann::ordered_json;

// Tensor storage is copied to and from the file byte for byte.
static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian and byte swapping is not implemented");

constexpr std::string_view kMetadataKey = "__metadata__";
// A valid header nests three deep (header, entry, shape); the cap keeps a hostile header of
// millions of nested brackets from building a huge tree.
constexpr int kMaxJsonDepth = 16;

std::string_view safetensors_dtype(DType d) {
  switch (d) {
    case DType::f32:
      return "F32";
    case DType::f64:
      return "F64";
    case DType::i64:
      return "I64";
    case DType::boolean:
      return "BOOL";
  }
  return "?";
}

std::optional<DType> dtype_from_safetensors(std::string_view s) {
  if (s == "F32") return DType::f32;
  if (s == "F64") return DType::f64;
  if (s == "I64") return DType::i64;
  if (s == "BOOL") return DType::boolean;
  return std::nullopt;
}

std::string errno_text(int err) {
  return std::generic_category().message(err);
}

// A JSON value from the file for an error message, cut short: the value may be megabytes long.
std::string brief(const Json& j) {
  std::string s = j.dump();
  if (s.size() > 60) s = s.substr(0, 57) + "...";
  return s;
}

// ---------------------------------------------------------------------------------------------
// Writing

[[noreturn]] void save_failed(const std::string& path, const std::string& what, int err) {
  throw RuntimeError(fmt::format("save_safetensors: {}: {}: {}", path, what, errno_text(err)));
}

// A temporary file beside the target (same directory, so the final rename cannot cross file
// systems). It removes itself unless commit() renamed it into place.
class TempFile {
 public:
  explicit TempFile(const std::string& target) : target_(target) {
    // The counter keeps two threads of one process saving the same path apart.
    static std::atomic<unsigned> counter{0};
    path_ = fmt::format("{}.tmp.{}.{}", target, ::getpid(), counter++);
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd_ < 0) save_failed(target_, fmt::format("cannot create {}", path_), errno);
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  void write(const void* data, std::size_t n) {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t w = ::write(fd_, p, n);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) save_failed(target_, fmt::format("cannot write {}", path_), errno);
      p += w;
      n -= static_cast<std::size_t>(w);
    }
  }

  // fsync before rename: otherwise a crash can leave the new name pointing at missing data.
  void commit() {
    if (::fsync(fd_) != 0) save_failed(target_, fmt::format("cannot fsync {}", path_), errno);
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) save_failed(target_, fmt::format("cannot close {}", path_), errno);
    if (::rename(path_.c_str(), target_.c_str()) != 0) {
      save_failed(target_, fmt::format("cannot rename {} over it", path_), errno);
    }
    committed_ = true;
    // Make the rename itself durable. Best effort: the file is already complete and in place,
    // and some file systems refuse fsync on a directory.
    std::filesystem::path dir = std::filesystem::path(target_).parent_path();
    if (dir.empty()) dir = std::filesystem::current_path();
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);
      ::close(dfd);
    }
  }

 private:
  std::string target_;
  std::string path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void save_safetensors(const std::string& path,
                      const std::vector<std::pair<std::string, Tensor>>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  // Everything the caller can get wrong is checked before the disk is touched.
  Json header = Json::object();
  if (!metadata.empty()) {
    Json meta = Json::object();
    for (const auto& [key, value] : metadata) meta[key] = value;
    header[kMetadataKey] = std::move(meta);
  }
  std::set<std::string_view> seen;
  std::uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == kMetadataKey) {
      throw ValueError(fmt::format(
          "save_safetensors: {}: '{}' is reserved for the metadata and cannot name a tensor", path,
          name));
    }
    if (!seen.insert(name).second) {
      throw ValueError(
          fmt::format("save_safetensors: {}: tensor name '{}' is given twice", path, name));
    }
    if (!t.defined()) {
      throw ValueError(fmt::format("save_safetensors: {}: tensor '{}' is undefined", path, name));
    }
    const std::uint64_t nbytes = static_cast<std::uint64_t>(t.numel()) * dtype_size(t.dtype());
    Json entry = Json::object();
    entry["dtype"] = safetensors_dtype(t.dtype());
    entry["shape"] = t.shape();
    entry["data_offsets"] = Json::array({offset, offset + nbytes});
    header[name] = std::move(entry);
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::type_error& e) {
    throw ValueError(
        fmt::format("save_safetensors: {}: tensor names and metadata must be valid UTF-8 ({})",
                    path, e.what()));
  }
  // Spaces pad the header to a multiple of 8 so the data after it is 8-byte aligned.
  text.append((8 - text.size() % 8) % 8, ' ');
  if (text.size() > kSafetensorsMaxHeaderBytes) {
    throw ValueError(
        fmt::format("save_safetensors: {}: the header would be {} bytes, over the {} "
                    "bytes load_safetensors accepts",
                    path, text.size(), kSafetensorsMaxHeaderBytes));
  }

  unsigned char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<unsigned char>(text.size() >> (8 * i));
  TempFile file(path);
  file.write(length, sizeof length);
  file.write(text.data(), text.size());
  // One dense copy at a time (only of strided views), so saving needs little extra memory.
  for (const auto& [name, t] : tensors) {
    const Tensor dense = t.contiguous();
    const std::size_t nbytes = static_cast<std::size_t>(dense.numel()) * dtype_size(dense.dtype());
    if (nbytes > 0) file.write(dense.raw_data(), nbytes);
  }
  file.commit();
}

// ---------------------------------------------------------------------------------------------
// Reading

namespace {

// The bytes under test, from an open file or from memory; every failure names the file.
class Reader {
 public:
  explicit Reader(const std::string& path) : caller_("load_safetensors"), path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) fail(fmt::format("cannot open: {}", errno_text(errno)));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(fmt::format("cannot stat: {}", errno_text(errno)));
    if (!S_ISREG(st.st_mode)) fail("not a regular file");
    size_ = static_cast<std::uint64_t>(st.st_size);
  }
  Reader(std::string_view bytes, std::string_view name)
      : caller_("parse_safetensors"), path_(name), bytes_(bytes), size_(bytes.size()) {}
  ~Reader() {
    if (fd_ >= 0) ::close(fd_);
  }
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  std::uint64_t size() const { return size_; }

  [[noreturn]] void fail(std::string_view problem) const {
    throw RuntimeError(fmt::format("{}: {}: {}", caller_, path_, problem));
  }

  // Reads exactly n bytes at `offset`; a file that shrank since fstat is reported, not trusted.
  void read_at(void* dst, std::size_t n, std::uint64_t offset) const {
    if (fd_ < 0) {
      copy_at(dst, n, offset);
      return;
    }
    char* p = static_cast<char*>(dst);
    while (n > 0) {
      const ssize_t r = ::pread(fd_, p, n, static_cast<off_t>(offset));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail(fmt::format("read failed at byte {}: {}", offset, errno_text(errno)));
      if (r == 0) fail(fmt::format("file ended at byte {} while reading", offset));
      p += r;
      n -= static_cast<std::size_t>(r);
      offset += static_cast<std::uint64_t>(r);
    }
  }

 private:
  void copy_at(void* dst, std::size_t n, std::uint64_t offset) const {
    if (offset > bytes_.size() || n > bytes_.size() - offset) {
      fail(fmt::format("file ended at byte {} while reading", bytes_.size()));
    }
    if (n > 0) std::memcpy(dst, bytes_.data() + offset, n);
  }

  std::string_view caller_;
  std::string path_;
  std::string_view bytes_;  // the whole file when it is in memory (fd_ < 0)
  int fd_ = -1;
  std::uint64_t size_ = 0;
};

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  std::uint64_t begin, end;
};

struct TooDeep {};

// Parses the header JSON, refusing repeated keys (nlohmann would silently keep the last one, so
// two tensors could claim one name) and nesting past kMaxJsonDepth.
Json parse_header(const Reader& file, const std::string& text) {
  std::set<std::string> top_keys, entry_keys;
  std::string duplicate;
  auto on_event = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (depth > kMaxJsonDepth) throw TooDeep{};
    if (event == Json::parse_event_t::object_start && depth == 1) entry_keys.clear();
    if (event == Json::parse_event_t::key && (depth == 1 || depth == 2) && duplicate.empty()) {
      const std::string key = parsed.get<std::string>();
      if (!(depth == 1 ? top_keys : entry_keys).insert(key).second) {
        duplicate = depth == 1 ? fmt::format("tensor name '{}' appears twice in the header", key)
                               : fmt::format("key '{}' appears twice in one header entry", key);
      }
    }
    return true;
  };
  Json header;
  try {
    header = Json::parse(text, on_event);
  } catch (const Json::parse_error& e) {
    file.fail(fmt::format("header is not valid JSON ({})", e.what()));
  } catch (const TooDeep&) {
    file.fail(fmt::format("header JSON nests deeper than {} levels", kMaxJsonDepth));
  }
  if (!duplicate.empty()) file.fail(duplicate);
  if (!header.is_object()) {
    file.fail(fmt::format("header is a JSON {}, not an object", header.type_name()));
  }
  return header;
}

// Checks one header entry against the `data_bytes` bytes that follow the header.
Entry parse_entry(const Reader& file, const std::string& name, const Json& j,
                  std::uint64_t data_bytes) {
  auto bad = [&](std::string_view problem) {
    file.fail(fmt::format("tensor '{}': {}", name, problem));
  };
  if (!j.is_object()) bad(fmt::format("entry is a JSON {}, not an object", j.type_name()));
  for (const char* key : {"dtype", "shape", "data_offsets"}) {
    if (!j.contains(key)) bad(fmt::format("entry has no \"{}\"", key));
  }
  // Other keys are ignored, as the reference implementation does, so later additions still load.

  const Json& jdtype = j["dtype"];
  if (!jdtype.is_string()) {
    bad(fmt::format("\"dtype\" is a JSON {}, not a string", jdtype.type_name()));
  }
  const auto dtype = dtype_from_safetensors(jdtype.get_ref<const std::string&>());
  if (!dtype) {
    bad(fmt::format("unsupported dtype '{}' (seqgrad reads F32, F64, I64 and BOOL)",
                    jdtype.get_ref<const std::string&>()));
  }

  const Json& jshape = j["shape"];
  if (!jshape.is_array()) {
    bad(fmt::format("\"shape\" is a JSON {}, not an array", jshape.type_name()));
  }
  Shape shape;
  for (const Json& d : jshape) {
    if (d.is_number_integer() && !d.is_number_unsigned()) {
      bad(fmt::format("negative dimension {} in \"shape\" {}", d.get<std::int64_t>(),
                      brief(jshape)));
    }
    if (!d.is_number_unsigned()) {
      bad(fmt::format("\"shape\" {} holds {}, not an integer", brief(jshape), brief(d)));
    }
    const auto u = d.get<std::uint64_t>();
    if (u > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      bad(fmt::format("dimension {} in \"shape\" is too large", u));
    }
    shape.push_back(static_cast<std::int64_t>(u));
  }

  const Json& joff = j["data_offsets"];
  if (!joff.is_array() || joff.size() != 2 || !joff[0].is_number_unsigned() ||
      !joff[1].is_number_unsigned()) {
    bad(fmt::format("\"data_offsets\" {} is not two non-negative integers", brief(joff)));
  }
  const auto begin = joff[0].get<std::uint64_t>();
  const auto end = joff[1].get<std::uint64_t>();
  if (end < begin) bad(fmt::format("data_offsets [{}, {}] end before they begin", begin, end));
  if (end > data_bytes) {
    bad(fmt::format("data_offsets [{}, {}] run past the {} data bytes after the header", begin, end,
                    data_bytes));
  }

  // The byte count, overflow-checked. Zero dimensions still go through the check (as 1) because
  // Tensor::empty computes strides from them.
  std::uint64_t span = dtype_size(*dtype);
  bool has_zero = false;
  for (auto d : shape) {
    has_zero |= d == 0;
    if (__builtin_mul_overflow(span, static_cast<std::uint64_t>(std::max<std::int64_t>(d, 1)),
                               &span) ||
        span > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
      bad(fmt::format("shape {} is too large", shape_str(shape)));
    }
  }
  const std::uint64_t nbytes = has_zero ? 0 : span;
  if (nbytes != end - begin) {
    bad(fmt::format("{} {} needs {} bytes but data_offsets [{}, {}] hold {}",
                    jdtype.get_ref<const std::string&>(), shape_str(shape), nbytes, begin, end,
                    end - begin));
  }
  return Entry{name, *dtype, std::move(shape), begin, end};
}

SafetensorsFile read_safetensors(const Reader& file) {
  if (file.size() < 8) {
    file.fail(fmt::format("file is {} bytes, too short for the 8-byte header length", file.size()));
  }
  unsigned char length[8];
  file.read_at(length, sizeof length, 0);
  std::uint64_t header_bytes = 0;
  for (int i = 0; i < 8; ++i) header_bytes |= static_cast<std::uint64_t>(length[i]) << (8 * i);
  if (header_bytes > kSafetensorsMaxHeaderBytes) {
    file.fail(fmt::format("header length {} is over the {}-byte limit", header_bytes,
                          kSafetensorsMaxHeaderBytes));
  }
  if (header_bytes > file.size() - 8) {
    file.fail(fmt::format("header length {} runs past the end of the {}-byte file", header_bytes,
                          file.size()));
  }
  std::string text(header_bytes, '\0');
  file.read_at(text.data(), text.size(), 8);
  const Json header = parse_header(file, text);
  const std::uint64_t data_start = 8 + header_bytes;
  const std::uint64_t data_bytes = file.size() - data_start;

  SafetensorsFile out;
  std::vector<Entry> entries;
  for (const auto& [name, value] : header.items()) {
    if (name != kMetadataKey) {
      entries.push_back(parse_entry(file, name, value, data_bytes));
      continue;
    }
    if (!value.is_object()) {
      file.fail(fmt::format("\"{}\" is a JSON {}, not an object", kMetadataKey, value.type_name()));
    }
    for (const auto& [key, v] : value.items()) {
      if (!v.is_string()) {
        file.fail(fmt::format("metadata '{}' is a JSON {}, not a string", key, v.type_name()));
      }
      out.metadata.emplace(key, v.get<std::string>());
    }
  }

  // The tensors must tile the data exactly: no gap could hide bytes, no overlap alias two.
  // Stable, so empty tensors sharing an offset keep their header (and thus saving) order.
  std::stable_sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  std::uint64_t cursor = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < cursor) {
      file.fail(fmt::format("tensor '{}' (data_offsets [{}, {}]) overlaps tensor '{}' ([{}, {}])",
                            e.name, e.begin, e.end, previous->name, previous->begin,
                            previous->end));
    }
    if (e.begin > cursor) {
      file.fail(fmt::format("{} unused data bytes before tensor '{}' (data_offsets [{}, {}])",
                            e.begin - cursor, e.name, e.begin, e.end));
    }
    cursor = e.end;
    previous = &e;
  }
  if (cursor != data_bytes) {
    file.fail(fmt::format("{} trailing bytes after the last tensor's data", data_bytes - cursor));
  }

  out.tensors.reserve(entries.size());
  for (const Entry& e : entries) {
    Tensor t = Tensor::empty(e.shape, e.dtype);
    const std::size_t nbytes = e.end - e.begin;
    if (nbytes > 0) file.read_at(t.raw_data(), nbytes, data_start + e.begin);
    if (e.dtype == DType::boolean) {
      // Any byte but 0 or 1 in a bool object is undefined behaviour, so it is refused here.
      const auto* bytes = static_cast<const unsigned char*>(t.raw_data());
      for (std::size_t i = 0; i < nbytes; ++i) {
        if (bytes[i] > 1) {
          file.fail(fmt::format("tensor '{}': BOOL element {} is byte {}, not 0 or 1", e.name, i,
                                bytes[i]));
        }
      }
    }
    out.tensors.emplace_back(e.name, std::move(t));
  }
  return out;
}

}  // namespace

SafetensorsFile load_safetensors(const std::string& path) {
  return read_safetensors(Reader(path));
}

SafetensorsFile parse_safetensors(std::string_view bytes, std::string_view name) {
  return read_safetensors(Reader(bytes, name));
}

const Tensor* SafetensorsFile::find(std::string_view name) const {
  for (const auto& [n, t] : tensors) {
    if (n == name) return &t;
  }
  return nullptr;
}

const Tensor& SafetensorsFile::at(std::string_view name) const {
  if (const Tensor* t = find(name)) return *t;
  std::vector<std::string_view> names;
  for (const auto& [n, t] : tensors) names.push_back(n);
  throw ValueError(fmt::format("SafetensorsFile::at: no tensor '{}' (the file holds: {})", name,
                               fmt::join(names, ", ")));
}

}  // namespace seqgrad
