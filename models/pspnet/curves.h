// The training curves of a run folder, in two forms:
//   curves.png     loss against iterations and, once the run has been evaluated, validation mIoU, drawn by gnuplot
//                  from <run_dir>/metrics.jsonl. The trainer redraws it after every evaluation and at the end, so the
//                  picture follows a long run.
//   tensorboard/   the same scalars as TensorBoard event files (framework/tensorboard.h), written as they are logged
//                  when the config's tensorboard key is true: `tensorboard --logdir runs/` shows every run.
//
// Next to curves.png stay the inputs gnuplot read (loss.dat, miou.dat, curves.gnuplot) and what it printed
// (curves.log: warnings such as "empty x range" on a run of one logged step go there, not to the terminal).
// gnuplot is optional: without it the data and script are still written and a one-line note says how to install it.
#pragma once

#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "framework/tensorboard.h"

namespace strata::pspnet {

// Writes loss.dat, miou.dat and curves.gnuplot from <run_dir>/metrics.jsonl, then runs gnuplot on them. Returns
// true when curves.png was drawn; false when gnuplot is not installed (a note on stderr, once per process) or
// failed (a line naming curves.log).
bool plot_curves(const std::string& run_dir);

// The numbers of one metrics.jsonl line as scalars at its "iteration": val/<key> for evaluation results (mIoU,
// mAcc, allAcc, object_class_accuracy), train/<key> for the rest (loss, main_loss, aux_loss, lr, images_per_s);
// "iteration" and "seconds" are not scalars. Does nothing when tb is null.
void write_scalars(TensorBoardWriter* tb, const nlohmann::json& line);

}  // namespace strata::pspnet
