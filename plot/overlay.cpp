#include "plot/overlay.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"
#include "plot/plot.h"

namespace vimoe::plot {

namespace {

void check_tile(const OverlayTile& t, size_t index, size_t legend) {
  VIMOE_CHECK(t.width > 0 && t.height > 0 && t.rgb.size() == static_cast<size_t>(t.width) * t.height * 3,
              "overlay_tiles_png: tile ", index, " is ", t.width, "x", t.height, " but holds ", t.rgb.size(),
              " bytes (expected width x height x 3)");
  VIMOE_CHECK(t.grid_width > 0 && t.grid_height > 0 &&
                  t.labels.size() == static_cast<size_t>(t.grid_width) * t.grid_height,
              "overlay_tiles_png: tile ", index, " has a ", t.grid_width, "x", t.grid_height, " grid and ",
              t.labels.size(), " labels");
  for (int label : t.labels)
    VIMOE_CHECK(label < static_cast<int>(legend), "overlay_tiles_png: tile ", index, " uses label ", label,
                " but the legend names ", legend);
}

uint8_t blend(uint8_t pixel, uint8_t tint, double alpha) {
  return static_cast<uint8_t>(std::lround((1 - alpha) * pixel + alpha * tint));
}

}  // namespace

void overlay_tiles_png(const std::string& path, const std::vector<OverlayTile>& tiles,
                       const std::vector<std::string>& legend, const std::string& title,
                       const OverlayOptions& o) {
  VIMOE_CHECK(!tiles.empty(), "overlay_tiles_png: no tiles for ", path);
  VIMOE_CHECK(o.tile_side > 0 && o.columns > 0 && o.alpha >= 0 && o.alpha <= 1,
              "overlay_tiles_png: expected tile_side > 0, columns > 0 and alpha in [0, 1], found ", o.tile_side, ", ",
              o.columns, ", ", o.alpha);
  for (size_t i = 0; i < tiles.size(); ++i) check_tile(tiles[i], i, legend.size());
  const int s = kChartTextScale, pad = 12, caption_h = text_height(s) + 6;
  const int columns = std::min<int>(o.columns, static_cast<int>(tiles.size()));
  const int rows = (static_cast<int>(tiles.size()) + columns - 1) / columns;
  const int cell_w = o.tile_side + pad, cell_h = o.tile_side + caption_h + pad;
  const int title_h = text_height(s) + 2 * pad;
  int legend_w = 0;
  for (const std::string& name : legend) legend_w = std::max(legend_w, text_width(name, s));
  legend_w += text_height(s) + 3 * pad;
  const int legend_h = static_cast<int>(legend.size()) * (text_height(s) + 6);
  const int width = std::max(pad + columns * cell_w + legend_w, text_width(title, s) + 2 * pad);
  const int height = title_h + std::max(rows * cell_h, legend_h) + pad;
  Canvas c(width, height);
  draw_text(c, pad, pad, title, kBlack, s);
  for (size_t i = 0; i < tiles.size(); ++i) {
    const OverlayTile& t = tiles[i];
    const double scale = static_cast<double>(o.tile_side) / std::max(t.width, t.height);
    const int w = std::max(1, static_cast<int>(std::lround(t.width * scale)));
    const int h = std::max(1, static_cast<int>(std::lround(t.height * scale)));
    const int x0 = pad + static_cast<int>(i % columns) * cell_w, y0 = title_h + static_cast<int>(i / columns) * cell_h;
    for (int y = 0; y < h; ++y)
      for (int x = 0; x < w; ++x) {
        const int sx = std::min(t.width - 1, static_cast<int>(x / scale));
        const int sy = std::min(t.height - 1, static_cast<int>(y / scale));
        const uint8_t* p = &t.rgb[(static_cast<size_t>(sy) * t.width + sx) * 3];
        Rgb px{p[0], p[1], p[2]};
        const int label = t.labels[static_cast<size_t>(sy * t.grid_height / t.height) * t.grid_width +
                                   sx * t.grid_width / t.width];
        if (label >= 0) {
          const Rgb tint = series_color(static_cast<size_t>(label));
          px = {blend(px.r, tint.r, o.alpha), blend(px.g, tint.g, o.alpha), blend(px.b, tint.b, o.alpha)};
        }
        c.set(x0 + x, y0 + y, px);
      }
    draw_rect(c, x0 - 1, y0 - 1, w + 2, h + 2, kBlack);
    draw_text(c, x0, y0 + h + 4, t.caption, kBlack, s);
  }
  const int lx = pad + columns * cell_w + pad, box = text_height(s);
  for (size_t i = 0; i < legend.size(); ++i) {
    const int ly = title_h + static_cast<int>(i) * (box + 6);
    fill_rect(c, lx, ly, box, box, series_color(i));
    draw_text(c, lx + box + pad / 2, ly, legend[i], kBlack, s);
  }
  save_png(c, path);
}

std::vector<uint8_t> display_rgb(const std::vector<float>& planes, int channels, int height, int width) {
  VIMOE_CHECK((channels == 1 || channels == 3) && height > 0 && width > 0 &&
                  planes.size() == static_cast<size_t>(channels) * height * width,
              "display_rgb: expected 1 or 3 planes of ", height, "x", width, " (", channels * height * width,
              " values), found ", channels, " channels and ", planes.size(), " values");
  float lo = planes[0], hi = planes[0];
  for (float v : planes) {
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  const float range = hi > lo ? hi - lo : 1.0f;
  const size_t plane = static_cast<size_t>(height) * width;
  std::vector<uint8_t> rgb(plane * 3);
  for (size_t p = 0; p < plane; ++p)
    for (int ch = 0; ch < 3; ++ch) {
      const float v = planes[(channels == 1 ? 0 : ch) * plane + p];
      rgb[p * 3 + ch] = static_cast<uint8_t>(std::lround(255.0f * (v - lo) / range));
    }
  return rgb;
}

}  // namespace vimoe::plot
