# The tests that need MPI ranks, included by the top-level Makefile (which defines BUILD, CXX, CXXFLAGS, LDFLAGS,
# LDLIBS, LIB_OBJS, TEST_BIN and TEST_BINS). Everything here runs on 2 ranks of this machine through
# tests/mpi/mpirun2.sh (a timeout, root allowed, oversubscribed, shared memory only).
#
#   $(BUILD)/tests/strata_mpi_tests       doctest program of tests/mpi/test_*.cpp (the communicator, synchronized
#                                         batch norm, the data-parallel helpers and trainer); its own main prints one
#                                         "N passed, M failed" for both ranks
#   $(BUILD)/tests/strata_mpi_tests_np2   the script `make test` runs: the program above on 2 ranks
#   $(BUILD)/tests/mpi_scenarios          failure scenarios, started on 2 ranks by tests/test_distributed.cpp (part
#                                         of strata_tests, which therefore needs it built)

MPI_TEST_SRCS := tests/mpi/main.cpp $(wildcard tests/mpi/test_*.cpp)
MPI_TEST_OBJS := $(MPI_TEST_SRCS:%.cpp=$(BUILD)/%.o)
MPI_TEST_PROGRAM := $(BUILD)/tests/strata_mpi_tests
MPI_TEST_NP2 := $(BUILD)/tests/strata_mpi_tests_np2
MPI_SCENARIOS := $(BUILD)/tests/mpi_scenarios

$(MPI_TEST_PROGRAM): $(MPI_TEST_OBJS) $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(MPI_SCENARIOS): $(BUILD)/tests/mpi/mpi_scenarios.o $(LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CXX) $(LDFLAGS) $^ -o $@ $(LDLIBS)

$(MPI_TEST_NP2): $(MPI_TEST_PROGRAM) tests/mpi/mpirun2.sh
	@printf '#!/bin/sh\n# the MPI tests on 2 ranks (tests/mpi/mpi.mk)\nMPI_TEST_TIMEOUT=120 exec tests/mpi/mpirun2.sh "$$(dirname "$$0")/strata_mpi_tests" "$$@"\n' > $@
	@chmod +x $@

$(TEST_BIN): | $(MPI_SCENARIOS)
TEST_BINS += $(MPI_TEST_NP2)
