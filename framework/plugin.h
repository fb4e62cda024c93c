// Plugins: ops, kernels and layers from a shared object loaded at run time, without rebuilding Strata.
//
//     // my_layer.cpp: written exactly like an op of layers/ (kernels, REGISTER_KERNEL, REGISTER_LAYER), plus
//     #include "strata.h"
//     STRATA_PLUGIN("my_layer", "1.0")
//
//     make plugin SRC=path/to/my_layer.cpp          -> build/plugins/my_layer.so (docs/plugins.md: the compiler line)
//     build/bin/train --plugin build/plugins/my_layer.so ...      or "plugins": ["build/plugins/my_layer.so"]
//
// A plugin is C++ linked against the program's own Strata symbols, so it must be built by the same compiler, C++
// library ABI and Strata version: STRATA_PLUGIN records those (the build fingerprint) and the plugin ABI version in
// the one extern "C" entry point, strata_plugin(), and load_plugin refuses a plugin whose values differ from the
// program's, with a message naming the plugin and what is wrong. It also refuses a file that is not a shared object,
// one without the entry point, one whose entry point throws, and one that registers a name already taken (naming the
// other owner). The plugin's static registrars run when it is opened, but only stage their registrations
// (framework/registration.h); they reach the registries after every check passed, so a refused plugin leaves them
// exactly as they were. A loaded plugin is never unloaded (its kernels may be in use until the program ends).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

// Strata's version, part of the fingerprint: a plugin built against another version is refused.
#define STRATA_VERSION "0.10.0"
// The layout of StrataPluginInfo and the meaning of the entry point; raised when either changes.
#define STRATA_PLUGIN_ABI 1

#define STRATA_STRINGIFY_INNER(x) #x
#define STRATA_STRINGIFY(x) STRATA_STRINGIFY_INNER(x)
#if defined(__clang__)
#define STRATA_COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define STRATA_COMPILER "gcc " __VERSION__
#else
#define STRATA_COMPILER "unknown compiler"
#endif
#if defined(__GLIBCXX__)
#define STRATA_CXX_LIBRARY \
    "libstdc++ " STRATA_STRINGIFY(__GLIBCXX__) " cxx11-abi=" STRATA_STRINGIFY(_GLIBCXX_USE_CXX11_ABI)
#elif defined(_LIBCPP_VERSION)
#define STRATA_CXX_LIBRARY "libc++ " STRATA_STRINGIFY(_LIBCPP_VERSION) " abi=" STRATA_STRINGIFY(_LIBCPP_ABI_VERSION)
#else
#define STRATA_CXX_LIBRARY "unknown C++ library"
#endif
// What a plugin must share with the program that loads it, as the compiler of each side sees it.
#define STRATA_BUILD_FINGERPRINT "strata " STRATA_VERSION "; " STRATA_COMPILER "; " STRATA_CXX_LIBRARY

extern "C" {
// Filled by the plugin's entry point. abi_version stays the first field in every ABI, so that the loader can read
// it from a plugin of any version.
struct StrataPluginInfo {
    uint32_t abi_version;     // STRATA_PLUGIN_ABI as the plugin was built
    uint32_t struct_size;     // sizeof(StrataPluginInfo) as the plugin was built
    const char* name;         // the plugin's name ("hard_swish"): one plugin of a name per program
    const char* version;      // the plugin's own version ("1.0"), shown by --list-layers
    const char* fingerprint;  // STRATA_BUILD_FINGERPRINT as the plugin was built
};
}

// The entry point's name and type: extern "C" void strata_plugin(StrataPluginInfo* info). It may also register
// things itself (register_layer(..., "plugin")), and throw to refuse loading; both are staged like the registrars.
#define STRATA_PLUGIN_ENTRY "strata_plugin"
using StrataPluginEntry = void (*)(StrataPluginInfo* info);

// Defines the entry point; one line in one source file of the plugin.
#define STRATA_PLUGIN(plugin_name, plugin_version)                                                     \
    extern "C" __attribute__((visibility("default"))) void strata_plugin(StrataPluginInfo* info) {     \
        info->abi_version = STRATA_PLUGIN_ABI;                                                         \
        info->struct_size = sizeof(StrataPluginInfo);                                                  \
        info->name = plugin_name;                                                                      \
        info->version = plugin_version;                                                                \
        info->fingerprint = STRATA_BUILD_FINGERPRINT;                                                  \
    }

namespace strata {

struct LoadedPlugin {
    std::string name, version, path;
    size_t registrations = 0;  // how many layers, kernels and backends it added
};

// Loads one plugin and commits its registrations, or throws an Error saying which plugin was refused and why; the
// registries are then as they were. Loading a file that is loaded already does nothing.
void load_plugin(const std::string& path);
void load_plugins(const std::vector<std::string>& paths);
const std::vector<LoadedPlugin>& loaded_plugins();

// This program's STRATA_BUILD_FINGERPRINT.
std::string build_fingerprint();

// What --list-layers prints: the layers and their owners, the kernels per device, the backends, every other kind of
// registration by name (the PSPNet programs' context modules), the plugins.
std::string describe_registry();

// The options every program takes, handled before its own parsing: each "--plugin PATH" (repeatable) is loaded in
// order; "--list-layers" prints describe_registry() after them and exits 0. Both are removed from argv; returns the
// new argc. A refused plugin throws (the program prints "error: ..." and exits 1).
int take_plugin_options(int argc, char** argv);

}  // namespace strata
