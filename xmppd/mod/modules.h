/*
 * The compiled-in modules, one mod_*.c per XEP, initialised in the order
 * of the table in modules.c.  A module's init function reads
 * xmppd_conf, and when the module is enabled registers its IQ handlers
 * (iq.h), hooks (hooks.h) and disco features (disco.h); a disabled module
 * registers and advertises nothing.
 */
#ifndef XMPPD_MODULES_H
#define XMPPD_MODULES_H

void modules_init(void);

#endif
