// The training loop and the pieces it calls (see trainer.h). Read train() at the bottom first.
#include "models/pspnet/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>

#include "data/loader.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/optimizer.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "layers/add.h"
#include "layers/cross_entropy.h"
#include "layers/mul.h"
#include "models/pspnet/checkpoint.h"
#include "models/pspnet/curves.h"
#include "models/pspnet/eval_report.h"
#include "models/pspnet/numerics.h"
#include "models/pspnet/run_folder.h"

namespace strata::pspnet {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t, Clock::time_point now) {
    return std::chrono::duration<double>(now - t).count();
}

// ---- the step ----

struct StepLosses {
    float total = 0, main = 0, aux = 0;  // aux is 0 without the auxiliary head
};

// One iteration of semseg's train.py: the paper's recipe, nothing else.
StepLosses training_step(PSPNet& model, SGD& optimizer, const Tensor& images, const Tensor& labels,
                         int64_t iteration, const RunConfig& c, const std::string& divergence_advice) {
    // poly learning rate: base_lr * (1 - iteration/max_iter)^power; the head group runs at head_lr_mult times it
    optimizer.set_lr(poly_lr(float(c.train.base_lr), iteration, c.train.iterations, float(c.train.power)));
    // forward: the main logits from the pyramid pooling head, the aux logits from layer3 (training only)
    PSPNetOutput out = model.forward_all(images);
    // loss = CE(logits, labels) + aux_weight * CE(aux_logits, labels); ignore_label pixels count in neither
    Tensor main_loss = cross_entropy(out.logits, labels, c.data.ignore_label);
    Tensor loss = main_loss, aux_loss;
    if (out.aux_logits.defined()) {
        aux_loss = cross_entropy(out.aux_logits, labels, c.data.ignore_label);
        loss = main_loss + aux_loss * float(c.model.aux_weight);
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

// ---- setup ----

// SGD with semseg's two parameter groups: the backbone at the base LR, the new layers at head_lr_mult times it.
SGD make_optimizer(const PSPNet& model, const TrainConfig& t) {
    std::vector<Tensor> backbone, head;
    for (auto& [name, p] : model.backbone_parameters()) backbone.push_back(p);
    for (auto& [name, p] : model.head_parameters()) head.push_back(p);
    SGDOptions o{.lr = float(t.base_lr), .momentum = float(t.momentum), .weight_decay = float(t.weight_decay)};
    return SGD({ParamGroup{"backbone", backbone, 1.0f}, ParamGroup{"head", head, float(t.head_lr_mult)}}, o);
}

// semseg's training augmentation with the config's crop and ranges.
TransformConfig train_transform_config(const DataConfig& d) {
    TransformConfig t = train_transforms(d.train_h, d.train_w);
    t.scale_min = float(d.scale_min), t.scale_max = float(d.scale_max);
    t.rotate_min = float(d.rotate_min), t.rotate_max = float(d.rotate_max);
    t.blur_p = d.blur ? 0.5f : 0.0f;
    t.flip_p = d.flip ? 0.5f : 0.0f;
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

// Where the run starts: a fresh run writes its config.json; a resumed one loads the newest checkpoint into the model
// and the optimizer, restores the random generator and drops the metrics lines logged after that checkpoint.
TrainingPosition start_position(const RunConfig& c, PSPNet& model, SGD& optimizer, const TrainOptions& options) {
    fs::path metrics = fs::path(c.run_dir) / "metrics.jsonl";
    if (!options.resume) {
        fs::remove(metrics);
        write_file_atomically((fs::path(c.run_dir) / "config.json").string(), to_json(c).dump(2) + "\n");
        return {};
    }
    for (const std::string& name : remove_partial_checkpoints(c.run_dir))
        if (options.verbose)
            std::cerr << "removed " << c.run_dir << "/checkpoints/" << name << ", left by an interrupted save\n";
    TrainingPosition pos = load_checkpoint(c.run_dir, model, optimizer, {c.train.iterations, options.reset_optimizer});
    if (options.reset_optimizer && options.verbose)
        std::cerr << "--reset-optimizer: resuming with the momentum set to zero (the checkpoint's optimizer state is "
                     "not used)\n";
    if (!c.weights.options.allow_nonfinite)
        require_finite(training_state(model, optimizer), "cannot resume " + c.run_dir,
                       "The checkpoint is damaged or was saved by a diverged run; set allow_nonfinite_weights=true to "
                       "resume from it anyway");
    default_generator().set_state(pos.rng_seed, pos.rng_counter);
    truncate_metrics(metrics, pos.iteration);
    if (options.verbose) std::cerr << "resuming " << c.run_dir << " at iteration " << pos.iteration << "\n";
    return pos;
}

// ---- what the loop calls besides the step ----

// What happened between two log lines: their averages become one line of metrics.jsonl.
struct LogWindow {
    double loss = 0, main_loss = 0, aux_loss = 0;
    int64_t steps = 0, images = 0, labelled_pixels = 0;  // labelled: the label pixels that are not ignore_label

    void add(const StepLosses& step, const Batch& batch, int64_t ignore_label) {
        loss += step.total, main_loss += step.main, aux_loss += step.aux;
        ++steps, images += batch.images.size(0);
        const int32_t* l = batch.labels.i32();  // (N, H, W) on the CPU
        for (int64_t i = 0; i < batch.labels.numel(); ++i) labelled_pixels += l[i] != ignore_label;
    }
    nlohmann::json line(int64_t iteration, float lr, double since_last, double seconds) const {
        return {{"iteration", iteration}, {"loss", loss / steps}, {"main_loss", main_loss / steps},
                {"aux_loss", aux_loss / steps}, {"lr", lr},
                {"images_per_s", since_last > 0 ? double(images) / since_last : 0.0}, {"seconds", seconds}};
    }
};

// The progress of a run: metrics.jsonl and TensorBoard every log_every iterations and after every evaluation, and
// on stderr a line rewritten in place on a terminal (a line per log otherwise), with the ETA.
struct ProgressLog {
    const RunConfig& c;
    bool verbose, tty;
    int64_t start_iteration;
    MetricsLog metrics;
    std::unique_ptr<TensorBoardWriter> tensorboard;  // <run_dir>/tensorboard/; null when tensorboard=false
    Clock::time_point start = Clock::now(), last_log = start;
    LogWindow window;
    bool warned_unlabelled = false;

    ProgressLog(const RunConfig& config, bool verbose_, int64_t start_iteration_)
        : c(config), verbose(verbose_), tty(verbose_ && isatty(fileno(stderr))), start_iteration(start_iteration_),
          metrics((fs::path(config.run_dir) / "metrics.jsonl").string()),
          tensorboard(config.train.tensorboard ? std::make_unique<TensorBoardWriter>(config.run_dir + "/tensorboard")
                                               : nullptr) {}

    void step(int64_t iteration, const StepLosses& step, const Batch& batch, float lr) {
        const int64_t max_iter = c.train.iterations;
        window.add(step, batch, c.data.ignore_label);
        auto now = Clock::now();
        double elapsed = seconds_since(start, now);
        double per_iter = elapsed / double(iteration - start_iteration);
        double eta = per_iter * double(max_iter - iteration);
        if (iteration % c.train.log_every == 0 || iteration == max_iter) {
            nlohmann::json j = window.line(iteration, lr, seconds_since(last_log, now), elapsed);
            metrics.append(j.dump());
            write_scalars(tensorboard.get(), j);
            // A window without one labelled pixel trained on nothing: its loss is 0 whatever the weights are.
            if (window.labelled_pixels == 0 && !warned_unlabelled && verbose) {
                std::cerr << (tty ? "\n" : "") << "warning: iterations " << iteration - window.steps + 1 << "-"
                          << iteration << " saw no labelled pixel: every label pixel was ignore_label="
                          << c.data.ignore_label << ", so the loss is 0 and nothing is learned. Check the label "
                          << "files of \"" << c.data.root << "\" (label_dir, label_mapping) and ignore_label\n";
                warned_unlabelled = true;
            }
            if (verbose && !tty)
                std::cerr << "iter " << iteration << "/" << max_iter << "  loss " << j["loss"].get<double>()
                          << "  aux " << j["aux_loss"].get<double>() << "  lr " << lr << "  "
                          << j["images_per_s"].get<double>() << " img/s  ETA " << format_duration(eta) << "\n";
            last_log = now;
            window = LogWindow{};
        }
        if (tty)
            std::fprintf(stderr, "\riter %lld/%lld | loss %.4f (aux %.4f) | lr %.5f | %.1f img/s | ETA %s   ",
                         (long long)iteration, (long long)max_iter, step.total, step.aux, lr,
                         double(batch.images.size(0)) / per_iter, format_duration(eta).c_str());
    }

    void evaluation(int64_t iteration, const nlohmann::json& e) {
        metrics.append(nlohmann::json{{"iteration", iteration}, {"mIoU", e["mIoU"]}}.dump());
        write_scalars(tensorboard.get(), {{"iteration", iteration}, {"mIoU", e["mIoU"]}, {"mAcc", e["mAcc"]},
                                          {"allAcc", e["allAcc"]}});
    }

    void end_line() const {
        if (tty) std::fprintf(stderr, "\n");
    }
};

// A checkpoint of the model, the optimizer and where the run is: its iteration, the random generator, the loader.
void save_training_checkpoint(const RunConfig& c, const PSPNet& model, const SGD& optimizer, TrainingPosition& pos,
                              const Loader& loader) {
    pos.rng_seed = default_generator().seed();
    pos.rng_counter = default_generator().counter();
    pos.loader_step = loader.step();
    save_checkpoint(c.run_dir, model, optimizer, pos);
}

}  // namespace

TrainResult train(const RunConfig& c, const TrainOptions& options) {
    validate_config(c);  // a config built or edited in code gets the checks load_config gives a file
    const TrainConfig& t = c.train;

    // The run folder, locked so that a second training on it is refused.
    fs::create_directories(c.run_dir);
    RunFolderLock lock(c.run_dir);
    // Where it runs: threads, device, the GEMM mode, and the seed every random draw derives from.
    ReproducibleGemmScope gemm_mode(c.reproducible);
    GemmChoiceScope gemm_choice(parse_gemm_choice(c.gemm));  // restored when the run ends, for in-process callers
    const Device device = use_running_config(c, options.verbose);
    manual_seed(uint64_t(t.seed));

    // The data and the model: PSPNet with its initial weights (e.g. an ImageNet backbone), on the device before the
    // optimizer, so that the momentum buffers are made there too.
    std::shared_ptr<Dataset> train_set = open_config_dataset(c, true);
    PSPNet model(c.model);
    const int train_h = c.data.train_h, train_w = c.data.train_w;
    STRATA_CHECK(model.output_size(train_h) == train_h && model.output_size(train_w) == train_w,
                 "config: the logits must match the training crop (", train_h, "x", train_w, "): "
                 "train with zoom_factor=8");
    if (!c.weights.path.empty()) {
        WeightsOptions lenient = c.weights.options;  // an ImageNet backbone lacks the heads: reported, not refused
        lenient.strict = false;
        WeightsReport loaded = load_weights(c.weights.path, model, lenient);
        if (options.verbose) std::cerr << describe(loaded);
    }
    model.to(device);
    SGD optimizer = make_optimizer(model, t);

    // Where to start (0, or the newest checkpoint), and the loader from that batch on.
    TrainingPosition pos = start_position(c, model, optimizer, options);
    LoaderConfig lc{.batch_size = t.batch_size, .seed = uint64_t(t.seed), .workers = c.data.workers,
                    .start_step = pos.loader_step};
    Loader loader(train_set, train_transform_config(c.data), lc);

    const std::string divergence_advice =
        str("Lower base_lr (now ", t.base_lr, ") or check the labels and the weights; the checkpoints in ", c.run_dir,
            "/checkpoints hold only finite values (every save is checked)");
    const int64_t start_iteration = pos.iteration;
    ProgressLog log(c, options.verbose, start_iteration);
    std::optional<StopSignals> stop_signals(std::in_place);  // Ctrl-C and SIGTERM stop the loop, not the evaluation
    TrainResult result;
    model.train();

    while (pos.iteration < t.iterations) {
        // the batch the loader's threads prepared while the previous step ran
        Batch batch = loader.next();
        // the step itself: poly LR, forward with aux, CE + aux_weight CE_aux, backward, SGD
        StepLosses step = training_step(model, optimizer, batch.images.to(device), batch.labels.to(device),
                                        pos.iteration, c, divergence_advice);
        pos.iteration++;
        // every gradient and weight must be finite; the gradients first, so that a NaN born in the backward is
        // named there rather than in the weights it then reached
        NamedTensors checked = named_gradients(model);
        for (auto& named : training_state(model, optimizer)) checked.push_back(named);
        require_finite(checked, str("training diverged at iteration ", pos.iteration), divergence_advice);
        result.losses.push_back(step.total);
        // metrics.jsonl, TensorBoard and the terminal line
        log.step(pos.iteration, step, batch, optimizer.lr());

        // a stop (a signal, or stop_after for the tests) saves a checkpoint, as do save_every and the last step
        bool stop = StopSignals::received() != 0 ||
                    (options.stop_after >= 0 && pos.iteration - start_iteration >= options.stop_after);
        if (stop || pos.iteration == t.iterations || (t.save_every > 0 && pos.iteration % t.save_every == 0))
            save_training_checkpoint(c, model, optimizer, pos, loader);
        // the periodic evaluation on the validation split (the final one comes after the loop)
        if (t.eval_every > 0 && pos.iteration % t.eval_every == 0 && pos.iteration < t.iterations && !stop) {
            nlohmann::json e = evaluate_run(model, c, false);
            log.evaluation(pos.iteration, e);
            plot_curves(c.run_dir);  // redrawn at every evaluation, so curves.png follows a long run
            log.end_line();
            if (options.verbose) std::cerr << "iter " << pos.iteration << ": val mIoU " << double(e["mIoU"]) << "\n";
        }
        if (stop) {
            result.interrupted = true;
            result.stop_signal = StopSignals::received();
            if (options.verbose)
                std::cerr << (log.tty ? "\n" : "") << "stopped"
                          << (result.stop_signal ? " by " + signal_name(result.stop_signal) : std::string())
                          << " at iteration " << pos.iteration << "; checkpoint saved in " << c.run_dir
                          << "/checkpoints/iter_" << pos.iteration << ".json (continue with --resume)\n";
            break;
        }
    }
    stop_signals.reset();
    log.end_line();
    result.iteration = pos.iteration;
    result.seconds = seconds_since(log.start, Clock::now());
    if (result.interrupted) return result;

    // The end of the run: the weights (checked finite), the final evaluation and the curves.
    require_finite(model.state_dict(), "not writing " + c.run_dir + "/model.safetensors", divergence_advice);
    save_safetensors((fs::path(c.run_dir) / "model.safetensors").string(), model.state_dict(),
                     {{"format", "strata"}, {"iterations", std::to_string(pos.iteration)}});
    if (options.verbose)
        std::cout << "trained " << pos.iteration - start_iteration << " iterations in "
                  << format_duration(result.seconds) << "; weights in " << c.run_dir << "/model.safetensors\n";
    if (options.evaluate) {
        result.eval = evaluate_run(model, c, options.verbose);
        log.evaluation(pos.iteration, result.eval);
    }
    plot_curves(c.run_dir);
    return result;
}

}  // namespace strata::pspnet
