/*
 * Personal eventing in storage (XEP-0163 over the XEP-0060 subset PEP
 * needs), behind mod_pep.c and the control socket's "pep" commands: the
 * nodes of each account with their configuration, and the items of each
 * node in publish order.  Every call that reaches the database is
 * asynchronous with the rules of store.h (strings are copied, callbacks
 * run later on the loop thread, owner/tag come back untouched, results
 * are valid only during the callback), and every job is bounded: an
 * account has at most pep-nodes nodes and a node at most pep-items items,
 * which the writes keep true.
 *
 * Access decisions that need the owner's roster and block list are taken
 * in the job that reads what is asked for (pep_read, pep_last_items), so
 * they hold whether the owner is online or not, and see every write
 * queued before them (the store is FIFO).
 *
 * Tables (store_sqlite.c's migration "personal eventing"): pep_node, one
 * row per node with the configuration in columns and the count and bytes
 * of its items; pep_item, one row per item, its rowid growing in publish
 * order (a republished id is a new row, the newest), the payload element
 * serialized with its own xmlns so that it reads back in any context.
 */
#ifndef XMPPD_PEP_H
#define XMPPD_PEP_H

#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

/* Longest node name and item id accepted (bytes). */
#define PEP_NAME_MAX 1023

/* XEP-0060 §16.4.3 pubsub#access_model.  Stored: never renumber. */
enum pep_access {
	PEP_ACCESS_PRESENCE = 0,
	PEP_ACCESS_OPEN = 1,
	PEP_ACCESS_ROSTER = 2,
	PEP_ACCESS_WHITELIST = 3,
};

/* pubsub#send_last_published_item.  Stored: never renumber. */
enum pep_send_last {
	PEP_SEND_NEVER = 0,
	PEP_SEND_ON_SUB = 1,
	PEP_SEND_ON_SUB_AND_PRESENCE = 2,
};

/* A node's configuration (XEP-0060 §8.2).  What is not here is fixed:
 * notifications with payloads to the owner and to those the access model
 * admits, publishing by the owner only. */
struct pep_config {
	enum pep_access access;
	char **groups;              /* pubsub#roster_groups_allowed */
	size_t ngroups;
	unsigned max_items;         /* 0: "max", the pep-items limit */
	int persist;                /* pubsub#persist_items */
	enum pep_send_last send_last;
	int notify_retract;
	int notify_delete;
	char *title;                /* NULL: none */
};

/* XEP-0163 §4.3 defaults: presence access, one item, persistent, the
 * last item sent on subscription and presence, retractions notified. */
void pep_config_default(struct pep_config *c);
void pep_config_copy(struct pep_config *dst, const struct pep_config *src);
void pep_config_free(struct pep_config *c);   /* the fields, not c */
/* Whether a and b configure a node the same way. */
int pep_config_equal(const struct pep_config *a, const struct pep_config *b);
/* The fields of a configuration, for what a form set (PEP_CFG_*). */
enum {
	PEP_CFG_ACCESS = 1 << 0,
	PEP_CFG_GROUPS = 1 << 1,
	PEP_CFG_MAX_ITEMS = 1 << 2,
	PEP_CFG_PERSIST = 1 << 3,
	PEP_CFG_SEND_LAST = 1 << 4,
	PEP_CFG_NOTIFY_RETRACT = 1 << 5,
	PEP_CFG_NOTIFY_DELETE = 1 << 6,
	PEP_CFG_TITLE = 1 << 7,
};
/* Whether node has want's value in each field of mask (XEP-0060 §7.1.5
 * publish-options preconditions). */
int pep_config_matches(const struct pep_config *node,
    const struct pep_config *want, unsigned mask);
/* Names (the XEP-0060 form values) and back; -1 when unknown. */
const char *pep_access_name(enum pep_access a);
int pep_access_parse(const char *s);
const char *pep_send_last_name(enum pep_send_last s);
int pep_send_last_parse(const char *s);
/* The items a node keeps: max_items, "max" (0) being items_max, and
 * never more than items_max. */
unsigned pep_config_keep(const struct pep_config *c, unsigned items_max);

/*
 * Who asks, as the owner's data sees them: the owner itself, or a JID
 * with the owner's roster item for it (if any) and whether the owner's
 * block list matches it.
 */
struct pep_standing {
	int self;
	int item;                   /* a roster item (visible) */
	int from;                   /* subscription 'from' or 'both': the
	                               requester receives the owner's
	                               presence (RFC 6121 §2.1.2.5) */
	char **groups;              /* the item's groups */
	size_t ngroups;
};

/* XEP-0060 §6.5.9 / §12.1: what the access model says to a requester. */
enum pep_verdict {
	PEP_ALLOWED,
	PEP_PRESENCE_REQUIRED,      /* <not-authorized/> +
	                               <presence-subscription-required/> */
	PEP_NOT_IN_GROUP,           /* <not-authorized/> +
	                               <not-in-roster-group/> */
	PEP_CLOSED,                 /* <not-allowed/> + <closed-node/> */
};
enum pep_verdict pep_access_check(const struct pep_config *c,
    const struct pep_standing *st);

/* A stored item. */
struct pep_item {
	const char *node;
	const char *id;
	const char *publisher;      /* bare JID, "" if unknown */
	int64_t stamp_ms;           /* published, ms since the epoch */
	const char *payload;        /* serialized; NULL where not read */
	size_t len;                 /* the payload's bytes */
};

/* A stored node. */
struct pep_node_info {
	const char *node;
	struct pep_config cfg;
	enum pep_verdict verdict;   /* for the requester of a read */
	unsigned items;             /* stored items */
	size_t bytes;               /* their payload bytes */
	int64_t created;            /* unix seconds */
};

/*
 * The nodes of user@host (for mod_pep's cache of online owners) with the
 * newest item of each (last[i] for nodes[i]; id NULL when it has none),
 * and the
 * XEP-0049 bookmarks to import (XEP-0411 §3: converted before the first
 * PEP client looks): the serialized <storage xmlns='storage:bookmarks'/>
 * of private XML storage when the account has neither bookmarks node,
 * else NULL.  STORE_NOT_FOUND: no such account.
 */
typedef void (*pep_load_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct pep_node_info *nodes, size_t n,
    const struct pep_item *last, const char *legacy_bookmarks);
void pep_load(const char *user, const char *host, pep_load_cb cb,
    uint64_t owner, uint64_t tag);

/* Reads, with the access check of the requester. */
enum pep_read_kind {
	PEP_READ_ITEMS,   /* one node's items: all, the newest max_items,
	                     or those named by ids */
	PEP_READ_NODES,   /* the nodes the requester may see */
	PEP_READ_NODE,    /* one node's configuration and verdict */
	PEP_READ_ADMIN,   /* every node (or node) with its items' ids and
	                     sizes, no payloads, no access check */
};

struct pep_read {
	const char *user, *host;     /* the owner */
	enum pep_read_kind kind;
	const char *node;            /* ITEMS, NODE; ADMIN: NULL for all */
	const char *requester;       /* bare JID, prepared */
	/* The requester's JID in the forms a block list item can match:
	 * full, bare, domain/resource, domain (NULL where a form does not
	 * apply). */
	const char *forms[4];
	unsigned max_items;          /* ITEMS: 0 for all */
	const char *const *ids;      /* ITEMS: these only (nids > 0) */
	size_t nids;
	size_t max_bytes;            /* ITEMS: payload bytes at most, the
	                                newest first (0: no limit) */
};

struct pep_read_result {
	int blocked;                 /* the owner blocks the requester:
	                                nothing else is read */
	const struct pep_node_info *nodes;  /* ITEMS, NODE: the node if it
	                                       exists; NODES: those allowed;
	                                       ADMIN: all or the one */
	size_t nnodes;
	const struct pep_item *items;       /* in publish order; only when
	                                       the verdict allows */
	size_t nitems;
	int truncated;               /* ITEMS: max_bytes left some out */
};
/* STORE_OK, or STORE_NOT_FOUND when the account does not exist. */
typedef void (*pep_read_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct pep_read_result *r);
void pep_read(const struct pep_read *q, pep_read_cb cb, uint64_t owner,
    uint64_t tag);

/*
 * XEP-0060 §6.1.7 for PEP (XEP-0163 §4.3.4): the last item of each node
 * named in nodes of each owner (local bare JIDs, the requester's own
 * included) whose send_last_published_item asks for it and whose access
 * model admits the requester: with presence, on_sub_and_presence nodes
 * (the requester came online); without, on_sub ones too (interest just
 * appeared).  Owners that block the requester are left out.  A node that
 * does not persist items comes with item.payload NULL (its last item, if
 * any, lives in mod_pep's cache).
 */
struct pep_last_query {
	const char *requester;       /* bare JID */
	const char *forms[4];        /* as in pep_read */
	const char *const *owners;
	size_t nowners;
	const char *const *nodes;
	size_t nnodes;
	int presence;
};
struct pep_last {
	const char *owner;           /* bare JID */
	int persist;
	struct pep_item item;
};
typedef void (*pep_last_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct pep_last *v, size_t n);
void pep_last_items(const struct pep_last_query *q, pep_last_cb cb,
    uint64_t owner, uint64_t tag);

/* Writes.  Their callbacks run after the commit. */

/* Why a write was refused (with STORE_EXISTS). */
enum pep_refusal {
	PEP_REFUSED_NONE,
	PEP_REFUSED_QUOTA,           /* pep-size would be passed */
	PEP_REFUSED_NODES,           /* pep-nodes would be passed */
	PEP_REFUSED_PRECONDITION,    /* the node's configuration differs from
	                                the publish-options */
};

struct pep_write_result {
	enum pep_refusal refused;    /* with STORE_EXISTS */
	int created;                 /* the node was created by the write */
	int found;                   /* retract: the item was there */
	struct pep_config cfg;       /* the node's configuration after it */
	char **dropped;              /* publish: ids that max_items pushed
	                                out (XEP-0060 §7.1.2: no retraction
	                                is notified for them) */
	size_t ndropped;
};
typedef void (*pep_write_cb)(uint64_t owner, uint64_t tag,
    enum store_status st, const struct pep_write_result *r);

struct pep_publish {
	const char *user, *host, *node;
	const struct pep_config *create; /* a node created by the publish
	                                    (auto-create, XEP-0060 §7.1.4;
	                                    NULL: the defaults); an existing
	                                    node keeps its own */
	const char *id;
	const char *publisher;       /* bare JID */
	const char *payload;         /* serialized */
	size_t len;
	int64_t stamp_ms;
	unsigned require;            /* PEP_CFG_* fields of create that an
	                                existing node must have (publish-
	                                options, XEP-0060 §7.1.5) */
	unsigned items_max;          /* pep-items: what "max" means */
	unsigned nodes_max;          /* pep-nodes: nodes per account; 0: no
	                                limit */
	size_t account_max;          /* pep-size: payload bytes per account;
	                                0: no limit */
};
/*
 * Store an item (a node that does not persist items only gets created):
 * STORE_OK; STORE_EXISTS with r->refused saying why nothing was written
 * (quota, node count, precondition); STORE_NOT_FOUND: no such account.
 */
void pep_publish(const struct pep_publish *p, pep_write_cb cb,
    uint64_t owner, uint64_t tag);
/* Delete one item: STORE_OK (r->found says whether it was there) or
 * STORE_NOT_FOUND (no such account or node). */
void pep_retract(const char *user, const char *host, const char *node,
    const char *id, pep_write_cb cb, uint64_t owner, uint64_t tag);

enum pep_node_op {
	PEP_NODE_CREATE,     /* STORE_EXISTS if it exists, or (refused
	                        PEP_REFUSED_NODES) past nodes_max */
	PEP_NODE_CONFIGURE,  /* STORE_NOT_FOUND if it does not; items
	                        beyond the new max_items go, and all of
	                        them when persist_items goes off */
	PEP_NODE_DELETE,     /* STORE_NOT_FOUND if it does not exist */
	PEP_NODE_PURGE,      /* every item; STORE_NOT_FOUND likewise */
};
void pep_node_write(const char *user, const char *host, const char *node,
    enum pep_node_op op, const struct pep_config *cfg, unsigned items_max,
    unsigned nodes_max, pep_write_cb cb, uint64_t owner, uint64_t tag);

#endif
