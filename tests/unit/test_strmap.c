/*
 * Unit tests for shared/strmap.c: an empty map (which holds no buckets
 * until its first put) answers and deletes nothing; put, replace, get,
 * delete and iterate over enough keys to grow the table several times;
 * no map without a random key (getrandom() failing exits the program).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "strmap.h"
#include "unit.h"

#define NKEYS 5000

/* How this program's getrandom() answers (strmap.c calls this one, which
 * the link puts before the C library's). */
static enum {
	RANDOM_REAL,      /* the kernel's */
	RANDOM_ENOSYS,    /* as on a kernel without the call */
	RANDOM_SHORT,     /* fewer bytes than asked for */
	RANDOM_EINTR,     /* interrupted once, then the kernel's */
} random_mode;

ssize_t
getrandom(void *buf, size_t len, unsigned int flags)
{
	switch (random_mode) {
	case RANDOM_ENOSYS:
		errno = ENOSYS;
		return -1;
	case RANDOM_SHORT:
		return len > 8 ? 8 : (ssize_t)len;
	case RANDOM_EINTR:
		random_mode = RANDOM_REAL;
		errno = EINTR;
		return -1;
	default:
		return syscall(SYS_getrandom, buf, len, flags);
	}
}

/* The first strmap_new() of a child with getrandom() in mode: its exit
 * status (or -1), and what it wrote to stderr in msg. */
static int
first_map_in_child(int mode, char *msg, size_t msglen)
{
	int fds[2], status;
	ssize_t n, got = 0;
	pid_t pid;

	if (pipe(fds) == -1 || (pid = fork()) == -1)
		return -1;
	if (pid == 0) {
		dup2(fds[1], 2);
		random_mode = mode;
		strmap_free(strmap_new());
		_exit(0);
	}
	close(fds[1]);
	while ((size_t)got + 1 < msglen &&
	    (n = read(fds[0], msg + got, msglen - 1 - (size_t)got)) > 0)
		got += n;
	msg[got] = '\0';
	close(fds[0]);
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
		return -1;
	return WEXITSTATUS(status);
}

/* Before any map of this process exists (the key is drawn once). */
static void
test_key_failure(void)
{
	char msg[512];

	CHECK(first_map_in_child(RANDOM_ENOSYS, msg, sizeof(msg)) == 1);
	CHECK(strstr(msg, "cannot draw the hash table key (getrandom): "
	    "Function not implemented") != NULL);
	CHECK(first_map_in_child(RANDOM_SHORT, msg, sizeof(msg)) == 1);
	CHECK(strstr(msg, "getrandom returned 8 of 16 bytes") != NULL);
	/* A signal during the call: tried again, no message. */
	CHECK(first_map_in_child(RANDOM_EINTR, msg, sizeof(msg)) == 0);
	CHECK_STR(msg, "");
}

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
	test_key_failure();
	test_empty();
	test_many();
	test_values();
	return UNIT_DONE("strmap");
}
