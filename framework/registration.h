// Who registered what: the one bookkeeping every registry (layers, kernels, device backends) goes through, so that a
// name taken twice is an error naming both registrants, and a plugin's registrations can be held back until the
// plugin has passed its checks.
//
//     add_registration("layer", "relu", "layers/relu.cpp", [=] { map["relu"] = factory; });
//
// `apply` is what actually fills the registry. Outside a plugin load it runs at once, after the (kind, name) pair
// was checked free. While a plugin loads (framework/plugin.cpp, between begin_staging and commit_staged or
// discard_staged) it is only staged: the plugin's static registrars run during dlopen, before its entry point and its
// checks, and nothing of a plugin that is refused may reach the registries.
//
// A registry of model parts ("context" modules, next to "layer") is one more kind: call add_registration with its
// own kind string and it gets the duplicate check, the owners and the staging for free.
//
// NOTE: registration is single-threaded: static initialisation, then plugin loading from main() before any work.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace strata {

struct Registration {
    std::string kind;   // "layer", "kernel", "backend"
    std::string name;   // "relu", "relu_forward on cpu", "cuda"
    std::string owner;  // the source file that registered it ("layers/relu.cpp"), or "plugin <path>"
    // For a name that several files may register for the same object (a kernel table, filled by layers/relu.cpp
    // and cuda/relu.cu): the object. The same name with the same identity is no clash, and registered once.
    const void* identity = nullptr;
};

// Registers (kind, name) for `owner` and runs apply(), or stages both while a plugin loads. A pair already taken is
// an Error naming both owners: "layer 'relu' is registered twice: by layers/relu.cpp and by plugin x.so".
void add_registration(const std::string& kind, const std::string& name, const std::string& owner,
                      std::function<void()> apply, const void* identity = nullptr);

// Every committed registration, in the order they were made.
const std::vector<Registration>& registrations();
// The owner of (kind, name), or "" when it is not registered.
std::string registration_owner(const std::string& kind, const std::string& name);

// Registrar side of add_registration for static initialisers: a duplicate there cannot be thrown to anyone, so it
// prints "error: <message>" and ends the program (exit code 1) before main() starts.
void add_registration_or_exit(const std::string& kind, const std::string& name, const std::string& owner,
                              std::function<void()> apply, const void* identity = nullptr);

// ---- staging, for the plugin loader ----
// From begin_staging(owner) on, add_registration records (with that owner) instead of applying.
void begin_staging(const std::string& owner);
// The staged registrations that clash with a committed one or with each other, as messages; empty when all are free.
std::vector<std::string> staged_conflicts();
// Applies every staged registration, in order, and stops staging; returns how many there were.
size_t commit_staged();
// Drops every staged registration and stops staging: the registries are as they were before begin_staging.
void discard_staged();

}  // namespace strata
