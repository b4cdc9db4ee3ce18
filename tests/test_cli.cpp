// End-to-end tests of the seqgrad command: a short training run on the reverse task, then eval,
// translate, attention, exact resumption, and the errors a user meets first (bad options among
// them, each refused at start-up naming the option).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "python_runner.h"
#include "seq2seq/attention.h"
#include "tensor/matmul.h"

namespace seqgrad {
namespace {

struct Run {
  int status;
  std::string out;  // stdout and stderr together
};

// wrapper: a command put before the CLI, such as "env -u NAME ".
Run run(const std::string& args, const std::string& stdin_text = "",
        const std::string& wrapper = "") {
  testing::TempDir tmp;
  std::string cmd = wrapper + SEQGRAD_CLI + " " + args + " 2>&1";
  if (!stdin_text.empty()) {
    std::ofstream(tmp.file("stdin")) << stdin_text;
    cmd += " < " + tmp.file("stdin");
  }
  Run r{0, ""};
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::array<char, 4096> buf{};
  std::size_t n = 0;
  while ((n = std::fread(buf.data(), 1, buf.size(), pipe)) > 0) r.out.append(buf.data(), n);
  r.status = pclose(pipe);
  return r;
}

std::string file_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::vector<nlohmann::json> metrics_lines(const std::string& path) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

constexpr const char* kSmall =
    "train --task reverse --min-len 3 --max-len 6 --train-size 3000 --valid-size 100 "
    "--test-size 100 --embed 16 --hidden 32 --batch-size 32 --valid-every 50 --threads 1 ";

TEST_CASE("cli: train, eval, translate and attention on the reverse task") {
  testing::TempDir dir;
  const std::string out = dir.file("rev");
  const Run t = run(std::string(kSmall) + "--steps 300 --out " + out);
  CAPTURE(t.out);
  REQUIRE(t.status == 0);
  CHECK(t.out.find("test (100 examples, beam 5): exact match") != std::string::npos);
  CHECK(t.out.find("attention for") != std::string::npos);
  for (const char* f : {"config.json", "source_vocab.json", "target_vocab.json", "best.safetensors",
                        "last.safetensors", "metrics.jsonl", "test_metrics.json"}) {
    CAPTURE(f);
    CHECK(std::filesystem::exists(out + "/" + f));
  }
  const auto lines = metrics_lines(out + "/metrics.jsonl");
  REQUIRE(lines.size() == 6);  // every 50 of 300 steps
  CHECK(lines.back().at("step") == 300);
  CHECK(lines.back().at("valid").at("exact_match").get<double>() > 0.5);

  const Run e = run("eval --model " + out + " --json --beam 2");
  CAPTURE(e.out);
  REQUIRE(e.status == 0);
  const auto j = nlohmann::json::parse(e.out);
  for (const char* key : {"exact_match", "token_accuracy", "wer", "per", "loss"}) {
    CAPTURE(key);
    CHECK(j.contains(key));
  }
  CHECK(j.at("exact_match").get<double>() == doctest::Approx(1 - j.at("wer").get<double>()));

  // An ensemble of the model with itself decodes exactly as the model does.
  const Run e2 = run("eval --model " + out + " --model " + out + " --json --beam 2");
  CAPTURE(e2.out);
  REQUIRE(e2.status == 0);
  const auto j2 = nlohmann::json::parse(e2.out);
  CHECK(j2.at("models") == 2);
  CHECK(j2.at("exact_match") == j.at("exact_match"));
  CHECK(j2.at("per") == j.at("per"));
  // Models with other vocabularies cannot form one.
  const std::string dates = dir.file("dates");
  REQUIRE(run("train --task dates --train-size 200 --valid-size 20 --test-size 20 --embed 8 "
              "--hidden 8 --steps 1 --threads 1 --out " +
              dates)
              .status == 0);
  const Run mixed = run("eval --model " + out + " --model " + dates);
  CHECK(mixed.status != 0);
  CHECK(mixed.out.find("cannot form an ensemble") != std::string::npos);

  const Run tr = run("translate --model " + out + " --show-attention", "abc\nxyz\n");
  CAPTURE(tr.out);
  REQUIRE(tr.status == 0);
  CHECK(tr.out.find("cba\n") != std::string::npos);
  CHECK(tr.out.find("</s>") != std::string::npos);  // the heatmap's last row

  // An ensemble of the model with itself translates as the model does.
  const Run tr2 =
      run("translate --model " + out + " --model " + out + " --show-attention", "abc\nxyz\n");
  CHECK(tr2.status == 0);
  CHECK(tr2.out == tr.out);

  const Run w = run("translate --model " + out, "ab!\n");
  CHECK(w.out.find("'!' is not in the source vocabulary") != std::string::npos);

  const std::string svg = dir.file("a.svg");
  const Run a = run("attention --model " + out + " --input hello --svg " + svg);
  CAPTURE(a.out);
  REQUIRE(a.status == 0);
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  CHECK(text.rfind("<svg", 0) == 0);
  CHECK(text.find(">h</text>") != std::string::npos);
  // The figure reads on its own: axis names, the example, values (tests/test_explain_page.cpp
  // reads a figure back cell by cell).
  CHECK(text.find("source position j") != std::string::npos);
  CHECK(text.find("output step i") != std::string::npos);
  CHECK(text.find("a[i,j]: hello -&gt; ") != std::string::npos);
  CHECK(text.find("data-value=") != std::string::npos);
}

TEST_CASE("cli: --resume continues exactly where the last checkpoint stopped") {
  // With --ema the validation scores come from the averaged weights, so they repeat only if the
  // last checkpoint carried the averages and their update count.
  std::vector<double> final_loss;
  for (const std::string extra : {"", "--ema 0.99 "}) {
    CAPTURE(extra);
    testing::TempDir dir;
    const std::string straight = dir.file("straight"), resumed = dir.file("resumed");
    REQUIRE(run(std::string(kSmall) + extra + "--steps 150 --out " + straight).status == 0);
    // The same run stopped at 100 steps (its last checkpoint), then resumed to 150: --resume
    // re-reads the configuration, so the step budget is edited there as a user would.
    REQUIRE(run(std::string(kSmall) + extra + "--steps 100 --out " + resumed).status == 0);
    nlohmann::json config;
    std::ifstream(resumed + "/config.json") >> config;
    config["train"]["steps"] = 150;
    std::ofstream(resumed + "/config.json") << config.dump();
    const Run r = run("train --resume " + resumed);
    CAPTURE(r.out);
    REQUIRE(r.status == 0);
    const auto a = metrics_lines(straight + "/metrics.jsonl");
    const auto b = metrics_lines(resumed + "/metrics.jsonl");
    REQUIRE(a.size() == 3);
    REQUIRE(b.size() == 3);
    for (std::size_t i = 0; i < a.size(); ++i) {
      CAPTURE(i);
      CHECK(a[i].at("step") == b[i].at("step"));
      CHECK(a[i].at("valid").at("loss") == b[i].at("valid").at("loss"));
    }
    CHECK(a.back().at("train_loss") == b.back().at("train_loss"));
    final_loss.push_back(a.back().at("valid").at("loss").get<double>());
  }
  // Same seed and data: only the averaging changes what validation sees.
  CHECK(final_loss[0] != final_loss[1]);
}

TEST_CASE("cli: --train-targets all trains on every reference of a source") {
  testing::TempDir dir;
  {
    std::ofstream tsv(dir.file("data.tsv"));
    for (const char* w : {"abc", "bca", "cab", "acb"})
      tsv << w << "\tx" << w << "\n" << w << "\ty" << w << "\n";
  }
  const std::string data = "--train " + dir.file("data.tsv") + " --valid " + dir.file("data.tsv") +
                           " --embed 8 --hidden 8 --batch-size 2 --epochs 1 --threads 1 ";
  const Run all = run("train " + data + "--train-targets all --out " + dir.file("all"));
  CAPTURE(all.out);
  REQUIRE(all.status == 0);
  CHECK(all.out.find("(4 train (8 pairs) / 4 valid") != std::string::npos);
  const auto lines = metrics_lines(dir.file("all") + "/metrics.jsonl");
  CHECK(lines.back().at("step") == 4);  // one epoch: 8 pairs in batches of 2
  nlohmann::json config;
  std::ifstream(dir.file("all") + "/config.json") >> config;
  CHECK(config.at("data").at("train_targets") == "all");

  const Run first = run("train " + data + "--out " + dir.file("first"));
  CAPTURE(first.out);
  REQUIRE(first.status == 0);
  CHECK(first.out.find("(4 train / 4 valid") != std::string::npos);
  CHECK(metrics_lines(dir.file("first") + "/metrics.jsonl").back().at("step") == 2);
  // A run directory from before the option reads as "first".
  std::ifstream(dir.file("first") + "/config.json") >> config;
  config["data"].erase("train_targets");
  std::ofstream(dir.file("first") + "/config.json") << config.dump();
  const Run e = run("eval --model " + dir.file("first") + " --split valid");
  CAPTURE(e.out);
  CHECK(e.status == 0);
}

TEST_CASE("cli: --arch transformer and decoder-only train, decode, resume exactly") {
  for (const char* arch : {"transformer", "decoder-only"}) {
    CAPTURE(arch);
    testing::TempDir dir;
    const std::string straight = dir.file("straight"), resumed = dir.file("resumed");
    std::string small = kSmall;  // with two workers, each taking half of every batch
    small.replace(small.find("--threads 1"), 11, "--threads 2");
    const std::string cmd = fmt::format(
        "{}--arch {} --layers 2 --heads 4 --ff 64 --norm-first --dropout 0.1 --lr 3e-3 "
        "--warmup 50 --schedule constant --label-smoothing 0.1 ",
        small, arch);
    const Run t = run(cmd + "--steps 700 --out " + straight);
    CAPTURE(t.out);
    REQUIRE(t.status == 0);
    CHECK(t.out.find(fmt::format("model: {} ", arch)) != std::string::npos);
    const auto lines = metrics_lines(straight + "/metrics.jsonl");
    REQUIRE(lines.size() == 14);
    CHECK(lines.back().at("valid").at("exact_match").get<double>() > 0.5);
    // the same run stopped at 600 steps and resumed to 700 repeats it
    REQUIRE(run(cmd + "--steps 600 --out " + resumed).status == 0);
    nlohmann::json config;
    std::ifstream(resumed + "/config.json") >> config;
    CHECK(config.at("model").at("arch") == arch);
    config["train"]["steps"] = 700;
    std::ofstream(resumed + "/config.json") << config.dump();
    REQUIRE(run("train --resume " + resumed).status == 0);
    const auto b = metrics_lines(resumed + "/metrics.jsonl");
    REQUIRE(b.size() == lines.size());
    CHECK(b.back().at("train_loss") == lines.back().at("train_loss"));
    CHECK(b.back().at("valid").at("loss") == lines.back().at("valid").at("loss"));

    const Run e = run("eval --model " + straight + " --json --beam 3");
    CAPTURE(e.out);
    REQUIRE(e.status == 0);
    CHECK(nlohmann::json::parse(e.out).at("exact_match").get<double>() > 0.5);
    const Run tr = run("translate --model " + straight + " --model " + straight, "abc\nxyz\n");
    CAPTURE(tr.out);
    REQUIRE(tr.status == 0);
    CHECK(tr.out.find("cba\n") != std::string::npos);
    // the views: a panel per layer and head (2 x 4), the explain page and the graph
    const std::string svg = dir.file("a.svg");
    const Run a = run("attention --model " + straight + " --input hello --svg " + svg);
    CAPTURE(a.out);
    REQUIRE(a.status == 0);
    const std::string drawn = file_text(svg);
    CHECK(drawn.find(">h</text>") != std::string::npos);
    CHECK(drawn.find("id=\"attention-1-3\"") != std::string::npos);
    CHECK(drawn.find("id=\"attention-2-0\"") == std::string::npos);
    const bool decoder_only = std::string(arch) == "decoder-only";
    CHECK((drawn.find(">&lt;s&gt;<tspan") != std::string::npos) == decoder_only);
    const std::string page = dir.file("page.html");
    const Run x = run("explain --model " + straight + " --input hello --out " + page);
    CAPTURE(x.out);
    REQUIRE(x.status == 0);
    const std::string html = file_text(page);
    for (const char* id : {"weights-7", "dweights-7", "dscores-0", "state-grad"}) {
      CHECK(html.find(fmt::format("id=\"{}\"", id)) != std::string::npos);
    }
    CHECK(html.find(decoder_only ? "self_attn" : "multihead_attn") != std::string::npos);
    const Run g = run("graph --model " + straight + " --input hello --dot " + dir.file("g.dot"));
    CAPTURE(g.out);
    REQUIRE(g.status == 0);
    CHECK(file_text(dir.file("g.dot")).find(decoder_only ? "self_attn" : "multihead_attn") !=
          std::string::npos);
  }
  const Run bad = run(std::string(kSmall) + "--arch transformer --heads 5 --steps 1");
  CHECK(bad.status != 0);
  CHECK(bad.out.find("--heads 5: must be a divisor of --hidden (32)") != std::string::npos);
}

TEST_CASE("cli: clear errors for a missing model, an unknown scorer, bad data") {
  const Run m = run("eval --model /nonexistent/run");
  CHECK(m.status != 0);
  CHECK(m.out.find("model directory '/nonexistent/run' does not exist") != std::string::npos);

  const Run s = run("train --task reverse --attention bilinear --steps 1 --out /tmp/unused");
  CHECK(s.status != 0);
  // The names come from the registry, so a new scorer needs no change here. The command knows
  // the built-ins, which lead the registry, then "none"; this process may have registered more
  // after the built-ins (test_attention's register_scorer), so the command lists a leading part
  // of our registry.
  const std::size_t from = s.out.find("known: ");
  const std::size_t to = s.out.find(')', from);
  REQUIRE(to != std::string::npos);
  std::vector<std::string> listed;
  std::istringstream items(s.out.substr(from + 7, to - from - 7));
  for (std::string name; std::getline(items >> std::ws, name, ',');) listed.push_back(name);
  REQUIRE(listed.size() >= 2);
  CHECK(listed.back() == "none");
  listed.pop_back();
  const std::vector<std::string> names = scorer_names();
  REQUIRE(listed.size() <= names.size());
  CHECK(std::equal(listed.begin(), listed.end(), names.begin()));
  CHECK(std::find(listed.begin(), listed.end(), "concat") != listed.end());

  testing::TempDir dir;
  std::ofstream(dir.file("bad.tsv")) << "abc\tcba\nno tab here\n";
  const Run d = run("train --train " + dir.file("bad.tsv") + " --valid " + dir.file("bad.tsv") +
                    " --steps 1 --out " + dir.file("out"));
  CHECK(d.status != 0);
  CHECK(d.out.find(dir.file("bad.tsv") + ":2") != std::string::npos);

  const Run e = run("eval --model " + dir.path.string());
  CHECK(e.status != 0);
  CHECK(e.out.find("config.json is missing") != std::string::npos);
}

TEST_CASE("cli: every bad option is refused at start-up, naming it") {
  testing::TempDir dir;
  const std::string base = "train --task reverse --steps 1 --out " + dir.file("out") + " ";
  // clang-format off
  const std::vector<std::pair<std::string, std::string>> cases{
      {"--select-on bogus",       "--select-on 'bogus': unknown (known: exact_match, token_accuracy, wer, per, loss, perplexity)"},
      {"--schedule cosin",        "--schedule 'cosin': unknown (known: plateau, constant, cosine, inverse_sqrt)"},
      {"--teacher-forcing 2",     "--teacher-forcing 2: must be in [0, 1]"},
      {"--epochs 0",              "--epochs 0: must be at least 1"},
      {"--lr -0.001",             "--lr -0.001: must be a number above 0"},
      {"--clip -1",               "--clip -1: must be at least 0 (0: off)"},
      {"--label-smoothing 1",     "--label-smoothing 1: must be in [0, 1)"},
      {"--ema 1.5",               "--ema 1.5: must be in [0, 1) (0: off)"},
      {"--beam 0",                "--beam 0: must be at least 1"},
      {"--test-beam 0",           "--test-beam 0: must be at least 1"},
      {"--threads -2",            "--threads -2: must be at least 0 (0: one per core)"},
      {"--batch-size 0",          "--batch-size 0: must be at least 1"},
      {"--dropout 1",             "--dropout 1: must be in [0, 1)"},
      {"--valid-size 0",          "--valid-size 0: must be at least 1"},
      {"--min-len 5 --max-len 4", "--max-len 4: must be at least --min-len (5)"},
      {"--cell lstn",             "--cell: unknown cell 'lstn'"},
      {"--target-tokens letters", "--target-tokens: "},
      {"--train-targets some",    "--train-targets: unknown 'some' (known: first, all)"},
  };
  // clang-format on
  for (const auto& [args, message] : cases) {
    CAPTURE(args);
    const Run r = run(base + args);
    CAPTURE(r.out);
    CHECK(r.status != 0);
    CHECK(r.out.find("seqgrad: error: " + message) != std::string::npos);
    CHECK(r.out.find("seqgrad train:") == std::string::npos);  // before any data was read
  }
  CHECK_FALSE(std::filesystem::exists(dir.file("out")));
  // A bad value in a resumed run's config.json is refused the same way.
  const std::string out = dir.file("edited");
  REQUIRE(run(std::string(kSmall) + "--steps 2 --out " + out).status == 0);
  nlohmann::json config;
  std::ifstream(out + "/config.json") >> config;
  config["train"]["select_on"] = "bogus";
  std::ofstream(out + "/config.json") << config.dump();
  const Run r = run("train --resume " + out);
  CHECK(r.status != 0);
  CHECK(r.out.find("select_on 'bogus': unknown (known: exact_match") != std::string::npos);
}

TEST_CASE("cli: --resume on a finished run says so and leaves its files alone") {
  testing::TempDir dir;
  const std::string out = dir.file("done");
  REQUIRE(run(std::string(kSmall) + "--steps 100 --out " + out).status == 0);
  std::map<std::string, std::string> before;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    before[e.path().filename().string()] = file_text(e.path().string());
  }
  const Run r = run("train --resume " + out);
  CAPTURE(r.out);
  CHECK(r.status == 0);
  CHECK(r.out.find("the run in " + out + " is complete (step 100); nothing to do") !=
        std::string::npos);
  CHECK(r.out.find("valid @") == std::string::npos);
  std::map<std::string, std::string> after;
  for (const auto& e : std::filesystem::directory_iterator(out)) {
    after[e.path().filename().string()] = file_text(e.path().string());
  }
  CHECK(after == before);  // metrics.jsonl and every other file byte for byte
}

TEST_CASE("cli: a diverging run stops with the step and the last good checkpoint intact") {
  // A learning rate of 1e38 sends the weights to float32's limit at the first update.
  testing::TempDir dir;
  const std::string out = dir.file("nan");
  const Run r = run(std::string(kSmall) + "--steps 50 --lr 1e38 --clip 0 --out " + out);
  CAPTURE(r.out);
  CHECK(r.status != 0);
  CHECK(r.out.find("the training loss is") != std::string::npos);
  CHECK(r.out.find("the last good checkpoint, " + out + "/last.safetensors (step 0), is intact") !=
        std::string::npos);
  const std::string last = file_text(out + "/last.safetensors");
  CHECK(!last.empty());
  // With --detect-anomaly the first op that made a non-finite value is named.
  const Run a = run(std::string(kSmall) + "--steps 50 --lr 1e38 --clip 0 --detect-anomaly --out " +
                    dir.file("anomaly"));
  CAPTURE(a.out);
  CHECK(a.status != 0);
  CHECK(a.out.find("anomaly: the ") != std::string::npos);
  CHECK(a.out.find("(inputs: ") != std::string::npos);
  CHECK(a.out.find("step ") != std::string::npos);
}

TEST_CASE("cli: the same command twice gives the same metrics.jsonl, at one and two threads") {
  for (const char* threads : {"1", "2"}) {
    CAPTURE(threads);
    testing::TempDir dir;
    std::string args =
        std::string(kSmall) + "--steps 100 --dropout 0.3 --teacher-forcing 0.8 --out ";
    args.replace(args.find("--threads 1"), 11, std::string("--threads ") + threads);
    REQUIRE(run(args + dir.file("a")).status == 0);
    REQUIRE(run(args + dir.file("b")).status == 0);
    const std::string a = file_text(dir.file("a") + "/metrics.jsonl");
    CHECK(metrics_lines(dir.file("a") + "/metrics.jsonl").size() == 2);
    CHECK(a == file_text(dir.file("b") + "/metrics.jsonl"));
    CHECK(file_text(dir.file("a") + "/best.safetensors") ==
          file_text(dir.file("b") + "/best.safetensors"));
  }
}

TEST_CASE("cli: an --out that cannot be made is a clear error") {
  testing::TempDir dir;
  std::ofstream(dir.file("a-file")) << "x";
  const Run r = run(std::string(kSmall) + "--steps 1 --out " + dir.file("a-file") + "/run");
  CAPTURE(r.out);
  CHECK(r.status != 0);
  CHECK(r.out.find("seqgrad: error: --out " + dir.file("a-file") +
                   "/run: cannot create the run directory: Not a directory") != std::string::npos);
}

TEST_CASE("cli: restarts with OpenBLAS's AVX-512 kernels unless OPENBLAS_CORETYPE is set") {
  testing::TempDir dir;
  const std::string args = std::string(kSmall) + "--steps 1 --out ";
  // Unset: the run ends up on kernels there is no reason to leave (AVX-512 ones on an AVX-512
  // CPU, whether OpenBLAS found them itself or the restart chose SkylakeX).
  const Run a = run(args + dir.file("a"), "", "env -u OPENBLAS_CORETYPE ");
  CAPTURE(a.out);
  REQUIRE(a.status == 0);
  const std::size_t at = a.out.find("; OpenBLAS ");
  REQUIRE(at != std::string::npos);
  const std::string core = a.out.substr(at + 11, a.out.find('\n', at) - at - 11);
  CAPTURE(core);
  CHECK(better_blas_core(core.c_str(), nullptr, cpu_has_avx512()).empty());
  // The user's choice is kept.
  const Run b = run(args + dir.file("b"), "", "env OPENBLAS_CORETYPE=Prescott ");
  CAPTURE(b.out);
  REQUIRE(b.status == 0);
  CHECK(b.out.find("; OpenBLAS Prescott") != std::string::npos);
}

}  // namespace
}  // namespace seqgrad
