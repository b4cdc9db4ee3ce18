// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Tokenizers (UTF-8 code points, whitespace words) and the Vocab: building, lookup, encode /
// decode, and its text and JSON files.
#include "seq2seq/vocab.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "tensor/errors.h"

namespace seqgrad {

namespace {

constexpr std::string_view kVocabFormat = "seqgrad.vocab";
constexpr int kVocabVersion = 1;

bool is_ascii_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

bool ends_with_json(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".json") == 0;
}

}  // namespace

std::string_view tokenization_name(Tokenization mode) {
  switch (mode) {
    case Tokenization::chars:
      return "chars";
    case Tokenization::words:
      return "words";
  }
  return "?";
}

Tokenization parse_tokenization(std::string_view name) {
  if (name == "chars") return Tokenization::chars;
  if (name == "words") return Tokenization::words;
  throw ValueError(
      fmt::format("parse_tokenization: unknown tokenization '{}'; known: chars, words", name));
}

std::size_t utf8_sequence_length(std::string_view text, std::size_t pos) {
  const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
  const std::size_t avail = text.size() - pos;
  const unsigned char b0 = byte(pos);
  if (b0 < 0x80) return 1;
  // The allowed range of the second byte excludes overlong forms (E0, F0), UTF-16 surrogates
  // (ED) and code points past U+10FFFF (F4); later bytes are plain continuations 80..BF.
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 0;  // a continuation byte, C0/C1 (always overlong) or F5..FF
  }
  if (avail < len) return 0;
  if (byte(pos + 1) < lo || byte(pos + 1) > hi) return 0;
  for (std::size_t i = 2; i < len; ++i) {
    if (byte(pos + i) < 0x80 || byte(pos + i) > 0xBF) return 0;
  }
  return len;
}

std::size_t find_invalid_utf8(std::string_view text) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t len = utf8_sequence_length(text, pos);
    if (len == 0) return pos;
    pos += len;
  }
  return std::string_view::npos;
}

std::vector<std::string> tokenize(std::string_view text, Tokenization mode) {
  std::vector<std::string> tokens;
  if (mode == Tokenization::chars) {
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t len = utf8_sequence_length(text, pos);
      if (len == 0) {
        throw ValueError(fmt::format("tokenize: invalid UTF-8 at byte offset {} after \"{}\"", pos,
                                     text.substr(0, pos)));
      }
      tokens.emplace_back(text.substr(pos, len));
      pos += len;
    }
    return tokens;
  }
  std::size_t pos = 0;
  while (pos < text.size()) {
    while (pos < text.size() && is_ascii_space(text[pos])) ++pos;
    const std::size_t start = pos;
    while (pos < text.size() && !is_ascii_space(text[pos])) ++pos;
    if (pos > start) tokens.emplace_back(text.substr(start, pos - start));
  }
  return tokens;
}

std::string detokenize(const std::vector<std::string>& tokens, Tokenization mode) {
  std::string out;
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (mode == Tokenization::words && i > 0) out += ' ';
    out += tokens[i];
  }
  return out;
}

const std::vector<std::string>& Vocab::specials() {
  static const std::vector<std::string> kSpecials = {"<pad>", "<s>", "</s>", "<unk>"};
  return kSpecials;
}

Vocab::Vocab() {
  for (const auto& t : specials()) {
    ids_.emplace(t, size());
    tokens_.push_back(t);
  }
}

Vocab Vocab::from_tokens(std::vector<std::string> tokens) {
  const auto& sp = specials();
  if (tokens.size() < sp.size() || !std::equal(sp.begin(), sp.end(), tokens.begin())) {
    throw ValueError(fmt::format(
        "Vocab::from_tokens: the first tokens must be the specials {} in that order; got {}",
        fmt::join(sp, " "),
        fmt::join(tokens.begin(), tokens.begin() + std::min(tokens.size(), sp.size()), " ")));
  }
  Vocab v;
  v.ids_.clear();
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty()) {
      throw ValueError(fmt::format("Vocab::from_tokens: token {} is empty", i));
    }
    const auto [it, inserted] = v.ids_.emplace(tokens[i], static_cast<std::int64_t>(i));
    if (!inserted) {
      throw ValueError(fmt::format("Vocab::from_tokens: token '{}' appears twice (ids {} and {})",
                                   tokens[i], it->second, i));
    }
  }
  v.tokens_ = std::move(tokens);
  return v;
}

Vocab Vocab::build(const std::vector<std::vector<std::string>>& sequences, std::size_t min_count,
                   std::size_t max_size) {
  if (max_size != 0 && max_size < static_cast<std::size_t>(kNumSpecials)) {
    throw ValueError(fmt::format("Vocab::build: max_size {} leaves no room for the {} specials",
                                 max_size, kNumSpecials));
  }
  std::map<std::string, std::size_t, std::less<>> counts;
  for (const auto& seq : sequences) {
    for (const auto& tok : seq) ++counts[tok];
  }
  const auto& sp = specials();
  std::vector<std::pair<std::string, std::size_t>> kept;
  for (auto& [tok, n] : counts) {
    if (n < min_count || tok.empty()) continue;
    if (std::find(sp.begin(), sp.end(), tok) != sp.end()) continue;
    kept.emplace_back(tok, n);
  }
  // counts is ordered by token, so a stable sort by count leaves ties in token order.
  std::stable_sort(kept.begin(), kept.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> tokens = sp;
  for (auto& [tok, n] : kept) {
    if (max_size != 0 && tokens.size() >= max_size) break;
    tokens.push_back(tok);
  }
  return from_tokens(std::move(tokens));
}

std::int64_t Vocab::id(std::string_view token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? kUnk : it->second;
}

bool Vocab::contains(std::string_view token) const {
  return ids_.find(token) != ids_.end();
}

const std::string& Vocab::token(std::int64_t id) const {
  if (id < 0 || id >= size()) {
    throw IndexError(fmt::format("Vocab::token: id {} out of range [0, {})", id, size()));
  }
  return tokens_[static_cast<std::size_t>(id)];
}

std::vector<std::int64_t> Vocab::encode(const std::vector<std::string>& tokens) const {
  std::vector<std::int64_t> ids;
  ids.reserve(tokens.size());
  for (const auto& t : tokens) ids.push_back(id(t));
  return ids;
}

std::vector<std::string> Vocab::decode(const std::vector<std::int64_t>& ids) const {
  std::vector<std::string> out;
  for (const std::int64_t i : ids) {
    if (i == kEos) break;
    if (i == kPad || i == kBos) continue;
    out.push_back(token(i));
  }
  return out;
}

nlohmann::json Vocab::to_json() const {
  return {{"format", kVocabFormat}, {"version", kVocabVersion}, {"tokens", tokens_}};
}

Vocab Vocab::from_json(const nlohmann::json& j) {
  const auto format = j.is_object() ? j.find("format") : j.end();
  if (!j.is_object() || format == j.end() || !format->is_string() || *format != kVocabFormat) {
    throw ValueError(fmt::format("Vocab::from_json: not a vocabulary (expected \"format\": \"{}\")",
                                 kVocabFormat));
  }
  if (!j.contains("version") || j["version"] != kVocabVersion) {
    throw ValueError(fmt::format("Vocab::from_json: unsupported version {} (this build reads {})",
                                 j.contains("version") ? j["version"].dump() : "(none)",
                                 kVocabVersion));
  }
  const auto it = j.find("tokens");
  if (it == j.end() || !it->is_array()) {
    throw ValueError("Vocab::from_json: \"tokens\" must be an array of strings");
  }
  std::vector<std::string> tokens;
  for (const auto& t : *it) {
    if (!t.is_string()) {
      throw ValueError(
          fmt::format("Vocab::from_json: token {} is {}, not a string", tokens.size(), t.dump()));
    }
    tokens.push_back(t.get<std::string>());
  }
  return from_tokens(std::move(tokens));
}

void Vocab::save(const std::string& path) const {
  std::string text;
  if (ends_with_json(path)) {
    text = to_json().dump(1) + "\n";
  } else {
    for (const auto& t : tokens_) {
      if (t.find_first_of("\r\n") != std::string::npos) {
        throw ValueError(fmt::format(
            "Vocab::save: {}: token {} holds a line break, which a one-token-a-line file cannot "
            "store; HINT: save to a .json path instead",
            path, id(t)));
      }
      text += t;
      text += '\n';
    }
  }
  std::ofstream out(path, std::ios::binary);
  out << text;
  out.close();
  if (!out) throw RuntimeError(fmt::format("Vocab::save: cannot write {}", path));
}

Vocab Vocab::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RuntimeError(fmt::format("Vocab::load: cannot open {}", path));
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  if (in.bad()) throw RuntimeError(fmt::format("Vocab::load: cannot read {}", path));
  if (text.empty()) {
    throw RuntimeError(fmt::format(
        "Vocab::load: {}: the file is empty (HINT: it is written by `seqgrad train`)", path));
  }
  if (ends_with_json(path)) {
    const nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded()) {
      throw RuntimeError(fmt::format("Vocab::load: {}: not valid JSON (cut short?)", path));
    }
    try {
      return from_json(j);
    } catch (const std::exception& e) {
      throw RuntimeError(fmt::format("Vocab::load: {}: {}", path, e.what()));
    }
  }
  std::vector<std::string> tokens;
  std::unordered_map<std::string, std::size_t> line_of;
  std::size_t start = 0;
  std::size_t line = 0;
  while (start < text.size()) {
    std::size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string tok = text.substr(start, end - start);
    ++line;
    if (!tok.empty() && tok.back() == '\r') tok.pop_back();  // written on Windows
    if (tok.empty()) throw RuntimeError(fmt::format("Vocab::load: {}:{}: empty line", path, line));
    if (const auto [it, inserted] = line_of.emplace(tok, line); !inserted) {
      throw RuntimeError(fmt::format("Vocab::load: {}:{}: token '{}' already on line {}", path,
                                     line, tok, it->second));
    }
    tokens.push_back(std::move(tok));
    start = end + 1;
  }
  try {
    return from_tokens(std::move(tokens));
  } catch (const ValueError& e) {
    throw RuntimeError(fmt::format("Vocab::load: {}: {}", path, e.what()));
  }
}

}  // namespace seqgrad
