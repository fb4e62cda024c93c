// The plugin loader and the registry listing (see plugin.h).
#include "framework/plugin.h"

#include <dlfcn.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>

#include "framework/check.h"
#include "framework/registration.h"

namespace strata {

namespace {

std::vector<LoadedPlugin>& plugins() {
    static std::vector<LoadedPlugin> list;
    return list;
}

const char* kRebuildHint = "rebuild it against this Strata with: make plugin SRC=<its source> (docs/plugins.md)";

// Everything a refused plugin needs undone: its staged registrations dropped, its handle closed.
[[noreturn]] void refuse(void* handle, const std::string& path, const std::string& why) {
    discard_staged();
    if (handle) dlclose(handle);
    STRATA_FAIL("plugin '", path, "' refused: ", why, ". Nothing of it was registered");
}

// Runs the entry point; "" when it returned, else what it threw.
std::string call_entry(StrataPluginEntry entry, StrataPluginInfo* info) {
    try {
        entry(info);
        return "";
    } catch (const std::exception& e) {  // not Error&: the plugin's copy of Error's type is not the program's
        return e.what();
    } catch (...) {
        return "an exception that is not a std::exception";
    }
}

}  // namespace

std::string build_fingerprint() { return STRATA_BUILD_FINGERPRINT; }

void load_plugin(const std::string& path) {
    namespace fs = std::filesystem;
    std::error_code ec;
    STRATA_CHECK(fs::is_regular_file(path, ec), "plugin '", path,
                 "' not found (build one with: make plugin SRC=path/to/my_layer.cpp; docs/plugins.md)");
    // an absolute path: dlopen would search the library path for a bare file name
    std::string absolute = fs::canonical(path, ec).string();
    for (const LoadedPlugin& p : plugins())
        if (fs::canonical(p.path, ec).string() == absolute) return;  // the same file twice (--plugin and the config)

    begin_staging("plugin " + path);
    void* handle = dlopen(absolute.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char* why = dlerror();
        refuse(nullptr, path, str("it is not a shared object this program can load (", why ? why : "unknown error",
                                  "); a plugin is a .so built with make plugin SRC=<source>, and an undefined symbol "
                                  "means it was built against another Strata: ", kRebuildHint));
    }
    auto entry = reinterpret_cast<StrataPluginEntry>(dlsym(handle, STRATA_PLUGIN_ENTRY));
    if (!entry)
        refuse(handle, path, "it has no entry point " STRATA_PLUGIN_ENTRY "(); add the line "
                             "STRATA_PLUGIN(\"<name>\", \"<version>\") to one of its source files");

    StrataPluginInfo info;
    std::memset(&info, 0, sizeof info);
    std::string thrown = call_entry(entry, &info);
    if (!thrown.empty()) refuse(handle, path, "its entry point " STRATA_PLUGIN_ENTRY "() threw: " + thrown);
    if (info.abi_version != STRATA_PLUGIN_ABI)
        refuse(handle, path, str("it was built for plugin ABI ", info.abi_version, ", this program has plugin ABI ",
                                 STRATA_PLUGIN_ABI, "; ", kRebuildHint));
    if (info.struct_size != sizeof(StrataPluginInfo) || !info.fingerprint || !info.name || !info.version)
        refuse(handle, path, "its entry point did not fill StrataPluginInfo; define it with STRATA_PLUGIN(...)");
    if (build_fingerprint() != info.fingerprint)
        refuse(handle, path, str("it was built with [", info.fingerprint, "] but this program with [",
                                 build_fingerprint(), "]; ", kRebuildHint));
    std::string name = info.name;
    if (name.empty()) refuse(handle, path, "its name is empty (STRATA_PLUGIN's first argument)");
    for (const LoadedPlugin& p : plugins())
        if (p.name == name)
            refuse(handle, path, str("a plugin named '", name, "' is already loaded, from ", p.path));
    std::vector<std::string> clashes = staged_conflicts();
    if (!clashes.empty()) {
        std::string all;
        for (const std::string& c : clashes) all += (all.empty() ? "" : "; ") + c;
        refuse(handle, path, all);
    }
    size_t count = commit_staged();
    plugins().push_back({name, info.version, path, count});
}

void load_plugins(const std::vector<std::string>& paths) {
    for (const std::string& p : paths) load_plugin(p);
}

const std::vector<LoadedPlugin>& loaded_plugins() { return plugins(); }

std::string describe_registry() {
    std::ostringstream out;
    std::map<std::string, std::string> layers, backends;
    std::map<std::string, std::map<std::string, std::string>> kernels;  // kernel -> device -> owner
    // every other kind ("context module", models/pspnet/context.h): kind -> name -> owner
    std::map<std::string, std::map<std::string, std::string>> others;
    for (const Registration& r : registrations()) {
        if (r.kind == "layer") layers[r.name] = r.owner;
        else if (r.kind == "backend") backends[r.name] = r.owner;
        else if (r.kind != "kernel") others[r.kind][r.name] = r.owner;
        if (r.kind != "kernel") continue;
        size_t on = r.name.rfind(" on ");
        kernels[r.name.substr(0, on)][r.name.substr(on + 4)] = r.owner;
    }
    out << "layers (" << layers.size() << "):\n";
    for (const auto& [name, owner] : layers) out << "  " << name << "  [" << owner << "]\n";
    out << "kernels (" << kernels.size() << "), per device:\n";
    for (const auto& [name, devices] : kernels) {
        out << "  " << name << " ";
        for (const auto& [device, owner] : devices) out << " " << device << " [" << owner << "]";
        out << "\n";
    }
    out << "backends:";
    for (const auto& [name, owner] : backends) out << " " << name << " [" << owner << "]";
    out << "\n";
    for (const auto& [kind, names] : others) {
        out << kind << "s (" << names.size() << "):\n";
        for (const auto& [name, owner] : names) out << "  " << name << "  [" << owner << "]\n";
    }
    out << "plugins (" << plugins().size() << "):\n";
    for (const LoadedPlugin& p : plugins())
        out << "  " << p.name << " " << p.version << "  " << p.path << "  (" << p.registrations
            << " registrations)\n";
    return out.str();
}

int take_plugin_options(int argc, char** argv) {
    bool list = false;
    int kept = 1;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--plugin") {
            STRATA_CHECK(i + 1 < argc, "--plugin needs the path of a plugin (.so)");
            load_plugin(argv[++i]);
        } else if (a == "--list-layers") {
            list = true;
        } else {
            argv[kept++] = argv[i];
        }
    }
    if (list) {
        std::cout << describe_registry();
        std::exit(0);
    }
    argv[kept] = nullptr;
    return kept;
}

}  // namespace strata
