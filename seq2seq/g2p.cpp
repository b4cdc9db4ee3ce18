// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// The CMUdict reader and the hash split of words into train / valid / test.
#include "seq2seq/g2p.h"

#include <fmt/format.h>

#include "seq2seq/vocab.h"

namespace seqgrad {

namespace {

bool is_field_space(char c) {
  return c == ' ' || c == '\t';
}

// `word(2)` -> `word`; a word without a marker is returned as is. Returns an empty view for a
// malformed marker.
std::string_view strip_variant(std::string_view word) {
  const std::size_t open = word.find('(');
  if (open == std::string_view::npos) return word;
  if (open == 0 || !word.ends_with(')') || open + 2 >= word.size()) return {};
  for (std::size_t i = open + 1; i + 1 < word.size(); ++i) {
    if (word[i] < '0' || word[i] > '9') return {};
  }
  return word.substr(0, open);
}

}  // namespace

std::vector<Example> parse_cmudict(std::string_view text, std::string_view name) {
  ExampleMerger merger;
  std::string phonemes;
  for_each_line(text, "read_cmudict", name, [&](std::string_view line, std::size_t line_no) {
    const auto fail = [&](std::string_view what) {
      fail_line("read_cmudict", name, line_no, what);
    };
    // "#HASH-MARK" is a word in some versions of the dictionary, so only "#" followed by a space
    // (or nothing) opens a comment line.
    if (line.starts_with(";;;") || line == "#" || line.starts_with("# ") ||
        line.starts_with("#\t")) {
      return;
    }
    // Split into fields, stopping at a "#" that starts a field after the word (a comment).
    std::vector<std::string_view> fields;
    std::size_t pos = 0;
    while (pos < line.size()) {
      while (pos < line.size() && is_field_space(line[pos])) ++pos;
      const std::size_t begin = pos;
      while (pos < line.size() && !is_field_space(line[pos])) ++pos;
      if (pos == begin) break;
      if (line[begin] == '#' && !fields.empty()) break;
      fields.push_back(line.substr(begin, pos - begin));
    }
    if (fields.empty()) return;
    if (fields.size() == 1)
      fail(fmt::format("'{}' has no phonemes; expected `word PH1 PH2 ...`", fields[0]));
    const std::string_view word = strip_variant(fields[0]);
    if (word.empty()) {
      fail(fmt::format("bad word '{}'; alternatives are written word(2), word(3), ...", fields[0]));
    }
    phonemes.clear();
    for (std::size_t i = 1; i < fields.size(); ++i) {
      if (i > 1) phonemes += ' ';
      phonemes += fields[i];
    }
    merger.add(word, phonemes);
  });
  return merger.take();
}

std::vector<Example> read_cmudict(const std::string& path) {
  return parse_cmudict(read_file(path, "read_cmudict"), path);
}

std::string_view split_name(Split split) {
  switch (split) {
    case Split::train:
      return "train";
    case Split::valid:
      return "valid";
    case Split::test:
      return "test";
  }
  return "?";
}

std::uint64_t fnv1a64(std::string_view bytes) {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ULL;
  }
  return h;
}

Split g2p_split(std::string_view word) {
  const std::uint64_t bucket = fnv1a64(word) % 100;
  if (bucket < 90) return Split::train;
  if (bucket < 95) return Split::valid;
  return Split::test;
}

DataSplits split_g2p(const std::vector<Example>& words) {
  DataSplits splits;
  for (const auto& ex : words) {
    switch (g2p_split(ex.source)) {
      case Split::train:
        splits.train.push_back(ex);
        break;
      case Split::valid:
        splits.valid.push_back(ex);
        break;
      case Split::test:
        splits.test.push_back(ex);
        break;
    }
  }
  return splits;
}

}  // namespace seqgrad
