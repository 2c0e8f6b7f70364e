#include "plot/plot.h"

#include <stb_image_write.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <limits>
#include <numeric>

#include "engine/error.h"
#include "engine/io/atomic_file.h"

namespace vimoe::plot {

namespace {

// ---------------------------------------------------------------------------------------
// Font: drawn here as pictures rather than hex so it can be read and edited. Twelve glyphs
// per band, each 5 columns by 8 rows ('#' ink, '.' paper), separated by one space; the
// comment line above each band names its characters. Row 6 is the baseline; row 7 holds
// descenders (g j p q y , ;) and the underscore.
// ---------------------------------------------------------------------------------------
constexpr std::string_view kFontArt = R"font(
//       !     "     #     $     %     &     '     (     )     *     +
..... ..#.. .#.#. .#.#. ..#.. ##... .##.. ..#.. ...#. .#... ..... .....
..... ..#.. .#.#. .#.#. .#### ##..# #..#. ..#.. ..#.. ..#.. ..#.. ..#..
..... ..#.. ..... ##### #.#.. ...#. #.#.. ..... .#... ...#. #.#.# ..#..
..... ..#.. ..... .#.#. .###. ..#.. .#... ..... .#... ...#. .###. #####
..... ..#.. ..... ##### ..#.# .#... #.#.# ..... .#... ...#. #.#.# ..#..
..... ..... ..... .#.#. ####. #..## #..#. ..... ..#.. ..#.. ..#.. ..#..
..... ..#.. ..... .#.#. ..#.. ...## .##.# ..... ...#. .#... ..... .....
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
// ,     -     .     /     0     1     2     3     4     5     6     7
..... ..... ..... ....# .###. ..#.. .###. .###. ...#. ##### ..##. #####
..... ..... ..... ....# #...# .##.. #...# #...# ..##. #.... .#... ....#
..... ..... ..... ...#. #..## ..#.. ....# ....# .#.#. ####. #.... ...#.
..... .###. ..... ..#.. #.#.# ..#.. ...#. ..##. #..#. ....# ####. ..#..
..... ..... ..... .#... ##..# ..#.. ..#.. ....# ##### ....# #...# .#...
.##.. ..... .##.. #.... #...# ..#.. .#... #...# ...#. #...# #...# .#...
..#.. ..... .##.. #.... .###. .###. ##### .###. ...#. .###. .###. .#...
.#... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
// 8     9     :     ;     <     =     >     ?     @     A     B     C
.###. .###. ..... ..... ....# ..... .#... .###. .###. .###. ####. .###.
#...# #...# .##.. .##.. ...#. ..... ..#.. #...# #...# #...# #...# #...#
#...# #...# .##.. .##.. ..#.. ##### ...#. ....# #.### #...# #...# #....
.###. .#### ..... ..... .#... ..... ....# ...#. #.#.# ##### ####. #....
#...# ....# .##.. .##.. ..#.. ##### ...#. ..#.. #.### #...# #...# #....
#...# ...#. .##.. ..#.. ...#. ..... ..#.. ..... #.... #...# #...# #...#
.###. .##.. ..... .#... ....# ..... .#... ..#.. .###. #...# ####. .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
// D     E     F     G     H     I     J     K     L     M     N     O
####. ##### ##### .###. #...# .###. ..### #...# #.... #...# #...# .###.
#...# #.... #.... #...# #...# ..#.. ...#. #..#. #.... ##.## #...# #...#
#...# #.... #.... #.... #...# ..#.. ...#. #.#.. #.... #.#.# ##..# #...#
#...# ####. ####. #.### ##### ..#.. ...#. ##... #.... #.#.# #.#.# #...#
#...# #.... #.... #...# #...# ..#.. ...#. #.#.. #.... #...# #..## #...#
#...# #.... #.... #...# #...# ..#.. #..#. #..#. #.... #...# #...# #...#
####. ##### #.... .#### #...# .###. .##.. #...# ##### #...# #...# .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
// P     Q     R     S     T     U     V     W     X     Y     Z     [
####. .###. ####. .#### ##### #...# #...# #...# #...# #...# ##### .###.
#...# #...# #...# #.... ..#.. #...# #...# #...# #...# #...# ....# .#...
#...# #...# #...# #.... ..#.. #...# #...# #...# .#.#. .#.#. ...#. .#...
####. #...# ####. .###. ..#.. #...# #...# #.#.# ..#.. ..#.. ..#.. .#...
#.... #.#.# #.#.. ....# ..#.. #...# #...# #.#.# .#.#. ..#.. .#... .#...
#.... #..#. #..#. ....# ..#.. #...# .#.#. #.#.# #...# ..#.. #.... .#...
#.... .##.# #...# ####. ..#.. .###. ..#.. .#.#. #...# ..#.. ##### .###.
..... ..... ..... ..... ..... ..... ..... ..... ..... ..... ..... .....
// \     ]     ^     _     `     a     b     c     d     e     f     g
#.... .###. ..#.. ..... .#... ..... #.... ..... ....# ..... ..##. .....
#.... ...#. .#.#. ..... ..#.. ..... #.... ..... ....# ..... .#..# .....
.#... ...#. #...# ..... ..... .###. ####. .###. .#### .###. .#... .####
..#.. ...#. ..... ..... ..... ....# #...# #...# #...# #...# ###.. #...#
...#. ...#. ..... ..... ..... .#### #...# #.... #...# ##### .#... #...#
....# ...#. ..... ..... ..... #...# #...# #...# #...# #.... .#... .####
....# .###. ..... ..... ..... .#### ####. .###. .#### .###. .#... ....#
..... ..... ..... ##### ..... ..... ..... ..... ..... ..... ..... .###.
// h     i     j     k     l     m     n     o     p     q     r     s
#.... ..#.. ...#. #.... .##.. ..... ..... ..... ..... ..... ..... .....
#.... ..... ..... #.... ..#.. ..... ..... ..... ..... ..... ..... .....
#.##. .##.. ..##. #..#. ..#.. ##.#. #.##. .###. ####. .#### #.##. .####
##..# ..#.. ...#. #.#.. ..#.. #.#.# ##..# #...# #...# #...# ##..# #....
#...# ..#.. ...#. ##... ..#.. #.#.# #...# #...# #...# #...# #.... .###.
#...# ..#.. ...#. #.#.. ..#.. #...# #...# #...# ####. .#### #.... ....#
#...# .###. #..#. #..#. .###. #...# #...# .###. #.... ....# #.... ####.
..... ..... .##.. ..... ..... ..... ..... ..... #.... ....# ..... .....
// t     u     v     w     x     y     z     {     |     }     ~
.#... ..... ..... ..... ..... ..... ..... ...## ..#.. ##... .....
.#... ..... ..... ..... ..... ..... ..... ..#.. ..#.. ..#.. .....
###.. #...# #...# #...# #...# #...# ##### ..#.. ..#.. ..#.. .#...
.#... #...# #...# #...# .#.#. #...# ...#. .#... ..#.. ...#. #.#.#
.#... #...# #...# #.#.# ..#.. #...# ..#.. ..#.. ..#.. ..#.. ...#.
.#..# #..## .#.#. #.#.# .#.#. .#### .#... ..#.. ..#.. ..#.. .....
..##. .##.# ..#.. .#.#. #...# ....# ##### ...## ..#.. ##... .....
..... ..... ..... ..... ..... .###. ..... ..... ..#.. ..... .....
)font";

constexpr int kFirstChar = 32, kLastChar = 126, kNumGlyphs = kLastChar - kFirstChar + 1;
constexpr int kGlyphsPerBand = 12;

// Parsed at compile time: a malformed picture is a build error, not a runtime surprise.
consteval std::array<Glyph, kNumGlyphs> parse_font(std::string_view art) {
  std::array<Glyph, kNumGlyphs> glyphs{};
  int band = 0, row = 0;
  size_t pos = 0;
  while (pos < art.size()) {
    size_t end = art.find('\n', pos);
    if (end == std::string_view::npos) end = art.size();
    const std::string_view line = art.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line.starts_with("//")) continue;
    for (int k = 0; k < kGlyphsPerBand; ++k) {
      const int g = band * kGlyphsPerBand + k;
      if (g >= kNumGlyphs) break;
      uint8_t bits = 0;
      for (int col = 0; col < kGlyphWidth; ++col) {
        const size_t at = static_cast<size_t>(k * (kGlyphWidth + 1) + col);
        if (at >= line.size()) throw "font art: a glyph row is too short";
        if (line[at] == '#') bits |= static_cast<uint8_t>(0x10 >> col);
        else if (line[at] != '.') throw "font art: only '#' and '.' may draw a glyph";
      }
      glyphs[static_cast<size_t>(g)][static_cast<size_t>(row)] = bits;
    }
    if (++row == kGlyphRows) {
      row = 0;
      ++band;
    }
  }
  if (band * kGlyphsPerBand < kNumGlyphs || row != 0) throw "font art: glyphs missing";
  return glyphs;
}

constexpr std::array<Glyph, kNumGlyphs> kFont = parse_font(kFontArt);

// ---------------------------------------------------------------------------------------
// Files
// ---------------------------------------------------------------------------------------

void png_sink(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data),
                                             static_cast<size_t>(size));
}

// ---------------------------------------------------------------------------------------
// Small helpers shared by the charts
// ---------------------------------------------------------------------------------------

constexpr int S = kChartTextScale;
constexpr int kPad = 16;                     // outer margin
constexpr int kMaxLabelChars = 28;           // longer labels are shortened with ".."
constexpr Rgb kInk{30, 30, 30};              // text and axes
constexpr Rgb kSubtle{110, 110, 110};        // secondary text, frames
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kMissing{200, 200, 200};       // heatmap cells without a finite value

// Height of capitals and digits (no descender): what labels are centred on.
int body_height(int scale) { return (kGlyphRows - 1) * scale; }

std::string shorten(const std::string& s, int max_chars = kMaxLabelChars) {
  max_chars = std::max(max_chars, 3);
  if (s.size() <= static_cast<size_t>(max_chars)) return s;
  return s.substr(0, static_cast<size_t>(max_chars - 2)) + "..";
}

int max_text_width(const std::vector<std::string>& texts, int scale) {
  int w = 0;
  for (const std::string& t : texts) w = std::max(w, text_width(shorten(t), scale));
  return w;
}

void draw_title(Canvas& c, const std::string& title, int y) {
  if (title.empty()) return;
  const int x = (c.width - text_width(title, S)) / 2;
  // Drawn twice, one pixel apart: a bold face without a second font.
  draw_text(c, x, y, title, kInk, S);
  draw_text(c, x + 1, y, title, kInk, S);
}

int title_block(const std::string& title) { return title.empty() ? 0 : text_height(S) + 14; }

void fill_disc(Canvas& c, int cx, int cy, int r, Rgb color) {
  for (int dy = -r; dy <= r; ++dy)
    for (int dx = -r; dx <= r; ++dx)
      if (dx * dx + dy * dy <= r * r + r) c.set(cx + dx, cy + dy, color);
}

// Fixed-point text for heatmap values and colour-bar ends; %g where fixed would be long.
std::string format_value(double v, int decimals) {
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[64];
  if (std::fabs(v) >= 1e5) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.*f", std::max(0, decimals), v);
  std::string s = buf;
  if (s.find_first_not_of("-0.") == std::string::npos && s[0] == '-') s.erase(0, 1);  // "-0.00"
  return s;
}

double exact_pow10(int e) {
  // Repeated multiplication is exact up to 1e22 and keeps tick values like 0.6 == 6 / 10.
  if (e < 0 || e > 22) return std::pow(10.0, e);
  double p = 1;
  for (int i = 0; i < e; ++i) p *= 10;
  return p;
}

}  // namespace

// ---------------------------------------------------------------------------------------
// Canvas and primitives
// ---------------------------------------------------------------------------------------

Canvas::Canvas(int w, int h, Rgb background) : width(w), height(h) {
  VIMOE_CHECK(w > 0 && h > 0 && w <= 16384 && h <= 16384,
              "plot::Canvas: size must be 1..16384 on each side, got ", w, " x ", h);
  rgb.resize(static_cast<size_t>(w) * static_cast<size_t>(h) * 3);
  for (size_t i = 0; i < rgb.size(); i += 3) {
    rgb[i] = background.r;
    rgb[i + 1] = background.g;
    rgb[i + 2] = background.b;
  }
}

Rgb Canvas::at(int x, int y) const {
  VIMOE_CHECK(x >= 0 && y >= 0 && x < width && y < height, "plot::Canvas::at: pixel (", x, ", ",
              y, ") is outside the ", width, " x ", height, " canvas");
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3;
  return {rgb[i], rgb[i + 1], rgb[i + 2]};
}

void Canvas::set(int x, int y, Rgb c) {
  if (x < 0 || y < 0 || x >= width || y >= height) return;
  const size_t i = (static_cast<size_t>(y) * static_cast<size_t>(width) + static_cast<size_t>(x)) * 3;
  rgb[i] = c.r;
  rgb[i + 1] = c.g;
  rgb[i + 2] = c.b;
}

void fill_rect(Canvas& c, int x, int y, int w, int h, Rgb color) {
  const int x0 = std::max(x, 0), y0 = std::max(y, 0);
  const int x1 = std::min<long long>(static_cast<long long>(x) + w, c.width);
  const int y1 = std::min<long long>(static_cast<long long>(y) + h, c.height);
  for (int yy = y0; yy < y1; ++yy)
    for (int xx = x0; xx < x1; ++xx) c.set(xx, yy, color);
}

void draw_rect(Canvas& c, int x, int y, int w, int h, Rgb color) {
  if (w <= 0 || h <= 0) return;
  fill_rect(c, x, y, w, 1, color);
  fill_rect(c, x, y + h - 1, w, 1, color);
  fill_rect(c, x, y, 1, h, color);
  fill_rect(c, x + w - 1, y, 1, h, color);
}

void draw_line(Canvas& c, int x0, int y0, int x1, int y1, Rgb color, int thickness) {
  const int t = std::max(thickness, 1);
  const int lo = -(t - 1) / 2;  // brush offsets lo..lo+t-1, centred on the ideal pixel
  const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0);
  const int sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
  int err = dx + dy;
  for (;;) {
    if (t == 1) c.set(x0, y0, color);
    else fill_rect(c, x0 + lo, y0 + lo, t, t, color);
    if (x0 == x1 && y0 == y1) break;
    const int e2 = 2 * err;
    if (e2 >= dy) {
      err += dy;
      x0 += sx;
    }
    if (e2 <= dx) {
      err += dx;
      y0 += sy;
    }
  }
}

const Glyph* find_glyph(char ch) {
  const int code = static_cast<unsigned char>(ch);
  if (code < kFirstChar || code > kLastChar) return nullptr;
  return &kFont[static_cast<size_t>(code - kFirstChar)];
}

int text_width(std::string_view text, int scale) {
  if (text.empty()) return 0;
  // The last character needs no spacing column after it.
  return (static_cast<int>(text.size()) * kCharAdvance - (kCharAdvance - kGlyphWidth)) * scale;
}

int text_height(int scale) { return kGlyphRows * scale; }

namespace {
// Shared by both text directions: `put(u, v)` fills the font pixel at column u, row v of the
// unscaled text box.
template <typename Put>
void raster_text(std::string_view text, Put put) {
  const Glyph* fallback = find_glyph('?');
  for (size_t i = 0; i < text.size(); ++i) {
    const Glyph* g = find_glyph(text[i]);
    if (g == nullptr) g = fallback;
    for (int row = 0; row < kGlyphRows; ++row)
      for (int col = 0; col < kGlyphWidth; ++col)
        if ((*g)[static_cast<size_t>(row)] & (0x10 >> col))
          put(static_cast<int>(i) * kCharAdvance + col, row);
  }
}
}  // namespace

void draw_text(Canvas& c, int x, int y, std::string_view text, Rgb color, int scale) {
  const int s = std::max(scale, 1);
  raster_text(text, [&](int u, int v) { fill_rect(c, x + u * s, y + v * s, s, s, color); });
}

void draw_text_up(Canvas& c, int x, int y, std::string_view text, Rgb color, int scale) {
  const int s = std::max(scale, 1);
  const int len = text_width(text, 1);
  // Rotating counter-clockwise sends the text's column u to row (len - 1 - u) and its row v
  // to column v, so the first character ends up at the bottom.
  raster_text(text, [&](int u, int v) {
    fill_rect(c, x + v * s, y + (len - 1 - u) * s, s, s, color);
  });
}

void save_png(const Canvas& c, const std::string& path) {
  VIMOE_CHECK(c.rgb.size() == static_cast<size_t>(c.width) * static_cast<size_t>(c.height) * 3,
              "save_png: canvas buffer holds ", c.rgb.size(), " bytes, expected ", c.width, " x ",
              c.height, " x 3");
  std::string png;
  const int ok = stbi_write_png_to_func(png_sink, &png, c.width, c.height, 3, c.rgb.data(),
                                        c.width * 3);
  VIMOE_CHECK(ok != 0 && !png.empty(), "save_png: PNG encoding of a ", c.width, " x ", c.height,
              " image failed (for ", path, ")");
  io::write_file_atomic(path, png, "save_png");
}

// ---------------------------------------------------------------------------------------
// Scales and colours
// ---------------------------------------------------------------------------------------

Ticks nice_ticks(double lo, double hi, int max_intervals) {
  VIMOE_CHECK(std::isfinite(lo) && std::isfinite(hi), "nice_ticks: range [", lo, ", ", hi,
              "] is not finite");
  VIMOE_CHECK(lo <= hi, "nice_ticks: range [", lo, ", ", hi, "] has lo > hi");
  VIMOE_CHECK(max_intervals >= 1, "nice_ticks: max_intervals must be >= 1, got ", max_intervals);
  if (lo == hi) {
    const double d = lo == 0 ? 1 : std::fabs(lo) * 0.5;
    lo -= d;
    hi += d;
  }
  const double span = hi - lo;
  VIMOE_CHECK(std::isfinite(span), "nice_ticks: range [", lo, ", ", hi, "] is too wide");
  // Zero is a multiple of every step, so a range that crosses it needs two intervals.
  if (lo < 0 && hi > 0) max_intervals = std::max(max_intervals, 2);
  // Candidates m * 10^e from just below span / max_intervals upwards; the first whose
  // outward-rounded range needs at most max_intervals steps wins. The 1e-9 slack keeps
  // 1.0 / 0.2 = 5.000000000000001 from counting as a sixth interval.
  int e = static_cast<int>(std::floor(std::log10(span / max_intervals))) - 1;
  for (;; ++e) {
    for (const int m : {1, 2, 5}) {
      const double step = m * exact_pow10(e);
      VIMOE_CHECK(std::isfinite(step), "nice_ticks: no step fits [", lo, ", ", hi, "]");
      const double k_lo = std::floor(lo / step + 1e-9), k_hi = std::ceil(hi / step - 1e-9);
      if (k_hi - k_lo > max_intervals) continue;
      Ticks t;
      t.step = step;
      for (double k = k_lo; k <= k_hi; ++k) {
        // k * m scaled by an exact power of ten: 0.6 comes out as the double nearest 0.6.
        const double v = e >= 0 ? k * m * exact_pow10(e) : (k * m) / exact_pow10(-e);
        t.values.push_back(v == 0 ? 0.0 : v);  // no "-0"
      }
      t.lo = t.values.front();
      t.hi = t.values.back();
      return t;
    }
  }
}

std::string format_tick(double value, double step) {
  if (!std::isfinite(value)) return format_value(value, 0);
  if (std::isfinite(step) && step > 0) value = std::round(value / step) * step;
  if (value == 0 || std::fabs(value) < std::fabs(step) * 1e-9) return "0";
  char buf[64];
  if (std::fabs(value) >= 1e6 || (std::isfinite(step) && step > 0 && step < 1e-4)) {
    std::snprintf(buf, sizeof buf, "%.6g", value);
    // Compact exponent: "1e+06" -> "1e6", "2.5e-05" -> "2.5e-5".
    std::string s = buf;
    const size_t e = s.find('e');
    if (e == std::string::npos) return s;
    std::string mant = s.substr(0, e), ex = s.substr(e + 1);
    const bool neg = ex[0] == '-';
    ex = ex.substr(ex[0] == '-' || ex[0] == '+' ? 1 : 0);
    ex.erase(0, std::min(ex.find_first_not_of('0'), ex.size() - 1));
    return mant + "e" + (neg ? "-" : "") + ex;
  }
  const int decimals =
      step > 0 && std::isfinite(step) ? std::max(0, -static_cast<int>(std::floor(std::log10(step) + 1e-9))) : 2;
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

Rgb colormap(double t) {
  // Anchors sampled along a viridis-like path: roughly even steps in lightness and a hue
  // that turns monotonically, so order reads correctly in colour and in greyscale.
  static constexpr std::array<Rgb, 7> kAnchors{{{68, 1, 84},
                                                {69, 55, 129},
                                                {48, 104, 142},
                                                {33, 145, 140},
                                                {53, 183, 121},
                                                {144, 215, 67},
                                                {253, 231, 37}}};
  if (!(t > 0)) t = 0;  // NaN too
  if (t > 1) t = 1;
  const double pos = t * (kAnchors.size() - 1);
  const size_t i = std::min(static_cast<size_t>(pos), kAnchors.size() - 2);
  const double f = pos - static_cast<double>(i);
  auto mix = [f](uint8_t a, uint8_t b) {
    return static_cast<uint8_t>(std::lround(a + (static_cast<double>(b) - a) * f));
  };
  const Rgb& a = kAnchors[i];
  const Rgb& b = kAnchors[i + 1];
  return {mix(a.r, b.r), mix(a.g, b.g), mix(a.b, b.b)};
}

Rgb series_color(size_t i) {
  // Okabe-Ito-style hues (minus the pale yellow, unreadable on white).
  static constexpr std::array<Rgb, 8> kBase{{{0, 114, 178},
                                             {213, 94, 0},
                                             {0, 158, 115},
                                             {204, 121, 167},
                                             {230, 159, 0},
                                             {86, 180, 233},
                                             {120, 120, 120},
                                             {0, 0, 0}}};
  Rgb c = kBase[i % kBase.size()];
  // Later cycles darken (the black entry lightens) so colours stay distinct past eight.
  const size_t cycle = i / kBase.size();
  for (size_t k = 0; k < cycle; ++k) {
    if (c == kBlack) c = {90, 60, 30};
    else c = {static_cast<uint8_t>(c.r * 3 / 5), static_cast<uint8_t>(c.g * 3 / 5),
              static_cast<uint8_t>(c.b * 3 / 5)};
  }
  return c;
}

Rgb bar_color() { return series_color(0); }

int Frame::px(double xv) const {
  const double f = x.hi > x.lo ? (xv - x.lo) / (x.hi - x.lo) : 0.5;
  return left + static_cast<int>(std::lround(f * (right - left)));
}

int Frame::py(double yv) const {
  const double f = y.hi > y.lo ? (yv - y.lo) / (y.hi - y.lo) : 0.5;
  return bottom - static_cast<int>(std::lround(f * (bottom - top)));
}

// ---------------------------------------------------------------------------------------
// Heatmap
// ---------------------------------------------------------------------------------------

namespace {

void check_heatmap(const char* who, const std::vector<double>& values,
                   const std::vector<std::string>& row_labels,
                   const std::vector<std::string>& col_labels) {
  VIMOE_CHECK(!row_labels.empty() && !col_labels.empty(), who, ": need at least one row and one ",
              "column, got ", row_labels.size(), " row labels and ", col_labels.size(),
              " column labels");
  VIMOE_CHECK(values.size() == row_labels.size() * col_labels.size(), who, ": ", values.size(),
              " values do not fill ", row_labels.size(), " rows x ", col_labels.size(),
              " columns (one label per row and per column)");
}

struct ValueRange {
  double lo = 0, hi = 1;
};

ValueRange heatmap_range(const std::vector<double>& values, const HeatmapOptions& o) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (double v : values)
    if (std::isfinite(v)) {
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  VIMOE_CHECK(std::isfinite(lo) || (o.vmin && o.vmax), "heatmap_png: no finite value among ",
              values.size(), " cells");
  ValueRange r{o.vmin.value_or(lo), o.vmax.value_or(hi)};
  VIMOE_CHECK(std::isfinite(r.lo) && std::isfinite(r.hi) && r.lo <= r.hi,
              "heatmap_png: colour range [", r.lo, ", ", r.hi, "] is not a finite lo <= hi");
  return r;
}

}  // namespace

std::vector<size_t> heatmap_row_order(const std::vector<double>& values, size_t rows, size_t cols,
                                      RowOrder order) {
  VIMOE_CHECK(values.size() == rows * cols, "heatmap_row_order: ", values.size(),
              " values do not fill ", rows, " x ", cols);
  std::vector<size_t> idx(rows);
  std::iota(idx.begin(), idx.end(), size_t{0});
  if (order == RowOrder::kGiven) return idx;
  // Rows without a finite value sort after every group.
  std::vector<size_t> arg(rows, cols);
  std::vector<double> best(rows, -std::numeric_limits<double>::infinity());
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) {
      const double v = values[r * cols + c];
      if (std::isfinite(v) && (arg[r] == cols || v > best[r])) {
        arg[r] = c;
        best[r] = v;
      }
    }
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    if (arg[a] != arg[b]) return arg[a] < arg[b];
    return best[a] > best[b];
  });
  return idx;
}

namespace {

HeatmapLayout layout_heatmap(const std::vector<double>& values,
                             const std::vector<std::string>& row_labels,
                             const std::vector<std::string>& col_labels, const std::string& title,
                             const HeatmapOptions& o, const ValueRange& range) {
  const int rows = static_cast<int>(row_labels.size()), cols = static_cast<int>(col_labels.size());
  VIMOE_CHECK(o.max_grid_width >= cols && o.max_grid_height >= rows, "heatmap_png: ", rows, " x ",
              cols, " cells do not fit max_grid_width ", o.max_grid_width, " / max_grid_height ",
              o.max_grid_height, " at one pixel per cell");
  HeatmapLayout L;
  const int line = text_height(S);
  const int row_label_w = max_text_width(row_labels, S);
  const int col_label_w = max_text_width(col_labels, S);

  // Cells are as wide as a column label (or a printed value) needs, shrinking to fit the
  // grid limits; labels then thin out rather than overlap.
  int value_w1 = 0;
  for (double v : values) value_w1 = std::max(value_w1, text_width(format_value(v, o.value_decimals), 1));
  const int want_h = line + 6;
  L.cell_height = std::min(want_h, o.max_grid_height / rows);
  int want_w = std::max(col_label_w + 10, want_h);
  L.value_scale = 0;
  if (o.show_values) {
    // Values at label size when they fit the row height and the width budget, else small.
    for (const int s : {S, 1}) {
      const int w = std::max(want_w, value_w1 * s + 8 * s);
      if (w * cols <= o.max_grid_width && text_height(s) + 4 <= L.cell_height) {
        want_w = w;
        L.value_scale = s;
        break;
      }
    }
  }
  L.cell_width = std::min(want_w, o.max_grid_width / cols);
  L.row_label_every = (line + 2 + L.cell_height - 1) / L.cell_height;
  L.col_label_every = (col_label_w + 8 + L.cell_width - 1) / L.cell_width;

  const int grid_w = L.cell_width * cols, grid_h = L.cell_height * rows;
  L.bar_height = std::max(grid_h, 3 * line);
  // The upright row title is left out where it would stick out above the grid.
  L.show_row_title = !o.row_title.empty() && text_width(o.row_title, S) <= L.bar_height;
  L.grid_left = kPad + (L.show_row_title ? line + 10 : 0) + row_label_w + 8;
  L.grid_top = kPad + title_block(title);
  L.bar_left = L.grid_left + grid_w + 24;
  L.bar_top = L.grid_top;
  L.bar_width = 18;
  const int bar_label_w = std::max(text_width(format_value(range.lo, o.value_decimals), S),
                                   text_width(format_value(range.hi, o.value_decimals), S));
  const int below_grid = 6 + line + (o.col_title.empty() ? 0 : 8 + line);
  L.width = std::max(L.bar_left + L.bar_width + 6 + bar_label_w + kPad,
                     text_width(title, S) + 2 * kPad);
  L.height = std::max(L.grid_top + grid_h + below_grid, L.bar_top + L.bar_height + line / 2) + kPad;
  return L;
}

}  // namespace

HeatmapLayout heatmap_layout(const std::vector<double>& values,
                             const std::vector<std::string>& row_labels,
                             const std::vector<std::string>& col_labels, const std::string& title,
                             const HeatmapOptions& options) {
  check_heatmap("heatmap_layout", values, row_labels, col_labels);
  return layout_heatmap(values, row_labels, col_labels, title, options,
                        heatmap_range(values, options));
}

std::vector<size_t> heatmap_png(const std::string& path, const std::vector<double>& values,
                                const std::vector<std::string>& row_labels,
                                const std::vector<std::string>& col_labels, const std::string& title,
                                const HeatmapOptions& o) {
  check_heatmap("heatmap_png", values, row_labels, col_labels);
  const ValueRange range = heatmap_range(values, o);
  const HeatmapLayout L = layout_heatmap(values, row_labels, col_labels, title, o, range);
  const size_t rows = row_labels.size(), cols = col_labels.size();
  const std::vector<size_t> order = heatmap_row_order(values, rows, cols, o.row_order);
  const int line = text_height(S);

  Canvas c(L.width, L.height);
  draw_title(c, title, kPad);
  auto shade = [&](double v) {
    if (range.hi == range.lo) return colormap(0.5);
    return colormap((v - range.lo) / (range.hi - range.lo));
  };
  // A hairline of background between cells once they are big enough to spare it.
  const int sep = L.cell_width >= 10 && L.cell_height >= 10 ? 1 : 0;
  for (size_t i = 0; i < rows; ++i) {
    const size_t r = order[i];
    const int y = L.grid_top + static_cast<int>(i) * L.cell_height;
    for (size_t j = 0; j < cols; ++j) {
      const int x = L.grid_left + static_cast<int>(j) * L.cell_width;
      const double v = values[r * cols + j];
      const Rgb fill = std::isfinite(v) ? shade(v) : kMissing;
      fill_rect(c, x, y, L.cell_width - sep, L.cell_height - sep, fill);
      if (L.value_scale > 0) {
        const std::string text = format_value(v, o.value_decimals);
        // Dark text on light cells, light on dark (Rec. 601 luma).
        const double luma = 0.299 * fill.r + 0.587 * fill.g + 0.114 * fill.b;
        const Rgb ink = luma > 140 ? kInk : kWhite;
        draw_text(c, x + (L.cell_width - sep - text_width(text, L.value_scale)) / 2,
                  y + (L.cell_height - sep - body_height(L.value_scale)) / 2, text, ink,
                  L.value_scale);
      }
    }
    if (static_cast<int>(i) % L.row_label_every == 0) {
      const std::string label = shorten(row_labels[r]);
      draw_text(c, L.grid_left - 8 - text_width(label, S),
                y + (L.cell_height - body_height(S)) / 2, label, kInk, S);
    }
  }
  const int grid_w = L.cell_width * static_cast<int>(cols);
  const int grid_h = L.cell_height * static_cast<int>(rows);
  for (size_t j = 0; j < cols; j += static_cast<size_t>(L.col_label_every)) {
    const std::string label = shorten(col_labels[j]);
    const int cx = L.grid_left + static_cast<int>(j) * L.cell_width + L.cell_width / 2;
    draw_text(c, cx - text_width(label, S) / 2, L.grid_top + grid_h + 6, label, kInk, S);
  }
  if (!o.col_title.empty())
    draw_text(c, L.grid_left + (grid_w - text_width(o.col_title, S)) / 2,
              L.grid_top + grid_h + 6 + line + 8, o.col_title, kSubtle, S);
  if (L.show_row_title) {
    const int span = std::max(grid_h, L.bar_height);
    draw_text_up(c, kPad, L.grid_top + (span - text_width(o.row_title, S)) / 2, o.row_title,
                 kSubtle, S);
  }

  // Colour bar: top is the maximum. Tick marks and labels at both ends.
  for (int k = 0; k < L.bar_height; ++k) {
    const double t = L.bar_height > 1 ? 1.0 - static_cast<double>(k) / (L.bar_height - 1) : 1.0;
    fill_rect(c, L.bar_left, L.bar_top + k, L.bar_width, 1, colormap(t));
  }
  draw_rect(c, L.bar_left - 1, L.bar_top - 1, L.bar_width + 2, L.bar_height + 2, kSubtle);
  const int label_x = L.bar_left + L.bar_width + 6;
  const int bar_bottom = L.bar_top + L.bar_height - 1;
  fill_rect(c, L.bar_left + L.bar_width, L.bar_top, 4, 1, kSubtle);
  fill_rect(c, L.bar_left + L.bar_width, bar_bottom, 4, 1, kSubtle);
  // The labels sit inside the bar's height so a short grid cannot push them off the image.
  draw_text(c, label_x, L.bar_top, format_value(range.hi, o.value_decimals), kInk, S);
  draw_text(c, label_x, bar_bottom - body_height(S) + 1, format_value(range.lo, o.value_decimals),
            kInk, S);

  save_png(c, path);
  return order;
}

// ---------------------------------------------------------------------------------------
// Bar chart
// ---------------------------------------------------------------------------------------

namespace {

struct BarLayout {
  Frame f;
  int slot = 0;              // pixels per bar, gap included
  bool vertical_labels = false;
  int label_every = 1;
  int reference_label_w = 0;
};

std::string reference_text(const BarChartOptions& o) {
  const std::string v = format_value(o.reference, 3);
  return o.reference_label.empty() ? v : o.reference_label + " " + v;
}

BarLayout layout_bars(const char* who, const std::vector<double>& values,
                      const std::vector<std::string>& labels, const std::string& title,
                      const std::string& y_label, const BarChartOptions& o) {
  VIMOE_CHECK(!values.empty(), who, ": no values");
  VIMOE_CHECK(values.size() == labels.size(), who, ": ", values.size(), " values but ",
              labels.size(), " labels");
  VIMOE_CHECK(std::isnan(o.reference) || std::isfinite(o.reference), who,
              ": reference must be finite (or NaN for none), got ", o.reference);
  double lo = 0, hi = 0;
  for (size_t i = 0; i < values.size(); ++i) {
    VIMOE_CHECK(std::isfinite(values[i]), who, ": value ", i, " (", labels[i], ") is ", values[i]);
    lo = std::min(lo, values[i]);
    hi = std::max(hi, values[i]);
  }
  if (std::isfinite(o.reference)) {
    lo = std::min(lo, o.reference);
    hi = std::max(hi, o.reference);
  }
  if (lo == hi) hi = 1;  // all zero: still a sensible axis

  BarLayout L;
  const int n = static_cast<int>(values.size());
  const int line = text_height(S);
  constexpr int kMaxPlotWidth = 1200, kMinPlotWidth = 480, kPlotHeight = 320;
  L.f.y = nice_ticks(lo, hi, 5);
  L.f.x = Ticks{0, static_cast<double>(n), 1, {}};
  int ytick_w = 0;
  for (double v : L.f.y.values) ytick_w = std::max(ytick_w, text_width(format_tick(v, L.f.y.step), S));
  const int label_w = max_text_width(labels, S);

  // Bars share the width budget; labels stay horizontal when every few bars can carry one
  // (short labels such as expert numbers), else turn upright (class names). Either way they
  // thin out rather than touch.
  const int hslot = label_w + 12;
  L.slot = hslot * n <= kMaxPlotWidth ? std::max(hslot, std::min(kMinPlotWidth / n, std::max(hslot, 90)))
                                      : std::max(2, kMaxPlotWidth / n);
  const int every_h = (hslot + L.slot - 1) / L.slot;
  if (every_h <= 3) {
    L.label_every = every_h;
  } else {
    L.vertical_labels = true;
    L.label_every = (line + 4 + L.slot - 1) / L.slot;
  }
  const int label_area = L.vertical_labels ? label_w : line;
  if (std::isfinite(o.reference)) L.reference_label_w = text_width(reference_text(o), S) + 10;

  L.f.left = kPad + (y_label.empty() ? 0 : line + 12) + ytick_w + 10;
  L.f.top = kPad + title_block(title);
  L.f.right = L.f.left + n * L.slot;
  L.f.bottom = L.f.top + kPlotHeight;
  const int below = 8 + label_area + (o.x_label.empty() ? 0 : 10 + line);
  L.f.width = std::max(L.f.right + 1 + L.reference_label_w + kPad, text_width(title, S) + 2 * kPad);
  L.f.height = L.f.bottom + 1 + below + kPad;
  return L;
}

// Horizontal dashes: reads as a reference rather than data.
void draw_dashed_hline(Canvas& c, int x0, int x1, int y, Rgb color, int thickness) {
  for (int x = x0; x <= x1; ++x)
    if (((x - x0) / 8) % 2 == 0) fill_rect(c, x, y - thickness / 2, 1, thickness, color);
}

void draw_y_axis(Canvas& c, const Frame& f, const std::string& y_label, bool grid) {
  for (double v : f.y.values) {
    const int y = f.py(v);
    if (grid) fill_rect(c, f.left, y, f.right - f.left + 1, 1, kGrid);
    fill_rect(c, f.left - 5, y, 5, 1, kInk);
    const std::string t = format_tick(v, f.y.step);
    draw_text(c, f.left - 9 - text_width(t, S), y - body_height(S) / 2, t, kInk, S);
  }
  if (!y_label.empty()) {
    // Never taller than the plot: a long title on a short chart is cut, not spilled.
    const std::string t = shorten(y_label, std::min(kMaxLabelChars, (f.bottom - f.top) / (kCharAdvance * S)));
    draw_text_up(c, kPad, (f.top + f.bottom - text_width(t, S)) / 2, t, kSubtle, S);
  }
}

}  // namespace

Frame bar_chart_layout(const std::vector<double>& values, const std::vector<std::string>& labels,
                       const std::string& title, const std::string& y_label,
                       const BarChartOptions& options) {
  return layout_bars("bar_chart_layout", values, labels, title, y_label, options).f;
}

void bar_chart_png(const std::string& path, const std::vector<double>& values,
                   const std::vector<std::string>& labels, const std::string& title,
                   const std::string& y_label, const BarChartOptions& o) {
  const BarLayout L = layout_bars("bar_chart_png", values, labels, title, y_label, o);
  const Frame& f = L.f;
  const int line = text_height(S);
  Canvas c(f.width, f.height);
  draw_title(c, title, kPad);
  draw_y_axis(c, f, y_label, /*grid=*/true);

  const int gap = L.slot >= 6 ? std::max(1, L.slot / 5) : 0;
  const int y0 = f.py(0);
  for (size_t i = 0; i < values.size(); ++i) {
    const int x0 = f.px(static_cast<double>(i)), x1 = f.px(static_cast<double>(i + 1));
    const int yv = f.py(values[i]);
    const int top = std::min(y0, yv), h = std::max(std::abs(yv - y0), values[i] != 0 ? 1 : 0);
    fill_rect(c, x0 + gap / 2, top, std::max(1, x1 - x0 - gap), h, bar_color());
    if (static_cast<int>(i) % L.label_every != 0) continue;
    const std::string label = shorten(labels[i]);
    const int cx = (x0 + x1) / 2;
    if (L.vertical_labels)
      draw_text_up(c, cx - body_height(S) / 2, f.bottom + 8, label, kInk, S);
    else
      draw_text(c, cx - text_width(label, S) / 2, f.bottom + 8, label, kInk, S);
  }
  // Axes over the bars: the zero line and the y axis.
  fill_rect(c, f.left, y0, f.right - f.left + 1, 1, kInk);
  fill_rect(c, f.left - 1, f.top, 1, f.bottom - f.top + 1, kInk);
  if (std::isfinite(o.reference)) {
    const int yr = f.py(o.reference);
    draw_dashed_hline(c, f.left, f.right, yr, series_color(1), 2);
    draw_text(c, f.right + 10, yr - body_height(S) / 2, reference_text(o), series_color(1), S);
  }
  if (!o.x_label.empty()) {
    const int label_area = L.vertical_labels ? max_text_width(labels, S) : line;
    draw_text(c, (f.left + f.right - text_width(o.x_label, S)) / 2, f.bottom + 8 + label_area + 10,
              o.x_label, kSubtle, S);
  }
  save_png(c, path);
}

// ---------------------------------------------------------------------------------------
// Line chart
// ---------------------------------------------------------------------------------------

namespace {

bool finite_point(const Series& s, size_t i) {
  return std::isfinite(s.xs[i]) && std::isfinite(s.ys[i]);
}

Frame layout_lines(const char* who, const std::vector<Series>& series, const std::string& title,
                   const std::string& x_label, const std::string& y_label,
                   const LineChartOptions& o) {
  VIMOE_CHECK(!series.empty(), who, ": no series");
  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo, ylo = xlo, yhi = -xlo;
  std::vector<std::string> names;
  for (const Series& s : series) {
    VIMOE_CHECK(s.xs.size() == s.ys.size(), who, ": series '", s.name, "' has ", s.xs.size(),
                " xs but ", s.ys.size(), " ys");
    size_t finite = 0;
    for (size_t i = 0; i < s.xs.size(); ++i) {
      if (!finite_point(s, i)) continue;
      ++finite;
      xlo = std::min(xlo, s.xs[i]);
      xhi = std::max(xhi, s.xs[i]);
      ylo = std::min(ylo, s.ys[i]);
      yhi = std::max(yhi, s.ys[i]);
    }
    VIMOE_CHECK(finite > 0, who, ": series '", s.name, "' has no finite point (", s.xs.size(),
                " points)");
    names.push_back(s.name);
  }
  const int line = text_height(S);
  Frame f;
  f.width = o.width;
  f.height = o.height;
  const int legend_w = 28 + 8 + max_text_width(names, S);
  f.top = kPad + title_block(title);
  f.bottom = o.height - 1 - kPad - (x_label.empty() ? 0 : line + 10) - line - 10;
  VIMOE_CHECK(f.bottom - f.top >= 80, who, ": a ", o.width, " x ", o.height,
              " image leaves no room for the plot");
  for (double v : {o.y_include_lo, o.y_include_hi})
    if (std::isfinite(v)) {
      ylo = std::min(ylo, v);
      yhi = std::max(yhi, v);
    }
  f.y = nice_ticks(ylo, yhi, std::clamp((f.bottom - f.top) / 60, 2, 8));
  int ytick_w = 0;
  for (double v : f.y.values) ytick_w = std::max(ytick_w, text_width(format_tick(v, f.y.step), S));
  f.left = kPad + (y_label.empty() ? 0 : line + 12) + ytick_w + 10;
  f.right = o.width - 1 - kPad - legend_w - 24;
  VIMOE_CHECK(f.right - f.left >= 120, who, ": a ", o.width, " x ", o.height,
              " image leaves no room for the plot beside the legend and tick labels");
  // As many x ticks as fit with their labels clear of each other.
  for (int intervals = std::clamp((f.right - f.left) / 90, 2, 10);; --intervals) {
    f.x = nice_ticks(xlo, xhi, intervals);
    int widest = 0;
    for (double v : f.x.values) widest = std::max(widest, text_width(format_tick(v, f.x.step), S));
    const double spacing = (f.right - f.left) / std::max<double>(1, f.x.values.size() - 1);
    if (spacing >= widest + 16 || intervals == 1) break;
  }
  if (o.integer_x && f.x.step < 1) {
    // Whole numbers one apart; a single x sits between its two neighbours.
    Ticks t;
    t.step = 1;
    const double widen = xlo == xhi ? 1 : 0;
    const double lo = std::floor(xlo) - widen, hi = std::ceil(xhi) + widen;
    for (double v = lo; v <= hi; ++v) t.values.push_back(v == 0 ? 0.0 : v);
    t.lo = t.values.front();
    t.hi = t.values.back();
    f.x = t;
  }
  return f;
}

}  // namespace

Frame line_chart_layout(const std::vector<Series>& series, const std::string& title,
                        const std::string& x_label, const std::string& y_label,
                        const LineChartOptions& options) {
  return layout_lines("line_chart_layout", series, title, x_label, y_label, options);
}

void line_chart_png(const std::string& path, const std::vector<Series>& series,
                    const std::string& title, const std::string& x_label, const std::string& y_label,
                    const LineChartOptions& o) {
  const Frame f = layout_lines("line_chart_png", series, title, x_label, y_label, o);
  const int line = text_height(S);
  Canvas c(f.width, f.height);
  draw_title(c, title, kPad);
  draw_y_axis(c, f, y_label, /*grid=*/true);
  for (double v : f.x.values) {
    const int x = f.px(v);
    fill_rect(c, x, f.top, 1, f.bottom - f.top + 1, kGrid);
    fill_rect(c, x, f.bottom + 1, 1, 5, kInk);
    const std::string t = format_tick(v, f.x.step);
    draw_text(c, x - text_width(t, S) / 2, f.bottom + 10, t, kInk, S);
  }
  if (!x_label.empty())
    draw_text(c, (f.left + f.right - text_width(x_label, S)) / 2, f.bottom + 10 + line + 10,
              x_label, kSubtle, S);

  for (size_t k = 0; k < series.size(); ++k) {
    const Series& s = series[k];
    const Rgb color = series_color(k);
    size_t finite = 0;
    for (size_t i = 0; i < s.xs.size(); ++i) finite += finite_point(s, i) ? 1 : 0;
    const bool mark_all = finite <= o.markers_up_to;
    for (size_t i = 0; i < s.xs.size(); ++i) {
      if (!finite_point(s, i)) continue;
      const int x = f.px(s.xs[i]), y = f.py(s.ys[i]);
      const bool prev = i > 0 && finite_point(s, i - 1);
      const bool next = i + 1 < s.xs.size() && finite_point(s, i + 1);
      if (prev) draw_line(c, f.px(s.xs[i - 1]), f.py(s.ys[i - 1]), x, y, color, 2);
      if (mark_all || (!prev && !next)) fill_disc(c, x, y, 3, color);
    }
  }
  draw_rect(c, f.left, f.top, f.right - f.left + 1, f.bottom - f.top + 1, kSubtle);
  fill_rect(c, f.left, f.bottom, f.right - f.left + 1, 1, kInk);
  fill_rect(c, f.left, f.top, 1, f.bottom - f.top + 1, kInk);

  // Legend beside the plot, never over the data.
  const int lx = f.right + 24;
  for (size_t k = 0; k < series.size(); ++k) {
    const int y = f.top + 4 + static_cast<int>(k) * (line + 8);
    const int mid = y + body_height(S) / 2;
    fill_rect(c, lx, mid - 1, 28, 3, series_color(k));
    draw_text(c, lx + 36, y, shorten(series[k].name), kInk, S);
  }
  save_png(c, path);
}

// ---------------------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------------------

std::string csv_quote(std::string_view field) {
  const bool needs = field.find_first_of(",\"\r\n") != std::string_view::npos ||
                     (!field.empty() && (field.front() == ' ' || field.back() == ' '));
  if (!needs) return std::string(field);
  std::string out = "\"";
  for (char ch : field) {
    if (ch == '"') out += '"';
    out += ch;
  }
  out += '"';
  return out;
}

std::string csv_number(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, res.ptr);
}

void csv_write(const std::string& path, const std::vector<std::string>& header,
               const std::vector<std::vector<std::string>>& rows) {
  VIMOE_CHECK(!header.empty(), "csv_write: empty header (for ", path, ")");
  std::string text;
  auto append_row = [&text](const std::vector<std::string>& fields) {
    for (size_t i = 0; i < fields.size(); ++i) {
      if (i > 0) text += ',';
      text += csv_quote(fields[i]);
    }
    text += '\n';
  };
  append_row(header);
  for (size_t r = 0; r < rows.size(); ++r) {
    VIMOE_CHECK(rows[r].size() == header.size(), "csv_write: row ", r, " has ", rows[r].size(),
                " fields but the header has ", header.size(), " (for ", path, ")");
    append_row(rows[r]);
  }
  io::write_file_atomic(path, text, "csv_write");
}

}  // namespace vimoe::plot
