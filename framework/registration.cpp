// The registrations and their owners (see registration.h).
#include "framework/registration.h"

#include <cstdio>
#include <cstdlib>

#include "framework/check.h"

namespace strata {

namespace {

struct Staged {
    Registration what;
    std::function<void()> apply;
};

// Function-local statics, so that registrars running during static initialisation in any order find them built.
std::vector<Registration>& committed() {
    static std::vector<Registration> list;
    return list;
}
struct Staging {
    bool active = false;
    std::string owner;
    std::vector<Staged> entries;
};
Staging& staging() {
    static Staging s;
    return s;
}

std::string twice_message(const Registration& first, const Registration& second) {
    return str(first.kind, " '", first.name, "' is registered twice: by ", first.owner, " and by ", second.owner,
               ". Give one of them another name (names are unique across Strata and every loaded plugin)");
}

const Registration* find_committed(const std::string& kind, const std::string& name) {
    for (const Registration& r : committed())
        if (r.kind == kind && r.name == name) return &r;
    return nullptr;
}

bool same_object(const Registration& a, const Registration& b) { return a.identity && a.identity == b.identity; }

}  // namespace

void add_registration(const std::string& kind, const std::string& name, const std::string& owner,
                      std::function<void()> apply, const void* identity) {
    Staging& s = staging();
    if (s.active) {
        s.entries.push_back({{kind, name, s.owner, identity}, std::move(apply)});
        return;
    }
    Registration r{kind, name, owner, identity};
    if (const Registration* old = find_committed(kind, name)) {
        if (same_object(*old, r)) return;
        STRATA_FAIL(twice_message(*old, r));
    }
    apply();
    committed().push_back(std::move(r));
}

void add_registration_or_exit(const std::string& kind, const std::string& name, const std::string& owner,
                              std::function<void()> apply, const void* identity) {
    try {
        add_registration(kind, name, owner, std::move(apply), identity);
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        std::_Exit(1);  // static initialisation is not over: no exit handlers may run on half-built globals
    }
}

const std::vector<Registration>& registrations() { return committed(); }

std::string registration_owner(const std::string& kind, const std::string& name) {
    const Registration* r = find_committed(kind, name);
    return r ? r->owner : "";
}

void begin_staging(const std::string& owner) {
    Staging& s = staging();
    STRATA_CHECK(!s.active, "cannot load ", owner, " while ", s.owner, " is loading (load plugins one at a time)");
    s = Staging{true, owner, {}};
}

std::vector<std::string> staged_conflicts() {
    std::vector<std::string> out;
    const std::vector<Staged>& e = staging().entries;
    for (size_t i = 0; i < e.size(); ++i) {
        if (const Registration* old = find_committed(e[i].what.kind, e[i].what.name)) {
            if (!same_object(*old, e[i].what)) out.push_back(twice_message(*old, e[i].what));
            continue;
        }
        for (size_t j = 0; j < i; ++j)
            if (e[j].what.kind == e[i].what.kind && e[j].what.name == e[i].what.name &&
                !same_object(e[j].what, e[i].what)) {
                out.push_back(twice_message(e[j].what, e[i].what));
                break;
            }
    }
    return out;
}

size_t commit_staged() {
    std::vector<Staged> entries = std::move(staging().entries);
    staging() = Staging{};
    size_t count = 0;
    for (Staged& e : entries) {
        if (find_committed(e.what.kind, e.what.name)) continue;  // the same object again (checked by staged_conflicts)
        e.apply();
        committed().push_back(std::move(e.what));
        ++count;
    }
    return count;
}

void discard_staged() { staging() = Staging{}; }

}  // namespace strata
