// Result plots: font, primitives, scales, the three charts (read back from the PNG with
// stb_image), CSV, and the atomic-write guarantees.
#include <gtest/gtest.h>
#include <stb_image.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/error.h"
#include "plot/plot.h"
#include "test_util.h"

namespace vimoe::plot {

// For gtest's failure messages (found by argument-dependent lookup, so not in the
// anonymous namespace).
std::ostream& operator<<(std::ostream& os, const Rgb& c) {
  return os << "(" << int(c.r) << ", " << int(c.g) << ", " << int(c.b) << ")";
}

namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() /
            ("vimoe_plot_" + std::to_string(::getpid()) + "_" + info->test_suite_name() + "_" +
             info->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(path_)) names.push_back(e.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
  }

 private:
  fs::path path_;
};

// A PNG read back with stb_image (an independent decoder) as RGB.
struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;
  Rgb at(int x, int y) const {
    const size_t i = (static_cast<size_t>(y) * width + x) * 3;
    return {rgb[i], rgb[i + 1], rgb[i + 2]};
  }
};

Image read_png(const std::string& path) {
  Image img;
  int channels = 0;
  unsigned char* data = stbi_load(path.c_str(), &img.width, &img.height, &channels, 3);
  if (data == nullptr) {
    ADD_FAILURE() << "stbi_load(" << path << ") failed: " << stbi_failure_reason();
    return img;
  }
  img.rgb.assign(data, data + static_cast<size_t>(img.width) * img.height * 3);
  stbi_image_free(data);
  return img;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int count_color(const Canvas& c, Rgb color) {
  int n = 0;
  for (int y = 0; y < c.height; ++y)
    for (int x = 0; x < c.width; ++x) n += c.at(x, y) == color ? 1 : 0;
  return n;
}

constexpr Rgb kRed{255, 0, 0};

// ---------------------------------------------------------------------------------------
// Font
// ---------------------------------------------------------------------------------------

TEST(PlotFont, EveryPrintableAsciiCharacterHasAGlyph) {
  for (int ch = 32; ch <= 126; ++ch) {
    const Glyph* g = find_glyph(static_cast<char>(ch));
    ASSERT_NE(g, nullptr) << "no glyph for '" << static_cast<char>(ch) << "'";
    int ink = 0;
    for (uint8_t row : *g) {
      EXPECT_EQ(row & ~0x1F, 0) << "glyph '" << static_cast<char>(ch) << "' is wider than 5";
      ink += std::popcount(row);
    }
    if (ch == ' ') EXPECT_EQ(ink, 0);
    else EXPECT_GT(ink, 0) << "glyph '" << static_cast<char>(ch) << "' is blank";
  }
  for (int ch : {0, 9, 10, 31, 127, 200}) EXPECT_EQ(find_glyph(static_cast<char>(ch)), nullptr) << ch;
}

TEST(PlotFont, GlyphsDifferFromEachOther) {
  std::set<Glyph> seen;
  for (int ch = 32; ch <= 126; ++ch) {
    const Glyph& g = *find_glyph(static_cast<char>(ch));
    EXPECT_TRUE(seen.insert(g).second) << "glyph '" << static_cast<char>(ch)
                                       << "' repeats an earlier one";
  }
  EXPECT_EQ(seen.size(), 95u);
}

TEST(PlotFont, TextBoxSizes) {
  EXPECT_EQ(text_width("", 2), 0);
  EXPECT_EQ(text_width("a", 1), 5);
  EXPECT_EQ(text_width("abc", 2), (3 * 6 - 1) * 2);  // no spacing after the last character
  EXPECT_EQ(text_height(3), 24);
}

// ---------------------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------------------

TEST(PlotDraw, TextInksExactlyItsGlyphPixels) {
  for (const int scale : {1, 3}) {
    Canvas c(40, 40);
    draw_text(c, 3, 4, "R", kRed, scale);
    const Glyph& g = *find_glyph('R');
    int expected = 0;
    for (int y = 0; y < c.height; ++y)
      for (int x = 0; x < c.width; ++x) {
        const int u = (x - 3) / scale, v = (y - 4) / scale;
        const bool inside = x >= 3 && y >= 4 && u < kGlyphWidth && v < kGlyphRows;
        const bool ink = inside && ((g[v] >> (4 - u)) & 1);
        expected += ink ? 1 : 0;
        EXPECT_EQ(c.at(x, y), ink ? kRed : kWhite) << "scale " << scale << " at " << x << "," << y;
      }
    EXPECT_GT(expected, 0);
  }
}

TEST(PlotDraw, RotatedTextReadsBottomToTop) {
  // "L" rotated counter-clockwise: its stem becomes the bottom row of the box and its foot
  // the right-hand column; checked pixel by pixel from the glyph bits.
  Canvas c(20, 20);
  draw_text_up(c, 2, 3, "L", kRed, 1);
  const Glyph& g = *find_glyph('L');
  for (int y = 0; y < c.height; ++y)
    for (int x = 0; x < c.width; ++x) {
      // Box is kGlyphRows wide and 5 tall: pixel (x, y) shows font column 4 - (y - 3), row x - 2.
      const int u = 4 - (y - 3), v = x - 2;
      const bool ink = u >= 0 && u < 5 && v >= 0 && v < kGlyphRows && ((g[v] >> (4 - u)) & 1);
      EXPECT_EQ(c.at(x, y), ink ? kRed : kWhite) << x << "," << y;
    }
  // The stroke of 'L' (column 0, rows 0..6) lies along the box's bottom row.
  for (int v = 0; v < 7; ++v) EXPECT_EQ(c.at(2 + v, 3 + 4), kRed) << v;
}

TEST(PlotDraw, CharactersWithoutGlyphDrawAsQuestionMark) {
  Canvas a(30, 20), b(30, 20);
  draw_text(a, 1, 1, "x\x01y", kBlack, 1);
  draw_text(b, 1, 1, "x?y", kBlack, 1);
  EXPECT_EQ(a.rgb, b.rgb);
}

TEST(PlotDraw, RectanglesCoverTheirPixelsAndClip) {
  Canvas c(12, 10);
  fill_rect(c, 2, 3, 4, 5, kRed);
  for (int y = 0; y < 10; ++y)
    for (int x = 0; x < 12; ++x)
      EXPECT_EQ(c.at(x, y) == kRed, x >= 2 && x < 6 && y >= 3 && y < 8) << x << "," << y;

  Canvas d(12, 10);
  fill_rect(d, -3, 8, 5, 10, kRed);  // mostly off the canvas
  EXPECT_EQ(count_color(d, kRed), 2 * 2);

  Canvas e(12, 10);
  draw_rect(e, 1, 1, 6, 4, kRed);
  EXPECT_EQ(count_color(e, kRed), 2 * 6 + 2 * 4 - 4);
  EXPECT_EQ(e.at(3, 2), kWhite);  // hollow
  EXPECT_EQ(e.at(6, 4), kRed);    // far corner
}

TEST(PlotDraw, LinesTouchTheirEndsAndFollowTheIdealLine) {
  Canvas h(16, 12);
  draw_line(h, 10, 5, 1, 5, kRed);
  for (int x = 0; x < 16; ++x) EXPECT_EQ(h.at(x, 5) == kRed, x >= 1 && x <= 10) << x;
  EXPECT_EQ(count_color(h, kRed), 10);

  Canvas d(16, 12);
  draw_line(d, 0, 0, 7, 7, kRed);
  for (int i = 0; i <= 7; ++i) EXPECT_EQ(d.at(i, i), kRed) << i;
  EXPECT_EQ(count_color(d, kRed), 8);

  // A shallow line: one pixel per column, within half a pixel of y = 3x / 10.
  Canvas s(16, 12);
  draw_line(s, 0, 0, 10, 3, kRed);
  EXPECT_EQ(count_color(s, kRed), 11);
  for (int x = 0; x <= 10; ++x) {
    int hits = 0;
    for (int y = 0; y < 12; ++y)
      if (s.at(x, y) == kRed) {
        ++hits;
        EXPECT_LE(std::fabs(y - 0.3 * x), 0.5 + 1e-9) << x << "," << y;
      }
    EXPECT_EQ(hits, 1) << x;
  }

  Canvas t(16, 12);
  draw_line(t, 2, 5, 9, 5, kRed, 3);
  for (int y = 0; y < 12; ++y) EXPECT_EQ(t.at(5, y) == kRed, y >= 4 && y <= 6) << y;
  EXPECT_EQ(count_color(t, kRed), 3 * 10);  // the brush overhangs one pixel at each end
}

TEST(PlotDraw, CanvasBoundsAreChecked) {
  EXPECT_VIMOE_ERROR(Canvas(0, 5), "Canvas", "0 x 5");
  EXPECT_VIMOE_ERROR(Canvas(5, 20000), "Canvas");
  Canvas c(4, 3, kRed);
  EXPECT_EQ(c.at(3, 2), kRed);
  EXPECT_VIMOE_ERROR(c.at(4, 0), "outside", "4 x 3");
  c.set(-1, 0, kBlack);  // clipped, not an error
  c.set(0, 3, kBlack);
  EXPECT_EQ(count_color(c, kRed), 12);
}

// ---------------------------------------------------------------------------------------
// Scales and colours
// ---------------------------------------------------------------------------------------

void expect_ticks(const Ticks& t, std::vector<double> want, double step) {
  EXPECT_DOUBLE_EQ(t.step, step);
  ASSERT_EQ(t.values.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_DOUBLE_EQ(t.values[i], want[i]) << i;
  EXPECT_EQ(t.lo, want.front());
  EXPECT_EQ(t.hi, want.back());
}

TEST(PlotScale, NiceTicksForTypicalRanges) {
  expect_ticks(nice_ticks(0, 1), {0, 0.2, 0.4, 0.6, 0.8, 1.0}, 0.2);
  expect_ticks(nice_ticks(0.013, 0.087), {0, 0.02, 0.04, 0.06, 0.08, 0.1}, 0.02);
  expect_ticks(nice_ticks(1, 1e5), {0, 2e4, 4e4, 6e4, 8e4, 1e5}, 2e4);
  expect_ticks(nice_ticks(-3, 3), {-4, -2, 0, 2, 4}, 2);
  expect_ticks(nice_ticks(2.31, 2.38, 8), {2.31, 2.32, 2.33, 2.34, 2.35, 2.36, 2.37, 2.38}, 0.01);
  expect_ticks(nice_ticks(-0.3, 0.2, 1), {-0.5, 0, 0.5}, 0.5);  // crossing zero takes two intervals
  // 0.6 must be the literal 0.6 (0.2 * 3 is not), or its label would read 0.6000000000000001.
  EXPECT_EQ(nice_ticks(0, 1).values[3], 0.6);
}

TEST(PlotScale, NiceTicksCoverTheRangeWithFewNiceSteps) {
  uint64_t s = 7;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<double>(s >> 11) / 9007199254740992.0;
  };
  for (int trial = 0; trial < 400; ++trial) {
    const double scale = std::pow(10.0, std::floor(next() * 12) - 6);
    const double a = (next() * 2 - 1) * scale, b = a + next() * scale;
    const int max_intervals = 1 + static_cast<int>(next() * 9);
    const Ticks t = nice_ticks(a, b, max_intervals);
    SCOPED_TRACE(::testing::Message() << "[" << a << ", " << b << "] max " << max_intervals);
    const double e = std::floor(std::log10(t.step) + 1e-9);
    const double m = t.step / std::pow(10.0, e);
    EXPECT_TRUE(std::fabs(m - 1) < 1e-9 || std::fabs(m - 2) < 1e-9 || std::fabs(m - 5) < 1e-9) << m;
    EXPECT_LE(t.lo, a);
    EXPECT_GE(t.hi, b);
    EXPECT_GT(t.lo, a - t.step);  // widened by less than a step on each side
    EXPECT_LT(t.hi, b + t.step);
    // One interval cannot span zero (0 is a multiple of every step): then two are allowed.
    const int allowed = a < 0 && b > 0 ? std::max(max_intervals, 2) : max_intervals;
    EXPECT_LE(static_cast<int>(t.values.size()) - 1, allowed);
    for (size_t i = 1; i < t.values.size(); ++i)
      EXPECT_NEAR(t.values[i] - t.values[i - 1], t.step, t.step * 1e-9);
  }
}

TEST(PlotScale, DegenerateAndBadRanges) {
  const Ticks t = nice_ticks(5, 5);
  EXPECT_LT(t.lo, 5);
  EXPECT_GT(t.hi, 5);
  const Ticks z = nice_ticks(0, 0);
  EXPECT_LT(z.lo, 0);
  EXPECT_GT(z.hi, 0);
  EXPECT_VIMOE_ERROR(nice_ticks(1, 0), "nice_ticks", "lo > hi");
  EXPECT_VIMOE_ERROR(nice_ticks(0, std::nan("")), "nice_ticks", "not finite");
  EXPECT_VIMOE_ERROR(nice_ticks(0, 1, 0), "nice_ticks", "max_intervals");
}

TEST(PlotScale, TickLabels) {
  EXPECT_EQ(format_tick(0.6, 0.2), "0.6");
  EXPECT_EQ(format_tick(1.0, 0.2), "1.0");
  EXPECT_EQ(format_tick(0.04, 0.02), "0.04");
  EXPECT_EQ(format_tick(60000, 20000), "60000");
  EXPECT_EQ(format_tick(2.5, 0.5), "2.5");
  EXPECT_EQ(format_tick(-1e-17, 0.1), "0");  // rounding noise around zero
  EXPECT_EQ(format_tick(2e-5, 1e-5), "2e-5");
  EXPECT_EQ(format_tick(3e6, 1e6), "3e6");
}

TEST(PlotColor, ColormapIsOrderedFromDarkToLight) {
  EXPECT_EQ(colormap(0), (Rgb{68, 1, 84}));
  EXPECT_EQ(colormap(1), (Rgb{253, 231, 37}));
  EXPECT_EQ(colormap(-3), colormap(0));
  EXPECT_EQ(colormap(7), colormap(1));
  EXPECT_EQ(colormap(std::nan("")), colormap(0));
  // Perceptual order: lightness (Rec. 601 luma) rises strictly along the map.
  double prev = -1;
  for (int i = 0; i <= 64; ++i) {
    const Rgb c = colormap(i / 64.0);
    const double luma = 0.299 * c.r + 0.587 * c.g + 0.114 * c.b;
    EXPECT_GT(luma, prev) << i;
    prev = luma;
  }
}

TEST(PlotColor, SeriesColorsAreDistinct) {
  std::set<std::tuple<int, int, int>> seen;
  for (size_t i = 0; i < 24; ++i) {
    const Rgb c = series_color(i);
    EXPECT_TRUE(seen.insert({c.r, c.g, c.b}).second) << "series " << i << " repeats " << c;
    EXPECT_NE(c, kWhite);
  }
}

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

TEST(PlotFile, PngRoundTripsThroughStbImage) {
  TempDir dir;
  Canvas c(7, 5, Rgb{10, 20, 30});
  c.set(0, 0, kRed);
  c.set(6, 4, Rgb{1, 2, 3});
  c.set(3, 2, kWhite);
  save_png(c, dir.file("a.png"));
  const Image img = read_png(dir.file("a.png"));
  EXPECT_EQ(img.width, 7);
  EXPECT_EQ(img.height, 5);
  EXPECT_EQ(img.rgb, c.rgb);
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"a.png"});  // no temporary left behind
}

TEST(PlotFile, UnwritablePathThrowsAndLeavesNoFile) {
  TempDir dir;
  const Canvas c(4, 4);
  const std::string missing = dir.file("no/such/dir/a.png");
  EXPECT_VIMOE_ERROR(save_png(c, missing), "save_png", "no/such/dir/a.png");
  EXPECT_FALSE(fs::exists(missing));
  EXPECT_VIMOE_ERROR(save_png(c, ""), "save_png", "empty");

  // The temporary can be written but not renamed over a directory: the failure must
  // remove it, leaving the directory as it was.
  fs::create_directories(dir.file("taken.png/inside"));
  EXPECT_VIMOE_ERROR(save_png(c, dir.file("taken.png")), "save_png", "taken.png");
  EXPECT_VIMOE_ERROR(csv_write(dir.file("taken.png"), {"a"}, {{"1"}}), "csv_write", "taken.png");
  EXPECT_VIMOE_ERROR(heatmap_png(dir.file("taken.png"), {1, 2}, {"r"}, {"a", "b"}, "t"),
                     "save_png", "taken.png");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken.png"});
  EXPECT_TRUE(fs::is_directory(dir.file("taken.png")));
}

TEST(PlotFile, RewritingReplacesTheWholeFile) {
  TempDir dir;
  csv_write(dir.file("t.csv"), {"a", "b"}, {{"1", "2"}, {"3", "4"}, {"5", "6"}});
  csv_write(dir.file("t.csv"), {"a"}, {{"7"}});
  EXPECT_EQ(read_text(dir.file("t.csv")), "a\n7\n");
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"t.csv"});
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

TEST(PlotCsv, QuotesOnlyWhereNeeded) {
  EXPECT_EQ(csv_quote("plain"), "plain");
  EXPECT_EQ(csv_quote(""), "");
  EXPECT_EQ(csv_quote("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_quote("say \"hi\""), "\"say \"\"hi\"\"\"");
  EXPECT_EQ(csv_quote("two\nlines"), "\"two\nlines\"");
  EXPECT_EQ(csv_quote("cr\r"), "\"cr\r\"");
  EXPECT_EQ(csv_quote(" padded"), "\" padded\"");
  EXPECT_EQ(csv_quote("in side"), "in side");
}

TEST(PlotCsv, WritesHeaderAndRows) {
  TempDir dir;
  csv_write(dir.file("r.csv"), {"class", "expert 0", "note"},
            {{"aquarium_fish", "0.25", "ok"}, {"maple, tree", "0.5", "said \"x\""}});
  EXPECT_EQ(read_text(dir.file("r.csv")),
            "class,expert 0,note\n"
            "aquarium_fish,0.25,ok\n"
            "\"maple, tree\",0.5,\"said \"\"x\"\"\"\n");
}

TEST(PlotCsv, NumbersRoundTrip) {
  EXPECT_EQ(csv_number(0.1), "0.1");
  EXPECT_EQ(csv_number(-2), "-2");
  EXPECT_EQ(csv_number(1e-7), "1e-07");
  EXPECT_EQ(csv_number(std::nan("")), "nan");
  EXPECT_EQ(csv_number(-INFINITY), "-inf");
  for (const double v : {1.0 / 3, 123456.789e10, 5e-324, 0.30000000000000004})
    EXPECT_EQ(std::strtod(csv_number(v).c_str(), nullptr), v) << csv_number(v);
}

TEST(PlotCsv, BadInputThrows) {
  TempDir dir;
  EXPECT_VIMOE_ERROR(csv_write(dir.file("x.csv"), {}, {}), "csv_write", "empty header");
  EXPECT_VIMOE_ERROR(csv_write(dir.file("x.csv"), {"a", "b"}, {{"1", "2"}, {"3"}}), "csv_write",
                     "row 1", "1 fields", "2");
  EXPECT_TRUE(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------
// Heatmap
// ---------------------------------------------------------------------------------------

TEST(PlotHeatmap, RowOrderByArgmaxOnASmallCase) {
  // Row maxima: row 0 -> column 1 (0.9), row 1 -> column 0, row 2 -> column 1 (0.7),
  // row 3 -> column 1 (0.9, tie with row 0: original order), row 4 has no finite value.
  const std::vector<double> v = {0.1, 0.9, 0.8, 0.2, 0.3, 0.7, 0.0, 0.9, NAN, NAN};
  EXPECT_EQ(heatmap_row_order(v, 5, 2, RowOrder::kByArgmax), (std::vector<size_t>{1, 0, 3, 2, 4}));
  EXPECT_EQ(heatmap_row_order(v, 5, 2, RowOrder::kGiven), (std::vector<size_t>{0, 1, 2, 3, 4}));
  EXPECT_VIMOE_ERROR(heatmap_row_order(v, 3, 2, RowOrder::kGiven), "heatmap_row_order", "10");
}

TEST(PlotHeatmap, RowOrderIsAPermutationGroupedByArgmax) {
  const size_t rows = 37, cols = 6;
  const std::vector<double> v =
      testing::uniform({static_cast<int64_t>(rows * cols)}, 11, 0, 1, DType::F64).to_vector<double>();
  const std::vector<size_t> order = heatmap_row_order(v, rows, cols, RowOrder::kByArgmax);
  std::vector<size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < rows; ++i) ASSERT_EQ(sorted[i], i);
  auto argmax = [&](size_t r) {
    size_t best = 0;
    for (size_t c = 1; c < cols; ++c)
      if (v[r * cols + c] > v[r * cols + best]) best = c;
    return best;
  };
  for (size_t i = 1; i < rows; ++i) {
    const size_t a = order[i - 1], b = order[i];
    ASSERT_LE(argmax(a), argmax(b)) << "position " << i;
    if (argmax(a) == argmax(b)) {
      EXPECT_GE(v[a * cols + argmax(a)], v[b * cols + argmax(b)]) << "position " << i;
    }
  }
}

TEST(PlotHeatmap, CellsAndColourBarUseTheColormapEnds) {
  TempDir dir;
  const std::vector<std::string> rows = {"cat", "dog", "ship"}, cols = {"0", "1", "2", "3"};
  // Max 0.9 at (dog, 2), min 0.01 at (ship, 0), one missing cell at (cat, 3).
  const std::vector<double> v = {0.5, 0.2, 0.3, NAN, 0.1, 0.3, 0.9, 0.2, 0.01, 0.6, 0.4, 0.5};
  HeatmapOptions o;
  const std::string path = dir.file("h.png");
  const std::vector<size_t> order = heatmap_png(path, v, rows, cols, "routing", o);
  EXPECT_EQ(order, (std::vector<size_t>{0, 2, 1}));  // argmax columns 0, 1, 2
  const HeatmapLayout L = heatmap_layout(v, rows, cols, "routing", o);
  const Image img = read_png(path);
  ASSERT_EQ(img.width, L.width);
  ASSERT_EQ(img.height, L.height);
  ASSERT_GT(L.value_scale, 0);  // big cells: values printed, so sample the corners
  auto cell = [&](size_t row, size_t col) {
    const size_t shown = static_cast<size_t>(std::find(order.begin(), order.end(), row) - order.begin());
    return img.at(L.grid_left + static_cast<int>(col) * L.cell_width + 1,
                  L.grid_top + static_cast<int>(shown) * L.cell_height + 1);
  };
  EXPECT_EQ(cell(1, 2), colormap(1));
  EXPECT_EQ(cell(2, 0), colormap(0));
  EXPECT_NE(cell(1, 2), cell(2, 0));
  EXPECT_EQ(cell(0, 0), colormap((0.5 - 0.01) / (0.9 - 0.01)));
  const Rgb missing = cell(0, 3);
  EXPECT_TRUE(missing.r == missing.g && missing.g == missing.b) << missing;  // grey
  // Colour bar: maximum at the top, minimum at the bottom.
  EXPECT_EQ(img.at(L.bar_left + L.bar_width / 2, L.bar_top), colormap(1));
  EXPECT_EQ(img.at(L.bar_left + L.bar_width / 2, L.bar_top + L.bar_height - 1), colormap(0));

  // A fixed colour range: 0.9 of [0, 1.8] is the middle of the map.
  o.vmin = 0;
  o.vmax = 1.8;
  o.row_order = RowOrder::kGiven;
  EXPECT_EQ(heatmap_png(path, v, rows, cols, "routing", o), (std::vector<size_t>{0, 1, 2}));
  const Image fixed = read_png(path);
  const HeatmapLayout F = heatmap_layout(v, rows, cols, "routing", o);
  EXPECT_EQ(fixed.at(F.grid_left + 2 * F.cell_width + 1, F.grid_top + F.cell_height + 1),
            colormap(0.5));
}

TEST(PlotHeatmap, LargeGridsShrinkCellsAndThinLabels) {
  std::vector<std::string> rows, cols;
  for (int i = 0; i < 300; ++i) rows.push_back("class " + std::to_string(i));
  for (int i = 0; i < 64; ++i) cols.push_back(std::to_string(i));
  const std::vector<double> v(300 * 64, 0.5);
  const HeatmapLayout L = heatmap_layout(v, rows, cols, "");
  const HeatmapOptions o;
  EXPECT_LE(L.cell_width * 64, o.max_grid_width);
  EXPECT_LE(L.cell_height * 300, o.max_grid_height);
  EXPECT_EQ(L.value_scale, 0);  // no room for values
  // Labels every k-th row / column keep a label's height / width apart.
  EXPECT_GE(L.row_label_every * L.cell_height, text_height(kChartTextScale));
  EXPECT_GE(L.col_label_every * L.cell_width, text_width("63", kChartTextScale));
}

TEST(PlotHeatmap, BadInputThrows) {
  TempDir dir;
  const std::string p = dir.file("h.png");
  EXPECT_VIMOE_ERROR(heatmap_png(p, {}, {}, {"0"}, "t"), "heatmap_png", "at least one row");
  EXPECT_VIMOE_ERROR(heatmap_png(p, {1, 2, 3}, {"a", "b"}, {"0", "1"}, "t"), "heatmap_png",
                     "3 values", "2 rows x 2 columns");
  EXPECT_VIMOE_ERROR(heatmap_png(p, {NAN, NAN}, {"a"}, {"0", "1"}, "t"), "heatmap_png", "no finite");
  HeatmapOptions o;
  o.vmin = 2;
  o.vmax = 1;
  EXPECT_VIMOE_ERROR(heatmap_png(p, {1, 2}, {"a"}, {"0", "1"}, "t", o), "heatmap_png", "colour range");
  EXPECT_TRUE(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------
// Bar chart
// ---------------------------------------------------------------------------------------

TEST(PlotBar, BarsReachTheirValues) {
  TempDir dir;
  const std::vector<double> v = {0.1, 0.3, -0.05, 0.2};
  const std::vector<std::string> labels = {"0", "1", "2", "3"};
  BarChartOptions o;
  o.reference = 0.25;
  o.reference_label = "uniform";
  const std::string path = dir.file("b.png");
  bar_chart_png(path, v, labels, "load", "fraction", o);
  const Frame f = bar_chart_layout(v, labels, "load", "fraction", o);
  const Image img = read_png(path);
  ASSERT_EQ(img.width, f.width);
  ASSERT_EQ(img.height, f.height);
  // y axis: nice ticks over [min(0, data), max(0, data, reference)].
  EXPECT_DOUBLE_EQ(f.y.lo, -0.1);
  EXPECT_DOUBLE_EQ(f.y.hi, 0.3);
  for (size_t i = 0; i < v.size(); ++i) {
    const int x = f.px(i + 0.5);  // bar centre
    const double zero_px = f.bottom - (0 - f.y.lo) / (f.y.hi - f.y.lo) * (f.bottom - f.top);
    const double top_px = f.bottom - (v[i] - f.y.lo) / (f.y.hi - f.y.lo) * (f.bottom - f.top);
    SCOPED_TRACE(::testing::Message() << "bar " << i);
    EXPECT_EQ(img.at(x, static_cast<int>(std::lround((zero_px + top_px) / 2))), bar_color());
    // Just beyond the bar's end (away from zero) is background, not bar.
    const int beyond = static_cast<int>(std::lround(top_px)) + (v[i] > 0 ? -3 : 3);
    EXPECT_NE(img.at(x, beyond), bar_color());
  }
  // The reference line is drawn across the plot in the second series colour.
  const int yr = f.py(0.25);
  int dashes = 0;
  for (int x = f.left; x <= f.right; ++x) dashes += img.at(x, yr) == series_color(1) ? 1 : 0;
  EXPECT_GT(dashes, (f.right - f.left) / 3);
}

TEST(PlotBar, BadInputThrows) {
  TempDir dir;
  const std::string p = dir.file("b.png");
  EXPECT_VIMOE_ERROR(bar_chart_png(p, {}, {}, "t", "y"), "bar_chart_png", "no values");
  EXPECT_VIMOE_ERROR(bar_chart_png(p, {1, 2}, {"a"}, "t", "y"), "bar_chart_png", "2 values",
                     "1 labels");
  EXPECT_VIMOE_ERROR(bar_chart_png(p, {1, NAN}, {"a", "b"}, "t", "y"), "bar_chart_png", "value 1",
                     "(b)");
  EXPECT_TRUE(dir.entries().empty());
}

// ---------------------------------------------------------------------------------------
// Line chart
// ---------------------------------------------------------------------------------------

TEST(PlotLine, IntegerXTicksAndAnIncludedYRange) {
  // Two MoE layer counts: nice ticks would be 1, 1.2, ..., 2; counts take whole numbers only.
  const Series s{"ViMoE", {1, 2}, {0.31, 0.35}};
  expect_ticks(line_chart_layout({s}, "t", "MoE layers", "NMI").x, {1, 1.2, 1.4, 1.6, 1.8, 2}, 0.2);
  LineChartOptions o;
  o.integer_x = true;
  o.y_include_lo = 0;
  o.y_include_hi = 1;
  const Frame f = line_chart_layout({s}, "t", "MoE layers", "NMI", o);
  expect_ticks(f.x, {1, 2}, 1);
  EXPECT_EQ(f.y.lo, 0);
  EXPECT_EQ(f.y.hi, 1);
  // A single x widens to two whole numbers.
  expect_ticks(line_chart_layout({Series{"one", {3}, {0.5}}}, "t", "x", "y", o).x, {2, 3, 4}, 1);
}

TEST(PlotLine, PointsLandAtTheirPixelsAndGapsStayEmpty) {
  TempDir dir;
  const Series acc{"accuracy", {0, 2, 4, 6, 8, 10}, {0.0, 0.2, NAN, 0.6, 0.8, 1.0}};
  const Series other{"other", {1, 9}, {0.9, 0.9}};
  const std::string path = dir.file("l.png");
  line_chart_png(path, {acc, other}, "acc", "epoch", "top-1");
  const Frame f = line_chart_layout({acc, other}, "acc", "epoch", "top-1");
  const Image img = read_png(path);
  ASSERT_EQ(img.width, LineChartOptions{}.width);
  ASSERT_EQ(img.height, LineChartOptions{}.height);
  expect_ticks(f.x, {0, 2, 4, 6, 8, 10}, 2);
  expect_ticks(f.y, {0, 0.2, 0.4, 0.6, 0.8, 1.0}, 0.2);
  ASSERT_GT(f.right - f.left, 300);
  ASSERT_GT(f.bottom - f.top, 200);

  // Data (x, y) maps linearly onto [left, right] x [bottom, top].
  auto pixel = [&](double x, double y) {
    return std::pair<int, int>{f.left + static_cast<int>(std::lround(x / 10 * (f.right - f.left))),
                               f.bottom - static_cast<int>(std::lround(y * (f.bottom - f.top)))};
  };
  const std::pair<double, double> points[] = {{6.0, 0.6}, {8.0, 0.8}, {2.0, 0.2}};
  for (const auto& [x, y] : points) {
    const auto [px, py] = pixel(x, y);
    EXPECT_EQ(f.px(x), px);
    EXPECT_EQ(f.py(y), py);
    EXPECT_EQ(img.at(px, py), series_color(0)) << "point " << x << ", " << y;
  }
  // Halfway along the segment (6, 0.6) -> (8, 0.8), well away from both markers: the line,
  // within a pixel of the ideal point (Bresenham rounds, the 2-pixel brush extends down-right).
  const auto [mx, my] = pixel(7, 0.7);
  int near_line = 0;
  for (int dy = -1; dy <= 1; ++dy)
    for (int dx = -1; dx <= 1; ++dx) near_line += img.at(mx + dx, my + dy) == series_color(0);
  EXPECT_GE(near_line, 2);
  // Across the NaN gap (2, 0.2) .. (6, 0.6) nothing of the series is drawn.
  for (const double x : {2.8, 3.5, 4.5, 5.2}) {
    const auto [gx, gy] = pixel(x, 0.1 * x);
    for (int dy = -2; dy <= 2; ++dy) EXPECT_NE(img.at(gx, gy + dy), series_color(0)) << x;
  }
  // The second series in its own colour.
  const auto [ox, oy] = pixel(5, 0.9);
  EXPECT_EQ(img.at(ox, oy), series_color(1));
}

TEST(PlotLine, BadInputThrows) {
  TempDir dir;
  const std::string p = dir.file("l.png");
  EXPECT_VIMOE_ERROR(line_chart_png(p, {}, "t", "x", "y"), "line_chart_png", "no series");
  EXPECT_VIMOE_ERROR(line_chart_png(p, {Series{"s", {1, 2}, {1}}}, "t", "x", "y"), "line_chart_png",
                     "'s'", "2 xs", "1 ys");
  EXPECT_VIMOE_ERROR(
      line_chart_png(p, {Series{"ok", {1}, {1}}, Series{"val", {1, 2}, {NAN, NAN}}}, "t", "x", "y"),
      "line_chart_png", "'val'", "no finite point");
  LineChartOptions tiny;
  tiny.width = 200;
  tiny.height = 100;
  EXPECT_VIMOE_ERROR(line_chart_png(p, {Series{"s", {1}, {1}}}, "t", "x", "y", tiny),
                     "line_chart_png", "no room");
  EXPECT_TRUE(dir.entries().empty());
}

}  // namespace
}  // namespace vimoe::plot
