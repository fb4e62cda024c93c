// `eval`: evaluates trained weights on a config's validation split (semseg's tool/test.py).
//
//     build/bin/eval runs/contextscenes                             a run folder: the run's own config and weights
//     build/bin/eval runs/contextscenes/config.json eval_flip=true  the same, with an override
//     build/bin/eval configs/contextscenes.json                     the weights of the config's run_dir
//     build/bin/eval configs/voc2012_pspnet50.json weights=w.safetensors eval_mode=slide scales=[0.5,0.75,1,1.25,1.5,1.75] eval_flip=true
//
// Prints progress (a line per image or per 5% when stderr is not a terminal), then mIoU, mAcc, allAcc and the
// per-class table; writes <run_dir>/eval/<protocol>.json and prediction panels in <run_dir>/eval/<protocol>/, named
// after the mode, scales and flip (e.g. eval/slide_ms0.5-1.75_flip.json), so that evaluating with another protocol
// never overwrites an earlier result (nor the one made at the end of training); eval_output=<file.json> chooses
// the path instead. Under mpirun (`mpirun -np 2 build/bin/eval ...`) the ranks share the images out and the counts
// are summed, so the result is the single-process one (docs/distributed.md).
#include <filesystem>
#include <iostream>

#include "framework/check.h"
#include "framework/communicator.h"
#include "models/pspnet/cli.h"
#include "models/pspnet/eval_report.h"

using namespace strata;
using namespace strata::pspnet;

namespace {

const char* kUsage =
    "usage: eval [config.json | run folder] [key=value ...]\n"
    "  Evaluates weights= (default: <run_dir>/model.safetensors) on the config's val_split. Given a run folder\n"
    "  (or its config.json), the run's saved config is the base (data_root, model, classes, ...) and run_dir is\n"
    "  that folder; key=value overrides apply on top.\n"
    "  Protocol keys: eval_mode=whole|slide test_h test_w base_size scales=[...] eval_flip=true|false\n"
    "  Writes <run_dir>/eval/<protocol>.json (e.g. whole.json, slide_ms0.5-1.75_flip.json) and prediction panels\n"
    "  in <run_dir>/eval/<protocol>/; eval_output=<file.json> writes there instead.\n";

int eval_main(int argc, char** argv) {
    CommandLine cl = parse_command_line(argc, argv, {}, {}, kUsage);
    RunConfig config = load_program_config(cl);
    // Under mpirun each rank evaluates its share of the images (on its own GPU with device=cuda) and the counts are
    // summed over the ranks: the mIoU of one process. Rank 0 alone writes and prints.
    std::shared_ptr<Communicator> world = world_communicator();
    const bool root = world->rank() == 0;
    TrainedModel trained = load_trained_model(config);
    trained.device = data_parallel_device(trained.device, *world);
    trained.model->to(trained.device);
    if (root) std::filesystem::create_directories(config.run_dir);
    evaluate_run(*trained.model, config, root, world.get());
    if (root) std::cout << "wrote " << eval_output_paths(config).json << "\n";
    return 0;
}

}  // namespace

int main(int argc, char** argv) { return run_program(eval_main, argc, argv); }
