// The entry point of the tests that run under mpirun (tests/mpi/mpi.mk): doctest's runner on every rank, then one
// line "N passed, M failed" printed by rank 0 for all ranks together. Every rank runs the same test cases in the
// same order (they call collectives together); a test case counts as failed when it failed on any rank.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#include "framework/communicator.h"

namespace {

std::vector<int64_t> g_failed;  // per test case run, in order: 1 if it failed on this rank
bool g_case_failed = false;
unsigned g_cases = 0;

struct RankListener : doctest::IReporter {
    explicit RankListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& stats) override { g_cases = stats.numTestCasesPassingFilters; }
    void test_case_start(const doctest::TestCaseData&) override { g_case_failed = false; }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats& stats) override {
        g_failed.push_back(g_case_failed || stats.failure_flags != 0 ? 1 : 0);
    }
    void test_case_exception(const doctest::TestCaseException&) override { g_case_failed = true; }
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData& data) override {
        if (data.m_failed) g_case_failed = true;
    }
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("rank_summary", 1, RankListener);

int main(int argc, char** argv) {
    auto comm = strata::world_communicator();
    // A rank that fails a test case early leaves the other waiting in a collective: 20 s, not the default 300 s,
    // so the run still ends well within the timeout of tests/mpi/mpirun2.sh.
    comm->set_timeout(20);
    doctest::Context context;
    // mpirun forwards each rank's output through a pipe that doctest may still take for a terminal: no colour codes
    // in logs (--force-colors brings them back).
    context.setOption("no-colors", true);
    context.applyCommandLine(argc, argv);
    int rc = context.run();
    // A rank that ran a different number of cases would not line up: the counts say so as a failure.
    int64_t cases = int64_t(g_failed.size());
    strata::Tensor counts = strata::from_vector_i64({cases}, {1});
    strata::Tensor all_counts = strata::all_gather(*comm, counts);
    bool same = all_counts.to_vector_i64() == std::vector<int64_t>(size_t(comm->world_size()), cases);
    strata::Tensor failed = strata::from_vector_i64(same ? g_failed : std::vector<int64_t>(size_t(cases), 1),
                                                    {cases});
    if (cases > 0) strata::all_reduce_sum(*comm, failed);
    unsigned failed_cases = 0;
    for (int64_t f : failed.to_vector_i64()) failed_cases += f > 0 ? 1 : 0;
    if (!same) failed_cases += 1;
    if (comm->rank() == 0) {
        std::fflush(stdout);
        std::printf("%u passed, %u failed\n", g_cases - std::min(g_cases, failed_cases), failed_cases);
        std::fflush(stdout);
    }
    return rc != 0 || failed_cases > 0 ? 1 : 0;
}
