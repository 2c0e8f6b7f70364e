// Result plots for the apps: per-layer routing heatmaps, expert-load bar charts and
// loss / accuracy curves, written as PNG; plus an atomic CSV writer for the same numbers.
//
// Dependency-light on purpose: the C++ standard library, vimoe::Error and the system's
// stb_image_write, with a built-in bitmap font, so an eval run on a bare cluster node can
// still leave pictures behind. Plain data in, a file out; bad input (empty data, label
// counts that do not match, a series with no finite point, an unwritable path) throws
// vimoe::Error naming the function. Files are written to a temporary name beside the target
// and renamed over it, so a failure never leaves a half-written PNG or CSV.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace vimoe::plot {

// ---------------------------------------------------------------------------------------
// Canvas and drawing primitives
// ---------------------------------------------------------------------------------------

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
  friend bool operator==(const Rgb&, const Rgb&) = default;
};

inline constexpr Rgb kWhite{255, 255, 255};
inline constexpr Rgb kBlack{0, 0, 0};

// An RGB8 image, row-major from the top-left pixel, 3 bytes per pixel.
struct Canvas {
  Canvas(int width, int height, Rgb background = kWhite);  // throws for sizes <= 0 or > 16384

  Rgb at(int x, int y) const;    // throws outside the canvas
  void set(int x, int y, Rgb c);  // silently clips: primitives may run off the edge

  int width = 0;
  int height = 0;
  std::vector<uint8_t> rgb;
};

// All primitives clip to the canvas. Rectangles cover [x, x + w) x [y, y + h).
void fill_rect(Canvas& c, int x, int y, int w, int h, Rgb color);
void draw_rect(Canvas& c, int x, int y, int w, int h, Rgb color);  // 1-pixel outline
// Bresenham line including both end points; `thickness` > 1 stamps a square brush.
void draw_line(Canvas& c, int x0, int y0, int x1, int y1, Rgb color, int thickness = 1);

// Built-in bitmap font covering printable ASCII (32..126): 5 pixels wide, 8 rows (a 7-row
// body whose baseline is row 6, plus one descender row), drawn on a 6 x 10 cell so that
// letters and lines stay apart. Row bits: 0x10 is the leftmost column.
inline constexpr int kGlyphWidth = 5;
inline constexpr int kGlyphRows = 8;
inline constexpr int kCharAdvance = 6;  // per unit of scale
inline constexpr int kLineHeight = 10;  // per unit of scale
using Glyph = std::array<uint8_t, kGlyphRows>;

// The glyph for a printable ASCII character; nullptr for anything else.
const Glyph* find_glyph(char ch);

// Text is drawn `scale` pixels per font pixel; characters without a glyph show as '?'.
// (x, y) is the top-left corner of the text box (text_width x text_height).
int text_width(std::string_view text, int scale = 1);
int text_height(int scale = 1);  // the glyph rows, descender included
void draw_text(Canvas& c, int x, int y, std::string_view text, Rgb color, int scale = 1);
// Rotated 90 degrees counter-clockwise (reads bottom to top, as a y-axis title): the box is
// text_height wide and text_width tall, with its top-left corner at (x, y).
void draw_text_up(Canvas& c, int x, int y, std::string_view text, Rgb color, int scale = 1);

// Encodes the canvas as PNG and writes it atomically (temporary file + rename).
void save_png(const Canvas& c, const std::string& path);

// ---------------------------------------------------------------------------------------
// Scales and colours
// ---------------------------------------------------------------------------------------

// Axis ticks at a "nice" step (1, 2 or 5 times a power of ten): `lo`/`hi` are the data
// range widened outwards to multiples of `step`, `values` every tick from lo to hi.
struct Ticks {
  double lo = 0, hi = 1, step = 1;
  std::vector<double> values;
};
// At most `max_intervals` steps between lo and hi (the smallest nice step that allows it;
// a range crossing zero always gets at least two, one on each side).
// A degenerate range (lo == hi) is widened around the value. Throws for non-finite input,
// lo > hi or max_intervals < 1.
Ticks nice_ticks(double lo, double hi, int max_intervals = 5);
// A tick label with just enough decimals for `step` ("0.25", "20000", "1e-05").
std::string format_tick(double value, double step);

// Viridis-like perceptually ordered map from t in [0, 1] (clamped) to a colour, dark
// purple -> blue -> teal -> green -> yellow.
Rgb colormap(double t);
// Distinct line colours: the first 8 are a colour-blind-friendly set, later ones cycle
// through darker variants of it.
Rgb series_color(size_t i);

// ---------------------------------------------------------------------------------------
// Charts
// ---------------------------------------------------------------------------------------

// Font scale used by the charts for labels and titles (2: 10 x 14 pixel capitals).
inline constexpr int kChartTextScale = 2;

// The pixel frame of a chart's plot area and its axis ranges: the charts compute it with
// the *_layout functions below, and tests use the same to find where a value lands.
struct Frame {
  int width = 0, height = 0;        // whole image
  int left = 0, top = 0;            // plot area, inclusive pixel coordinates
  int right = 0, bottom = 0;
  Ticks x, y;
  int px(double xv) const;  // data -> pixel column / row (y grows downwards)
  int py(double yv) const;
};

enum class RowOrder {
  kGiven,     // rows as given
  kByArgmax,  // grouped by the column holding the row's maximum, groups in column order,
              // each group by that maximum, largest first (ties: original order)
};

struct HeatmapOptions {
  RowOrder row_order = RowOrder::kByArgmax;
  std::optional<double> vmin, vmax;  // colour range; default: the data's finite min / max
  bool show_values = true;           // print values in cells that are large enough
  int value_decimals = 2;
  std::string row_title = "class";   // axis titles; empty: none
  std::string col_title = "expert";
  int max_grid_width = 1400;         // cells shrink (and labels thin out) beyond these
  int max_grid_height = 2400;
};

struct HeatmapLayout {
  int width = 0, height = 0;
  int grid_left = 0, grid_top = 0;
  int cell_width = 0, cell_height = 0;
  int row_label_every = 1, col_label_every = 1;  // 1: every row / column is labelled
  int value_scale = 0;                           // font scale of cell values; 0: none printed
  bool show_row_title = false;                   // false where it is taller than the grid
  int bar_left = 0, bar_top = 0, bar_width = 0, bar_height = 0;  // colour bar
};

// `values` holds rows x cols doubles row-major, rows = row_labels.size(),
// cols = col_labels.size(). Non-finite cells are drawn grey. Returns the row order used:
// entry i is the index (into row_labels) of the row drawn i-th from the top.
std::vector<size_t> heatmap_png(const std::string& path, const std::vector<double>& values,
                                const std::vector<std::string>& row_labels,
                                const std::vector<std::string>& col_labels, const std::string& title,
                                const HeatmapOptions& options = {});
HeatmapLayout heatmap_layout(const std::vector<double>& values,
                             const std::vector<std::string>& row_labels,
                             const std::vector<std::string>& col_labels, const std::string& title,
                             const HeatmapOptions& options = {});
std::vector<size_t> heatmap_row_order(const std::vector<double>& values, size_t rows, size_t cols,
                                      RowOrder order);

struct BarChartOptions {
  // A dashed horizontal reference (e.g. the uniform expert load 1/N); NaN: none.
  double reference = std::numeric_limits<double>::quiet_NaN();
  std::string reference_label;
  std::string x_label;  // below the bar labels; empty: none
};

// One bar per value (all finite), labelled below; the y range always includes 0.
void bar_chart_png(const std::string& path, const std::vector<double>& values,
                   const std::vector<std::string>& labels, const std::string& title,
                   const std::string& y_label, const BarChartOptions& options = {});
Frame bar_chart_layout(const std::vector<double>& values, const std::vector<std::string>& labels,
                       const std::string& title, const std::string& y_label,
                       const BarChartOptions& options = {});
Rgb bar_color();

struct Series {
  std::string name;
  std::vector<double> xs, ys;
};

struct LineChartOptions {
  int width = 960, height = 560;  // whole image, legend included
  // Mark every point with a dot when a series has at most this many finite points (short
  // per-epoch curves); isolated points between gaps are always marked.
  size_t markers_up_to = 40;
  // x is a count or an index (MoE layers, block numbers): ticks only at whole numbers.
  bool integer_x = false;
  // Values the y range covers besides the data's (a score's natural [0, 1]); NaN: none.
  double y_include_lo = std::numeric_limits<double>::quiet_NaN();
  double y_include_hi = std::numeric_limits<double>::quiet_NaN();
};

// Lines through each series' points in order, with gaps where x or y is NaN or infinite;
// ranges cover all finite points (nice ticks on both axes); legend on the right.
void line_chart_png(const std::string& path, const std::vector<Series>& series,
                    const std::string& title, const std::string& x_label, const std::string& y_label,
                    const LineChartOptions& options = {});
Frame line_chart_layout(const std::vector<Series>& series, const std::string& title,
                        const std::string& x_label, const std::string& y_label,
                        const LineChartOptions& options = {});

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

// RFC 4180 quoting: a field holding a comma, a double quote, CR/LF or leading / trailing
// spaces is enclosed in double quotes with inner quotes doubled. Every row must have as many
// fields as the header. Lines end in '\n'. Written atomically like the PNGs.
void csv_write(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows);
std::string csv_quote(std::string_view field);
// Shortest text that reads back as the same double ("0.1", "1e-07", "nan").
std::string csv_number(double v);

}  // namespace vimoe::plot
