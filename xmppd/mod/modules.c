/*
 * The module table and the switching of modules on and off.  To add a
 * module: write mod_NAME.c with init and deinit functions (declared
 * below) and add one row; init may find sessions already bound (a module
 * switched on by a reload) and deinit must leave nothing behind that
 * would call into the module: timers stopped, held sessions released,
 * storage completions made harmless (they may still arrive).
 */
#include <stdio.h>
#include <string.h>

#include "conf.h"
#include "core/disco.h"
#include "core/hooks.h"
#include "core/iq.h"
#include "core/presence.h"
#include "core/roster.h"
#include "core/router.h"
#include "log.h"
#include "mod/modules.h"
#include "mod/proxy65.h"
#include "xmppd.h"

/* Module entry points (each defined in its mod_*.c). */
void mod_register_init(void);
void mod_register_deinit(void);
void mod_register_init_off(void);
void mod_vcard_init(void);
void mod_vcard_deinit(void);
void mod_vcard_reload(void);
void mod_private_init(void);
void mod_private_deinit(void);
void mod_private_reload(void);
void mod_offline_init(void);
void mod_offline_deinit(void);
void mod_disco_init(void);
void mod_disco_reload(void);
void mod_caps_init(void);
void mod_caps_deinit(void);
void mod_ping_init(void);
void mod_ping_deinit(void);
void mod_version_init(void);
void mod_time_init(void);
void mod_last_init(void);
void mod_last_deinit(void);
void mod_blocking_init(void);
void mod_blocking_deinit(void);
void mod_mam_init(void);
void mod_mam_deinit(void);
void mod_pep_init(void);
void mod_pep_deinit(void);
void mod_muc_init(void);
void mod_muc_deinit(void);
void mod_carbons_init(void);
void mod_carbons_deinit(void);
void mod_proxy65_init(void);
void mod_proxy65_deinit(void);
void mod_proxy65_reload(void);
void mod_upload_init(void);
void mod_upload_deinit(void);
void mod_upload_reload(void);
void mod_push_init(void);
void mod_push_deinit(void);
void mod_extdisco_init(void);

static int
registration_on(const struct conf *c)
{
	return c->registration;
}

static int
archive_on(const struct conf *c)
{
	return c->archive;
}

static int
version_on(const struct conf *c)
{
	return c->software_version != SOFTWARE_VERSION_OFF;
}

static int
offline_on(const struct conf *c)
{
	return c->limits.offline_messages != 0;
}

static int
upload_on(const struct conf *c)
{
	return c->upload_url != NULL;
}

static int
extdisco_on(const struct conf *c)
{
	return c->nextdisco > 0;
}

/* With its listener open (start-up; listeners need a restart). */
static int
proxy65_on(const struct conf *c)
{
	return mod_proxy65_listening();
}

static const struct module {
	const char *name;
	int core;                       /* always on: no "module off" */
	int (*setting)(const struct conf *); /* its own switch; NULL: on */
	void (*init)(void);
	void (*deinit)(void);           /* NULL: nothing of its own */
	void (*init_off)(void);         /* what it registers while off */
	void (*reload)(void);           /* on, staying on: read the
	                                   configuration again */
} modules[] = {
	/* Core: presence and rosters are always on.  Presence first, so
	 * at session end it says goodbye before the roster cache goes. */
	{ "presence", 1, NULL, presence_init, NULL, NULL, NULL },
	{ "roster", 1, NULL, roster_init, NULL, NULL, NULL },
	/* XEP modules (keep one line each). */
	{ "register", 0, registration_on, mod_register_init,
	    mod_register_deinit, mod_register_init_off, NULL },
	/* Before disco: its disco#items handler lists a bare JID's
	 * nodes.  Before vcard and private: their init and reload ask
	 * pep_enabled() whether to advertise their conversions to PEP
	 * (XEP-0398, XEP-0411), so pep must be on by then. */
	{ "pep", 0, NULL, mod_pep_init, mod_pep_deinit, NULL, NULL },
	{ "vcard", 0, NULL, mod_vcard_init, mod_vcard_deinit, NULL,
	    mod_vcard_reload },
	{ "private", 0, NULL, mod_private_init, mod_private_deinit, NULL,
	    mod_private_reload },
	{ "offline", 0, offline_on, mod_offline_init, mod_offline_deinit,
	    NULL, NULL },
	{ "disco", 0, NULL, mod_disco_init, NULL, NULL, mod_disco_reload },
	{ "caps", 0, NULL, mod_caps_init, mod_caps_deinit, NULL, NULL },
	{ "ping", 0, NULL, mod_ping_init, mod_ping_deinit, NULL, NULL },
	{ "version", 0, version_on, mod_version_init, NULL, NULL, NULL },
	{ "time", 0, NULL, mod_time_init, NULL, NULL, NULL },
	{ "last", 0, NULL, mod_last_init, mod_last_deinit, NULL, NULL },
	{ "blocking", 0, NULL, mod_blocking_init, mod_blocking_deinit, NULL,
	    NULL },
	/* Before mam: an app server's notice that ends a push registration
	 * (XEP-0357 §8) is consumed, not archived. */
	{ "push", 0, NULL, mod_push_init, mod_push_deinit, NULL, NULL },
	{ "mam", 0, archive_on, mod_mam_init, mod_mam_deinit, NULL, NULL },
	{ "muc", 0, NULL, mod_muc_init, mod_muc_deinit, NULL, NULL },
	{ "upload", 0, upload_on, mod_upload_init, mod_upload_deinit, NULL,
	    mod_upload_reload },
	{ "extdisco", 0, extdisco_on, mod_extdisco_init, NULL, NULL, NULL },
	{ "proxy65", 0, proxy65_on, mod_proxy65_init, mod_proxy65_deinit,
	    NULL, mod_proxy65_reload },
	/* Last: after mam, so that copies carry its <stanza-id/>. */
	{ "carbons", 0, NULL, mod_carbons_init, mod_carbons_deinit, NULL,
	    NULL },
};

#define NMODULES (sizeof(modules) / sizeof(modules[0]))

static int running[NMODULES];       /* on (init ran, no deinit since) */

static int
wanted(const struct module *m, const struct conf *c)
{
	if (m->core)
		return 1;
	return !conf_module_off(c, m->name) &&
	    (m->setting == NULL || m->setting(c));
}

int
modules_check_conf(const struct conf *c, char *err, size_t errlen)
{
	for (size_t i = 0; i < c->nmodules_off; i++) {
		size_t k;

		for (k = 0; k < NMODULES; k++)
			if (strcmp(modules[k].name, c->modules_off[i]) == 0)
				break;
		if (k == NMODULES) {
			snprintf(err, errlen, "%s: module %s: no such module "
			    "(see xmppd.conf(5))", c->source,
			    c->modules_off[i]);
			return -1;
		}
		if (modules[k].core) {
			snprintf(err, errlen, "%s: module %s: cannot be "
			    "switched off", c->source, c->modules_off[i]);
			return -1;
		}
	}
	return 0;
}

/* Run fn with what it registers owned by module i. */
static void
run_as(size_t i, void (*fn)(void))
{
	if (fn == NULL)
		return;
	hook_set_owner((unsigned)i);
	fn();
	hook_set_owner(HOOK_OWNER_CORE);
}

static void
forget_registrations(size_t i)
{
	hook_remove_owner((unsigned)i);
	iq_unregister_owner((unsigned)i);
	disco_remove_owner((unsigned)i);
	router_remove_services_of((unsigned)i);
}

void
modules_init(void)
{
	for (size_t i = 0; i < NMODULES; i++) {
		running[i] = wanted(&modules[i], xmppd_conf);
		run_as(i, running[i] ? modules[i].init : modules[i].init_off);
	}
}

void
modules_reload(void)
{
	for (size_t i = NMODULES; i-- > 0;) {
		const struct module *m = &modules[i];

		if (!running[i] || wanted(m, xmppd_conf))
			continue;
		forget_registrations(i);
		if (m->deinit != NULL)
			m->deinit();
		running[i] = 0;
		run_as(i, m->init_off);
		log_info("module %s switched off", m->name);
	}
	for (size_t i = 0; i < NMODULES; i++) {
		const struct module *m = &modules[i];

		if (running[i]) {
			run_as(i, m->reload);
			continue;
		}
		if (!wanted(m, xmppd_conf))
			continue;
		forget_registrations(i);        /* what init_off added */
		running[i] = 1;
		run_as(i, m->init);
		log_info("module %s switched on", m->name);
	}
}
