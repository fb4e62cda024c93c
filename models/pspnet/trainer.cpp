// The training loop and the pieces it calls (see trainer.h). Read train() at the bottom first.
#include "models/pspnet/trainer.h"

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>

#include "data/loader.h"
#include "framework/blas.h"
#include "framework/check.h"
#include "framework/data_parallel.h"
#include "framework/optimizer.h"
#include "framework/random.h"
#include "framework/safetensors.h"
#include "layers/add.h"
#include "layers/batchnorm2d.h"
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
    int64_t labelled = 0;                // the global batch's label pixels that are not ignore_label
};

// The label pixels that are not ignore_label, of (N, H, W) labels on the CPU.
int64_t labelled_pixels(const Tensor& labels, int64_t ignore_label) {
    const int32_t* l = labels.i32();
    int64_t n = 0;
    for (int64_t i = 0; i < labels.numel(); ++i) n += l[i] != ignore_label;
    return n;
}

// The sum of a count over the ranks.
int64_t sum_over_ranks(Communicator& comm, int64_t value) {
    Tensor t = from_vector_i64({value}, {1});
    all_reduce_sum(comm, t);
    return t.to_vector_i64()[0];
}

// Data parallel: each rank's cross-entropy is the mean over its own n_r labelled pixels, so the plain average of
// the ranks' gradients would weight the ranks, not the pixels. Scaled by W * n_r / N (N = sum of n_r), the averaged
// gradient is exactly the gradient of the mean over the global batch, what one process computes on it. 1 on one
// rank; 1 when no rank has a labelled pixel (every loss is 0).
float rank_loss_weight(int world, int64_t labelled, int64_t total) {
    if (world == 1 || total == 0) return 1.0f;
    return float(double(world) * double(labelled) / double(total));
}

// One iteration of semseg's train.py: the paper's recipe, nothing else. On several ranks each runs it on its part
// of the global batch (`labelled`: its labelled pixels) and the returned losses are the global batch's.
StepLosses training_step(PSPNet& model, SGD& optimizer, const Tensor& images, const Tensor& labels,
                         int64_t labelled, int64_t iteration, const RunConfig& c, Communicator& comm,
                         const std::string& divergence_advice) {
    const int world = comm.world_size();
    const int64_t total_labelled = world > 1 ? sum_over_ranks(comm, labelled) : labelled;
    const float weight = rank_loss_weight(world, labelled, total_labelled);
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
    StepLosses losses{loss.item(), main_loss.item(), aux_loss.defined() ? aux_loss.item() : 0.0f, total_labelled};
    if (world > 1) {  // the global batch's losses: the mean of the weighted rank losses
        const float w = weight / float(world);
        Tensor sums = from_vector({losses.total * w, losses.main * w, losses.aux * w}, {3});
        all_reduce_sum(comm, sums);
        std::vector<float> v = sums.to_vector();
        losses = {v[0], v[1], v[2], total_labelled};
    }
    // every rank sees the same global loss, so a divergence stops every rank with the same error
    STRATA_CHECK(std::isfinite(losses.total), "training diverged at iteration ", iteration + 1, ": loss is ",
                 losses.total, ". ", divergence_advice);
    // backward, the gradients averaged over the ranks (in buckets launched during the backward as their gradients
    // become final), then SGD with momentum and weight decay
    optimizer.zero_grad();
    GradientBucketer buckets(comm, model.parameters(), int64_t(c.bucket_mb * double(1 << 20)));
    (weight == 1.0f ? loss : loss * weight).backward();
    buckets.finish();
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

// Data parallel: every rank takes rank 0's start, which rank 0 alone read (its weights= file, or its checkpoint):
// the parameters and buffers, the momentum buffers, the position and the random generator.
void share_start(Communicator& comm, PSPNet& model, SGD& optimizer, TrainingPosition& pos) {
    if (comm.world_size() == 1) return;
    broadcast_state(comm, model);
    // momentum: which parameters have a buffer on rank 0 (none in a fresh run), then those buffers
    std::map<std::string, Tensor> mine;
    for (auto& [name, t] : optimizer.state()) mine[name] = t;
    std::vector<std::pair<std::string, Tensor>> slots;  // (buffer name, its parameter)
    for (const ParamGroup& g : optimizer.groups())
        for (size_t i = 0; i < g.params.size(); ++i) slots.emplace_back(str(g.name, ".", i, ".momentum"), g.params[i]);
    std::vector<int64_t> has(slots.size());
    for (size_t i = 0; i < slots.size(); ++i) has[i] = mine.count(slots[i].first);
    Tensor has_t = from_vector_i64(has, {int64_t(has.size())});
    broadcast(comm, has_t, 0);
    has = has_t.to_vector_i64();
    NamedTensors state;
    for (size_t i = 0; i < slots.size(); ++i) {
        if (!has[i]) continue;
        const auto& [name, param] = slots[i];
        Tensor buf = comm.rank() == 0 ? mine[name].contiguous() : zeros(param.shape(), param.dtype(), param.device());
        broadcast(comm, buf, 0);
        state.emplace_back(name, buf);
    }
    if (comm.rank() != 0) optimizer.load_state(state);
    Tensor p = from_vector_i64({pos.iteration, pos.loader_step, int64_t(default_generator().seed()),
                                int64_t(default_generator().counter())}, {4});
    broadcast(comm, p, 0);
    std::vector<int64_t> v = p.to_vector_i64();
    pos.iteration = v[0], pos.loader_step = v[1];
    default_generator().set_state(uint64_t(v[2]), uint64_t(v[3]));
}

// ---- what the loop calls besides the step ----

// What happened between two log lines: their averages become one line of metrics.jsonl.
struct LogWindow {
    double loss = 0, main_loss = 0, aux_loss = 0;
    int64_t steps = 0, images = 0, labelled_pixels = 0;  // labelled: the label pixels that are not ignore_label

    void add(const StepLosses& step, int64_t step_images) {
        loss += step.total, main_loss += step.main, aux_loss += step.aux;
        ++steps, images += step_images, labelled_pixels += step.labelled;
    }
    nlohmann::json line(int64_t iteration, float lr, double since_last, double seconds) const {
        return {{"iteration", iteration}, {"loss", loss / steps}, {"main_loss", main_loss / steps},
                {"aux_loss", aux_loss / steps}, {"lr", lr},
                {"images_per_s", since_last > 0 ? double(images) / since_last : 0.0}, {"seconds", seconds}};
    }
};

// The progress of a run: metrics.jsonl and TensorBoard every log_every iterations and after every evaluation, and
// on stderr a line rewritten in place on a terminal (a line per log otherwise), with the ETA and, on several ranks,
// the world size. Rank 0's alone: images and labelled pixels are the global batch's.
struct ProgressLog {
    const RunConfig& c;
    int world;
    bool verbose, tty;
    int64_t start_iteration;
    MetricsLog metrics;
    std::unique_ptr<TensorBoardWriter> tensorboard;  // <run_dir>/tensorboard/; null when tensorboard=false
    Clock::time_point start = Clock::now(), last_log = start;
    LogWindow window;
    bool warned_unlabelled = false;

    ProgressLog(const RunConfig& config, int world_, bool verbose_, int64_t start_iteration_)
        : c(config), world(world_), verbose(verbose_), tty(verbose_ && isatty(fileno(stderr))),
          start_iteration(start_iteration_),
          metrics((fs::path(config.run_dir) / "metrics.jsonl").string()),
          tensorboard(config.train.tensorboard ? std::make_unique<TensorBoardWriter>(config.run_dir + "/tensorboard")
                                               : nullptr) {}

    void step(int64_t iteration, const StepLosses& step, int64_t images, float lr) {
        const int64_t max_iter = c.train.iterations;
        window.add(step, images);
        const std::string ranks = world > 1 ? str(" on ", world, " ranks") : "";
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
                std::cerr << "iter " << iteration << "/" << max_iter << ranks << "  loss " << j["loss"].get<double>()
                          << "  aux " << j["aux_loss"].get<double>() << "  lr " << lr << "  "
                          << j["images_per_s"].get<double>() << " img/s  ETA " << format_duration(eta) << "\n";
            last_log = now;
            window = LogWindow{};
        }
        if (tty)
            std::fprintf(stderr, "\riter %lld/%lld%s | loss %.4f (aux %.4f) | lr %.5f | %.1f img/s | ETA %s   ",
                         (long long)iteration, (long long)max_iter, ranks.c_str(), step.total, step.aux, lr,
                         double(images) / per_iter, format_duration(eta).c_str());
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
    const auto start = Clock::now();

    // The ranks: mpirun's (or the caller's), else this process alone. Rank 0 alone writes the run folder and talks.
    // Over mpirun's ranks the collectives go by `communicator=`: NCCL (bootstrapped over MPI) when the device is a
    // GPU and the build has it, else MPI; each rank then runs on its own GPU (data_parallel_device).
    std::shared_ptr<Communicator> base = options.comm ? options.comm : world_communicator();
    const int world = base->world_size();
    const bool root = base->rank() == 0, verbose = options.verbose && root;
    if (c.collective_timeout > 0) base->set_timeout(c.collective_timeout);
    STRATA_CHECK(t.batch_size % world == 0, "config: batch_size=", t.batch_size, " is the global batch, split evenly "
                 "over the ", world, " ranks, so it must be a multiple of the world size ", world, ": set batch_size=",
                 std::max(1, t.batch_size / world) * world, " or run on a number of ranks that divides it");

    // The run folder, locked so that a second training on it is refused.
    std::optional<RunFolderLock> lock;
    if (root) {
        fs::create_directories(c.run_dir);
        lock.emplace(c.run_dir);
    }
    // Where it runs: threads, device, the GEMM mode, and the seed every random draw derives from.
    ReproducibleGemmScope gemm_mode(c.reproducible);
    GemmChoiceScope gemm_choice(parse_gemm_choice(c.gemm));  // restored when the run ends, for in-process callers
    const Device configured = use_running_config(c, verbose);
    std::shared_ptr<Communicator> comm =
        options.comm ? options.comm : data_parallel_communicator(c.communicator, configured, base);
    const Device device = data_parallel_device(configured, *comm);
    if (verbose && world > 1)
        std::cerr << "data parallel: " << world << " ranks over " << comm->backend() << ", rank 0 on "
                  << device_name(device) << "\n";
    manual_seed(uint64_t(t.seed));

    // The data and the model: PSPNet with its initial weights (e.g. an ImageNet backbone), on the device before the
    // optimizer, so that the momentum buffers are made there too. On several ranks every rank must have built the
    // same model; rank 0 reads the weights and every rank takes them from it (share_start).
    std::shared_ptr<Dataset> train_set = open_config_dataset(c, true);
    PSPNet model(c.model);
    if (c.sync_bn && world > 1) use_sync_batchnorm(model, comm);
    check_same_model(*comm, model);
    const int train_h = c.data.train_h, train_w = c.data.train_w;
    STRATA_CHECK(model.output_size(train_h) == train_h && model.output_size(train_w) == train_w,
                 "config: the logits must match the training crop (", train_h, "x", train_w, "): "
                 "train with zoom_factor=8");
    if (root && !c.weights.path.empty()) {
        WeightsOptions lenient = c.weights.options;  // an ImageNet backbone lacks the heads: reported, not refused
        lenient.strict = false;
        WeightsReport loaded = load_weights(c.weights.path, model, lenient);
        if (verbose) std::cerr << describe(loaded);
    }
    model.to(device);
    SGD optimizer = make_optimizer(model, t);

    // Where to start (0, or the newest checkpoint, read by rank 0 and shared), and the loader from that batch on:
    // this rank's part of each global batch.
    TrainingPosition pos = root ? start_position(c, model, optimizer, options) : TrainingPosition{};
    share_start(*comm, model, optimizer, pos);
    LoaderConfig lc{.batch_size = t.batch_size, .seed = uint64_t(t.seed), .workers = c.data.workers,
                    .start_step = pos.loader_step, .shard = comm->rank(), .shards = world};
    Loader loader(train_set, train_transform_config(c.data), lc);

    const std::string divergence_advice =
        str("Lower base_lr (now ", t.base_lr, ") or check the labels and the weights; the checkpoints in ", c.run_dir,
            "/checkpoints hold only finite values (every save is checked)");
    const int64_t start_iteration = pos.iteration;
    std::optional<ProgressLog> log;
    if (root) log.emplace(c, world, options.verbose, start_iteration);
    std::optional<StopSignals> stop_signals(std::in_place);  // Ctrl-C and SIGTERM stop the loop, not the evaluation
    TrainResult result;
    model.train();

    while (pos.iteration < t.iterations) {
        if (options.before_step) options.before_step(pos.iteration);
        // the batch the loader's threads prepared while the previous step ran
        Batch batch = loader.next();
        // the step itself: poly LR, forward with aux, CE + aux_weight CE_aux, backward, SGD
        StepLosses step = training_step(model, optimizer, batch.images.to(device), batch.labels.to(device),
                                        labelled_pixels(batch.labels, c.data.ignore_label), pos.iteration, c, *comm,
                                        divergence_advice);
        pos.iteration++;
        // every gradient and weight must be finite; the gradients first, so that a NaN born in the backward is
        // named there rather than in the weights it then reached
        NamedTensors checked = named_gradients(model);
        for (auto& named : training_state(model, optimizer)) checked.push_back(named);
        require_finite(checked, str("training diverged at iteration ", pos.iteration), divergence_advice);
        result.losses.push_back(step.total);
        // metrics.jsonl, TensorBoard and the terminal line
        if (log) log->step(pos.iteration, step, batch.images.size(0) * world, optimizer.lr());

        // a stop (a signal, or stop_after for the tests) saves a checkpoint, as do save_every and the last step;
        // on several ranks a stop on any rank stops every rank at the same step
        bool stop = StopSignals::received() != 0 ||
                    (options.stop_after >= 0 && pos.iteration - start_iteration >= options.stop_after);
        if (world > 1) stop = sum_over_ranks(*comm, stop ? 1 : 0) > 0;
        if (root && (stop || pos.iteration == t.iterations || (t.save_every > 0 && pos.iteration % t.save_every == 0)))
            save_training_checkpoint(c, model, optimizer, pos, loader);
        // the periodic evaluation on the validation split (the final one comes after the loop)
        if (t.eval_every > 0 && pos.iteration % t.eval_every == 0 && pos.iteration < t.iterations && !stop) {
            nlohmann::json e = evaluate_run(model, c, false, comm.get());
            if (log) {
                log->evaluation(pos.iteration, e);
                plot_curves(c.run_dir);  // redrawn at every evaluation, so curves.png follows a long run
                log->end_line();
            }
            if (verbose) std::cerr << "iter " << pos.iteration << ": val mIoU " << double(e["mIoU"]) << "\n";
        }
        if (stop) {
            result.interrupted = true;
            result.stop_signal = StopSignals::received();
            if (verbose)
                std::cerr << (log->tty ? "\n" : "") << "stopped"
                          << (result.stop_signal ? " by " + signal_name(result.stop_signal) : std::string())
                          << " at iteration " << pos.iteration << "; checkpoint saved in " << c.run_dir
                          << "/checkpoints/iter_" << pos.iteration << ".json (continue with --resume)\n";
            break;
        }
    }
    stop_signals.reset();
    if (log) log->end_line();
    result.iteration = pos.iteration;
    result.seconds = seconds_since(start, Clock::now());
    if (result.interrupted) return result;

    // The end of the run: the weights (checked finite), the final evaluation and the curves.
    if (root) {
        require_finite(model.state_dict(), "not writing " + c.run_dir + "/model.safetensors", divergence_advice);
        save_safetensors((fs::path(c.run_dir) / "model.safetensors").string(), model.state_dict(),
                         {{"format", "strata"}, {"iterations", std::to_string(pos.iteration)}});
    }
    if (verbose)
        std::cout << "trained " << pos.iteration - start_iteration << " iterations"
                  << (world > 1 ? str(" on ", world, " ranks") : "") << " in " << format_duration(result.seconds)
                  << "; weights in " << c.run_dir << "/model.safetensors\n";
    if (options.evaluate) {
        result.eval = evaluate_run(model, c, verbose, comm.get());
        if (log) log->evaluation(pos.iteration, result.eval);
    }
    if (root) plot_curves(c.run_dir);
    return result;
}

}  // namespace strata::pspnet
