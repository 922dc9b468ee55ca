/*
 * A minimal unit-test harness: CHECK() records a failure with its location
 * and goes on; each test binary ends with "unit NAME: N passed, N failed"
 * and exits non-zero on any failure.  A "check" is one CHECK() call.
 */
#ifndef TESTS_UNIT_H
#define TESTS_UNIT_H

#include <stdio.h>
#include <string.h>

static int unit_passed, unit_failed;

#define CHECK(cond)                                                        \
	do {                                                               \
		if (cond)                                                  \
			unit_passed++;                                     \
		else {                                                     \
			unit_failed++;                                     \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__,      \
			    __LINE__, #cond);                              \
		}                                                          \
	} while (0)

#define CHECK_STR(got, want)                                               \
	do {                                                               \
		const char *g_ = (got), *w_ = (want);                      \
		if ((g_ == NULL && w_ == NULL) ||                          \
		    (g_ != NULL && w_ != NULL && strcmp(g_, w_) == 0))     \
			unit_passed++;                                     \
		else {                                                     \
			unit_failed++;                                     \
			fprintf(stderr, "FAIL %s:%d: %s: got \"%s\", want "\
			    "\"%s\"\n", __FILE__, __LINE__, #got,          \
			    g_ ? g_ : "(null)", w_ ? w_ : "(null)");       \
		}                                                          \
	} while (0)

#define UNIT_DONE(name)                                                    \
	(printf("unit %s: %d passed, %d failed\n", (name), unit_passed,    \
	     unit_failed),                                                 \
	    unit_failed ? 1 : 0)

#endif
