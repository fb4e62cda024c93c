// Legends for the prediction panels and the 5x7 bitmap font they are written in (see legend.h).
#include "models/pspnet/legend.h"

#include <algorithm>
#include <cctype>

namespace strata::pspnet {

namespace {

// One glyph: 7 rows of 5 columns, '#' = ink. Capitals, digits and the punctuation found in dataset class names.
struct Glyph {
    char c;
    const char* rows[7];
};

const Glyph kFont[] = {
    {'A', {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'B', {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}},
    {'C', {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}},
    {'D', {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."}},
    {'E', {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}},
    {'F', {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}},
    {'G', {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}},
    {'H', {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}},
    {'I', {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'J', {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}},
    {'K', {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}},
    {'L', {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}},
    {'M', {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}},
    {'N', {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}},
    {'O', {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'P', {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}},
    {'Q', {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}},
    {'R', {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}},
    {'S', {".####", "#....", "#....", ".###.", "....#", "....#", "####."}},
    {'T', {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}},
    {'U', {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}},
    {'V', {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}},
    {'W', {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}},
    {'X', {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}},
    {'Y', {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}},
    {'Z', {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}},
    {'0', {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}},
    {'1', {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}},
    {'2', {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}},
    {'3', {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}},
    {'4', {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}},
    {'5', {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}},
    {'6', {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}},
    {'7', {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}},
    {'8', {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}},
    {'9', {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}},
    {'-', {".....", ".....", ".....", ".###.", ".....", ".....", "....."}},
    {'_', {".....", ".....", ".....", ".....", ".....", ".....", "#####"}},
    {'.', {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}},
    {',', {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}},
    {'(', {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}},
    {')', {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}},
    {'/', {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}},
    {':', {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}},
    {'\'', {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}},
    {'&', {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}},
    {'+', {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}},
    {'?', {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}},
};

const Glyph* glyph_of(char c) {
    char up = char(std::toupper(static_cast<unsigned char>(c)));
    if (up == ' ') return nullptr;
    for (const Glyph& g : kFont)
        if (g.c == up) return &g;
    for (const Glyph& g : kFont)
        if (g.c == '?') return &g;
    return nullptr;
}

void fill_rect(Image& image, int x0, int y0, int w, int h, Rgb color) {
    for (int y = std::max(y0, 0); y < std::min(y0 + h, image.h); ++y)
        for (int x = std::max(x0, 0); x < std::min(x0 + w, image.w); ++x)
            std::copy(color.begin(), color.end(), image.pixel(y, x));
}

// The colour prediction_panel gives a label value (white for the ignore label and for values without a colour).
Rgb panel_color(int32_t label, const std::vector<Rgb>& palette) {
    if (label >= 0 && size_t(label) < palette.size() && label != 255) return palette[size_t(label)];
    return Rgb{255, 255, 255};
}

}  // namespace

void draw_text(Image& image, int x, int y, const std::string& text, Rgb color, int scale) {
    for (size_t i = 0; i < text.size(); ++i) {
        const Glyph* g = glyph_of(text[i]);
        if (!g) continue;
        int gx = x + int(i) * 6 * scale;
        for (int r = 0; r < 7; ++r)
            for (int col = 0; col < 5; ++col)
                if (g->rows[r][col] == '#') fill_rect(image, gx + col * scale, y + r * scale, scale, scale, color);
    }
}

int text_width(const std::string& text) { return text.empty() ? 0 : 6 * int(text.size()) - 1; }

Image with_legend(const Image& panel, const LabelMap& label, const LabelMap& prediction,
                  const std::vector<std::string>& names, const std::vector<Rgb>& palette, int ignore_label) {
    // Which classes to list: those present in the label or the prediction, in class order; "ignore" last.
    std::vector<int32_t> present;
    bool has_ignore = false;
    for (const LabelMap* map : {&label, &prediction})
        for (int32_t v : map->data) {
            if (v == ignore_label) has_ignore = true;
            else if (v >= 0) present.push_back(v);
        }
    std::sort(present.begin(), present.end());
    present.erase(std::unique(present.begin(), present.end()), present.end());
    struct Entry {
        std::string name;
        Rgb color;
    };
    std::vector<Entry> entries;
    for (int32_t c : present)
        entries.push_back({size_t(c) < names.size() ? names[size_t(c)] : "class " + std::to_string(c),
                           panel_color(c, palette)});
    if (has_ignore) entries.push_back({"ignore", panel_color(ignore_label, palette)});

    // Layout: entries flow left to right and wrap at the panel width. An entry is a 9x9 swatch with a grey border,
    // 3 pixels of space, the name (7 pixels tall, centred on the swatch) and 10 pixels before the next entry; all
    // of it twice or more as large on panels of large images, so that the names stay readable.
    const int k = std::max(1, panel.w / 600);
    const int margin = 4 * k, swatch = 9 * k, row_h = 13 * k, gap = 10 * k;
    std::vector<std::pair<int, int>> at;  // top-left corner of each entry
    int x = margin, y = margin;
    for (const Entry& e : entries) {
        int w = swatch + 3 * k + k * text_width(e.name);
        if (x > margin && x + w > panel.w - margin) {
            x = margin;
            y += row_h;
        }
        at.push_back({x, y});
        x += w + gap;
    }
    int legend_h = entries.empty() ? 0 : y + row_h + margin - 2 * k;
    Image out(panel.h + legend_h, panel.w, 3);
    std::fill(out.data.begin(), out.data.end(), uint8_t(255));
    for (int r = 0; r < panel.h; ++r)
        for (int c = 0; c < panel.w; ++c) std::copy(panel.pixel(r, c), panel.pixel(r, c) + 3, out.pixel(r, c));
    for (size_t i = 0; i < entries.size(); ++i) {
        int ex = at[i].first, ey = panel.h + at[i].second;
        fill_rect(out, ex, ey, swatch, swatch, Rgb{96, 96, 96});
        fill_rect(out, ex + k, ey + k, swatch - 2 * k, swatch - 2 * k, entries[i].color);
        draw_text(out, ex + swatch + 3 * k, ey + k, entries[i].name, Rgb{0, 0, 0}, k);
    }
    return out;
}

}  // namespace strata::pspnet
