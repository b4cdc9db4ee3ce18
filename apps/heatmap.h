// Attention heatmaps: rows are output tokens (</s> last), columns source tokens; a cell's shade
// is the attention weight.
#pragma once

#include <string>
#include <vector>

namespace seqgrad::app {

using Matrix = std::vector<std::vector<float>>;  // [T_out][S]

// Text for a terminal: one row per output token, shades " .:-=+*#%@" from 0 to 1.
std::string heatmap_text(const std::vector<std::string>& source,
                         const std::vector<std::string>& output, const Matrix& weights);
// A standalone SVG document (apps/figure.h): source tokens along the top, outputs down the
// left, both axes named, the weights in the cells and a colour bar from 0 to 1.
std::string heatmap_svg(const std::vector<std::string>& source,
                        const std::vector<std::string>& output, const Matrix& weights);

// The Transformer families' views in one SVG document: a panel per layer (a row) and head (a
// column), views[l * heads + k] [T_out][columns].
std::string heatmap_layers_svg(const std::vector<std::string>& columns,
                               const std::vector<std::string>& output,
                               const std::vector<std::vector<std::vector<double>>>& views,
                               std::size_t heads, const std::string& title,
                               const std::string& col_axis = "source position j");

}  // namespace seqgrad::app
