// `infer`: segments images with trained weights.
//
//     build/bin/infer runs/contextscenes --input photo.jpg --output out/    a run folder: its config and weights
//     build/bin/infer configs/contextscenes.json --input photo.jpg --output out/
//     build/bin/infer configs/contextscenes.json --input folder/ --output out/
//     build/bin/infer configs/contextscenes.json --input list.txt --output out/    (one image path per line)
//
// For each image it writes <name>.png, a palette PNG whose pixel values are the predicted class indices (viewable
// in colour, readable as labels), and <name>_overlay.png, the input blended with the colours.
//
// Large images: in slide mode the image is resized to base_size before the network sees it, and the labels are
// produced at the original size band by band, so memory grows with the image's pixels, not with classes x pixels
// (models/pspnet/evaluate.h). An image whose prediction would not fit in memory (a big one in whole mode, say) is
// refused before any forward pass, naming its size, the estimate and the key to change.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>

#include "data/dataset.h"
#include "data/image.h"
#include "framework/check.h"
#include "models/pspnet/cli.h"
#include "models/pspnet/eval_report.h"
#include "models/pspnet/evaluate.h"

using namespace strata;
using namespace strata::pspnet;
namespace fs = std::filesystem;

namespace {

const char* kUsage =
    "usage: infer [config.json | run folder] [key=value ...] --input <image|folder|list.txt> --output <folder>\n"
    "  Writes <name>.png (palette PNG of class indices) and <name>_overlay.png per image.\n"
    "  weights= (default: <run_dir>/model.safetensors); the eval_* keys choose the protocol. Given a run folder\n"
    "  (or its config.json), the run's saved config is the base and run_dir is that folder.\n";

bool is_image(const fs::path& p) {
    std::string e = p.extension().string();
    std::transform(e.begin(), e.end(), e.begin(), ::tolower);
    return e == ".jpg" || e == ".jpeg" || e == ".png" || e == ".bmp";
}

std::vector<fs::path> collect_inputs(const std::string& input) {
    fs::path in(input);
    STRATA_CHECK(fs::exists(in), "--input '", input, "' does not exist");
    std::vector<fs::path> files;
    if (fs::is_directory(in)) {
        for (const auto& e : fs::directory_iterator(in))
            if (e.is_regular_file() && is_image(e.path())) files.push_back(e.path());
        std::sort(files.begin(), files.end());
        STRATA_CHECK(!files.empty(), "--input folder '", input, "' holds no .jpg/.jpeg/.png/.bmp images");
    } else if (is_image(in)) {
        files.push_back(in);
    } else {
        std::ifstream list(in);
        std::string line;
        int number = 0;
        while (std::getline(list, line)) {
            ++number;
            if (line.empty()) continue;
            std::string path = line.substr(0, line.find(' '));
            fs::path p = fs::path(path).is_absolute() ? fs::path(path) : in.parent_path() / path;
            STRATA_CHECK(fs::exists(p), input, ":", number, ": image '", p.string(), "' does not exist");
            files.push_back(p);
        }
        STRATA_CHECK(!files.empty(), "--input list '", input, "' is empty");
    }
    return files;
}

int infer_main(int argc, char** argv) {
    CommandLine cl = parse_command_line(argc, argv, {}, {"--input", "--output"}, kUsage);
    STRATA_CHECK(cl.options.count("--input") && cl.options.count("--output"), "infer needs --input and --output\n",
                 kUsage);
    RunConfig config = load_program_config(cl);
    TrainedModel trained = load_trained_model(config);
    PSPNet& model = *trained.model;
    EvalOptions options = config.eval.protocol;
    options.device = trained.device;
    check_eval_options(options, model.config().backbone.output_stride);  // before reading any image

    std::vector<Rgb> palette = voc_palette();
    if (config.data.format == "voc" && !config.data.root.empty()) {
        fs::path colors = fs::path(config.data.root) / "class_colors.txt";
        fs::path names = fs::path(config.data.root) / "class_names.txt";
        if (fs::exists(colors) && fs::exists(names)) {
            std::vector<Rgb> own = read_class_info(names.string(), colors.string()).colors;
            for (size_t i = 0; i < own.size(); ++i) palette[i] = own[i];
        }
    }
    fs::path out(cl.options["--output"]);
    fs::create_directories(out);
    std::vector<fs::path> files = collect_inputs(cl.options["--input"]);
    for (size_t i = 0; i < files.size(); ++i) {
        Image image = load_rgb(files[i].string(), config.data.max_image_pixels);
        LabelMap pred = predict_labels_of(model, image, options, files[i].string());
        std::string stem = files[i].stem().string();
        save_palette_png((out / (stem + ".png")).string(), pred, palette);
        save_png((out / (stem + "_overlay.png")).string(), prediction_overlay(image, pred, palette));
        std::cout << "[" << i + 1 << "/" << files.size() << "] " << files[i].string() << " -> "
                  << (out / (stem + ".png")).string() << "\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_program(infer_main, argc, argv); }
