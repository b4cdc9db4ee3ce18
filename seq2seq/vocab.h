// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Tokens and their ids. A tokenizer turns text into tokens (UTF-8 code points, or whitespace-
// separated words); a Vocab maps tokens to the ids an embedding of size V looks up, with four
// fixed specials: <pad>=0, <s>=1, </s>=2, <unk>=3. Vocabularies are built in a deterministic
// order and saved as a text file (one token a line) or JSON.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace seqgrad {

enum class Tokenization {
  chars,  // each Unicode code point is a token (not grapheme clusters: "e" + U+0301 is two)
  words,  // runs of non-whitespace; ASCII whitespace (space, \t, \n, \v, \f, \r) separates
};

std::string_view tokenization_name(Tokenization mode);   // "chars" or "words"
Tokenization parse_tokenization(std::string_view name);  // ValueError for any other name

// Splits text into tokens. chars mode throws ValueError on invalid UTF-8 (naming the byte
// offset); words mode splits bytes on ASCII whitespace and leaves validation to the caller.
std::vector<std::string> tokenize(std::string_view text, Tokenization mode);
// Inverse of tokenize: chars concatenates, words joins with single spaces.
std::string detokenize(const std::vector<std::string>& tokens, Tokenization mode);

// The length in bytes of the UTF-8 sequence starting at text[pos], or 0 if it is not a valid
// one (stray continuation byte, overlong form, surrogate, beyond U+10FFFF, truncated).
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos);
// The byte offset of the first invalid UTF-8 sequence, or std::string_view::npos.
std::size_t find_invalid_utf8(std::string_view text);

class Vocab {
 public:
  static constexpr std::int64_t kPad = 0;
  static constexpr std::int64_t kBos = 1;
  static constexpr std::int64_t kEos = 2;
  static constexpr std::int64_t kUnk = 3;
  static constexpr std::int64_t kNumSpecials = 4;
  static const std::vector<std::string>& specials();  // {"<pad>", "<s>", "</s>", "<unk>"}

  Vocab();  // the specials only

  // Counts tokens over `sequences` and keeps those seen at least `min_count` times, most
  // frequent first, ties by token (byte order), so the same data always gives the same ids.
  // `max_size` > 0 caps the size, specials included. Tokens spelled like a special are not
  // added again.
  static Vocab build(const std::vector<std::vector<std::string>>& sequences,
                     std::size_t min_count = 1, std::size_t max_size = 0);
  // From an explicit token list, which must start with the four specials in order and hold no
  // duplicates or empty tokens (ValueError otherwise).
  static Vocab from_tokens(std::vector<std::string> tokens);

  std::int64_t size() const { return static_cast<std::int64_t>(tokens_.size()); }
  std::int64_t id(std::string_view token) const;  // kUnk for a token not in the vocabulary
  bool contains(std::string_view token) const;
  const std::string& token(std::int64_t id) const;  // IndexError when out of range
  const std::vector<std::string>& tokens() const { return tokens_; }

  std::vector<std::int64_t> encode(const std::vector<std::string>& tokens) const;
  // Stops at the first </s>; skips <pad> and <s>; <unk> comes back as "<unk>".
  std::vector<std::string> decode(const std::vector<std::int64_t>& ids) const;

  // A path ending in ".json" is written / read as {"format": "seqgrad.vocab", "version": 1,
  // "tokens": [...]}; any other as text, one token a line in id order. Text cannot hold a token
  // with a line break (save throws ValueError; use JSON). load throws RuntimeError naming the
  // file (and line, for text) when it cannot read or make sense of it.
  void save(const std::string& path) const;
  static Vocab load(const std::string& path);
  nlohmann::json to_json() const;
  static Vocab from_json(const nlohmann::json& j);  // ValueError when malformed

  bool operator==(const Vocab& other) const { return tokens_ == other.tokens_; }

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, std::int64_t, Hash, std::equal_to<>> ids_;
};

}  // namespace seqgrad
