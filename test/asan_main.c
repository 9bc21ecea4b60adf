/*
 * asan_main.c - the Criterion entry point of the sanitizer build only.
 *
 * Criterion runs each test in a child process (marked by boxfort's
 * BXFI_MAP variable), and LeakSanitizer checks each child at exit, which
 * is what we want. The runner process itself leaks a few allocations of
 * Criterion's own, and no suppression can single those out (every test's
 * stack passes through libcriterion), so the runner leaves with _exit and
 * skips its leak check. tools/run_suites.sh --sanitized fails the run on
 * any sanitizer report in the children's output, since a leak report
 * alone does not fail a Criterion test.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
    struct criterion_test_set *tests = criterion_initialize();
    int result = 0;
    if (criterion_handle_args(argc, argv, true))
        result = !criterion_run_all_tests(tests);
    criterion_finalize(tests);
    if (!getenv("BXFI_MAP")) {
        fflush(NULL);
        _exit(result);
    }
    return result;
}
