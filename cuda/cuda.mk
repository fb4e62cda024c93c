# The CUDA backend's build rules, included by the top-level Makefile (which defines BUILD, CXX, CXXFLAGS, LDFLAGS,
# LDLIBS, NVCC, CUDA, LIB_OBJS and TEST_BINS). Sources are globbed: a new cuda/<op>.cu, cuda/tests/*.{cu,cpp} or
# cuda/emu/tests/*.cu is picked up without editing this file. See docs/cuda.md.
#
# Every .cu file is compiled two ways:
#   real      nvcc for sm_80 and sm_90 (+ PTX for later GPUs), warnings as errors, register spills and local memory
#             as errors; ptxas's per-kernel report (registers, shared memory, spills) is kept in
#             $(BUILD)/cuda/ptxas/<file>.log. Only with CUDA=1 (the default when nvcc is found).
#   emulated  g++ -x c++ -DCUEMU: the SIMT emulator in cuda/emu/ runs the kernels on the CPU. Always built: it
#             needs no CUDA toolkit.
#
# Test programs (all run by `make test`; each ends with "N passed, M failed"):
#   $(BUILD)/cuda/cuda_emu_tests       the emulator's tests (cuda/emu/tests) and the backend tests (cuda/tests)
#                                      on the emulated backend, linked with the library
#   $(BUILD)/cuda/cuda_emu_tests_tsan  the same tests (the emulator's and the backend's op parity tests) under
#                                      ThreadSanitizer: zero reports allowed
#   $(BUILD)/cuda/cuda_emu_tests_asan  the same under AddressSanitizer + UBSan: zero reports allowed
#                                      (both are scripts that run tsan/cuda_emu_tests, asan/cuda_emu_tests with
#                                      the host side single-threaded: see "Sanitizer programs" below)
#   $(BUILD)/cuda/cuda_tests           CUDA=1: the backend tests on the real backend, linked with cudart, cuBLAS and
#                                      NCCL (never -lcuda); without a GPU it reports so and skips its GPU cases
# and two helpers the emulator's tests run as child processes, to see the sanitizers catch deliberate bugs:
#   $(BUILD)/cuda/cuemu_bugs_tsan, $(BUILD)/cuda/cuemu_bugs_asan
#
#   make cuda-test     build and run only the CUDA test programs
#   make cuda          CUDA=1: compile the real backend and link $(BUILD)/cuda/cuda_tests

CUDA_HOME  ?= $(patsubst %/bin/nvcc,%,$(NVCC))  # the toolkit root (libraries in lib64/)
CUDA_BUILD := $(BUILD)/cuda

# ---- sources ----
CUDA_BACKEND_CU := $(wildcard cuda/*.cu)            # the backend: device_cuda.cu and one file per op
CUDA_TESTS_CU   := $(wildcard cuda/tests/*.cu)      # backend tests that use the CUDA API (both builds)
CUDA_TESTS_CPP  := $(wildcard cuda/tests/*.cpp)     # backend tests through the Strata API only (both builds)
EMU_CORE_CPP    := $(wildcard cuda/emu/*.cpp)       # the emulator and the cuBLAS/NCCL stand-ins
EMU_TESTS_CU    := $(wildcard cuda/emu/tests/*.cu)  # the emulator's own tests
EMU_TESTS_CPP   := $(wildcard cuda/emu/tests/*.cpp) # tests that run the sanitizer children (plain build only)
EMU_BUGS_CU     := cuda/emu/tests/bugs/cuemu_bugs.cu
# The scheduler and the fibers are compiled without TSan instrumentation in the TSan build (fiber.h).
EMU_TSAN_UNINSTRUMENTED := cuda/emu/scheduler.cpp cuda/emu/fiber.cpp

# Sanitizer programs. They run everything the plain emulated program runs (except the tests that start the
# sanitizer children below): the emulator's tests and the op parity tests of cuda/tests/. What is compiled with the
# sanitizer is what they check: the emulator, the backend (cuda/*.cu: every op's kernels and launchers, the
# allocator, the cuBLAS calls) and the .cu tests. The library (the CPU reference of every op) and the plain C++
# tests in cuda/tests/*.cpp are the plain build's objects, reused: they hold no kernel, and building them twice more
# would cost minutes. The library is built with OpenMP, and libgomp's threads and barriers are invisible to TSan;
# so the programs run with the host side single-threaded, through wrapper scripts that set SAN_ENV: parallel_for
# then never opens a parallel region and OpenBLAS (its OpenMP build) never starts a thread, and the only
# concurrency TSan sees is the emulator's GPU threads (fibers) and the NCCL tests' host threads.
SAN_BACKEND_CU := $(CUDA_BACKEND_CU) $(CUDA_TESTS_CU)
SAN_ENV        := STRATA_NUM_THREADS=1 OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
# Left out of the sanitizer runs: the PSPNet training test (cuda/tests/test_pspnet_training.cpp) runs every op's
# kernels again, at larger sizes, which the parity tests already cover (it takes ~2 s in the plain program, ~80 s
# under TSan), and the cases named "[large]" (the same kernels as their small siblings on shapes that exercise
# long loops, up to a minute each under TSan). doctest --test-case-exclude patterns.
SAN_EXCLUDE    := cuda pspnet*,*[large]*

# ---- flags ----
EMU_CXXFLAGS := $(CXXFLAGS) -DCUEMU -Wno-unknown-pragmas
# Sanitizer builds: -O1 -g for exact lines in reports; no OpenMP (TSan does not understand libgomp's barriers).
SAN_CXXFLAGS := $(filter-out -O2 -fopenmp,$(CXXFLAGS)) -O1 -g -fno-omit-frame-pointer -Wno-unknown-pragmas
TSAN_FLAGS   := -fsanitize=thread
ASAN_FLAGS   := -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_LDLIBS   := -L$(BLAS_LIB_DIR) -Wl,-rpath,$(BLAS_LIB_DIR) -lopenblas -lpthread

NVCC_ARCH    := -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS   := -std=c++20 -O2 $(NVCC_ARCH) --Werror all-warnings -Xptxas -warn-spills,-warn-lmem-usage -Xptxas -v \
                -Xcompiler -fPIC -I. -MMD -MP
CUDA_LDLIBS  := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lnccl

# ---- objects ----
cu_objs = $(patsubst %.cu,$(CUDA_BUILD)/$(1)/%.o,$(2))
cpp_objs = $(patsubst %.cpp,$(CUDA_BUILD)/$(1)/%.o,$(2))

EMU_CORE_OBJS      := $(EMU_CORE_CPP:%.cpp=$(BUILD)/%.o)
EMU_TEST_CPP_OBJS  := $(EMU_TESTS_CPP:%.cpp=$(BUILD)/%.o)
CUDA_TEST_CPP_OBJS := $(CUDA_TESTS_CPP:%.cpp=$(BUILD)/%.o)
EMULATED_OBJS      := $(call cu_objs,emulated,$(CUDA_BACKEND_CU) $(CUDA_TESTS_CU) $(EMU_TESTS_CU))
TSAN_OBJS          := $(call cu_objs,tsan,$(EMU_TESTS_CU) $(SAN_BACKEND_CU)) \
                      $(call cpp_objs,tsan,$(EMU_CORE_CPP) tests/main.cpp)
ASAN_OBJS          := $(call cu_objs,asan,$(EMU_TESTS_CU) $(SAN_BACKEND_CU)) \
                      $(call cpp_objs,asan,$(EMU_CORE_CPP) tests/main.cpp)
TSAN_CORE_OBJS     := $(call cpp_objs,tsan,$(EMU_TSAN_UNINSTRUMENTED))
NVCC_OBJS          := $(call cu_objs,nvcc,$(CUDA_BACKEND_CU) $(CUDA_TESTS_CU))

CUDA_EMU_TESTS := $(CUDA_BUILD)/cuda_emu_tests
CUDA_TSAN_TESTS := $(CUDA_BUILD)/cuda_emu_tests_tsan
CUDA_ASAN_TESTS := $(CUDA_BUILD)/cuda_emu_tests_asan
CUDA_TSAN_PROGRAM := $(CUDA_BUILD)/tsan/cuda_emu_tests
CUDA_ASAN_PROGRAM := $(CUDA_BUILD)/asan/cuda_emu_tests
CUDA_REAL_TESTS := $(CUDA_BUILD)/cuda_tests
CUEMU_BUGS_TSAN := $(CUDA_BUILD)/cuemu_bugs_tsan
CUEMU_BUGS_ASAN := $(CUDA_BUILD)/cuemu_bugs_asan

# The same emulated tests once more with the threads of each block resumed in reverse order: a kernel whose result
# depends on the order threads run in (a missing barrier, a race) fails one of the two runs.
CUDA_EMU_TESTS_REVERSE := $(CUDA_BUILD)/cuda_emu_tests_reverse

# The real backend for the library and the programs (CUDA=1). Never -lcuda: the programs must start on machines
# without the driver, and then run on the CPU.
ifeq ($(CUDA),1)
  CUDA_LIB_OBJS   := $(call cu_objs,nvcc,$(CUDA_BACKEND_CU))
  CUDA_LIB_LDLIBS := $(CUDA_LDLIBS)
endif

CUDA_TEST_BINS := $(CUDA_EMU_TESTS) $(CUDA_EMU_TESTS_REVERSE) $(CUDA_TSAN_TESTS) $(CUDA_ASAN_TESTS)
ifeq ($(CUDA),1)
  CUDA_TEST_BINS += $(CUDA_REAL_TESTS)
endif
TEST_BINS += $(CUDA_TEST_BINS)

.PHONY: cuda cuda-test

# ---- compile rules ----
$(CUDA_BUILD)/emulated/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -x c++ -c $< -o $@

$(CUDA_BUILD)/tsan/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_CXXFLAGS) $(TSAN_FLAGS) -DCUEMU -x c++ -c $< -o $@
$(CUDA_BUILD)/tsan/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_CXXFLAGS) $(TSAN_FLAGS) -c $< -o $@
$(TSAN_CORE_OBJS): $(CUDA_BUILD)/tsan/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_CXXFLAGS) -DCUEMU_TSAN -c $< -o $@

$(CUDA_BUILD)/asan/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_CXXFLAGS) $(ASAN_FLAGS) -DCUEMU -x c++ -c $< -o $@
$(CUDA_BUILD)/asan/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(SAN_CXXFLAGS) $(ASAN_FLAGS) -c $< -o $@

# nvcc: the ptxas report goes to $(CUDA_BUILD)/ptxas/<path>.log (shown when the compile fails).
$(CUDA_BUILD)/nvcc/%.o: %.cu
	@mkdir -p $(dir $@) $(dir $(CUDA_BUILD)/ptxas/$*.log)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@ 2> $(CUDA_BUILD)/ptxas/$*.log || { cat $(CUDA_BUILD)/ptxas/$*.log; exit 1; }

# ---- programs ----
$(CUDA_EMU_TESTS): $(EMULATED_OBJS) $(EMU_CORE_OBJS) $(EMU_TEST_CPP_OBJS) $(CUDA_TEST_CPP_OBJS) $(LIB_OBJS) \
                   $(BUILD)/tests/main.o | $(CUEMU_BUGS_TSAN) $(CUEMU_BUGS_ASAN)
	$(CXX) $(LDFLAGS) $(filter %.o,$^) -o $@ $(LDLIBS)

$(CUDA_EMU_TESTS_REVERSE): $(CUDA_EMU_TESTS)
	@printf '#!/bin/sh\n# the emulated CUDA tests with reversed thread order (cuda/cuda.mk)\nCUEMU_ORDER=reverse exec "$$(dirname "$$0")/cuda_emu_tests" "$$@"\n' > $@
	@chmod +x $@

# The sanitizer programs link the plain library and cuda/tests/*.cpp objects (see "Sanitizer programs" above), so
# they link like the plain program (OpenMP, OpenBLAS, libpng); the scripts make test runs set SAN_ENV first.
$(CUDA_TSAN_PROGRAM): $(TSAN_OBJS) $(TSAN_CORE_OBJS) $(CUDA_TEST_CPP_OBJS) $(LIB_OBJS)
	$(CXX) $(TSAN_FLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(CUDA_ASAN_PROGRAM): $(ASAN_OBJS) $(CUDA_TEST_CPP_OBJS) $(LIB_OBJS)
	$(CXX) $(ASAN_FLAGS) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(CUDA_TSAN_TESTS): $(CUDA_TSAN_PROGRAM)
	@printf '#!/bin/sh\n# the emulated CUDA tests under ThreadSanitizer, host side single-threaded (cuda/cuda.mk)\n$(SAN_ENV) exec "$$(dirname "$$0")/tsan/cuda_emu_tests" --test-case-exclude="$(SAN_EXCLUDE)" "$$@"\n' > $@
	@chmod +x $@

$(CUDA_ASAN_TESTS): $(CUDA_ASAN_PROGRAM)
	@printf '#!/bin/sh\n# the emulated CUDA tests under AddressSanitizer + UBSan, host side single-threaded (cuda/cuda.mk)\n$(SAN_ENV) exec "$$(dirname "$$0")/asan/cuda_emu_tests" --test-case-exclude="$(SAN_EXCLUDE)" "$$@"\n' > $@
	@chmod +x $@

$(CUEMU_BUGS_TSAN): $(call cu_objs,tsan,$(EMU_BUGS_CU)) $(call cpp_objs,tsan,$(EMU_CORE_CPP)) $(TSAN_CORE_OBJS)
	$(CXX) $(TSAN_FLAGS) $^ -o $@ $(SAN_LDLIBS)

$(CUEMU_BUGS_ASAN): $(call cu_objs,asan,$(EMU_BUGS_CU)) $(call cpp_objs,asan,$(EMU_CORE_CPP))
	$(CXX) $(ASAN_FLAGS) $^ -o $@ $(SAN_LDLIBS)

$(CUDA_REAL_TESTS): $(NVCC_OBJS) $(CUDA_TEST_CPP_OBJS) $(LIB_OBJS) $(BUILD)/tests/main.o
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS) $(CUDA_LDLIBS)

cuda: $(CUDA_REAL_TESTS)

cuda-test: deps
	@$(MAKE) --no-print-directory -j$(JOBS) $(CUDA_TEST_BINS)
	@tests/run_tests.sh $(CUDA_TEST_BINS)
