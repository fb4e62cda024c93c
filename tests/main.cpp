// The test program's entry point: doctest's runner plus a listener that prints the counts in the one-line form
// `make test` reports ("N passed, M failed", test cases as doctest counts them, and ", K skipped" when test cases
// skipped themselves through tests/skip.h).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <set>
#include <string>

#include "tests/skip.h"

namespace {

// The test cases that called skip_test_case() (by name and file: a case may be entered once per subcase).
std::set<std::string> g_skipped;
std::string g_current_case;

struct SummaryListener : doctest::IReporter {
    explicit SummaryListener(const doctest::ContextOptions&) {}
    void report_query(const doctest::QueryData&) override {}
    void test_run_start() override {}
    void test_run_end(const doctest::TestRunStats& stats) override {
        unsigned failed = stats.numTestCasesFailed;
        unsigned skipped = unsigned(g_skipped.size());
        unsigned passed = stats.numTestCasesPassingFilters - failed - skipped;
        std::fflush(stdout);
        if (skipped > 0) std::printf("%u passed, %u failed, %u skipped\n", passed, failed, skipped);
        else std::printf("%u passed, %u failed\n", passed, failed);
        std::fflush(stdout);
    }
    void test_case_start(const doctest::TestCaseData& data) override {
        g_current_case = std::string(data.m_file.c_str()) + ":" + data.m_name;
    }
    void test_case_reenter(const doctest::TestCaseData&) override {}
    void test_case_end(const doctest::CurrentTestCaseStats&) override {}
    void test_case_exception(const doctest::TestCaseException&) override {}
    void subcase_start(const doctest::SubcaseSignature&) override {}
    void subcase_end() override {}
    void log_assert(const doctest::AssertData&) override {}
    void log_message(const doctest::MessageData&) override {}
    void test_case_skipped(const doctest::TestCaseData&) override {}
};

}  // namespace

REGISTER_LISTENER("summary", 1, SummaryListener);

void strata::testing::skip_test_case() { g_skipped.insert(g_current_case); }

int main(int argc, char** argv) {
    doctest::Context context;
    context.applyCommandLine(argc, argv);
    return context.run();
}
