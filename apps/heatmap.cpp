#include "apps/heatmap.h"

#include <fmt/format.h>

#include <algorithm>

namespace seqgrad::app {

namespace {

std::string xml_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

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
  constexpr int kCell = 28;
  const int left = 12 + 8 * static_cast<int>(label_width(output));
  const int top = 12 + 8 * static_cast<int>(label_width(source));
  const int width = left + kCell * static_cast<int>(source.size()) + 12;
  const int height = top + kCell * static_cast<int>(weights.size()) + 12;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
      "font-family=\"monospace\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" "
      "fill=\"white\"/>\n",
      width, height);
  for (std::size_t s = 0; s < source.size(); ++s) {
    const int x = left + kCell * static_cast<int>(s) + kCell / 2;
    svg += fmt::format("<text x=\"{}\" y=\"{}\" transform=\"rotate(-60 {} {})\">{}</text>\n", x,
                       top - 6, x, top - 6, xml_escape(source[s]));
  }
  for (std::size_t t = 0; t < weights.size(); ++t) {
    const int y = top + kCell * static_cast<int>(t);
    svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\n", left - 6,
                       y + kCell / 2 + 4, xml_escape(t < output.size() ? output[t] : "?"));
    for (std::size_t s = 0; s < source.size() && s < weights[t].size(); ++s) {
      svg += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#1f4e96\" "
          "fill-opacity=\"{:.3f}\" stroke=\"#ddd\"><title>{} / {}: {:.3f}</title></rect>\n",
          left + kCell * static_cast<int>(s), y, kCell, kCell, weights[t][s],
          xml_escape(output[std::min(t, output.size() - 1)]), xml_escape(source[s]), weights[t][s]);
    }
  }
  return svg + "</svg>\n";
}

}  // namespace seqgrad::app
