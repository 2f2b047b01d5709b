// The doctest runner of every test executable. CTest runs one suite per entry
// (--test-suite=<name>); a filter that selects no test case fails, so a suite that was renamed
// or left out of the build cannot pass by running nothing.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>

namespace {
int test_cases_run = 0;

struct counter : doctest::IReporter {
  explicit counter(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override { ++test_cases_run; }
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override {}
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData&) override {}
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};
} // namespace

DOCTEST_REGISTER_LISTENER("flowbus_counter", 1, counter);

int main(int argc, char** argv) {
  doctest::Context ctx(argc, argv);
  const int rc = ctx.run();
  if (rc != 0 || ctx.shouldExit()) return rc;
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], "--test-suite=", 13) == 0 && test_cases_run == 0) {
      std::fprintf(stderr, "no test case matched %s\n", argv[i]);
      return 1;
    }
  return rc;
}
