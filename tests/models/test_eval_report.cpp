// What evaluations write and print: outputs named after the protocol (a second evaluation does not overwrite the
// first), curves.png and TensorBoard scalars refreshed at every evaluation during training, progress lines when
// stderr is not a terminal, the legend of the prediction panels, and the warnings for sets that cannot be scored.
#include <doctest/doctest.h>

#include <cstdio>
#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "data/image.h"
#include "framework/check.h"
#include "models/pspnet/config.h"
#include "models/pspnet/curves.h"
#include "models/pspnet/eval_report.h"
#include "models/pspnet/legend.h"
#include "models/pspnet/trainer.h"
#include "tests/models/tiny_model.h"
#include "tests/tensorboard_reader.h"

using namespace strata;
using namespace strata::pspnet;
using strata::testing::quiet;
namespace fs = std::filesystem;

namespace {

// the trainer tests' tiny run, 4 iterations
RunConfig tiny_run(const std::string& run_dir) { return strata::testing::tiny_run(run_dir, {"iterations=4"}); }

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

int count_lines(const std::string& path) {
    std::ifstream in(path);
    std::string line;
    int n = 0;
    while (std::getline(in, line))
        if (!line.empty()) ++n;
    return n;
}

bool gnuplot_installed() { return std::system("command -v gnuplot > /dev/null 2>&1") == 0; }

// Runs f with the process's stdout and stderr (file descriptors 1 and 2, which child processes inherit) sent to a
// file, and returns what was written there.
template <typename F>
std::string capture_output(const std::string& path, F f) {
    std::fflush(stdout);
    std::fflush(stderr);
    int saved_out = dup(1), saved_err = dup(2);
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    REQUIRE(fd >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    f();
    std::fflush(stdout);
    std::fflush(stderr);
    std::cerr.flush();
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    return read_file(path);
}

}  // namespace

TEST_CASE("eval: outputs are named after the protocol, or the path eval_output names") {
    EvalOptions o;
    CHECK(eval_protocol_name(o) == "whole");
    o.flip = true;
    CHECK(eval_protocol_name(o) == "whole_flip");
    o.mode = "slide";
    o.scales = {0.5, 0.75, 1.0, 1.25, 1.5, 1.75};
    CHECK(eval_protocol_name(o) == "slide_ms0.5-1.75_flip");
    o.flip = false;
    o.scales = {1.5};
    CHECK(eval_protocol_name(o) == "slide_s1.5");

    RunConfig c = load_config("", {"eval_mode=slide", "scales=[0.5,1.0,1.75]", "eval_flip=true", "run_dir=runs/x"});
    EvalOutputPaths p = eval_output_paths(c);
    CHECK(p.json == "runs/x/eval/slide_ms0.5-1.75_flip.json");
    CHECK(p.predictions == "runs/x/eval/slide_ms0.5-1.75_flip");
    c.eval.output = "results/voc_val.json";
    p = eval_output_paths(c);
    CHECK(p.json == "results/voc_val.json");
    CHECK(p.predictions == "results/voc_val");
    c.eval.output = "results/voc_val.txt";
    CHECK_THROWS_WITH_AS(eval_output_paths(c), doctest::Contains("eval_output must name a .json file"),
                         Error);
}

TEST_CASE("eval: a second evaluation with another protocol does not overwrite the first") {
    std::string dir = "build/test_runs/eval_names";
    fs::remove_all(dir);
    RunConfig c = tiny_run(dir);
    c.train.iterations = 2;
    c.eval.max_images = 2;
    TrainOptions o = quiet();
    o.evaluate = true;
    TrainResult r = train(c, o);
    // the end-of-training evaluation follows the same scheme
    REQUIRE(fs::exists(dir + "/eval/whole.json"));
    CHECK(fs::exists(dir + "/eval/whole/val_000000.png"));
    CHECK(r.eval["protocol"] == "whole");
    std::string first = read_file(dir + "/eval/whole.json");

    PSPNet model(c.model);
    RunConfig slide = c;
    slide.eval.protocol = {.mode = "slide", .crop_h = 41, .crop_w = 41, .base_size = 73, .flip = true};
    nlohmann::json e = evaluate_run(model, slide, false);
    CHECK(e["protocol"] == "slide_flip");
    CHECK(fs::exists(dir + "/eval/slide_flip.json"));
    CHECK(fs::exists(dir + "/eval/slide_flip/val_000000.png"));
    CHECK(read_file(dir + "/eval/whole.json") == first);  // untouched

    RunConfig chosen = c;
    chosen.eval.output = dir + "/mine/result.json";
    evaluate_run(model, chosen, false);
    CHECK(fs::exists(dir + "/mine/result.json"));
    CHECK(fs::exists(dir + "/mine/result/val_000000.png"));
    CHECK(read_file(dir + "/eval/whole.json") == first);
}

TEST_CASE("curves: redrawn and written to TensorBoard at every evaluation during training") {
    std::string dir = "build/test_runs/curves";
    fs::remove_all(dir);
    RunConfig c = tiny_run(dir);
    c.train.iterations = 100;
    c.train.eval_every = 2;
    c.eval.max_images = 1;
    TrainOptions o = quiet();
    o.stop_after = 5;  // stopped before the end: only the periodic evaluations (at 2 and 4) can have drawn
    TrainResult r = train(c, o);
    REQUIRE(r.interrupted);
    CHECK(count_lines(dir + "/miou.dat") == 2);
    CHECK(count_lines(dir + "/loss.dat") == 2);
    CHECK(fs::exists(dir + "/curves.gnuplot"));
    if (gnuplot_installed()) {
        CHECK(fs::exists(dir + "/curves.png"));
        CHECK(fs::exists(dir + "/curves.log"));  // gnuplot's own output goes here, not to the terminal
    }

    // the scalars as TensorBoard events: the log lines at 2 and 4 and the evaluations at 2 and 4
    REQUIRE(fs::is_directory(dir + "/tensorboard"));
    std::vector<testing::TbEvent> events;
    for (const auto& f : fs::directory_iterator(dir + "/tensorboard")) {
        CHECK(f.path().filename().string().rfind("events.out.tfevents.", 0) == 0);
        std::vector<testing::TbEvent> e = testing::read_tensorboard_events(read_file(f.path().string()));
        events.insert(events.end(), e.begin(), e.end());
    }
    std::vector<int64_t> loss_steps, miou_steps;
    std::vector<float> miou_values;
    for (const testing::TbEvent& e : events) {
        if (e.tag == "train/loss") loss_steps.push_back(e.step);
        if (e.tag == "val/mIoU") miou_steps.push_back(e.step), miou_values.push_back(e.value);
    }
    CHECK(loss_steps == std::vector<int64_t>{2, 4});
    CHECK(miou_steps == std::vector<int64_t>{2, 4});
    // the same numbers as metrics.jsonl
    std::ifstream m(dir + "/metrics.jsonl");
    std::string line;
    std::vector<float> logged;
    while (std::getline(m, line)) {
        nlohmann::json j = nlohmann::json::parse(line);
        if (j.contains("mIoU")) logged.push_back(j["mIoU"].get<float>());
    }
    CHECK(miou_values == logged);

    // tensorboard=false writes none
    std::string off = "build/test_runs/curves_off";
    fs::remove_all(off);
    RunConfig c2 = tiny_run(off);
    c2.train.iterations = 2;
    c2.train.tensorboard = false;
    train(c2, quiet());
    CHECK_FALSE(fs::exists(off + "/tensorboard"));
}

TEST_CASE("curves: gnuplot's warnings go to curves.log; without gnuplot, one note") {
    std::string dir = "build/test_runs/curves_tiny";
    fs::remove_all(dir);
    fs::create_directories(dir);
    // one logged step and one evaluation: gnuplot warns "empty x range" on each single-point plot
    std::ofstream(dir + "/metrics.jsonl") << "{\"iteration\": 1, \"loss\": 2.0, \"aux_loss\": 1.5}\n"
                                          << "{\"iteration\": 1, \"mIoU\": 0.25}\n";
    if (gnuplot_installed()) {
        bool drawn = false;
        std::string printed = capture_output(dir + "/printed.txt", [&] { drawn = plot_curves(dir); });
        CHECK(drawn);
        CHECK_MESSAGE(printed.empty(), printed);
        CHECK(fs::exists(dir + "/curves.png"));
        CHECK(read_file(dir + "/curves.log").find("empty x range") != std::string::npos);
    }
    // no gnuplot on the PATH: the data and script are still written, and a note (one line, once per process)
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    setenv("PATH", (dir + "/no_such_bin").c_str(), 1);
    fs::remove(dir + "/miou.dat");
    bool drawn = true;
    std::string printed = capture_output(dir + "/printed.txt", [&] {
        drawn = plot_curves(dir);
        plot_curves(dir);
    });
    setenv("PATH", path.c_str(), 1);
    CHECK_FALSE(drawn);
    CHECK(fs::exists(dir + "/miou.dat"));
    CHECK(std::count(printed.begin(), printed.end(), '\n') <= 1);
    if (gnuplot_installed()) CHECK(printed.find("note: gnuplot is not installed") == 0);  // not noted before
    CHECK(printed.find("error") == std::string::npos);
}

namespace {
volatile std::sig_atomic_t g_got_sigint = 0;
void note_sigint(int) { g_got_sigint = 1; }
}  // namespace

TEST_CASE("curves: a Ctrl-C that kills gnuplot still reaches the trainer's handler") {
    // system() ignores SIGINT in the caller while gnuplot runs; plot_curves passes it on afterwards, so a Ctrl-C
    // during a plot still stops training with a checkpoint. A stand-in gnuplot interrupts itself.
    std::string dir = "build/test_runs/curves_sigint";
    fs::remove_all(dir);
    fs::create_directories(dir + "/bin");
    std::ofstream(dir + "/metrics.jsonl") << "{\"iteration\": 2, \"loss\": 2.0}\n";
    std::ofstream(dir + "/bin/gnuplot") << "#!/bin/sh\nkill -INT $$\n";
    fs::permissions(dir + "/bin/gnuplot", fs::perms::owner_all);
    std::string path = std::getenv("PATH") ? std::getenv("PATH") : "";
    setenv("PATH", (fs::absolute(dir + "/bin").string() + ":" + path).c_str(), 1);
    g_got_sigint = 0;
    auto previous = std::signal(SIGINT, note_sigint);
    std::string printed = capture_output(dir + "/printed.txt", [&] { CHECK_FALSE(plot_curves(dir)); });
    std::signal(SIGINT, previous);
    setenv("PATH", path.c_str(), 1);
    CHECK(g_got_sigint == 1);
}

TEST_CASE("eval progress: a line per image when stderr is not a terminal, every 5% for long sets") {
    std::FILE* f = std::tmpfile();
    REQUIRE(f != nullptr);
    EvalProgress p(f, false);
    for (int i = 1; i <= 3; ++i) p(i, 3);
    EvalProgress q(f, false);
    for (int i = 1; i <= 100; ++i) q(i, 100);
    q.finish();
    std::rewind(f);
    std::string text;
    char buf[256];
    while (std::fgets(buf, sizeof buf, f)) text += buf;
    std::fclose(f);
    CHECK(text.find("eval 1/3 images  0:00 elapsed  ETA 0:00\n") != std::string::npos);
    CHECK(text.find("eval 3/3 images") != std::string::npos);
    CHECK(text.find('\r') == std::string::npos);
    int lines = 0;
    for (char ch : text) lines += ch == '\n';
    CHECK(lines == 3 + 20);  // 100 images: 5, 10, ..., 100
    CHECK(text.find("eval 5/100 images") != std::string::npos);
    CHECK(text.find("eval 4/100 images") == std::string::npos);
}

TEST_CASE("prediction panels: a legend with a swatch and the name of each class present") {
    std::vector<Rgb> palette = {Rgb{10, 200, 30}, Rgb{200, 10, 10}, Rgb{30, 30, 220}};
    std::vector<std::string> names = {"background", "aeroplane", "bicycle"};
    Image panel(20, 100, 3);
    std::fill(panel.data.begin(), panel.data.end(), uint8_t(128));
    LabelMap label(20, 30), pred(20, 30);
    for (int i = 0; i < 600; ++i) {
        label.data[size_t(i)] = i < 300 ? 0 : 255;
        pred.data[size_t(i)] = i < 100 ? 2 : 0;
    }
    Image out = with_legend(panel, label, pred, names, palette);
    REQUIRE(out.w == panel.w);
    REQUIRE(out.h > panel.h);
    CHECK(std::equal(panel.data.begin(), panel.data.end(), out.data.begin()));  // the panel itself unchanged
    auto count = [&](Rgb color) {
        int n = 0;
        for (int y = panel.h; y < out.h; ++y)
            for (int x = 0; x < out.w; ++x)
                if (std::equal(color.begin(), color.end(), out.pixel(y, x))) ++n;
        return n;
    };
    CHECK(count(palette[0]) == 7 * 7);  // the swatch of class 0 (labelled and predicted)...
    CHECK(count(palette[2]) == 7 * 7);  // ... and of class 2 (predicted); class 1 is absent
    CHECK(count(palette[1]) == 0);
    CHECK(count(Rgb{96, 96, 96}) == 3 * (9 * 9 - 7 * 7));  // three framed swatches: background, bicycle, ignore
    CHECK(count(Rgb{0, 0, 0}) > 50);                       // and their names in black

    // the text is the font's glyphs: "I" drawn at (0, 0) on white
    Image t(7, 5, 3);
    std::fill(t.data.begin(), t.data.end(), uint8_t(255));
    draw_text(t, 0, 0, "i", Rgb{0, 0, 0});
    const char* expected[7] = {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."};
    for (int y = 0; y < 7; ++y)
        for (int x = 0; x < 5; ++x) CHECK((t.pixel(y, x)[0] == 0) == (expected[y][x] == '#'));
    CHECK(text_width("car") == 17);
}

TEST_CASE("eval: a set whose labels are all ignore_label gets a warning, not a meaningless mIoU") {
    std::string dir = "build/test_runs/all_ignore";
    fs::remove_all(dir);
    fs::create_directories(dir + "/data");
    std::ofstream list(dir + "/data/val.txt");
    for (int i = 0; i < 2; ++i) {
        Image image(33, 33, 3);
        std::fill(image.data.begin(), image.data.end(), uint8_t(40 * i));
        LabelMap label(33, 33);
        std::fill(label.data.begin(), label.data.end(), 255);
        save_png(dir + "/data/img" + std::to_string(i) + ".png", image);
        save_label_png(dir + "/data/lbl" + std::to_string(i) + ".png", label);
        list << "img" << i << ".png lbl" << i << ".png\n";
    }
    list.close();
    RunConfig c = tiny_run(dir);
    c.data.format = "list";
    c.data.root = dir + "/data";
    c.data.val_split = "val.txt";
    c.model.classes = 3;
    PSPNet model(c.model);
    nlohmann::json e;
    std::string printed = capture_output(dir + "/printed.txt", [&] { e = evaluate_run(model, c, false); });
    CHECK(printed.find("warning: every label pixel") == 0);  // said even by the quiet evaluations during training
    REQUIRE(e.contains("warning"));
    CHECK(e["warning"].get<std::string>().find("every label pixel of the 2 evaluated images") != std::string::npos);
    CHECK(e["warning"].get<std::string>().find("ignore_label (255)") != std::string::npos);
    CHECK(e["labelled_pixels"] == 0);

    // training on it says so once (its loss is 0 whatever the weights are), instead of a quiet loss of 0
    RunConfig t = c;
    t.data.train_split = "val.txt";
    t.train.batch_size = 2;
    t.train.log_every = 1;
    t.data.train_h = 41;
    t.data.train_w = 41;
    t.run_dir = dir + "/run";
    TrainOptions loud = quiet();
    loud.verbose = true;
    TrainResult r;
    printed = capture_output(dir + "/printed_train.txt", [&] { r = train(t, loud); });
    CHECK(r.losses.front() == 0.0f);
    CHECK_MESSAGE(printed.find("warning: iterations 1-1 saw no labelled pixel: every label pixel was "
                               "ignore_label=255, so the loss is 0") != std::string::npos, printed);
    size_t first = printed.find("saw no labelled pixel");
    CHECK(printed.find("saw no labelled pixel", first + 1) == std::string::npos);  // once, not every log line

    // a set with labels has no warning
    RunConfig scenes = tiny_run(dir);
    scenes.eval.max_images = 1;
    PSPNet model8(scenes.model);
    nlohmann::json ok = evaluate_run(model8, scenes, false);
    CHECK_FALSE(ok.contains("warning"));
    CHECK(ok["labelled_pixels"].get<int64_t>() == 73 * 73);
}

TEST_CASE("eval: object-class accuracy only where object classes are defined, and they must be classes") {
    std::string dir = "build/test_runs/object_classes";
    fs::remove_all(dir);
    RunConfig c = tiny_run(dir);
    c.eval.max_images = 1;
    c.eval.save_predictions = 0;
    PSPNet model(c.model);
    CHECK_FALSE(evaluate_run(model, c, false).contains("object_class_accuracy"));
    c.eval.object_classes = {5, 6, 7};
    CHECK(evaluate_run(model, c, false).contains("object_class_accuracy"));
    c.eval.object_classes = {5, 6, 9};
    CHECK_THROWS_WITH_AS(evaluate_run(model, c, false),
                         doctest::Contains("'object_classes' holds 9, which is not a class"), Error);
}

TEST_CASE("train: a missing ContextScenes data_root says to run make data") {
    RunConfig c = tiny_run("build/test_runs/no_data");
    c.data.format = "voc";
    c.data.root = "build/test_runs/nowhere/datasets/contextscenes";
    CHECK_THROWS_WITH_AS(open_config_dataset(c, true), doctest::Contains("`make data`"), Error);
    c.data.root = "build/test_runs/nowhere/datasets/contextscenes/";
    CHECK_THROWS_WITH_AS(train(c, quiet()), doctest::Contains("`make data`"), Error);
}
