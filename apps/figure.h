// Figures a person reads without help: a heatmap with its title, both axis names, the tokens
// along both axes, each cell's value written in it, and a colour bar with its values. An inline
// <svg> element, well-formed XML, usable alone (seqgrad attention --svg) or inside an XHTML page
// (seqgrad explain). Every cell carries data-row, data-col and data-value (the full-precision
// number) so tests and scripts can read the figure back.
#pragma once

#include <string>
#include <vector>

namespace seqgrad::app {

using Grid = std::vector<std::vector<double>>;  // [rows][cols]

enum class ColourScale {
  sequential,  // 0 .. max: white to dark blue (weights, norms)
  diverging,   // -m .. +m: blue, white at 0, red (signed gradients)
};

struct HeatmapSpec {
  std::string id;     // the svg element's id
  std::string title;  // above the figure
  std::vector<std::string> rows, cols;
  std::string row_axis = "output step i";
  std::string col_axis = "source position j";
  Grid values;
  ColourScale scale = ColourScale::sequential;
  double limit = 0;  // the colour bar's end (max, or +-m); 0: from the values
};

std::string heatmap_figure(const HeatmapSpec& spec);
// Several figures in one <svg>, `columns` a row, under a title (e.g. one per layer and head).
std::string heatmap_panels(const std::vector<HeatmapSpec>& panels, std::size_t columns,
                           const std::string& title);

// &, <, >, " and ' as XML entities.
std::string xml_escape(const std::string& s);

}  // namespace seqgrad::app
