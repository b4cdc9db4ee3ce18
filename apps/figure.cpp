// The heatmap figure: layout (labels, cells, colour bar) and the two colour scales.
#include "apps/figure.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace seqgrad::app {

namespace {

constexpr int kCell = 40;      // px per cell
constexpr int kCharW = 8;      // px per label character (monospace 13px)
constexpr int kBarW = 16;      // colour bar width
constexpr int kBarSteps = 24;  // colour bar bands

struct Rgb {
  double r, g, b;
};

Rgb mix(Rgb a, Rgb b, double t) {
  return {a.r + (b.r - a.r) * t, a.g + (b.g - a.g) * t, a.b + (b.b - a.b) * t};
}

// v in the scale's range -> colour; t = v / limit clamped.
Rgb colour(double v, double limit, ColourScale scale) {
  constexpr Rgb kWhite{255, 255, 255}, kBlue{31, 78, 150}, kRed{178, 34, 34};
  const double t = limit > 0 ? std::clamp(v / limit, -1.0, 1.0) : 0.0;
  if (scale == ColourScale::sequential) return mix(kWhite, kBlue, std::max(t, 0.0));
  return t >= 0 ? mix(kWhite, kRed, t) : mix(kWhite, kBlue, -t);
}

std::string css(Rgb c) {
  return fmt::format("rgb({},{},{})", std::lround(c.r), std::lround(c.g), std::lround(c.b));
}

// A cell's number in at most about five characters: two significant digits without the leading
// zero (".12", "-.034"), and a dot for what is below half a percent of the scale.
std::string cell_text(double v, double limit) {
  if (std::abs(v) < 5e-3 * limit) return "\u00b7";
  std::string s = fmt::format("{:.2g}", v);
  if (s.find('e') != std::string::npos) s = fmt::format("{:.0f}", v);
  if (s.rfind("0.", 0) == 0) s.erase(0, 1);
  if (s.rfind("-0.", 0) == 0) s.erase(1, 1);
  return s;
}

// Dark text on light cells, white on dark ones.
std::string ink(Rgb c) {
  return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b < 140 ? "white" : "#222";
}

double limit_of(const HeatmapSpec& s) {
  if (s.limit > 0) return s.limit;
  double m = 0;
  for (const auto& row : s.values) {
    for (double v : row) m = std::max(m, std::abs(v));
  }
  return m > 0 ? m : 1.0;
}

std::size_t longest(const std::vector<std::string>& labels) {
  std::size_t w = 1;
  for (const auto& l : labels) w = std::max(w, l.size());
  return w;
}

struct Layout {
  int left, top, width, height, bar_x;
};

Layout layout(const HeatmapSpec& s) {
  Layout l{};
  l.left = 40 + kCharW * static_cast<int>(std::min<std::size_t>(longest(s.rows), 16));
  l.top = 56 + kCharW * static_cast<int>(std::min<std::size_t>(longest(s.cols), 16)) * 3 / 4;
  const int grid_w = kCell * static_cast<int>(s.cols.size());
  const int grid_h = kCell * static_cast<int>(s.values.size());
  l.bar_x = l.left + grid_w + 24;
  l.width = l.bar_x + kBarW + 90;
  l.height = std::max(l.top + grid_h, l.top + 160) + 16;
  return l;
}

std::string axes(const HeatmapSpec& s, const Layout& l) {
  const int grid_w = kCell * static_cast<int>(s.cols.size());
  const int grid_h = kCell * static_cast<int>(s.values.size());
  std::string out = fmt::format(
      "<text x=\"4\" y=\"18\" font-weight=\"bold\">{}</text>\n"
      "<text x=\"{}\" y=\"36\" text-anchor=\"middle\" fill=\"#555\">{} \u2192</text>\n"
      "<text x=\"14\" y=\"{}\" text-anchor=\"middle\" fill=\"#555\" "
      "transform=\"rotate(-90 14 {})\">{} \u2192</text>\n",
      xml_escape(s.title), l.left + grid_w / 2, xml_escape(s.col_axis), l.top + grid_h / 2,
      l.top + grid_h / 2, xml_escape(s.row_axis));
  for (std::size_t j = 0; j < s.cols.size(); ++j) {
    const int x = l.left + kCell * static_cast<int>(j) + kCell / 2;
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" transform=\"rotate(-45 {} {})\">{}<tspan fill=\"#999\" "
        "font-size=\"10\"> {}</tspan></text>\n",
        x, l.top - 6, x, l.top - 6, xml_escape(s.cols[j]), j);
  }
  for (std::size_t i = 0; i < s.rows.size(); ++i) {
    const int y = l.top + kCell * static_cast<int>(i) + kCell / 2 + 4;
    out += fmt::format(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\"><tspan fill=\"#999\" font-size=\"10\">{} "
        "</tspan>{}</text>\n",
        l.left - 6, y, i, xml_escape(s.rows[i]));
  }
  return out;
}

std::string cells(const HeatmapSpec& s, const Layout& l, double limit) {
  std::string out;
  for (std::size_t i = 0; i < s.values.size(); ++i) {
    for (std::size_t j = 0; j < s.values[i].size(); ++j) {
      const double v = s.values[i][j];
      const Rgb c = colour(v, limit, s.scale);
      const int x = l.left + kCell * static_cast<int>(j), y = l.top + kCell * static_cast<int>(i);
      out += fmt::format(
          "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" stroke=\"#ccc\" "
          "data-row=\"{}\" data-col=\"{}\" data-value=\"{:.17g}\"><title>{} / {}: {:.6g}</title>"
          "</rect>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\" font-size=\"10\" "
          "fill=\"{}\">{}</text>\n",
          x, y, kCell, kCell, css(c), i, j, v, xml_escape(i < s.rows.size() ? s.rows[i] : "?"),
          xml_escape(j < s.cols.size() ? s.cols[j] : "?"), v, x + kCell / 2, y + kCell / 2 + 4,
          ink(c), cell_text(v, limit));
    }
  }
  return out;
}

std::string colour_bar(const HeatmapSpec& s, const Layout& l, double limit) {
  const int h = 150, band = h / kBarSteps;
  const double lo = s.scale == ColourScale::sequential ? 0.0 : -limit;
  std::string out;
  for (int k = 0; k < kBarSteps; ++k) {  // top band = limit
    const double v = limit - (limit - lo) * (k + 0.5) / kBarSteps;
    out += fmt::format("<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\"/>\n",
                       l.bar_x, l.top + k * band, kBarW, band, css(colour(v, limit, s.scale)));
  }
  const int bottom = l.top + kBarSteps * band;
  out += fmt::format(
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
      l.bar_x, l.top, kBarW, bottom - l.top);
  for (const double v : {limit, (limit + lo) / 2, lo}) {
    const double y = l.top + (limit - v) / (limit - lo) * (bottom - l.top);
    out += fmt::format("<text x=\"{}\" y=\"{:.0f}\" font-size=\"11\">{:.3g}</text>\n",
                       l.bar_x + kBarW + 4, y + 4, v);
  }
  return out;
}

}  // namespace

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
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

namespace {

// The figure as an <svg> element whose top left corner sits at (x, y) of its parent.
std::string figure_at(const HeatmapSpec& spec, const Layout& l, int x, int y) {
  const double limit = limit_of(spec);
  return fmt::format(
             "<svg xmlns=\"http://www.w3.org/2000/svg\" id=\"{}\" x=\"{}\" y=\"{}\" "
             "width=\"{}\" height=\"{}\" font-family=\"monospace\" font-size=\"13\">\n<rect "
             "width=\"100%\" height=\"100%\" fill=\"white\"/>\n",
             xml_escape(spec.id), x, y, l.width, l.height) +
         axes(spec, l) + cells(spec, l, limit) + colour_bar(spec, l, limit) + "</svg>\n";
}

}  // namespace

std::string heatmap_figure(const HeatmapSpec& spec) {
  return figure_at(spec, layout(spec), 0, 0);
}

std::string heatmap_panels(const std::vector<HeatmapSpec>& panels, std::size_t columns,
                           const std::string& title) {
  constexpr int kTitleH = 32;
  std::vector<Layout> ls;
  int cell_w = 0, cell_h = 0;  // every panel gets the largest one's box
  for (const HeatmapSpec& p : panels) {
    ls.push_back(layout(p));
    cell_w = std::max(cell_w, ls.back().width);
    cell_h = std::max(cell_h, ls.back().height);
  }
  columns = std::max<std::size_t>(1, std::min(columns, panels.size()));
  const auto rows = static_cast<int>((panels.size() + columns - 1) / columns);
  std::string body;
  for (std::size_t i = 0; i < panels.size(); ++i) {
    body += figure_at(panels[i], ls[i], cell_w * static_cast<int>(i % columns),
                      kTitleH + cell_h * static_cast<int>(i / columns));
  }
  return fmt::format(
             "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" "
             "font-family=\"monospace\" font-size=\"13\">\n<rect width=\"100%\" height=\"100%\" "
             "fill=\"white\"/>\n<text x=\"4\" y=\"22\" font-weight=\"bold\" "
             "font-size=\"15\">{}</text>\n",
             cell_w * static_cast<int>(columns), kTitleH + cell_h * rows, xml_escape(title)) +
         body + "</svg>\n";
}

}  // namespace seqgrad::app
