/*
 * What mod_blocking.c (XEP-0191) offers other modules that send on a
 * user's behalf to entities that are no local session (PEP
 * notifications to contacts on other servers), where the delivery
 * filter (hook_deliver) does not run.
 */
#ifndef XMPPD_MOD_BLOCKING_H
#define XMPPD_MOD_BLOCKING_H

/* Whether user@host's loaded block list names jid (a JID string;
 * XEP-0191 §6 matching).  0 while the module is off or the list is not
 * loaded (the user is offline). */
int blocking_blocks(const char *user, const char *host, const char *jid);

#endif
