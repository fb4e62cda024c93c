# Strata's build. One hand-written Makefile: sources are globbed, objects go to build/, header dependencies come
# from the compiler (-MMD -MP).
#
#   make train      set up, build, generate ContextScenes, train a small PSPNet on it and evaluate it
#                   (CONFIG=configs/<x>.json and ARGS="key=value ..." choose another run; the example plugins
#                   are built too: ARGS="context=aspp plugins=[build/plugins/aspp.so] run_dir=runs/aspp")
#                   (NP=2: data parallel on 2 MPI ranks of this machine, 1 thread each; docs/distributed.md)
#   make            the library (build/libstrata.so) and the programs
#   make test       install missing packages, build and run the test suite; ends with "N passed, M failed"
#   make bench      the benchmarks (performance is measured here, never in unit tests)
#   make bench-pspnet   Strata and PyTorch side by side on PSPNet (QUICK=1: fewer steps, for a busy machine)
#   make data       write the built-in ContextScenes dataset to datasets/contextscenes in VOC layout
#   make deps       install the Debian packages the build needs (as root), or print the command
#   make fuzz       build the libFuzzer targets of fuzz/ with clang and run each for FUZZ_SECONDS (fuzz/README.md)
#   make fixtures   regenerate the PyTorch reference fixtures (needs Debian's python3-torch; not part of the tests)
#   make plugin SRC=path/to/my_layer.cpp   build a run-time plugin, build/plugins/my_layer.so (docs/plugins.md)
#   make clean
#
#   CUDA=auto|0|1   build the CUDA backend from cuda/ (auto: when nvcc is found)
#   ARCH=...        code-generation flags (default: -march=native when the compiler accepts it)

CXX      ?= g++
NVCC     ?= /usr/local/cuda/bin/nvcc
CUDA     ?= auto
PYTHON   ?= /usr/bin/python3
JOBS     ?= $(shell nproc 2>/dev/null || echo 2)

MULTIARCH := $(shell $(CXX) -print-multiarch 2>/dev/null)
# OpenBLAS's OpenMP build, so that BLAS and our parallel_for share one thread pool (framework/parallel.h).
BLAS_LIB_DIR := /usr/lib/$(MULTIARCH)/openblas-openmp
BLAS_INC_DIR := /usr/include/$(MULTIARCH)/openblas-openmp
ARCH ?= $(shell $(CXX) -march=native -x c++ -E /dev/null >/dev/null 2>&1 && echo -march=native)

# -ffp-contract=off: a * b + c is rounded twice, as written, never fused into one FMA behind our back. Whether GCC
# fuses depends on -march and on how it vectorises a loop, so with fusion the same source gave other bits on
# another CPU (a blur in the augmentation differed between AVX2 and AVX-512 builds). Where a fused multiply-add is
# meant, the code says std::fma (framework/blas.h).
CXXFLAGS := -std=c++20 -O2 $(ARCH) -ffp-contract=off -fPIC -fopenmp -Wall -Wextra -Wno-unused-parameter -I. \
            -I$(BLAS_INC_DIR) -MMD -MP
LDFLAGS  := -fopenmp -L$(BLAS_LIB_DIR) -Wl,-rpath,$(BLAS_LIB_DIR)
LDLIBS   := -lopenblas -lpng -ljpeg -lpthread
# Open MPI, for the "mpi" communicator backend (mpi/): only mpi/*.cpp see its headers; everything links libmpi.
MPI_CXXFLAGS := $(shell mpicxx --showme:compile 2>/dev/null)
MPI_LDLIBS   := $(filter-out -lmpi_cxx,$(shell mpicxx --showme:link 2>/dev/null))
LDLIBS   += $(MPI_LDLIBS)
# Plugins (framework/plugin.h): dlopen, and the programs export their symbols for the plugins they load to link to.
LDLIBS   += -ldl
LDFLAGS  += -rdynamic

ifeq ($(CUDA),auto)
  CUDA := $(if $(wildcard $(NVCC)),1,0)
endif

BUILD := build
# strata.h includes every layers/<op>.h through this generated header, so a new op needs no edit there. It is written
# at every make run, before anything compiles, and only rewritten when the list of headers changed. strata.h names
# it by this path (build/, whatever BUILD is).
LAYERS_HEADER := build/gen/strata_layers.h
$(if $(shell tools/layers_header.sh $(LAYERS_HEADER) >/dev/null || echo failed),$(error tools/layers_header.sh failed))
# Every .cpp that defines main() is a program (built into build/bin/<name>); the rest form the library.
SRC_DIRS     := framework layers data models/pspnet mpi
ALL_SRCS     := $(wildcard $(addsuffix /*.cpp,$(SRC_DIRS)))
open_paren   := (
PROGRAM_SRCS := $(shell grep -l '^int main$(open_paren)' $(ALL_SRCS) /dev/null 2>/dev/null)
LIB_SRCS     := $(filter-out $(PROGRAM_SRCS),$(ALL_SRCS))
TEST_SRCS  := $(filter-out tests/mpi/%,$(wildcard tests/*.cpp tests/*/*.cpp))
BENCH_SRCS := $(wildcard bench/*.cpp)
LIB_OBJS   := $(LIB_SRCS:%.cpp=$(BUILD)/%.o)
TEST_OBJS  := $(TEST_SRCS:%.cpp=$(BUILD)/%.o)

LIBRARY    := $(BUILD)/libstrata.so
PROGRAMS   := $(foreach p,$(PROGRAM_SRCS),$(BUILD)/bin/$(basename $(notdir $(p))))
TEST_BIN   := $(BUILD)/tests/strata_tests
# Every test program `make test` runs; cuda/cuda.mk adds the emulated-CUDA ones.
TEST_BINS  := $(TEST_BIN)
BENCH_BINS := $(BENCH_SRCS:bench/%.cpp=$(BUILD)/bench/%)
EXAMPLE_BIN := $(BUILD)/examples/hello

# The CUDA backend's rules (nvcc builds, the emulated build and its sanitizer variants) live beside its sources.
# With CUDA=1 it sets CUDA_LIB_OBJS/CUDA_LIB_LDLIBS: the real backend, linked into the library and the programs.
-include cuda/cuda.mk
# The tests that run under mpirun (tests/mpi/mpi.mk adds them to TEST_BINS).
-include tests/mpi/mpi.mk
LINK_OBJS := $(LIB_OBJS) $(CUDA_LIB_OBJS)
# What `make test` cannot run on this machine, said in its output (tests/run_tests.sh --skipped).
ifneq ($(CUDA),1)
  TEST_SKIPPED := --skipped "the real-CUDA test program ($(BUILD)/cuda/cuda_tests): CUDA=0 or no nvcc at $(NVCC); \
the CUDA kernels were tested on the emulator only (install the CUDA toolkit, or set NVCC=, to build it)"
endif
LINK_LIBS := $(LDLIBS) $(CUDA_LIB_LDLIBS)

DEB_PACKAGES := libopenblas-dev libopenblas-openmp-dev libstb-dev libpng-dev libjpeg-dev nlohmann-json3-dev \
                doctest-dev gnuplot-nox openmpi-bin libopenmpi-dev

# `make train`: the run and the dataset it reads. `make data` writes the dataset configs/contextscenes.json trains on
# (make_contextscenes reads its data_root and scene_* settings from that file: one place for them).
CONFIG ?= configs/contextscenes.json
ARGS   ?=
# `make train NP=<n>`: n ranks under mpirun on this machine (as root too, in a container), each with
# THREADS_PER_RANK threads, unbound, over shared memory only (the flags are explained in docs/distributed.md).
NP     ?= 1
THREADS_PER_RANK ?= 1
MPIRUN_LOCAL = mpirun --allow-run-as-root --oversubscribe --bind-to none -np $(NP) --mca btl self,vader \
               --mca btl_vader_single_copy_mechanism none \
               -x STRATA_NUM_THREADS=$(THREADS_PER_RANK) -x OMP_NUM_THREADS=$(THREADS_PER_RANK)

.PHONY: all test bench bench-pspnet deps fixtures clean example train data fuzz
.DEFAULT_GOAL := all

all: $(LIBRARY) $(EXAMPLE_BIN) $(PROGRAMS)

$(BUILD)/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CXXFLAGS) -c $< -o $@

$(BUILD)/mpi/%.o: CXXFLAGS += $(MPI_CXXFLAGS)

# The shared library keeps every object file, so every kernel and layer registrar runs when it is loaded.
# Programs inside the repo link the objects directly for the same reason (a static archive would drop them).
$(LIBRARY): $(LINK_OBJS)
	$(CXX) -shared $(LDFLAGS) $^ -o $@ $(LINK_LIBS)

$(TEST_BIN): $(TEST_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

# build/bin/<name> from the one source file <dir>/<name>.cpp that defines main()
define program_rule
$(BUILD)/bin/$(basename $(notdir $(1))): $(BUILD)/$(1:.cpp=.o) $$(LINK_OBJS)
	@mkdir -p $$(dir $$@)
	$$(CXX) $$(LDFLAGS) $$^ -o $$@ $$(LINK_LIBS)
endef
$(foreach p,$(PROGRAM_SRCS),$(eval $(call program_rule,$(p))))

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LINK_OBJS)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LINK_LIBS)

# The README's example, built exactly as the README tells users to build their own programs.
$(EXAMPLE_BIN): examples/hello.cpp $(LIBRARY)
	@mkdir -p $(dir $@)
	$(CXX) -std=c++20 -I$(CURDIR) examples/hello.cpp -L$(CURDIR)/$(BUILD) -lstrata -Wl,-rpath,$(CURDIR)/$(BUILD) -o $@

example: $(EXAMPLE_BIN)
	$(EXAMPLE_BIN)

test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(TEST_BINS) $(EXAMPLE_BIN) $(PROGRAMS)
	@$(EXAMPLE_BIN) > $(BUILD)/example.log 2>&1 || (cat $(BUILD)/example.log; echo "the README example failed"; exit 1)
	@tests/run_tests.sh $(TEST_SKIPPED) $(TEST_BINS)

data: $(BUILD)/bin/make_contextscenes
	@$(BUILD)/bin/make_contextscenes configs/contextscenes.json

train: deps
	@$(MAKE) --no-print-directory -j$(JOBS) all $(EXAMPLE_PLUGINS)
	@$(MAKE) --no-print-directory data
	$(if $(filter-out 1,$(NP)),$(MPIRUN_LOCAL) )$(BUILD)/bin/train $(CONFIG) $(ARGS)

bench: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BENCH_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; $$b || exit 1; done

bench-pspnet: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(BUILD)/bench/pspnet_bench
	$(BUILD)/bench/pspnet_bench --python $(PYTHON) $(if $(filter 1,$(QUICK)),--quick)

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null || \
	    { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing >/dev/null; } || \
	    { echo "apt-get failed to install:$$missing"; exit 1; }; \
	  else \
	    echo "missing packages:$$missing"; echo "run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi

# ---- fuzzing (fuzz/README.md) ----
# The readers of untrusted input, built with clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer
# into build/fuzz/ (a build of its own: the library objects are recompiled with the sanitizers), then each run for
# FUZZ_SECONDS. Inputs that crash are written straight into fuzz/regressions/<target>/, which `make test` replays.
FUZZ_CXX      ?= clang++
FUZZ_SECONDS  ?= 10
FUZZ_PACKAGES := clang libclang-rt-dev libomp-dev
FUZZ_TARGETS  := $(patsubst fuzz/fuzz_%.cpp,%,$(wildcard fuzz/fuzz_*.cpp))
FUZZ_BUILD    := $(BUILD)/fuzz
# config.cpp's model_config builds a PSPNetConfig, whose definition pulls in the model and its layers
FUZZ_LIB_SRCS := $(filter framework/% layers/% data/% models/pspnet/config.cpp models/pspnet/pspnet.cpp \
                   models/pspnet/resnet.cpp,$(LIB_SRCS))
FUZZ_LIB_OBJS := $(FUZZ_LIB_SRCS:%.cpp=$(FUZZ_BUILD)/obj/%.o)
FUZZ_BINS     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_CXXFLAGS := -std=c++20 -O1 -g -fno-omit-frame-pointer -fopenmp -Wno-pass-failed -fsanitize=address,undefined \
                 -fno-sanitize-recover=undefined -I. -I$(BLAS_INC_DIR) -MMD -MP

$(FUZZ_BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

# A static archive, so that each target links only the objects its reader needs.
$(FUZZ_BUILD)/libstrata_fuzz.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

# The data objects are linked whole, not picked from the archive, so that every dataset format's registrar is kept
# (the config's `dataset` key accepts the registered formats).
FUZZ_DATA_OBJS := $(filter $(FUZZ_BUILD)/obj/data/%,$(FUZZ_LIB_OBJS))
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.cpp fuzz/targets.h $(FUZZ_DATA_OBJS) $(FUZZ_BUILD)/libstrata_fuzz.a
	$(FUZZ_CXX) $(FUZZ_CXXFLAGS) -fsanitize=fuzzer $< $(FUZZ_DATA_OBJS) $(FUZZ_BUILD)/libstrata_fuzz.a -o $@ \
	    -L$(BLAS_LIB_DIR) -Wl,-rpath,$(BLAS_LIB_DIR) $(LDLIBS)

fuzz:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(FUZZ_PACKAGES)"
	@$(MAKE) --no-print-directory -j$(JOBS) $(FUZZ_BINS)
	@fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

fixtures:
	@for f in tests/fixtures/gen_*.py; do echo "$(PYTHON) $$f"; $(PYTHON) $$f || exit 1; done

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# ---- plugins (docs/plugins.md) ----
# make plugin SRC=path/to/my_layer.cpp builds build/plugins/my_layer.so from it, plus path/to/my_layer.cu (its CUDA
# twin) when there is one and CUDA=1. The .so is not linked against Strata: its Strata symbols are the loading
# program's (programs link with -rdynamic), so there is one registry per program. -fvisibility=hidden keeps the
# plugin's own symbols to itself; STRATA_PLUGIN exports the entry point.
PLUGIN_DIR      := $(BUILD)/plugins
PLUGIN_CXXFLAGS := -std=c++20 -O2 -ffp-contract=off -fPIC -fopenmp -fvisibility=hidden -I$(CURDIR)
PLUGIN_NVFLAGS  := -std=c++20 -O2 $(NVCC_ARCH) -Xcompiler -fPIC,-fvisibility=hidden -I$(CURDIR)
PLUGIN_HEADERS  := strata.h $(LAYERS_HEADER) $(wildcard framework/*.h layers/*.h cuda/*.h cuda/emu/*.h)
# models/pspnet's headers: a plugin may supply a model part (plugins/examples/aspp.cpp, a context module)
PLUGIN_HEADERS  += $(wildcard models/pspnet/*.h)
EXAMPLE_PLUGINS := $(patsubst plugins/examples/%.cpp,$(PLUGIN_DIR)/%.so,$(wildcard plugins/examples/*.cpp))

# $(call build_plugin,<source .cpp>,<output .so>): the commands docs/plugins.md gives
define build_plugin
	@mkdir -p $(dir $(2))
	$(if $(and $(filter 1,$(CUDA)),$(wildcard $(basename $(1)).cu)),\
	  $(NVCC) $(PLUGIN_NVFLAGS) -c $(basename $(1)).cu -o $(2).cu.o && \
	  $(CXX) $(PLUGIN_CXXFLAGS) -shared $(1) $(2).cu.o -o $(2) -L$(CUDA_HOME)/lib64 -Wl$(comma)-rpath$(comma)$(CUDA_HOME)/lib64 -lcudart,\
	  $(CXX) $(PLUGIN_CXXFLAGS) -shared $(1) -o $(2))
endef
comma := ,

plugin:
	@test -n "$(SRC)" || { echo "usage: make plugin SRC=path/to/my_layer.cpp (docs/plugins.md)"; exit 1; }
	$(call build_plugin,$(SRC),$(PLUGIN_DIR)/$(basename $(notdir $(SRC))).so)

$(PLUGIN_DIR)/%.so: plugins/examples/%.cpp $(wildcard plugins/examples/*.h plugins/examples/*.cu) $(PLUGIN_HEADERS)
	$(call build_plugin,$<,$@)

# The plugins the tests load: the deliberately bad ones of tests/plugins/bad/ (each refused for one reason), and the
# hard_swish example built CPU-only (for the test program, which has no CUDA backend) and with its .cu compiled for
# the emulator (for the emulated-CUDA test program: CPU/CUDA parity through a plugin).
TEST_PLUGIN_DIR := $(BUILD)/tests/plugins
TEST_PLUGINS    := $(patsubst tests/plugins/bad/%.cpp,$(TEST_PLUGIN_DIR)/%.so,$(wildcard tests/plugins/bad/*.cpp)) \
                   $(TEST_PLUGIN_DIR)/hard_swish_cpu.so $(EXAMPLE_PLUGINS)
$(TEST_PLUGIN_DIR)/%.so: tests/plugins/bad/%.cpp $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -shared $< -o $@
$(TEST_PLUGIN_DIR)/hard_swish_cpu.so: plugins/examples/hard_swish.cpp plugins/examples/hard_swish.h $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -shared $< -o $@
$(TEST_PLUGIN_DIR)/hard_swish_emulated.so: plugins/examples/hard_swish.cpp plugins/examples/hard_swish.cu \
                                           plugins/examples/hard_swish.h $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -DCUEMU -Wno-unknown-pragmas -shared -x c++ $(filter %.cpp %.cu,$^) -o $@
# docs/adding_a_layer.md's finished files, built as its plugin commands build them (CPU-only, for the test program).
# A reader who followed its section 6 has swish in layers/: then the plugin would redefine it, and is not built.
TUTORIAL_SWISH  := $(if $(wildcard layers/swish.cpp),,swish)
TEST_PLUGINS    += $(TUTORIAL_SWISH:%=$(TEST_PLUGIN_DIR)/%.so) $(TEST_PLUGIN_DIR)/swish_context.so
$(TEST_PLUGIN_DIR)/swish.so: docs/tutorial/swish.cpp docs/tutorial/swish.h $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -shared $< -o $@
$(TEST_PLUGIN_DIR)/swish_context.so: docs/tutorial/swish_context.cpp $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -shared $< -o $@
$(TEST_PLUGIN_DIR)/swish_emulated.so: docs/tutorial/swish.cpp docs/tutorial/swish.cu docs/tutorial/swish.h \
                                      $(PLUGIN_HEADERS)
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) -DCUEMU -Wno-unknown-pragmas -shared -x c++ $(filter %.cpp %.cu,$^) -o $@
$(TEST_BIN): | $(TEST_PLUGINS)
$(CUDA_EMU_TESTS): | $(TEST_PLUGIN_DIR)/hard_swish_emulated.so $(TUTORIAL_SWISH:%=$(TEST_PLUGIN_DIR)/%_emulated.so)
.PHONY: plugin
