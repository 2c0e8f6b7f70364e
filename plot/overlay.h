// Images with a label grid laid over them, in tiles: each cell of the grid tints the pixels it
// covers with its label's colour (plot::series_color), e.g. each patch of an image coloured by
// the expert its token went to, or each pixel by its predicted class. Plain data in, a PNG out,
// written atomically like the charts; bad input throws vimoe::Error naming the tile.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace vimoe::plot {

struct OverlayTile {
  int width = 0, height = 0;  // the image, in pixels
  std::vector<uint8_t> rgb;   // [height x width x 3], row-major from the top-left pixel
  // The grid laid over the whole image: cell (gy, gx) covers pixel rows
  // [gy * height / grid_height, (gy + 1) * height / grid_height), and the same for columns.
  int grid_width = 0, grid_height = 0;
  std::vector<int> labels;  // [grid_height x grid_width], row-major; < 0: left untinted
  std::string caption;      // below the tile
};

struct OverlayOptions {
  double alpha = 0.45;  // the label colour's weight in a tinted pixel
  int tile_side = 160;  // each image is scaled (nearest neighbour) so its longer side is this
  int columns = 4;      // tiles per row
};

// Tiles in rows of options.columns under `title`, with a legend naming each label
// (legend[i] is label i's name; every label used must have one).
void overlay_tiles_png(const std::string& path, const std::vector<OverlayTile>& tiles,
                       const std::vector<std::string>& legend, const std::string& title,
                       const OverlayOptions& options = {});

// An image's pixels for display from one [channels x height x width] plane set (channels 1 or
// 3; a normalised model input, say): the values are stretched linearly from their minimum to
// their maximum over the whole image to 0..255; one channel becomes grey.
std::vector<uint8_t> display_rgb(const std::vector<float>& planes, int channels, int height, int width);

}  // namespace vimoe::plot
