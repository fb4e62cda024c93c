// A legend under the prediction panels: one colour swatch and class name for each class that appears in the
// image's label or prediction (so that ADE20K's 150 classes do not fill the picture), and "ignore" for label
// pixels with the ignore label (drawn white in the panel).
//
// The names are drawn with a small built-in 5x7 bitmap font (capitals, digits and common punctuation; lower case
// is drawn as capitals, anything else as '?'), so no font library or font file is needed.
#pragma once

#include <string>
#include <vector>

#include "data/image.h"

namespace strata::pspnet {

// Draws `text` with the built-in font, its top-left corner at (x, y), `scale` pixels per font pixel; pixels outside
// the image are clipped. Each character advances 6 * scale pixels.
void draw_text(Image& image, int x, int y, const std::string& text, Rgb color, int scale = 1);
// Width in pixels of `text` at scale 1 (6 per character, less the last column of spacing).
int text_width(const std::string& text);

// `panel` with a legend strip appended at the bottom (the panel's own pixels unchanged, the width unchanged). The
// classes listed are those present in `label` or `prediction`, in class order; names past the end of `names` are
// shown as "class <i>". Colours come from `palette`, as prediction_panel draws them. Drawn at scale 1 (5x7 letters)
// on panels narrower than 1200 pixels, larger on wider ones.
Image with_legend(const Image& panel, const LabelMap& label, const LabelMap& prediction,
                  const std::vector<std::string>& names, const std::vector<Rgb>& palette, int ignore_label = 255);

}  // namespace strata::pspnet
