// B batch, S source length, T target length, E embedding, H hidden, V vocabulary
//
// The synthetic tasks (copy, reverse, sort, dates) and their leak-free train / valid / test
// splits. All randomness goes through seqgrad::Generator and sampling.h, so a seed gives the
// same data on every machine.
#include "seq2seq/tasks.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <functional>
#include <unordered_set>

#include "seq2seq/sampling.h"
#include "seq2seq/vocab.h"
#include "tensor/errors.h"

namespace seqgrad {

namespace {

namespace chr = std::chrono;

constexpr std::array<std::string_view, 12> kMonths = {
    "january", "february", "march",     "april",   "may",      "june",
    "july",    "august",   "september", "october", "november", "december"};
constexpr std::array<std::string_view, 7> kWeekdays = {"sunday",   "monday", "tuesday", "wednesday",
                                                       "thursday", "friday", "saturday"};
constexpr int kFirstYear = 1950;
constexpr int kLastYear = 2049;

// 1st, 2nd, 3rd, 4th, ..., 11th, 12th, 13th, ..., 21st, 22nd, 23rd, ..., 31st.
std::string ordinal(int n) {
  const int tens = n % 100;
  std::string_view suffix = "th";
  if (tens < 11 || tens > 13) {
    if (n % 10 == 1) suffix = "st";
    if (n % 10 == 2) suffix = "nd";
    if (n % 10 == 3) suffix = "rd";
  }
  return fmt::format("{}{}", n, suffix);
}

chr::year_month_day checked_date(int year, int month, int day, std::string_view caller) {
  const chr::year_month_day ymd{chr::year{year}, chr::month{static_cast<unsigned>(month)},
                                chr::day{static_cast<unsigned>(day)}};
  if (!ymd.ok()) {
    throw ValueError(fmt::format("{}: {:04}-{:02}-{:02} is not a date", caller, year, month, day));
  }
  return ymd;
}

// Draws one Example of a task; built once per call of make_task / make_task_splits after the
// arguments have been checked.
using Drawer = std::function<Example(Generator&)>;

Drawer make_drawer(std::string_view name, std::size_t min_len, std::size_t max_len,
                   std::string_view alphabet) {
  const auto& names = task_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    throw ValueError(
        fmt::format("make_task: unknown task '{}'; known tasks: {}", name, fmt::join(names, ", ")));
  }
  if (name == "dates") {
    return [](Generator& gen) {
      const chr::sys_days first{chr::year{kFirstYear} / 1 / 1};
      const chr::sys_days last{chr::year{kLastYear} / 12 / 31};
      const auto span = static_cast<std::uint64_t>((last - first).count() + 1);
      const chr::year_month_day ymd{first + chr::days{uniform_below(gen, span)}};
      const int y = static_cast<int>(ymd.year());
      const int m = static_cast<int>(static_cast<unsigned>(ymd.month()));
      const int d = static_cast<int>(static_cast<unsigned>(ymd.day()));
      const int format = static_cast<int>(uniform_below(gen, kDateFormatCount));
      return Example{format_date(y, m, d, format), {fmt::format("{:04}-{:02}-{:02}", y, m, d)}};
    };
  }

  if (min_len < 1 || min_len > max_len) {
    throw ValueError(
        fmt::format("make_task: {}: bad length range [{}, {}]; need 1 <= min_len <= max_len", name,
                    min_len, max_len));
  }
  std::vector<std::string> symbols;
  try {
    symbols = tokenize(alphabet, Tokenization::chars);
  } catch (const ValueError& e) {
    throw ValueError(fmt::format("make_task: {}: alphabet: {}", name, e.what()));
  }
  if (symbols.empty()) throw ValueError(fmt::format("make_task: {}: empty alphabet", name));
  for (std::size_t i = 0; i < symbols.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (symbols[i] == symbols[j]) {
        throw ValueError(fmt::format("make_task: {}: alphabet \"{}\" holds '{}' twice", name,
                                     alphabet, symbols[i]));
      }
    }
  }
  const std::string task(name);
  return [task, symbols, min_len, max_len](Generator& gen) {
    const auto len = static_cast<std::size_t>(
        uniform_int(gen, static_cast<std::int64_t>(min_len), static_cast<std::int64_t>(max_len)));
    std::vector<std::size_t> picks(len);
    for (auto& p : picks) p = static_cast<std::size_t>(uniform_below(gen, symbols.size()));
    std::string source;
    for (const std::size_t p : picks) source += symbols[p];
    if (task == "reverse") std::reverse(picks.begin(), picks.end());
    if (task == "sort") std::sort(picks.begin(), picks.end());  // alphabet order, not bytes
    std::string target;
    for (const std::size_t p : picks) target += symbols[p];
    return Example{std::move(source), {std::move(target)}};
  };
}

// Draws `count` examples whose sources are not in `taken` (and, when `distinct`, not repeated),
// adding each new source to `taken`. Gives up when the task seems out of fresh sources.
std::vector<Example> draw_fresh(const Drawer& draw, Generator& gen, std::size_t count,
                                bool distinct, std::unordered_set<std::string>& taken,
                                std::string_view split, std::string_view name) {
  std::vector<Example> out;
  out.reserve(count);
  std::unordered_set<std::string> mine;
  const std::size_t max_draws = 20 * count + 1000;
  std::size_t draws = 0;
  while (out.size() < count) {
    if (draws++ == max_draws) {
      throw ValueError(fmt::format(
          "make_task_splits: {}: found only {} of {} fresh {} sources in {} draws; HINT: widen "
          "the alphabet or the length range, or ask for fewer examples",
          name, out.size(), count, split, max_draws));
    }
    Example ex = draw(gen);
    if (taken.contains(ex.source)) continue;
    if (distinct && !mine.insert(ex.source).second) continue;
    out.push_back(std::move(ex));
  }
  for (const auto& ex : out) taken.insert(ex.source);
  return out;
}

}  // namespace

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> kNames = {"copy", "reverse", "sort", "dates"};
  return kNames;
}

int weekday_of(int year, int month, int day) {
  const auto ymd = checked_date(year, month, day, "weekday_of");
  return static_cast<int>(chr::weekday{chr::sys_days{ymd}}.c_encoding());
}

std::string format_date(int year, int month, int day, int format) {
  checked_date(year, month, day, "format_date");
  const std::string_view mon = kMonths[static_cast<std::size_t>(month - 1)];
  const std::string_view wday = kWeekdays[static_cast<std::size_t>(weekday_of(year, month, day))];
  switch (format) {
    case 0:  // tuesday, march 3 1998
      return fmt::format("{}, {} {} {}", wday, mon, day, year);
    case 1:  // march 3, 1998
      return fmt::format("{} {}, {}", mon, day, year);
    case 2:  // 3 mar 1998
      return fmt::format("{} {} {}", day, mon.substr(0, 3), year);
    case 3:  // 03/03/98: US month/day; the two-digit year is unambiguous within 1950-2049
      return fmt::format("{:02}/{:02}/{:02}", month, day, year % 100);
    case 4:  // tue, 03 mar 1998 (as in e-mail headers)
      return fmt::format("{}, {:02} {} {}", wday.substr(0, 3), day, mon.substr(0, 3), year);
    case 5:  // the 3rd of march 1998
      return fmt::format("the {} of {} {}", ordinal(day), mon, year);
    default:
      throw ValueError(
          fmt::format("format_date: format {} out of range [0, {})", format, kDateFormatCount));
  }
}

std::vector<Example> make_task(std::string_view name, std::size_t count, std::uint64_t seed,
                               std::size_t min_len, std::size_t max_len,
                               std::string_view alphabet) {
  const Drawer draw = make_drawer(name, min_len, max_len, alphabet);
  Generator gen(seed);
  std::vector<Example> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(draw(gen));
  return out;
}

DataSplits make_task_splits(std::string_view name, SplitSizes sizes, std::uint64_t seed,
                            std::size_t min_len, std::size_t max_len, std::string_view alphabet) {
  const Drawer draw = make_drawer(name, min_len, max_len, alphabet);
  // Streams 0, 1, 2 of the seed; drawn test first so that the test set does not depend on how
  // large train and valid are.
  Generator train_gen(derive_seed(seed, 0));
  Generator valid_gen(derive_seed(seed, 1));
  Generator test_gen(derive_seed(seed, 2));
  std::unordered_set<std::string> taken;
  DataSplits splits;
  splits.test = draw_fresh(draw, test_gen, sizes.test, true, taken, "test", name);
  splits.valid = draw_fresh(draw, valid_gen, sizes.valid, true, taken, "valid", name);
  splits.train = draw_fresh(draw, train_gen, sizes.train, false, taken, "train", name);
  return splits;
}

}  // namespace seqgrad
