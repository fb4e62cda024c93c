// The training loop, its logging and the end-of-run report (see trainer.h).
#include "models/pspnet/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "data/loader.h"
#include "framework/autograd.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/parallel.h"
#include "framework/profile.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/config.h"
#include "models/pspnet/curves.h"
#include "models/pspnet/eval_report.h"
#include "models/pspnet/evaluate.h"
#include "models/pspnet/run_folder.h"
#include "models/pspnet/numerics.h"

namespace strata::pspnet {

namespace fs = std::filesystem;

namespace {

std::string format_duration(double seconds) {
    int s = int(seconds + 0.5);
    char buf[32];
    if (s >= 3600) std::snprintf(buf, sizeof buf, "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60);
    else std::snprintf(buf, sizeof buf, "%d:%02d", s / 60, s % 60);
    return buf;
}

// How many pixels of a batch's labels (N, H, W) I32 on the CPU are not ignore_label.
int64_t labelled_pixels(const Tensor& labels, int64_t ignore) {
    const int32_t* l = labels.i32();
    int64_t count = 0;
    for (int64_t i = 0; i < labels.numel(); ++i) count += l[i] != ignore;
    return count;
}

TransformConfig train_transform_config(const nlohmann::json& c) {
    TransformConfig t = train_transforms(c["train_h"], c["train_w"]);
    t.scale_min = c["scale_min"];
    t.scale_max = c["scale_max"];
    t.rotate_min = c["rotate_min"];
    t.rotate_max = c["rotate_max"];
    t.blur_p = c["blur"].get<bool>() ? 0.5f : 0.0f;
    t.flip_p = c["flip"].get<bool>() ? 0.5f : 0.0f;
    STRATA_CHECK(t.scale_min > 0 && t.scale_min <= t.scale_max, "config: need 0 < scale_min <= scale_max, got ",
                 t.scale_min, " and ", t.scale_max);
    return t;
}

// Keeps the metrics lines of iterations <= `iteration` (a resumed run rewrites what came after its checkpoint).
void truncate_metrics(const fs::path& path, int64_t iteration) {
    std::ifstream in(path);
    if (!in.good()) return;
    std::string line, kept;
    while (std::getline(in, line)) {
        nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
        if (!j.is_discarded() && j.value("iteration", int64_t(0)) <= iteration) kept += line + "\n";
    }
    in.close();
    write_file_atomically(path.string(), kept);
}

// The recipe of one training step, read once from the config.
struct StepRecipe {
    int64_t iterations;  // max_iter of the poly schedule
    float base_lr, power, aux_weight;
    int64_t ignore_label;
};

struct StepLosses {
    float total = 0, main = 0, aux = 0;  // aux is 0 without the auxiliary head
};

// One iteration of semseg's train.py: the paper's recipe, nothing else.
StepLosses training_step(PSPNet& model, SGD& optimizer, const Tensor& images, const Tensor& labels,
                         int64_t iteration, const StepRecipe& r, const std::string& divergence_advice) {
    // poly learning rate: base_lr * (1 - iteration/max_iter)^power; the head group runs at head_lr_mult times it
    optimizer.set_lr(poly_lr(r.base_lr, iteration, r.iterations, r.power));
    // forward: the main logits from the pyramid pooling head, the aux logits from layer3 (training only)
    PSPNetOutput out = model.forward_all(images);
    // loss = CE(logits, labels) + aux_weight * CE(aux_logits, labels); ignore_label pixels count in neither
    Tensor main_loss = cross_entropy(out.logits, labels, r.ignore_label);
    Tensor loss = main_loss, aux_loss;
    if (out.aux_logits.defined()) {
        aux_loss = cross_entropy(out.aux_logits, labels, r.ignore_label);
        loss = main_loss + aux_loss * r.aux_weight;
    }
    StepLosses losses{loss.item(), main_loss.item(), aux_loss.defined() ? aux_loss.item() : 0.0f};
    STRATA_CHECK(std::isfinite(losses.total), "training diverged at iteration ", iteration + 1, ": loss is ",
                 losses.total, ". ", divergence_advice);
    // backward, then SGD with momentum and weight decay
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
    return losses;
}

// What happened between two log lines: their averages become one line of metrics.jsonl.
struct LogWindow {
    double loss = 0, main_loss = 0, aux_loss = 0;
    int64_t steps = 0, images = 0, labelled_pixels = 0;

    void add(const StepLosses& step, int64_t batch_images, int64_t batch_labelled) {
        loss += step.total, main_loss += step.main, aux_loss += step.aux;
        ++steps, images += batch_images, labelled_pixels += batch_labelled;
    }
    nlohmann::json line(int64_t iteration, float lr, double seconds_since_last, double seconds) const {
        return {{"iteration", iteration}, {"loss", loss / steps}, {"main_loss", main_loss / steps},
                {"aux_loss", aux_loss / steps}, {"lr", lr},
                {"images_per_s", seconds_since_last > 0 ? double(images) / seconds_since_last : 0.0},
                {"seconds", seconds}};
    }
};

}  // namespace

std::shared_ptr<Dataset> open_config_dataset(const nlohmann::json& c, bool train) {
    // the format reads its own keys from the config (data/dataset.h)
    std::shared_ptr<Dataset> ds = open_dataset(c["dataset"], c[train ? "train_split" : "val_split"], c);
    STRATA_CHECK(ds->size() > 0, ds->description(), " is empty");
    STRATA_CHECK(ds->num_classes() == 0 || ds->num_classes() == c["classes"].get<int>(), "config: classes = ",
                 c["classes"].get<int>(), " but ", ds->description(), " has ", ds->num_classes(),
                 " classes; set classes=", ds->num_classes());
    return ds;
}

TrainResult train(const nlohmann::json& c, const TrainOptions& options) {
    validate_config(c);  // a config built or edited in code gets the checks load_config gives a file
    TrainResult result;
    std::string run_dir = c["run_dir"];
    fs::create_directories(run_dir);
    RunFolderLock lock(run_dir);
    if (int threads = c["threads"]; threads > 0) set_num_threads(threads);
    ReproducibleGemmScope gemm_mode(c["reproducible"]);
    if (c["profile"]) set_profiling(true);
    GemmChoiceScope gemm_pick(parse_gemm_choice(c["gemm"]));
    std::string device_note;
    Device device = select_device(c["device"], &device_note);
    if (options.verbose && !device_note.empty()) std::cerr << device_note << "\n";
    uint64_t seed = c["seed"];
    manual_seed(seed);

    std::shared_ptr<Dataset> train_set = open_config_dataset(c, true);
    PSPNet model(model_config(c));
    int64_t train_h = c["train_h"], train_w = c["train_w"];
    STRATA_CHECK(model.output_size(train_h) == train_h && model.output_size(train_w) == train_w,
                 "config: train_h and train_w must be of the form 8k+1 (473, 713, 97, ...) so that the upsampled "
                 "logits match the label crop; got ", train_h, "x", train_w, ", the model would output ",
                 model.output_size(train_h), "x", model.output_size(train_w));
    if (!c["weights"].get<std::string>().empty()) {
        WeightsReport loaded = load_weights(c["weights"], model, weights_options(c, false));
        if (options.verbose) std::cerr << describe(loaded);
    }
    model.to(device);  // before the optimizer, so that its momentum buffers are made on the same device

    SGDOptions so;
    so.lr = c["base_lr"];
    so.momentum = c["momentum"];
    so.weight_decay = c["weight_decay"];
    std::vector<Tensor> backbone, head;
    for (auto& [name, t] : model.backbone_parameters()) backbone.push_back(t);
    for (auto& [name, t] : model.head_parameters()) head.push_back(t);
    SGD optimizer({ParamGroup{"backbone", backbone, 1.0f}, ParamGroup{"head", head, float(c["head_lr_mult"])}}, so);

    TrainingPosition pos;
    fs::path metrics_path = fs::path(run_dir) / "metrics.jsonl";
    if (options.resume) {
        for (const std::string& name : remove_partial_checkpoints(run_dir))
            if (options.verbose)
                std::cerr << "removed " << run_dir << "/checkpoints/" << name << ", left by an interrupted save\n";
        ResumeOptions ro;
        ro.iterations = c["iterations"];
        ro.reset_optimizer = options.reset_optimizer;
        pos = load_checkpoint(run_dir, model, optimizer, ro);
        if (ro.reset_optimizer && options.verbose)
            std::cerr << "--reset-optimizer: resuming with the momentum set to zero (the checkpoint's optimizer "
                         "state is not used)\n";
        if (!c["allow_nonfinite_weights"].get<bool>())
            require_finite(training_state(model, optimizer), "cannot resume " + run_dir,
                           "The checkpoint is damaged or was saved by a diverged run; set "
                           "allow_nonfinite_weights=true to resume from it anyway");
        default_generator().set_state(pos.rng_seed, pos.rng_counter);
        truncate_metrics(metrics_path, pos.iteration);
        if (options.verbose) std::cerr << "resuming " << run_dir << " at iteration " << pos.iteration << "\n";
    } else {
        fs::remove(metrics_path);
        write_file_atomically((fs::path(run_dir) / "config.json").string(), c.dump(2) + "\n");
    }

    LoaderConfig lc;
    lc.batch_size = c["batch_size"];
    lc.seed = seed;
    lc.workers = c["workers"];
    lc.start_step = pos.loader_step;
    STRATA_CHECK(lc.batch_size >= 1, "config: batch_size must be >= 1");
    Loader loader(train_set, train_transform_config(c), lc);

    const StepRecipe recipe{c["iterations"], c["base_lr"], c["power"], c["aux_weight"], c["ignore_label"]};
    const int64_t max_iter = recipe.iterations, ignore = recipe.ignore_label;
    const float base_lr = recipe.base_lr;
    const int64_t log_every = std::max<int64_t>(1, c["log_every"]);
    const int64_t save_every = c["save_every"], eval_every = c["eval_every"];
    const bool tty = options.verbose && isatty(fileno(stderr));
    MetricsLog metrics(metrics_path.string());
    const std::string divergence_advice =
        str("Lower base_lr (now ", base_lr, ") or check the labels and the weights; the checkpoints in ", run_dir,
            "/checkpoints hold only finite values (every save is checked)");
    std::unique_ptr<TensorBoardWriter> tensorboard = open_run_tensorboard(c, run_dir);  // null: tensorboard=false

    std::optional<StopSignals> stop_signals(std::in_place);  // Ctrl-C and SIGTERM stop the loop, not the evaluation
    model.train();
    auto t0 = std::chrono::steady_clock::now();
    auto last_log = t0;
    const int64_t start_iter = pos.iteration;
    LogWindow window;
    bool warned_unlabelled = false;

    while (pos.iteration < max_iter) {
        // the batch the loader's threads prepared while the previous step ran
        Batch batch = loader.next();
        // the step itself: poly LR, forward with aux, CE + aux_weight CE_aux, backward, SGD
        StepLosses step = training_step(model, optimizer, batch.images.to(device), batch.labels.to(device),
                                        pos.iteration, recipe, divergence_advice);
        const float lr = optimizer.lr();
        pos.iteration++;
        // The gradients first, so that a NaN born in the backward is named there rather than in the weights.
        NamedTensors checked = named_gradients(model);
        for (auto& named : training_state(model, optimizer)) checked.push_back(named);
        require_finite(checked, str("training diverged at iteration ", pos.iteration), divergence_advice);
        result.losses.push_back(step.total);
        window.add(step, batch.images.size(0), labelled_pixels(batch.labels, ignore));

        auto now = std::chrono::steady_clock::now();
        double elapsed = std::chrono::duration<double>(now - t0).count();
        double per_iter = elapsed / double(pos.iteration - start_iter);
        double eta = per_iter * double(max_iter - pos.iteration);
        if (pos.iteration % log_every == 0 || pos.iteration == max_iter) {
            double since = std::chrono::duration<double>(now - last_log).count();
            nlohmann::json j = window.line(pos.iteration, lr, since, elapsed);
            metrics.append(j.dump());
            write_scalars(tensorboard.get(), j);
            // A window without one labelled pixel trained on nothing: its loss is 0 whatever the weights are.
            if (window.labelled_pixels == 0 && !warned_unlabelled && options.verbose) {
                std::cerr << (tty ? "\n" : "") << "warning: iterations " << pos.iteration - window.steps + 1 << "-"
                          << pos.iteration << " saw no labelled pixel: every label pixel was ignore_label=" << ignore
                          << ", so the loss is 0 and nothing is learned. Check the label files of " << c["data_root"]
                          << " (label_dir, label_mapping) and ignore_label\n";
                warned_unlabelled = true;
            }
            if (options.verbose && !tty)
                std::cerr << "iter " << pos.iteration << "/" << max_iter << "  loss " << j["loss"].get<double>()
                          << "  aux " << j["aux_loss"].get<double>() << "  lr " << lr << "  "
                          << j["images_per_s"].get<double>() << " img/s  ETA " << format_duration(eta) << "\n";
            last_log = now;
            window = LogWindow{};
        }
        if (tty) {
            std::fprintf(stderr, "\riter %lld/%lld | loss %.4f (aux %.4f) | lr %.5f | %.1f img/s | ETA %s   ",
                         (long long)pos.iteration, (long long)max_iter, step.total, step.aux, lr,
                         double(batch.images.size(0)) / per_iter, format_duration(eta).c_str());
        }

        bool stop = StopSignals::received() != 0 ||
                    (options.stop_after >= 0 && pos.iteration - start_iter >= options.stop_after);
        bool save = stop || pos.iteration == max_iter || (save_every > 0 && pos.iteration % save_every == 0);
        if (save) {
            pos.rng_seed = default_generator().seed();
            pos.rng_counter = default_generator().counter();
            pos.loader_step = loader.step();
            save_checkpoint(run_dir, model, optimizer, pos);
        }
        if (eval_every > 0 && pos.iteration % eval_every == 0 && pos.iteration < max_iter && !stop) {
            nlohmann::json e = evaluate_run(model, c, run_dir, false);
            metrics.append(nlohmann::json{{"iteration", pos.iteration}, {"mIoU", e["mIoU"]}}.dump());
            write_scalars(tensorboard.get(), {{"iteration", pos.iteration}, {"mIoU", e["mIoU"]}, {"mAcc", e["mAcc"]},
                                              {"allAcc", e["allAcc"]}});
            plot_curves(run_dir);  // redrawn at every evaluation, so curves.png follows a long run
            if (tty) std::fprintf(stderr, "\n");
            if (options.verbose) std::cerr << "iter " << pos.iteration << ": val mIoU " << e["mIoU"].get<double>() << "\n";
        }
        if (stop) {
            result.interrupted = true;
            result.stop_signal = StopSignals::received();
            if (options.verbose)
                std::cerr << (tty ? "\n" : "") << "stopped"
                          << (result.stop_signal ? " by " + signal_name(result.stop_signal) : std::string())
                          << " at iteration " << pos.iteration << "; checkpoint saved in " << run_dir
                          << "/checkpoints/iter_" << pos.iteration << ".json (continue with --resume)\n";
            break;
        }
    }
    stop_signals.reset();
    if (tty) std::fprintf(stderr, "\n");
    result.iteration = pos.iteration;
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (result.interrupted) return result;

    require_finite(model.state_dict(), "not writing " + run_dir + "/model.safetensors", divergence_advice);
    save_safetensors((fs::path(run_dir) / "model.safetensors").string(), model.state_dict(),
                     {{"format", "strata"}, {"iterations", std::to_string(pos.iteration)}});
    if (options.verbose)
        std::cout << "trained " << pos.iteration - start_iter << " iterations in " << format_duration(result.seconds)
                  << "; weights in " << run_dir << "/model.safetensors\n";
    if (options.evaluate) {
        result.eval = evaluate_run(model, c, run_dir, options.verbose);
        metrics.append(nlohmann::json{{"iteration", pos.iteration}, {"mIoU", result.eval["mIoU"]}}.dump());
        write_scalars(tensorboard.get(), {{"iteration", pos.iteration}, {"mIoU", result.eval["mIoU"]},
                                          {"mAcc", result.eval["mAcc"]}, {"allAcc", result.eval["allAcc"]}});
    }
    plot_curves(run_dir);
    return result;
}

}  // namespace strata::pspnet
