// ContextScenes: the generator, the in-memory dataset, and the writer of the VOC-layout copy (see contextscenes.h).
//
// Textures are "value noise": random values on a coarse lattice (one SplitMix64 number per lattice point), blended
// between lattice points with the smoothstep 3t^2 - 2t^3. A lattice spacing of a few pixels gives grain (sand,
// foliage); a spacing stretched along x gives horizontal streaks (ripples on the sea). All of it is integer
// arithmetic with 8 fractional bits, so the images are bit-identical on every machine.
#include "data/contextscenes.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "data/dataset.h"
#include "framework/check.h"
#include "framework/random.h"

namespace strata {

namespace fs = std::filesystem;

// Bumped whenever the generator's output changes, so that copies written by an older version are regenerated.
constexpr int kGeneratorVersion = 1;

std::vector<std::string> context_scenes_class_names() {
    return {"sky", "sea", "city", "forest", "sand", "boat", "car", "cow"};
}

std::vector<Rgb> context_scenes_colors() {
    return {{110, 170, 230}, {20, 60, 160}, {170, 80, 60}, {40, 120, 40},
            {210, 190, 140}, {230, 25, 75}, {255, 210, 0}, {150, 40, 200}};
}

ClassInfo context_scenes_classes() {
    return ClassInfo{context_scenes_class_names(), context_scenes_colors()};
}

std::string context_scene_name(const std::string& split, int64_t index) {
    char digits[32];
    std::snprintf(digits, sizeof digits, "%06lld", static_cast<long long>(index));
    return split + "_" + digits;
}

namespace {

// ---- integer value noise ----

// The lattice value (0..255) at integer point (i, j) of noise stream `key`.
int lattice(uint64_t key, int i, int j) {
    return int(random_u64(key, (uint64_t(uint32_t(j)) << 32) | uint32_t(i)) >> 56);
}

// Smoothstep on 8-bit fixed point: t in 0..256 stands for t/256; returns 3t^2 - 2t^3 in the same scale.
int smoothstep256(int t) { return (t * t * (3 * 256 - 2 * t)) >> 16; }

// Value noise in 0..255 at pixel (x, y) >= 0, lattice points every cell_x columns and cell_y rows.
int value_noise(uint64_t key, int x, int y, int cell_x, int cell_y) {
    int i = x / cell_x, j = y / cell_y;
    int tx = smoothstep256((x % cell_x) * 256 / cell_x);
    int ty = smoothstep256((y % cell_y) * 256 / cell_y);
    int top = lattice(key, i, j) * (256 - tx) + lattice(key, i + 1, j) * tx;
    int bottom = lattice(key, i, j + 1) * (256 - tx) + lattice(key, i + 1, j + 1) * tx;
    return (top * (256 - ty) + bottom * ty) >> 16;
}

// ---- colour helpers (integers, clamped to 0..255) ----

uint8_t clamp255(int v) { return uint8_t(std::clamp(v, 0, 255)); }

// a + (b - a) * t / 255
Rgb mix(Rgb a, Rgb b, int t) {
    Rgb out;
    for (size_t ch = 0; ch < 3; ++ch) out[ch] = clamp255(a[ch] + (int(b[ch]) - int(a[ch])) * t / 255);
    return out;
}

Rgb brighten(Rgb c, int delta) {
    return Rgb{clamp255(c[0] + delta), clamp255(c[1] + delta), clamp255(c[2] + delta)};
}

Rgb scale(Rgb c, int numerator, int denominator) {
    return Rgb{clamp255(c[0] * numerator / denominator), clamp255(c[1] * numerator / denominator),
               clamp255(c[2] * numerator / denominator)};
}

// ---- the textures; each gets its own noise keys ----

struct TextureKeys {
    uint64_t a, b;
};

// A blue gradient, deeper at the top, with faint clouds. The same for every scene.
Rgb sky_color(const TextureKeys& k, int x, int y, int sky_end) {
    int t = y * 255 / std::max(1, sky_end - 1);
    Rgb c = mix(Rgb{60, 120, 200}, Rgb{165, 200, 235}, t);
    return brighten(c, (value_noise(k.a, x, y, 16, 6) - 128) / 12);
}

// Horizontal ripples (noise stretched 12:2 along x) with sparkles.
Rgb sea_color(const TextureKeys& k, int x, int y) {
    Rgb c = mix(Rgb{15, 50, 110}, Rgb{70, 140, 200}, value_noise(k.a, x, y, 12, 2));
    if (value_noise(k.b, x, y, 3, 1) > 225) c = mix(c, Rgb{235, 245, 255}, 160);
    return c;
}

// Brick courses 5 rows high, bricks 10 columns long, every other course shifted by half a brick; mortar between.
Rgb city_color(const TextureKeys& k, int x, int y) {
    int course = y / 5, shifted = x + (course % 2) * 5, brick = shifted / 10;
    int grain = (value_noise(k.b, x, y, 2, 2) - 128) / 10;
    if (y % 5 == 4 || shifted % 10 == 9) return brighten(Rgb{175, 165, 150}, grain);
    uint64_t r = random_u64(k.a, (uint64_t(uint32_t(course)) << 32) | uint32_t(brick));
    int tone = int((r >> 56) % 51) - 25;  // per-brick shade
    return brighten(Rgb{150, 65, 45}, tone + grain);
}

// Foliage: blobs of canopy (cell 6) with fine leaves (cell 2) and dark gaps.
Rgb forest_color(const TextureKeys& k, int x, int y) {
    int canopy = value_noise(k.a, x, y, 6, 6), leaves = value_noise(k.b, x, y, 2, 2);
    Rgb c = mix(Rgb{15, 55, 20}, Rgb{95, 160, 60}, (3 * canopy + leaves) / 4);
    return canopy < 80 ? scale(c, 3, 5) : c;
}

// Gravelly sand: fine grain (cell 2), slow variation (cell 9), dark pebbles. The same for every scene.
Rgb sand_color(const TextureKeys& k, int x, int y) {
    int fine = value_noise(k.a, x, y, 2, 2), coarse = value_noise(k.b, x, y, 9, 9);
    if (fine > 220) return Rgb{150, 135, 110};
    return brighten(Rgb{205, 185, 140}, (fine - 128) / 5 + (coarse - 128) / 8);
}

// ---- object shapes ----

// An axis-aligned ellipse in doubled pixel coordinates (so centres may fall on pixel edges, with integer math):
// pixel (x, y) is inside when ((2x+1 - cx)/ax)^2 + ((2y+1 - cy)/ay)^2 <= 1.
struct Ellipse {
    int cx, cy, ax, ay;
    bool contains(int x, int y) const {
        int64_t dx = 2 * x + 1 - cx, dy = 2 * y + 1 - cy;
        int64_t a2 = int64_t(ax) * ax, b2 = int64_t(ay) * ay;
        return dx * dx * b2 + dy * dy * a2 <= a2 * b2;
    }
};

// One object: a body ellipse across the box's width, in its lower part, plus 0-2 bumps on top of it (a cabin, a
// head, a hump). The same random family for boats, cars and cows: only the scene band tells them apart.
std::vector<Ellipse> object_shape(Generator& g, const SceneBox& box) {
    int w = box.x1 - box.x0, h = box.y1 - box.y0;
    std::vector<Ellipse> parts;
    int body_h = h * (70 + int(g.randint(31))) / 100;  // 70-100 % of the box height
    parts.push_back(Ellipse{2 * box.x0 + w, 2 * box.y1 - body_h, w, body_h});
    int bumps = int(g.randint(3));
    for (int i = 0; i < bumps; ++i) {
        int bw = w / 4 + int(g.randint(w / 4 + 1));              // a quarter to a half of the width
        int bh = std::max(2, (h - body_h) + int(g.randint(h / 3 + 1)));
        int cx = box.x0 + bw / 2 + int(g.randint(w - bw + 1));     // inside the box horizontally
        int top = std::max(box.y0, box.y1 - body_h - bh / 2);
        parts.push_back(Ellipse{2 * cx, 2 * top + bh, bw, bh});
    }
    return parts;
}

uint64_t split_key(uint64_t seed, const std::string& split) {
    STRATA_CHECK(split == "train" || split == "val", "contextscenes: split must be 'train' or 'val', got '", split,
                 "'");
    return random_u64(seed, split == "train" ? 1 : 2);
}

void check_config(const ContextScenesConfig& c) {
    // rows: sky <= 15, band <= 21, then the gap, then objects up to 33 rows high
    int needed = 15 + 21 + c.min_gap + 33;
    STRATA_CHECK(c.min_gap >= 0, "contextscenes: min_gap must be 0 or more, got ", c.min_gap);
    STRATA_CHECK(c.size >= needed, "contextscenes: size ", c.size, " is too small: sky, band, the gap of ", c.min_gap,
                 " rows and the objects need ", needed, " rows");
    STRATA_CHECK(c.train_count >= 0 && c.val_count >= 0, "contextscenes: negative image count");
}

}  // namespace

ContextScene generate_context_scene(const ContextScenesConfig& config, const std::string& split, int64_t index) {
    check_config(config);
    STRATA_CHECK(index >= 0, "contextscenes: negative index ", index);
    Generator g(random_u64(split_key(config.seed, split), uint64_t(index)));
    int size = config.size;
    ContextScene scene;

    // Layout. The draws are the same in number whatever the scene, so the scene type is independent of the rest.
    scene.band_class = kSceneSea + int32_t(g.randint(3));
    scene.object_class = scene.band_class + (kSceneBoat - kSceneSea);
    scene.sky_end = 9 + int(g.randint(7));                     // 9..15
    scene.band_end = scene.sky_end + 14 + int(g.randint(8));   // band 14..21 rows high, ends at row <= 36
    TextureKeys sky{g.next_u64(), g.next_u64()}, band{g.next_u64(), g.next_u64()}, sand{g.next_u64(), g.next_u64()};

    scene.image = Image(size, size, 3);
    scene.label = LabelMap(size, size);
    auto put = [&](int x, int y, Rgb c, int32_t cls) {
        uint8_t* p = scene.image.pixel(y, x);
        p[0] = c[0];
        p[1] = c[1];
        p[2] = c[2];
        scene.label.at(y, x) = cls;
    };
    for (int y = 0; y < size; ++y) {
        for (int x = 0; x < size; ++x) {
            if (y < scene.sky_end) {
                put(x, y, sky_color(sky, x, y, scene.sky_end), kSceneSky);
            } else if (y < scene.band_end) {
                Rgb c = scene.band_class == kSceneSea    ? sea_color(band, x, y)
                        : scene.band_class == kSceneCity ? city_color(band, x, y)
                                                         : forest_color(band, x, y);
                put(x, y, c, scene.band_class);
            } else {
                put(x, y, sand_color(sand, x, y), kSceneSand);
            }
        }
    }

    // Objects: 1-3, each 24-33 pixels wide and high (3+ feature cells at output stride 8), entirely at least
    // min_gap rows below the band.
    int top_min = scene.band_end + config.min_gap;
    int count = 1 + int(g.randint(3));
    for (int i = 0; i < count; ++i) {
        int w = 24 + int(g.randint(10)), h = 24 + int(g.randint(10));
        SceneBox box;
        box.x0 = int(g.randint(size - w + 1));
        box.y0 = top_min + int(g.randint(size - h - top_min + 1));
        box.x1 = box.x0 + w;
        box.y1 = box.y0 + h;
        std::vector<Ellipse> parts = object_shape(g, box);
        Rgb base{uint8_t(20 + g.randint(216)), uint8_t(20 + g.randint(216)), uint8_t(20 + g.randint(216))};
        uint64_t shade_key = g.next_u64();
        for (int y = box.y0; y < box.y1; ++y) {
            for (int x = box.x0; x < box.x1; ++x) {
                bool inside = false;
                for (const Ellipse& e : parts) inside = inside || e.contains(x, y);
                if (!inside) continue;
                // a solid colour shaded by noise (150..255 of 255), like a lit surface
                put(x, y, scale(base, 150 + value_noise(shade_key, x, y, 5, 5) * 105 / 255, 255), scene.object_class);
            }
        }
        scene.objects.push_back(box);
    }
    return scene;
}

// ---- the in-memory dataset ----

namespace {

class ContextScenesDataset : public Dataset {
public:
    ContextScenesDataset(const ContextScenesConfig& config, const std::string& split)
        : config_(config), split_(split) {
        check_config(config);
        split_key(config.seed, split);  // validates the split name
        classes_ = context_scenes_classes();
        count_ = split == "train" ? config.train_count : config.val_count;
        STRATA_CHECK(count_ > 0, "contextscenes: the '", split, "' split has no images (count ", count_, ")");
    }
    int64_t size() const override { return count_; }
    Sample get(int64_t index) const override {
        STRATA_CHECK(index >= 0 && index < count_, "contextscenes: index ", index, " out of range (", count_,
                     " images)");
        ContextScene scene = generate_context_scene(config_, split_, index);
        return Sample{context_scene_name(split_, index), std::move(scene.image), std::move(scene.label)};
    }
    std::string name(int64_t index) const override { return context_scene_name(split_, index); }
    bool has_labels() const override { return true; }
    std::string description() const override {
        return str("contextscenes '", split_, "' (seed ", config_.seed, ", ", count_, " images in memory)");
    }

private:
    ContextScenesConfig config_;
    std::string split_;
    int64_t count_ = 0;
};

}  // namespace

std::shared_ptr<Dataset> open_context_scenes(const ContextScenesConfig& config, const std::string& split) {
    return std::make_shared<ContextScenesDataset>(config, split);
}

ContextScenesConfig context_scenes_config(const nlohmann::json& config) {
    DatasetOptions o{"contextscenes", "", config};
    ContextScenesConfig c;
    c.seed = uint64_t(o.get_int("seed", int64_t(c.seed)));
    c.size = int(o.get_int("scene_size", c.size));
    c.min_gap = int(o.get_int("scene_min_gap", c.min_gap));
    c.train_count = o.get_int("scene_train", c.train_count);
    c.val_count = o.get_int("scene_val", c.val_count);
    return c;
}

namespace {

std::shared_ptr<Dataset> open_context_scenes_from_config(const DatasetOptions& o) {
    return open_context_scenes(context_scenes_config(o.config), o.split);
}

}  // namespace

REGISTER_DATASET("contextscenes", open_context_scenes_from_config);

// ---- the VOC-layout copy on disk ----

namespace {

const char* kMarkerFile = "contextscenes.json";

std::string settings_json(const ContextScenesConfig& c) {
    return str("{\"generator_version\": ", kGeneratorVersion, ", \"seed\": ", c.seed, ", \"size\": ", c.size,
               ", \"train\": ", c.train_count, ", \"val\": ", c.val_count, ", \"min_gap\": ", c.min_gap, "}\n");
}

int64_t count_files(const fs::path& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return -1;
    int64_t n = 0;
    for (const auto& f : fs::directory_iterator(dir, ec))
        if (f.is_regular_file()) ++n;
    return n;
}

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    out << text;
    out.close();
    STRATA_CHECK(out, "contextscenes: cannot write ", path.string());
}

}  // namespace

bool context_scenes_complete(const std::string& out_dir, const ContextScenesConfig& config) {
    fs::path out(out_dir);
    std::ifstream marker(out / kMarkerFile, std::ios::binary);
    if (!marker) return false;
    std::stringstream text;
    text << marker.rdbuf();
    if (text.str() != settings_json(config)) return false;
    int64_t images = config.train_count + config.val_count;
    return count_files(out / "JPEGImages") == images && count_files(out / "SegmentationClass") == images;
}

ContextScenesWriteResult write_context_scenes(const std::string& out_dir, const ContextScenesConfig& config,
                                              int threads) {
    auto start = std::chrono::steady_clock::now();
    check_config(config);
    ContextScenesWriteResult result;
    if (context_scenes_complete(out_dir, config)) {
        result.skipped = true;
        return result;
    }
    fs::path out(out_dir);
    STRATA_CHECK(!out.filename().empty(), "contextscenes: the output folder '", out_dir, "' must not end in '/'");
    fs::path partial = out.string() + ".partial";
    std::error_code ec;
    if (fs::exists(out, ec)) {
        // Ours (with other settings, or with files deleted since): replace it. Anything else: refuse.
        bool ours = fs::exists(out / kMarkerFile, ec);
        bool empty = fs::is_directory(out, ec) && fs::is_empty(out, ec);
        STRATA_CHECK(ours || empty, "contextscenes: ", out_dir, " exists and was not written by make_contextscenes; "
                     "remove it or choose another output folder");
        fs::remove_all(out);
    }
    fs::remove_all(partial, ec);  // left by an interrupted run
    for (const char* sub : {"JPEGImages", "SegmentationClass", "ImageSets/Segmentation"}) {
        fs::create_directories(partial / sub, ec);
        STRATA_CHECK(!ec, "contextscenes: cannot create ", (partial / sub).string(), ": ", ec.message());
    }

    // The images, shared between threads by index: thread t writes images t, t + T, t + 2T, ...
    struct Job {
        std::string split;
        int64_t index;
    };
    std::vector<Job> jobs;
    for (int64_t i = 0; i < config.train_count; ++i) jobs.push_back({"train", i});
    for (int64_t i = 0; i < config.val_count; ++i) jobs.push_back({"val", i});
    int n_threads = threads > 0 ? threads : std::max(1, int(std::thread::hardware_concurrency()));
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n_threads));
    std::vector<Rgb> palette = context_scenes_colors();
    auto work = [&](int t) {
        try {
            for (size_t j = size_t(t); j < jobs.size(); j += size_t(n_threads)) {
                ContextScene scene = generate_context_scene(config, jobs[j].split, jobs[j].index);
                std::string name = context_scene_name(jobs[j].split, jobs[j].index) + ".png";
                save_png((partial / "JPEGImages" / name).string(), scene.image);
                save_palette_png((partial / "SegmentationClass" / name).string(), scene.label, palette);
            }
        } catch (...) {
            errors[size_t(t)] = std::current_exception();
        }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < n_threads; ++t) pool.emplace_back(work, t);
    for (std::thread& t : pool) t.join();
    for (const std::exception_ptr& e : errors)
        if (e) std::rethrow_exception(e);

    std::string train, val, names, colors;
    for (int64_t i = 0; i < config.train_count; ++i) train += context_scene_name("train", i) + "\n";
    for (int64_t i = 0; i < config.val_count; ++i) val += context_scene_name("val", i) + "\n";
    for (const std::string& n : context_scenes_class_names()) names += n + "\n";
    for (const Rgb& c : palette) colors += str(int(c[0]), " ", int(c[1]), " ", int(c[2]), "\n");
    fs::path lists = partial / "ImageSets" / "Segmentation";
    write_text(lists / "train.txt", train);
    write_text(lists / "val.txt", val);
    write_text(lists / "trainval.txt", train + val);
    write_text(partial / "class_names.txt", names);
    write_text(partial / "class_colors.txt", colors);
    write_text(partial / kMarkerFile, settings_json(config));  // last: its presence means complete
    fs::rename(partial, out, ec);
    STRATA_CHECK(!ec, "contextscenes: cannot rename ", partial.string(), " to ", out_dir, ": ", ec.message());

    result.images = int64_t(jobs.size());
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

}  // namespace strata
