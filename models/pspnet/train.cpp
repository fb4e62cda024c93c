// `train`: trains PSPNet from a config, then evaluates it on the validation split.
//
//     build/bin/train configs/contextscenes.json                 a fresh run into the config's run_dir
//     build/bin/train configs/voc2012_pspnet50.json data_root=... batch_size=8
//     build/bin/train --resume run_dir=runs/contextscenes        continue the newest checkpoint of a run
//     build/bin/train runs/contextscenes --resume                the same
//
// The run folder receives config.json (the resolved config), metrics.jsonl, tensorboard/, checkpoints/,
// model.safetensors, eval/whole.json with its prediction panels in eval/whole/, and curves.png. Ctrl-C (exit code
// 130) or SIGTERM (143) saves a checkpoint and stops; --resume continues exactly.
#include <filesystem>
#include <iostream>

#include "framework/check.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/cli.h"
#include "models/pspnet/run_folder.h"
#include "models/pspnet/trainer.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

const char* kUsage =
    "usage: train [config.json | run folder] [key=value ...] [--resume [--reset-optimizer]] [--no-eval]\n"
    "  Trains PSPNet; every config key below can be set in the config file or as key=value.\n"
    "  --resume   continue the run in run_dir (or the run folder given) from its newest checkpoint (its saved\n"
    "             config is the base)\n"
    "  --reset-optimizer  with --resume: start the momentum from zero instead of the checkpoint's optimizer state\n"
    "             (for a checkpoint whose optimizer file is lost or damaged)\n"
    "  --no-eval  skip the evaluation at the end\n"
    "  Ctrl-C or SIGTERM saves a checkpoint and exits with 130 or 143.\n";

int train_main(int argc, char** argv) {
    CommandLine cl = parse_command_line(argc, argv, {"--resume", "--no-eval", "--reset-optimizer"}, {}, kUsage);
    TrainOptions options{.resume = cl.flags.count("--resume") > 0, .evaluate = cl.flags.count("--no-eval") == 0,
                         .reset_optimizer = cl.flags.count("--reset-optimizer") > 0};
    STRATA_CHECK(!options.reset_optimizer || options.resume, "--reset-optimizer only applies with --resume");
    RunConfig config = load_program_config(cl);
    std::string run_folder = run_folder_of(cl);
    STRATA_CHECK(options.resume || run_folder.empty() || config.run_dir != run_folder, "'", cl.config_path,
                 "' is a run folder: continue it with --resume, or train a new run from its config with "
                 "run_dir=<another folder>");
    if (options.resume) {
        const std::string run_dir = config.run_dir;
        STRATA_CHECK(has_checkpoint(run_dir), "--resume: no checkpoint in '", run_dir, "' (expected ", run_dir,
                     "/checkpoints/latest); pass the run's folder as run_dir=..., or start without --resume");
        // the run's own resolved config, with the command line's overrides on top
        if (cl.config_path.empty()) config = load_config(run_dir + "/config.json", cl.overrides);
    }
    TrainResult r = train(config, options);
    if (r.stop_signal != 0) return exit_code_for_signal(r.stop_signal);
    return r.interrupted ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) { return run_program(train_main, argc, argv); }
