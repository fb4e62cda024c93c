// Evaluation outputs, progress lines and the report (see eval_report.h).
#include "models/pspnet/eval_report.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>

#include "framework/check.h"
#include "framework/safetensors.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/legend.h"

namespace strata::pspnet {

namespace fs = std::filesystem;

std::string format_duration(double seconds) {
    int s = int(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
    return buf;
}

std::string eval_protocol_name(const EvalOptions& o) {
    std::string name = o.mode;
    auto [lo, hi] = std::minmax_element(o.scales.begin(), o.scales.end());
    if (o.scales.size() > 1) name += "_ms" + format_number(*lo) + "-" + format_number(*hi);
    else if (!o.scales.empty() && o.scales[0] != 1.0) name += "_s" + format_number(o.scales[0]);
    if (o.flip) name += "_flip";
    return name;
}

EvalOutputPaths eval_output_paths(const RunConfig& c) {
    const std::string& chosen = c.eval.output;
    EvalOutputPaths p;
    if (chosen.empty()) {
        std::string protocol = eval_protocol_name(c.eval.protocol);
        p.json = (fs::path(c.run_dir) / "eval" / (protocol + ".json")).string();
        p.predictions = (fs::path(c.run_dir) / "eval" / protocol).string();
    } else {
        fs::path j(chosen);
        STRATA_CHECK(j.extension() == ".json", "config: eval_output must name a .json file (its prediction panels go "
                     "to the folder of the same name beside it), got '", chosen, "'");
        p.json = j.string();
        p.predictions = j.replace_extension().string();
    }
    return p;
}

EvalProgress::EvalProgress(std::FILE* out_, bool terminal_)
    : out(out_), terminal(terminal_), start(std::chrono::steady_clock::now()), last_line(start) {}

void EvalProgress::operator()(int64_t done, int64_t total) {
    auto now = std::chrono::steady_clock::now();
    double elapsed = std::chrono::duration<double>(now - start).count();
    double eta = done > 0 ? elapsed / double(done) * double(total - done) : 0.0;
    if (terminal) {
        std::fprintf(out, "\revaluating %lld/%lld | %s elapsed | ETA %s   ", (long long)done, (long long)total,
                     format_duration(elapsed).c_str(), format_duration(eta).c_str());
        std::fflush(out);
        wrote_in_place = true;
        return;
    }
    // A line per image up to 20 images, then one per 5% of the set; and never more than 30 s without a line, since
    // one image can take that long with sliding windows, several scales and flip.
    int64_t every = std::max<int64_t>(1, total / 20);
    bool due = done == total || done % every == 0 ||
               std::chrono::duration<double>(now - last_line).count() >= 30.0;
    if (!due) return;
    std::fprintf(out, "eval %lld/%lld images  %s elapsed  ETA %s\n", (long long)done, (long long)total,
                 format_duration(elapsed).c_str(), format_duration(eta).c_str());
    std::fflush(out);
    last_line = now;
}

void EvalProgress::finish() {
    if (wrote_in_place) std::fprintf(out, "\n");
    wrote_in_place = false;
}

nlohmann::json evaluate_run(PSPNet& model, const RunConfig& c, bool verbose, Communicator* comm) {
    validate_config(c);  // a config edited in code gets the checks load_config gives a file
    const int rank = comm ? comm->rank() : 0, ranks = comm ? comm->world_size() : 1;
    const bool writes = rank == 0;  // rank 0 alone writes and prints
    verbose = verbose && writes;
    std::shared_ptr<Dataset> val = open_config_dataset(c, false);
    EvalOptions options = c.eval.protocol;
    options.device = model.parameters().front().device();
    EvalOutputPaths out = eval_output_paths(c);
    if (writes && c.eval.save_predictions > 0) fs::create_directories(out.predictions);
    std::vector<Rgb> palette = val->classes().colors;
    if (palette.empty()) palette = voc_palette();
    const std::vector<std::string>& names = c.data.class_names.empty() ? val->classes().names : c.data.class_names;
    const std::vector<int64_t>& objects = c.eval.object_classes;
    const int64_t max_images = c.eval.max_images;
    const int64_t images = max_images > 0 ? std::min(max_images, val->size()) : val->size();

    std::cout << std::flush;  // what was printed before comes before the progress lines when both go to one file
    EvalProgress progress(stderr, isatty(fileno(stderr)));
    auto t0 = std::chrono::steady_clock::now();
    SegmentationMetrics m = evaluate_dataset(
        model, *val, options, max_images, c.data.ignore_label,
        [&](int64_t i, const Sample& s, const LabelMap& pred) {
            if (!writes || i >= c.eval.save_predictions) return;
            Image panel = prediction_panel(s.image, s.label, pred, palette);
            save_png((fs::path(out.predictions) / (s.name + ".png")).string(),
                     with_legend(panel, s.label, pred, names, palette, c.data.ignore_label));
        },
        [&](int64_t done, int64_t total) {
            if (verbose) progress(done, total);
        },
        rank, ranks);
    if (ranks > 1) m.sum_over_ranks(*comm);
    progress.finish();
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    nlohmann::json result = m.to_json(names);
    if (!objects.empty()) result["object_class_accuracy"] = m.group_accuracy(objects);
    int64_t labelled = 0;
    for (int64_t t : m.target()) labelled += t;
    result["labelled_pixels"] = labelled;
    if (labelled == 0) {
        std::string warning =
            str("every label pixel of the ", images, " evaluated image", images == 1 ? "" : "s", " of ",
                val->description(), " is ignore_label (", c.data.ignore_label, "), so there is nothing to score and "
                "the mIoU would be meaningless. Check label_dir, label_mapping and ignore_label, or evaluate more "
                "images (max_eval_images)");
        result["warning"] = warning;
        if (writes) std::cerr << "warning: " << warning << "\n";
    }
    result["split"] = val->description();
    result["protocol"] = eval_protocol_name(options);
    result["mode"] = options.mode;
    result["scales"] = options.scales;
    result["flip"] = options.flip;
    result["images"] = images;
    result["seconds"] = seconds;
    if (ranks > 1) result["ranks"] = ranks;
    if (!writes) return result;
    fs::path json_path(out.json);
    if (json_path.has_parent_path()) fs::create_directories(json_path.parent_path());
    write_file_atomically(out.json, result.dump(2) + "\n");
    if (verbose) {
        std::cout << "evaluation (" << result["protocol"].get<std::string>() << ") of " << images << " image"
                  << (images == 1 ? "" : "s");
        if (images < val->size()) std::cout << " (max_eval_images=" << max_images << ")";
        std::cout << " from " << val->description() << "\n";
        if (labelled == 0) std::cout << "no mIoU: no labelled pixel (see the warning above)\n";
        else std::cout << m.table(names);
        if (!objects.empty() && labelled > 0)
            std::cout << "object class accuracy (right class among pixels labelled and predicted as objects): "
                      << result["object_class_accuracy"].get<double>() << "\n";
        std::cout << std::flush;
    }
    return result;
}

TrainedModel load_trained_model(const RunConfig& c) {
    std::string weights = c.weights.path.empty() ? c.run_dir + "/model.safetensors" : c.weights.path;
    STRATA_CHECK(std::filesystem::exists(weights), "no weights at '", weights,
                 "': train first, or pass weights=<file.safetensors>");
    TrainedModel trained{std::make_unique<PSPNet>(c.model), use_running_config(c, true)};
    load_weights(weights, *trained.model, c.weights.options);  // strict: every tensor, each used
    trained.model->to(trained.device);
    trained.model->eval();
    return trained;
}

}  // namespace strata::pspnet
