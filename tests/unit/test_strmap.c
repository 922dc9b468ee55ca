/*
 * Unit tests for shared/strmap.c: an empty map (which holds no buckets
 * until its first put) answers and deletes nothing; put, replace, get,
 * delete and iterate over enough keys to grow the table several times.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "unit.h"

#define NKEYS 5000

static void
count_cb(const char *key, void *value, void *arg)
{
	size_t *n = arg;

	(void)key;
	(void)value;
	(*n)++;
}

static void
test_empty(void)
{
	struct strmap *m = strmap_new();
	size_t n = 0;

	CHECK(strmap_get(m, "x") == NULL);
	CHECK(strmap_del(m, "x") == NULL);
	CHECK(strmap_count(m) == 0);
	strmap_foreach(m, count_cb, &n);
	CHECK(n == 0);
	strmap_free(m);
	strmap_free(NULL);
}

static void
test_many(void)
{
	static int values[NKEYS];
	struct strmap *m = strmap_new();
	char key[32];
	size_t n = 0;
	int ok = 1;

	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "user%d@example.org", i);
		if (strmap_put(m, key, &values[i]) != NULL)
			ok = 0;
	}
	CHECK(ok);
	CHECK(strmap_count(m) == NKEYS);
	/* Replacing returns the old value and keeps the count. */
	CHECK(strmap_put(m, "user7@example.org", &values[8]) == &values[7]);
	CHECK(strmap_count(m) == NKEYS);
	CHECK(strmap_get(m, "user7@example.org") == &values[8]);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof(key), "user%d@example.org", i);
		if (i != 7 && strmap_get(m, key) != &values[i])
			ok = 0;
	}
	CHECK(ok);
	CHECK(strmap_get(m, "user7@example.or") == NULL);
	CHECK(strmap_get(m, "") == NULL);
	strmap_foreach(m, count_cb, &n);
	CHECK(n == NKEYS);
	/* Delete every other key, then all: the map empties cleanly. */
	for (int i = 0; i < NKEYS; i += 2) {
		snprintf(key, sizeof(key), "user%d@example.org", i);
		if (strmap_del(m, key) == NULL)
			ok = 0;
	}
	CHECK(ok);
	CHECK(strmap_count(m) == NKEYS / 2);
	CHECK(strmap_get(m, "user2@example.org") == NULL);
	CHECK(strmap_get(m, "user3@example.org") == &values[3]);
	CHECK(strmap_del(m, "user2@example.org") == NULL);
	for (int i = 1; i < NKEYS; i += 2) {
		snprintf(key, sizeof(key), "user%d@example.org", i);
		strmap_del(m, key);
	}
	CHECK(strmap_count(m) == 0);
	CHECK(strmap_get(m, "user3@example.org") == NULL);
	/* Usable again after emptying. */
	CHECK(strmap_put(m, "again", &values[0]) == NULL);
	CHECK(strmap_get(m, "again") == &values[0]);
	strmap_free(m);
}

static void
test_values(void)
{
	struct strmap *m = strmap_new();
	int values[3] = { 0, 0, 0 };
	void **v;
	size_t n;

	v = strmap_values(m, &n);
	CHECK(v != NULL && n == 0);
	free(v);
	strmap_put(m, "a", &values[0]);
	strmap_put(m, "b", &values[1]);
	strmap_put(m, "c", &values[2]);
	strmap_del(m, "b");
	v = strmap_values(m, &n);
	CHECK(n == 2);
	for (size_t i = 0; i < n; i++)
		(*(int *)v[i])++;
	CHECK(values[0] == 1 && values[1] == 0 && values[2] == 1);
	/* The array is the caller's: the map may change meanwhile. */
	strmap_free(m);
	CHECK(v[0] != v[1]);
	free(v);
}

int
main(void)
{
	test_empty();
	test_many();
	test_values();
	return UNIT_DONE("strmap");
}
