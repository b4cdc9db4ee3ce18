// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Grapheme-to-phoneme data: the CMU Pronouncing Dictionary (see DATA.md; scripts/fetch-cmudict
// puts it in data/cmudict-en-us.dict). Each word becomes one Example: source = the word, read
// with chars tokenization; targets = its pronunciations, phonemes separated by single spaces and
// read with words tokenization. The train / valid / test split is a fixed function of the word.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "seq2seq/data.h"

namespace seqgrad {

inline constexpr std::string_view kCmudictPath = "data/cmudict-en-us.dict";  // from the root

// Parses `word PH1 PH2 ...` lines. Fields may be separated by any run of spaces or tabs;
// `word(2)`, `word(3)`, ... are further pronunciations of `word` and join its targets (first-
// seen order, exact repeats dropped); words keep the order of their first line. Skipped: blank
// lines, comment lines starting with ";;;" or "# " (a lone "#" too; "#hash-mark" is a word), and
// a trailing "# comment" after the phonemes. Throws DataError "file:line: ..." for a line with no
// phoneme, a bad variant marker
// (`word(`, `word(x)`, `(2)`), or invalid UTF-8, and for a missing file.
std::vector<Example> read_cmudict(const std::string& path);
std::vector<Example> parse_cmudict(std::string_view text, std::string_view name);

enum class Split { train, valid, test };
std::string_view split_name(Split split);

// FNV-1a, 64-bit, over the bytes of `bytes`: offset basis 0xcbf29ce484222325, prime
// 0x100000001b3. Fixed by its definition, so the same on every machine and standard library
// (unlike std::hash).
std::uint64_t fnv1a64(std::string_view bytes);

// The split of a word (all its pronunciations together): h = fnv1a64(word as written in the
// dictionary, UTF-8); h % 100 < 90 -> train, < 95 -> valid, otherwise test. About 90 / 5 / 5.
Split g2p_split(std::string_view word);

// Distributes Examples (one per word) by g2p_split of their source, keeping their order.
DataSplits split_g2p(const std::vector<Example>& words);

}  // namespace seqgrad
