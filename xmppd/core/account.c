/*
 * Account credentials: password and username preparation, and SCRAM key
 * derivation on the worker pool followed by the store write, for the
 * control socket and XEP-0077 alike.
 */
#include <stdlib.h>
#include <string.h>

#include "core/account.h"
#include "conf.h"
#include "jid.h"
#include "scram.h"
#include "store/store.h"
#include "work.h"
#include "xmalloc.h"
#include "xmppd.h"

/* Owned by the worker while it runs, then by the loop thread. */
struct account_job {
	enum account_write what;
	char *user, *host;
	char *password;             /* SASLprepped; wiped before free */
	unsigned iterations;
	unsigned char salt1[ACCOUNT_SALT_LEN];
	unsigned char salt256[ACCOUNT_SALT_LEN];
	struct scram_keys sha1, sha256;
	account_wanted_fn wanted;
	store_status_cb done;
};

enum account_password
account_password_prepare(const char *raw, char **out)
{
	char *p;

	*out = NULL;
	if (raw[0] == '\0')
		return ACCOUNT_PASSWORD_EMPTY;
	if (strlen(raw) > ACCOUNT_PASSWORD_MAX)
		return ACCOUNT_PASSWORD_TOO_LONG;
	if ((p = scram_saslprep(raw)) == NULL)
		return ACCOUNT_PASSWORD_PROHIBITED;
	if (p[0] == '\0' || strlen(p) > ACCOUNT_PASSWORD_MAX) {
		enum account_password r = p[0] == '\0' ?
		    ACCOUNT_PASSWORD_EMPTY : ACCOUNT_PASSWORD_TOO_LONG;

		account_password_free(p);
		return r;
	}
	*out = p;
	return ACCOUNT_PASSWORD_OK;
}

const char *
account_password_reason(enum account_password r)
{
	switch (r) {
	case ACCOUNT_PASSWORD_OK:
		return "password accepted";
	case ACCOUNT_PASSWORD_EMPTY:
		return "the password is empty";
	case ACCOUNT_PASSWORD_TOO_LONG:
		return "the password is longer than 1023 bytes";
	case ACCOUNT_PASSWORD_PROHIBITED:
		break;
	}
	return "the password is not valid UTF-8 or has characters SASLprep "
	       "prohibits (RFC 4013)";
}

void
account_password_free(char *password)
{
	if (password == NULL)
		return;
	explicit_bzero(password, strlen(password));
	free(password);
}

char *
account_username_prepare(const char *raw)
{
	char *u;

	if (raw[0] == '\0')
		return NULL;
	/* jid_nodeprep refuses results longer than JID_PART_MAX. */
	if ((u = jid_nodeprep(raw)) != NULL && u[0] == '\0') {
		free(u);
		u = NULL;
	}
	return u;
}

static void
job_free(struct account_job *job)
{
	account_password_free(job->password);
	free(job->user);
	free(job->host);
	explicit_bzero(job, sizeof(*job));
	free(job);
}

/* Worker thread: touches only the job. */
static void
job_run(void *arg)
{
	struct account_job *job = arg;

	scram_derive(SCRAM_SHA1, job->password, job->salt1, ACCOUNT_SALT_LEN,
	    job->iterations, &job->sha1);
	scram_derive(SCRAM_SHA256, job->password, job->salt256,
	    ACCOUNT_SALT_LEN, job->iterations, &job->sha256);
	/* The keys are all that is needed from here on. */
	explicit_bzero(job->password, strlen(job->password));
}

/* Loop thread, after job_run. */
static void
job_done(void *arg, uint64_t owner, uint64_t tag)
{
	struct account_job *job = arg;
	struct store_user u;

	if (job->wanted != NULL && !job->wanted(owner, tag)) {
		job_free(job);
		return;
	}
	memset(&u, 0, sizeof(u));
	u.user = job->user;
	u.host = job->host;
	u.sha1 = job->sha1;
	u.sha256 = job->sha256;
	if (job->what == ACCOUNT_CREATE)
		store_user_create(&u, job->done, owner, tag);
	else
		store_user_set_keys(&u, job->done, owner, tag);
	explicit_bzero(&u, sizeof(u));
	job_free(job);
}

void
account_set_password(enum account_write what, const char *user,
    const char *host, char *password, account_wanted_fn wanted,
    store_status_cb done, uint64_t owner, uint64_t tag)
{
	struct account_job *job = xcalloc(1, sizeof(*job));

	job->what = what;
	job->user = xstrdup(user);
	job->host = xstrdup(host);
	job->password = password;
	job->iterations = xmppd_conf->scram_iterations;
	scram_random_salt(job->salt1, sizeof(job->salt1));
	scram_random_salt(job->salt256, sizeof(job->salt256));
	job->wanted = wanted;
	job->done = done;
	work_submit(job_run, job_done, job, owner, tag);
}
