// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// Synthetic tasks generated from a seed, identical on every machine: copy, reverse and sort
// strings over a small alphabet, and dates (human-readable dates in several real-life formats
// to ISO 8601). They train in seconds and show attention at work; long strings (20-50 tokens)
// show the fixed-context bottleneck of a decoder without attention. Every task is a function of
// its source, so sources are also the key for keeping test examples out of training.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "seq2seq/data.h"

namespace seqgrad {

inline constexpr std::string_view kLowercase = "abcdefghijklmnopqrstuvwxyz";
inline constexpr std::string_view kDigits = "0123456789";

// The known task names: copy, reverse, sort, dates.
const std::vector<std::string>& task_names();

// `count` examples of task `name` drawn with Generator(seed) (repeats possible). copy, reverse
// and sort draw a length uniformly in [min_len, max_len] and then each symbol uniformly from
// `alphabet` (UTF-8; each code point a symbol, all distinct); sort orders by position in the
// alphabet. dates ignores the lengths and the alphabet: a day uniform in 1950-01-01..2049-12-31,
// written in one of kDateFormats chosen uniformly, maps to "YYYY-MM-DD". Sources and targets are
// read with chars tokenization. ValueError for an unknown name (listing the known ones), a bad
// length range or a bad alphabet.
std::vector<Example> make_task(std::string_view name, std::size_t count, std::uint64_t seed,
                               std::size_t min_len = 3, std::size_t max_len = 10,
                               std::string_view alphabet = kLowercase);

struct SplitSizes {
  std::size_t train = 0;
  std::size_t valid = 0;
  std::size_t test = 0;
};

// Train / valid / test sets of task `name`, each from its own generator derived from `seed`.
// The test set is drawn first, then valid, then train; each skips sources already taken by an
// earlier set, so no test source is in valid or train and no valid source in train. Sources are
// also distinct within valid and within test (each is scored once); train may repeat a source.
// ValueError when the task cannot supply that many distinct sources (a tiny alphabet or length).
DataSplits make_task_splits(std::string_view name, SplitSizes sizes, std::uint64_t seed,
                            std::size_t min_len = 3, std::size_t max_len = 10,
                            std::string_view alphabet = kLowercase);

// Dates: the formats used, as examples for 1998-03-03, and the helpers behind them.
inline constexpr int kDateFormatCount = 6;
// "tuesday, march 3 1998", "march 3, 1998", "3 mar 1998", "03/03/98" (US month/day/year),
// "tue, 03 mar 1998", "the 3rd of march 1998".
std::string format_date(int year, int month, int day, int format);
// The proleptic Gregorian weekday: 0 = sunday ... 6 = saturday.
int weekday_of(int year, int month, int day);

}  // namespace seqgrad
