// `train`: trains PSPNet from a config, then evaluates it on the validation split.
//
//     build/bin/train configs/contextscenes.json                 a fresh run into the config's run_dir
//     build/bin/train configs/voc2012_pspnet50.json data_root=... batch_size=8
//     build/bin/train --resume run_dir=runs/contextscenes        continue the newest checkpoint of a run
//
// The run folder receives config.json (the resolved config), metrics.jsonl, tensorboard/, checkpoints/,
// model.safetensors, eval/whole.json with its prediction panels in eval/whole/, and curves.png. Ctrl-C saves a
// checkpoint and stops; --resume continues exactly.
#include <filesystem>
#include <iostream>

#include "framework/check.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/cli.h"
#include "models/pspnet/config.h"
#include "models/pspnet/trainer.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

const char* kUsage =
    "usage: train [config.json] [key=value ...] [--resume] [--no-eval]\n"
    "  Trains PSPNet; every config key (models/pspnet/config.cpp) can be set as key=value.\n"
    "  --resume   continue the run in run_dir from its newest checkpoint (its saved config is the base)\n"
    "  --no-eval  skip the evaluation at the end\n";

int train_main(int argc, char** argv) {
    CommandLine cl = parse_command_line(argc, argv, {"--resume", "--no-eval"}, {}, kUsage);
    TrainOptions options;
    options.resume = cl.flags.count("--resume") > 0;
    options.evaluate = cl.flags.count("--no-eval") == 0;
    nlohmann::json config = load_config(cl.config_path, cl.overrides);
    if (options.resume) {
        std::string run_dir = config["run_dir"];
        STRATA_CHECK(has_checkpoint(run_dir), "--resume: no checkpoint in '", run_dir, "' (expected ", run_dir,
                     "/checkpoints/latest); pass the run's folder as run_dir=..., or start without --resume");
        // the run's own resolved config, with the command line's overrides on top
        if (cl.config_path.empty()) config = load_config(run_dir + "/config.json", cl.overrides);
    }
    TrainResult r = train(config, options);
    return r.interrupted ? 130 : 0;
}

}  // namespace

int main(int argc, char** argv) { return run_program(train_main, argc, argv); }
