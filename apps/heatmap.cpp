#include "apps/heatmap.h"

#include <fmt/format.h>

#include <algorithm>

#include "apps/figure.h"

namespace seqgrad::app {

namespace {

std::size_t label_width(const std::vector<std::string>& labels) {
  std::size_t w = 0;
  for (const auto& l : labels) w = std::max(w, l.size());
  return w;
}

}  // namespace

std::string heatmap_text(const std::vector<std::string>& source,
                         const std::vector<std::string>& output, const Matrix& weights) {
  static constexpr std::string_view kShades = " .:-=+*#%@";
  const std::size_t w = std::max<std::size_t>(label_width(output), 4);
  std::string out = fmt::format("{:>{}} ", "", w);
  for (const auto& s : source) out += fmt::format("{:<3}", s.substr(0, 3));
  out += "\n";
  for (std::size_t t = 0; t < weights.size(); ++t) {
    out += fmt::format("{:>{}} ", t < output.size() ? output[t] : "?", w);
    for (std::size_t s = 0; s < source.size() && s < weights[t].size(); ++s) {
      const auto level = std::clamp<std::size_t>(
          static_cast<std::size_t>(weights[t][s] * static_cast<float>(kShades.size() - 1) + 0.5f),
          0, kShades.size() - 1);
      out += std::string(2, kShades[level]) + " ";
    }
    out += "\n";
  }
  return out;
}

std::string heatmap_svg(const std::vector<std::string>& source,
                        const std::vector<std::string>& output, const Matrix& weights) {
  HeatmapSpec spec;
  spec.id = "attention";
  std::string src, out;
  for (const auto& t : source) src += t;
  for (std::size_t i = 0; i + 1 < output.size(); ++i) out += output[i];
  spec.title = fmt::format("attention weights a[i,j]: {} -> {}", src, out);
  spec.rows = output;
  spec.cols = source;
  for (const auto& row : weights) spec.values.emplace_back(row.begin(), row.end());
  spec.limit = 1.0;  // weights are probabilities
  return heatmap_figure(spec);
}

std::string heatmap_layers_svg(const std::vector<std::string>& columns,
                               const std::vector<std::string>& output,
                               const std::vector<std::vector<std::vector<double>>>& views,
                               std::size_t heads, const std::string& title,
                               const std::string& col_axis) {
  std::vector<HeatmapSpec> panels;
  for (std::size_t v = 0; v < views.size(); ++v) {
    HeatmapSpec spec;
    spec.id = fmt::format("attention-{}-{}", v / heads, v % heads);
    spec.title = fmt::format("layer {}, head {}", v / heads, v % heads);
    spec.rows = output;
    spec.cols = columns;
    spec.col_axis = col_axis;
    spec.values = views[v];
    spec.limit = 1.0;  // weights are probabilities
    panels.push_back(std::move(spec));
  }
  return heatmap_panels(panels, heads, title);
}

}  // namespace seqgrad::app
