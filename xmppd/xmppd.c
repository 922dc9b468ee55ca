/*
 * xmppd: start-up (options, configuration, TLS, listeners, control socket,
 * privileges, storage), the event loop, reload on SIGHUP and orderly
 * shutdown on SIGTERM/SIGINT.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "stream/bosh.h"
#include "stream/c2s.h"
#include "stream/s2s.h"
#include "stream/component.h"
#include "conf.h"
#include "net/conn.h"
#include "net/hostmeta.h"
#include "net/http.h"
#include "net/proxy65.h"
#include "web/upload_http.h"
#include "web/webchat.h"
#include "control/control.h"
#include "control/metrics.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "core/smacks.h"
#include "log.h"
#include "mono.h"
#include "mod/modules.h"
#include "mod/proxy65.h"
#include "store/fast.h"
#include "store/store.h"
#include "net/tls.h"
#include "work.h"
#include "xmalloc.h"
#include "xmppd.h"

struct ev_loop *xmppd_loop;
struct conf *xmppd_conf;
double xmppd_started;

static const char *conf_path;       /* NULL: embedded default */
static int verbose;
static ev_signal sigterm_w, sigint_w, sighup_w;
static ev_async request_w;
static ev_timer drain_w;
static int want_reload, want_stop, stopping;
static double stop_started;

/* Who serves each kind of listener. */
static const struct conn_handler *const listen_handlers[LISTEN__COUNT] = {
	[LISTEN_C2S] = &c2s_conn_handler,
	[LISTEN_C2S_TLS] = &c2s_conn_handler,
	[LISTEN_HTTP] = &http_conn_handler,
	[LISTEN_HTTPS] = &http_conn_handler,
	[LISTEN_S2S] = &s2s_conn_handler,
	[LISTEN_S2S_TLS] = &s2s_conn_handler,
	[LISTEN_COMPONENT] = &component_conn_handler,
	[LISTEN_PROXY65] = &proxy65_conn_handler,
};

/* The XEP-0065 module activates streams of the relay through this (a
 * module may not include net/). */
static enum bytestream_activation
proxy65_relay_activate(const char *hash, const char *user)
{
	switch (proxy65_activate(hash, user)) {
	case PROXY65_ACTIVATED:
		return BYTESTREAM_ACTIVATED;
	case PROXY65_NO_STREAM:
		return BYTESTREAM_NO_STREAM;
	case PROXY65_ONE_PARTY:
		return BYTESTREAM_ONE_PARTY;
	case PROXY65_ACTIVE_ALREADY:
		return BYTESTREAM_ACTIVE_ALREADY;
	case PROXY65_OVER_USER:
		return BYTESTREAM_OVER_USER;
	case PROXY65_OVER_ALL:
		return BYTESTREAM_OVER_ALL;
	}
	return BYTESTREAM_NO_STREAM;
}

static void
usage(void)
{
	fprintf(stderr, "usage: xmppd [-dnvV] [-f file]\n");
	exit(2);
}

/* The configuration, checked as far as xmppd can without acting on it
 * (module names). */
static struct conf *
load_conf(char *err, size_t errlen)
{
	struct conf *c = conf_path ? conf_load(conf_path, err, errlen) :
	    conf_parse("(default)", conf_default_text, err, errlen);

	if (c != NULL && (modules_check_conf(c, err, errlen) < 0 ||
	    webchat_check_conf(c, err, errlen) < 0)) {
		conf_free(c);
		return NULL;
	}
	return c;
}

static void
reload(void)
{
	char err[512];
	struct conf *nc = load_conf(err, sizeof(err)), *old = xmppd_conf;

	if (nc == NULL) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		return;
	}
	if (tls_load(nc, err, sizeof(err)) < 0) {
		log_warnx("reload failed, keeping the running configuration: "
		    "%s", err);
		conf_free(nc);
		return;
	}
	if (strcmp(nc->storage, old->storage) != 0 ||
	    strcmp(nc->control_socket, old->control_socket) != 0 ||
	    nc->nlisteners != old->nlisteners)
		log_warnx("reload: storage, control socket and listener "
		    "changes take effect at the next restart");
	log_set_level(verbose ? LOG_LVL_DEBUG : nc->log_level);
	conn_set_conf(nc);
	proxy65_set_conf(nc);
	http_set_conf(nc);
	metrics_set_conf(nc);
	c2s_websocket_set_conf(nc);
	bosh_set_conf(nc);
	hostmeta_set_conf(nc);
	upload_http_set_conf(nc);
	webchat_set_conf(nc);
	s2s_set_conf(nc);
	store_set_backlog_limit(nc->limits.storage_queue, c2s_storage_congested);
	xmppd_conf = nc;
	modules_reload();
	component_set_conf(nc);
	conf_free(old);
	log_info("configuration and certificates reloaded");
}

static void
drain_cb(struct ev_loop *l, ev_timer *w, int revents)
{
	if (c2s_count() == 0 || mono_now(l) - stop_started > 5.0)
		ev_break(l, EVBREAK_ALL);
}

static void
stop(void)
{
	if (stopping)
		return;
	stopping = 1;
	log_info("shutting down: closing %zu streams", c2s_count());
	stop_started = mono_now(xmppd_loop);
	conn_unlisten();
	http_shutdown_all();
	proxy65_shutdown();
	control_shutdown();
	hook_run_shutdown();
	c2s_shutdown_all();
	s2s_shutdown();
	component_shutdown_all();
	smacks_shutdown();
	ev_timer_init(&drain_w, drain_cb, 0.05, 0.05);
	ev_timer_start(xmppd_loop, &drain_w);
}

static void
request_cb(struct ev_loop *l, ev_async *w, int revents)
{
	if (want_reload) {
		want_reload = 0;
		reload();
	}
	if (want_stop)
		stop();
}

void
xmppd_request_reload(void)
{
	want_reload = 1;
	ev_async_send(xmppd_loop, &request_w);
}

void
xmppd_request_stop(void)
{
	want_stop = 1;
	ev_async_send(xmppd_loop, &request_w);
}

static void
signal_cb(struct ev_loop *l, ev_signal *w, int revents)
{
	if (w->signum == SIGHUP)
		xmppd_request_reload();
	else
		xmppd_request_stop();
}

static void
raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Look up the account to run as; NULL (stay) when not root or unset. */
static struct passwd *
target_user(void)
{
	struct passwd *pw;

	if (geteuid() != 0)
		return NULL;
	if (xmppd_conf->user == NULL) {
		log_warnx("running as root: set 'user' in the configuration "
		    "to drop privileges");
		return NULL;
	}
	if ((pw = getpwnam(xmppd_conf->user)) == NULL)
		fatalx("user '%s' (configuration) does not exist",
		    xmppd_conf->user);
	return pw;
}

static void
drop_privileges(struct passwd *pw)
{
	if (pw == NULL)
		return;
	if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 ||
	    setuid(pw->pw_uid) < 0)
		fatal("cannot drop privileges to %s", pw->pw_name);
	if (setuid(0) == 0)
		fatalx("privileges could be regained after dropping them");
	log_info("running as %s", pw->pw_name);
}

static void
write_pidfile(void)
{
	FILE *f;

	if (xmppd_conf->pidfile == NULL)
		return;
	if ((f = fopen(xmppd_conf->pidfile, "w")) == NULL)
		fatal("cannot write pidfile %s", xmppd_conf->pidfile);
	fprintf(f, "%ld\n", (long)getpid());
	fclose(f);
}

int
main(int argc, char **argv)
{
	int ch, foreground = 0, check_only = 0;
	char err[512];
	struct passwd *pw;

	while ((ch = getopt(argc, argv, "df:nvVh")) != -1) {
		switch (ch) {
		case 'd':
			foreground = 1;
			break;
		case 'f':
			conf_path = optarg;
			break;
		case 'n':
			check_only = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'V':
			printf("xmppd %s\n", XMPPD_VERSION);
			return 0;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	log_init("xmppd", 1, LOG_LVL_INFO);
	if (conf_path == NULL && access(SYSCONFDIR "/xmppd.conf", F_OK) == 0)
		conf_path = SYSCONFDIR "/xmppd.conf";
	if ((xmppd_conf = load_conf(err, sizeof(err))) == NULL) {
		fprintf(stderr, "xmppd: %s\n", err);
		return 1;
	}
	if (tls_load(xmppd_conf, err, sizeof(err)) < 0) {
		fprintf(stderr, "xmppd: %s\n", err);
		return 1;
	}
	if (check_only) {
		printf("configuration OK: %s\n", xmppd_conf->source);
		return 0;
	}
	log_init("xmppd", foreground || !xmppd_conf->log_syslog,
	    verbose ? LOG_LVL_DEBUG : xmppd_conf->log_level);
	if (conf_path == NULL)
		log_info("using the embedded default configuration");
	signal(SIGPIPE, SIG_IGN);
	/* A write past RLIMIT_FSIZE (a quota or a full volume modelled by
	 * one) must fail with EFBIG and be handled like ENOSPC: the storage
	 * thread turns it into a failed transaction and a 'wait' bounce
	 * (mod_offline.c).  The default action of SIGXFSZ would kill the
	 * daemon instead. */
	signal(SIGXFSZ, SIG_IGN);
	raise_fd_limit();

	xmppd_loop = ev_default_loop(EVFLAG_AUTO);
	conn_init(xmppd_loop);
	http_set_conf(xmppd_conf);
	proxy65_set_conf(xmppd_conf);
	if (conn_listen(xmppd_conf, listen_handlers, err, sizeof(err)) < 0)
		fatalx("%s", err);
	pw = target_user();
	if (control_init(xmppd_conf->control_socket, xmppd_conf->control_group,
		pw ? pw->pw_uid : geteuid(), pw ? pw->pw_gid : getegid(), err,
		sizeof(err)) < 0)
		fatalx("%s", err);
	if (!foreground) {
		/* Keep stderr open when the configuration logs there. */
		if (daemon(1, xmppd_conf->log_syslog ? 0 : 1) < 0)
			fatal("daemon");
		ev_loop_fork(xmppd_loop);
	}
	write_pidfile();
	drop_privileges(pw);

	if (store_open(xmppd_loop, xmppd_conf->storage,
		xmppd_conf->storage_sync_full, err, sizeof(err)) < 0)
		fatalx("refusing to start: %s", err);
	{
		char *keyfile = xasprintf("%s-fastkey", xmppd_conf->storage);

		if (store_fast_key_load(keyfile, err, sizeof(err)) < 0)
			fatalx("refusing to start: %s", err);
		free(keyfile);
	}
	work_init(xmppd_loop, xmppd_conf->workers);
	c2s_init();
	s2s_init(xmppd_loop, xmppd_conf);
	store_set_backlog_limit(xmppd_conf->limits.storage_queue,
	    c2s_storage_congested);
	iq_init();
	if (conf_proxy65_listener(xmppd_conf) != NULL)
		mod_proxy65_set_relay(proxy65_relay_activate,
		    conf_proxy65_listener(xmppd_conf)->address,
		    conf_proxy65_listener(xmppd_conf)->port);
	modules_init();
	component_set_conf(xmppd_conf);
	metrics_init(xmppd_conf);
	c2s_websocket_set_conf(xmppd_conf);
	bosh_set_conf(xmppd_conf);
	hostmeta_set_conf(xmppd_conf);
	upload_http_set_conf(xmppd_conf);
	webchat_set_conf(xmppd_conf);

	ev_signal_init(&sigterm_w, signal_cb, SIGTERM);
	ev_signal_init(&sigint_w, signal_cb, SIGINT);
	ev_signal_init(&sighup_w, signal_cb, SIGHUP);
	ev_signal_start(xmppd_loop, &sigterm_w);
	ev_signal_start(xmppd_loop, &sigint_w);
	ev_signal_start(xmppd_loop, &sighup_w);
	ev_async_init(&request_w, request_cb);
	ev_async_start(xmppd_loop, &request_w);
	xmppd_started = mono_now(xmppd_loop);
	log_info("xmppd %s started (pid %ld)", XMPPD_VERSION, (long)getpid());

	ev_run(xmppd_loop, 0);

	conn_flush_all();
	work_shutdown();
	store_close();
	if (xmppd_conf->pidfile)
		unlink(xmppd_conf->pidfile);
	tls_free();
	log_info("stopped");
	conf_free(xmppd_conf);
	return 0;
}
