// The explain page (apps/explain_page.cpp) read back as a person's browser would get it: it must
// parse as XML (XHTML with inline SVG), and every number in its figures and loss table must be
// the one seq2seq/explain computed. tests/python/read_page.py does the parsing.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/explain_page.h"
#include "apps/figure.h"
#include "tests/python_runner.h"

namespace seqgrad {
namespace {

ModelConfig tiny(const std::string& attention) {
  return {.src_vocab = 9,
          .tgt_vocab = 9,
          .embed = 3,
          .hidden = 4,
          .attention = attention,
          .dtype = DType::f64};
}

std::vector<std::string> names(const std::vector<std::int64_t>& ids) {
  std::vector<std::string> out;
  for (auto id : ids) out.push_back(id == kEosId ? std::string("</s>") : fmt::format("t{}", id));
  return out;
}

nlohmann::json read_back(const std::string& text, const testing::TempDir& dir) {
  std::ofstream(dir.file("page.xhtml")) << text;
  REQUIRE(testing::run_python("read_page.py", "'" + dir.file("page.xhtml") + "' '" +
                                                  dir.file("page.json") + "'") == 0);
  return nlohmann::json::parse(std::ifstream(dir.file("page.json")));
}

void check_grid(const nlohmann::json& figures, const std::string& id, const Matrix& want) {
  CAPTURE(id);
  REQUIRE(figures.contains(id));
  const auto got = figures.at(id).get<std::vector<std::vector<double>>>();
  REQUIRE(got.size() == want.size());
  for (std::size_t i = 0; i < want.size(); ++i) {
    REQUIRE(got[i].size() == want[i].size());
    for (std::size_t j = 0; j < want[i].size(); ++j) CHECK(got[i][j] == want[i][j]);
  }
}

TEST_CASE("explain page: well-formed, and its numbers are the library's") {
  const std::vector<std::int64_t> source{4, 7, 5, 8}, target{8, 5, 7, kEosId};
  Generator gen(3), gen_none(4);
  Seq2Seq model(tiny("general"), gen), plain(tiny("none"), gen_none);
  model.eval();
  plain.eval();
  app::ExplainPage page;
  page.source_text = "t4 t7 t5 t8 <&>";  // escaped on the page
  page.target_text = "t8 t5 t7";
  page.target_given = true;
  page.source = names(source);
  page.target = names(target);
  page.model = {"runs/a", "general attention", explain(model, source, target), {}};
  page.model.predicted = names(page.model.x.predicted);
  page.compare = app::ExplainedModel{"runs/b", "no attention", explain(plain, source, target), {}};
  page.compare->predicted = names(page.compare->x.predicted);

  testing::TempDir dir;
  const nlohmann::json got = read_back(app::explain_page(page), dir);
  const auto& figures = got.at("figures");
  const Explanation& x = page.model.x;
  check_grid(figures, "weights-0", x.weights[0]);
  check_grid(figures, "dweights-0", x.dweights[0]);
  check_grid(figures, "dscores-0", x.dscores[0]);
  check_grid(figures, "state-grad", x.state_grad);
  check_grid(figures, "state-grad-compare", page.compare->x.state_grad);
  CHECK(got.at("loss").get<std::vector<double>>() == x.step_loss);
}

TEST_CASE("heatmap figure: axis names, token labels, colour bar values, escaped tokens") {
  app::HeatmapSpec s;
  s.id = "w";
  s.title = "a[i,j]";
  s.rows = {"<s>", "b"};
  s.cols = {"x", "&"};
  s.values = {{0.25, 0.75}, {1.0, 0.0}};
  const std::string svg = app::heatmap_figure(s);
  CHECK(svg.find("output step i") != std::string::npos);
  CHECK(svg.find("source position j") != std::string::npos);
  CHECK(svg.find("&lt;s&gt;") != std::string::npos);
  CHECK(svg.find("&amp;") != std::string::npos);
  CHECK(svg.find(">1</text>") != std::string::npos);    // the bar's top value
  CHECK(svg.find(">0.5</text>") != std::string::npos);  // and its middle
  testing::TempDir dir;
  const nlohmann::json got = read_back(svg, dir);
  CHECK(got.at("figures").at("w") == nlohmann::json(s.values));
}

}  // namespace
}  // namespace seqgrad
