// Training curves with gnuplot (see curves.h).
#include "models/pspnet/curves.h"

#include <sys/wait.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>

#include <nlohmann/json.hpp>

namespace strata::pspnet {

namespace fs = std::filesystem;

namespace {

// Quotes a path for gnuplot's single-quoted strings and for the shell's (a ' is closed, escaped and reopened).
std::string shell_quoted(const std::string& s) {
    std::string out = "'";
    for (char ch : s) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
    return out + "'";
}

// std::system, except that a Ctrl-C (or SIGTERM) that arrived while the command ran reaches the caller: system()
// ignores SIGINT in the calling process while it waits, so the trainer's handler would otherwise never see a
// Ctrl-C pressed during a plot. Returns the command's exit status (-1 if it did not exit normally).
int run_shell(const std::string& command) {
    int status = std::system(command.c_str());
    if (status == -1) return -1;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM)) std::raise(WTERMSIG(status));
    else if (code == 128 + SIGINT || code == 128 + SIGTERM) std::raise(code - 128);  // the shell reports it so
    return code;
}

std::string gnuplot_quoted(const std::string& s) {
    std::string out = "'";
    for (char ch : s) out += ch == '\'' ? std::string("''") : std::string(1, ch);
    return out + "'";
}

}  // namespace

bool plot_curves(const std::string& run_dir) {
    fs::path dir(run_dir);
    std::ifstream in(dir / "metrics.jsonl");
    std::ofstream loss(dir / "loss.dat"), miou(dir / "miou.dat");
    std::string line;
    bool has_loss = false, has_miou = false;
    while (std::getline(in, line)) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (j.is_discarded() || !j.contains("iteration")) continue;
        if (j.contains("loss")) {
            loss << j["iteration"] << " " << j["loss"] << " " << j.value("aux_loss", 0.0) << "\n";
            has_loss = true;
        }
        if (j.contains("mIoU")) {
            miou << j["iteration"] << " " << j["mIoU"] << "\n";
            has_miou = true;
        }
    }
    loss.close();
    miou.close();
    if (!has_loss && !has_miou) return false;  // nothing logged yet

    std::ofstream script(dir / "curves.gnuplot");
    script << "set terminal pngcairo size 900,420 font ',10'\n"
           << "set output " << gnuplot_quoted((dir / "curves.png").string()) << "\n"
           << "set multiplot layout 1," << (has_loss && has_miou ? 2 : 1) << "\n"
           << "set xlabel 'iteration'\nset grid\n";
    if (has_loss)
        script << "set title 'training loss'\nset key top right\nplot "
               << gnuplot_quoted((dir / "loss.dat").string())
               << " using 1:2 with lines title 'loss (main + aux weight x aux)', '' using 1:3 with lines title 'aux loss'\n";
    if (has_miou)
        script << "set title 'validation mIoU'\nset yrange [0:1]\nset xrange [0:*]\nset key bottom right\nplot "
               << gnuplot_quoted((dir / "miou.dat").string())
               << " using 1:2 with linespoints pointtype 7 title 'mIoU'\n";
    script << "unset multiplot\n";
    script.close();

    static bool noted_missing = false;
    if (run_shell("command -v gnuplot > /dev/null 2>&1") != 0) {
        if (!noted_missing)
            std::cerr << "note: gnuplot is not installed, so no curves.png (apt-get install gnuplot-nox); the data is in "
                      << (dir / "loss.dat").string() << " and miou.dat\n";
        noted_missing = true;
        return false;
    }
    // gnuplot warns on stderr about things that are normal on tiny runs (one point: "empty x range"); its output
    // goes to curves.log so that it does not interleave with the training log.
    fs::path log = dir / "curves.log";
    std::string cmd = "gnuplot " + shell_quoted((dir / "curves.gnuplot").string()) + " > " +
                      shell_quoted(log.string()) + " 2>&1";
    if (run_shell(cmd) != 0) {
        std::cerr << "gnuplot could not draw " << (dir / "curves.png").string() << ": see " << log.string() << "\n";
        return false;
    }
    return true;
}

void write_scalars(TensorBoardWriter* tb, const nlohmann::json& line) {
    if (!tb || !line.contains("iteration")) return;
    int64_t step = line["iteration"];
    for (auto it = line.begin(); it != line.end(); ++it) {
        const std::string& key = it.key();
        if (key == "iteration" || key == "seconds" || !it.value().is_number()) continue;
        bool val = key == "mIoU" || key == "mAcc" || key == "allAcc" || key == "object_class_accuracy";
        tb->add_scalar((val ? "val/" : "train/") + key, it.value().get<double>(), step);
    }
}

}  // namespace strata::pspnet
