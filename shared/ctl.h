/*
 * The control protocol spoken on xmppd's Unix control socket: field
 * encoding, line splitting and building, a line reader with a length cap
 * (used by both sides), and a small blocking client for xmppctl and
 * xmpptop.  The daemon side is xmppd/control/control.c.
 *
 * PROTOCOL, version 2
 *
 * Lines.  The stream is a sequence of lines, each terminated by one "\n"
 * and at most CTL_LINE_MAX (65536) bytes long including the "\n".  A line
 * is one or more fields separated by single spaces: no leading, trailing
 * or doubled spaces.  The receiver of an overlong line answers
 * "0 err too-long ..." (the daemon) or gives up (a client), then closes.
 *
 * Fields.  A field is a byte string without NUL; by convention UTF-8, and
 * each command validates the text it interprets.  On the wire:
 *   - the bytes 0x00-0x20 (controls and space), 0x7F and "%" are written
 *     as "%" and two uppercase hex digits ("%20" for a space, "%25" for
 *     "%"); every other byte is written as itself;
 *   - the empty field is written as "%-" (and "%-" is only valid as a
 *     whole field).
 * Decoding rejects as malformed: "%" not followed by two hex digits
 * (either case is accepted, the encoder writes uppercase) or by "-" that
 * ends the field, "%00" (fields are C strings), and any raw byte that
 * the encoder would have escaped (controls, 0x7F).  So every field has
 * exactly one encoding apart from hex case, and "-", "*" and plain words
 * stand for themselves.
 *
 * Handshake.  On connect the daemon sends
 *     xmppd-ctl 2 VERSION
 * (protocol version, then the daemon's version).  The client answers
 *     hello 2
 * naming the protocol version it speaks.  There is no positive answer;
 * the client may send requests right after "hello".  A different version
 * gets "0 err version MESSAGE" and the daemon closes; any other first
 * line gets "0 err usage MESSAGE" and a close.  Extra fields after the
 * version in either line are reserved and ignored.
 *
 * Requests.
 *     ID COMMAND [ARG...]
 * ID is a client-chosen decimal number from 1 to 4294967295 (2^32 - 1),
 * without leading zeros; ID 0 is reserved for messages about the
 * connection rather than a request.  COMMAND is matched exactly (xmppctl
 * expands abbreviations itself).
 *
 * Responses.  Each request is answered by
 *     ID cols NAME...          once, before any row (listing commands
 *                              send it even when no row follows)
 *     ID row FIELD...          zero or more, one field per column
 *     ID ok [FIELD...]         or
 *     ID err CODE MESSAGE      exactly one terminal line
 * MESSAGE is one field, meant for humans.  A listing that fails part way
 * ends with "err" after some rows; the rows received are then incomplete.
 * The daemon now serves one request per connection at a time, in order,
 * so responses do not interleave; clients must still match lines by ID.
 * A line the daemon cannot parse is answered with its ID when the first
 * field is a valid ID, otherwise with ID 0, and the connection stays open.
 *
 * Typed values (version 2).  Each column name of a "cols" line, and the
 * key (first field) of each row of a key/value listing ("cols key value"),
 * is NAME or NAME:TYPE; NAME never holds ":", and the type says how the
 * value is written:
 *     (none)  text
 *     int     an integer: an optional "-", then decimal digits
 *     num     a number: an optional "-", digits, optionally "." and digits
 *     bool    "yes" or "no"
 *     time    UTC as unix seconds, optionally with a fraction ("." and
 *             digits): "1733563704" or "1733563704.250"
 *     list    items joined by 0x1F (US, "%1F" on the wire, never part of
 *             XML text, so never of an item); "%-" is the empty list
 * The empty field "%-" of an int, num, bool or time is "none" (JSON null).
 * A type a client does not know is text to it.  Only the daemon's answers
 * are typed; events are not (their fields are listed below).
 *
 * Events.  After "ID subscribe" (answered "ID ok") the daemon pushes
 *     * event NAME [FIELD...]
 * lines on that connection until "ID unsubscribe" or the close.  Events
 * come between responses, never among the lines of one response (an
 * event raised meanwhile is held until the response's terminal line).
 * A subscriber whose unread output passes 4 MiB is disconnected.  Events
 * (added in version 1, the same in version 2):
 *     * event session-up SID JID IP TLS_VERSION CIPHER SINCE
 *         a resource was bound.  SID the decimal session id, JID the
 *         full JID, TLS_VERSION ("TLSv1.3") and CIPHER empty ("%-")
 *         without TLS, SINCE unix seconds with 3 decimals.
 *     * event session-down SID JID REASON
 *         the session ended.  REASON is one field: "closed" (stream
 *         closed by the client), a stream error condition sent by the
 *         server ("conflict", "policy-violation", ...), "kicked" or
 *         "kicked: TEXT" (xmppctl kick), or the connection's end
 *         ("idle timeout", "connection reset", "TLS error", ...), or
 *         "disabled" or "disabled: TEXT" (the account was disabled).
 *     * event presence SID JID SHOW PRIORITY STATUS
 *         the session's broadcast presence changed.  SHOW is available,
 *         chat, away, xa, dnd or unavailable; STATUS the <status/> text
 *         ("%-" if none).
 *     * event counters UPTIME SESSIONS USERS LOGINS_PER_MIN
 *           STANZAS_IN_PER_S STANZAS_OUT_PER_S BYTES_IN_PER_S
 *           BYTES_OUT_PER_S OFFLINE_QUEUE RSS_KB STORE_QUEUE COMMIT_MS
 *         every second.  UPTIME seconds; USERS distinct users online;
 *         LOGINS_PER_MIN resources bound in the last 60 s; the rates
 *         are over the last second (stanzas with one decimal, bytes as
 *         integers, client streams only); OFFLINE_QUEUE messages held
 *         in offline storage (a counter, resynchronised from storage
 *         every minute); RSS_KB the daemon's resident size; STORE_QUEUE
 *         storage requests waiting; COMMIT_MS the last commit's
 *         latency with 3 decimals.
 *     * event log LEVEL TEXT
 *         a line for the admin's event pane: logins, logouts and kicks
 *         (LEVEL info), failed authentications (LEVEL warning).
 *
 * Growth rules.  Receivers ignore extra trailing fields they do not know,
 * and clients ignore lines whose second field is a kind they do not know
 * and events they did not ask for.  Any change that an older peer would
 * misread bumps CTL_PROTOCOL_VERSION.
 *
 * Error codes (CTL_E_*): usage, unknown-command, denied, exists,
 * not-found, bad-jid, unknown-host, bad-password, internal, too-long,
 * version, refused (a change not allowed as asked, the message says
 * why), busy (too many control connections: 64 in all, 8 per uid;
 * sent with ID 0 right after accept, then the daemon closes).
 *
 * Commands in version 2 ("priv": only for uid 0 or the daemon's user; the
 * others may be used by anyone allowed to connect to the socket):
 *     adduser JID PASSWORD   priv  ok JID (the JID as prepared: "Upper@h"
 *                                   is created as "upper@h") | err exists,
 *                                   bad-jid, unknown-host, bad-password
 *     passwd JID PASSWORD    priv  ok JID | err not-found, bad-jid,
 *                                   unknown-host, bad-password; works on
 *                                   a disabled account, which stays so
 *     deluser JID            priv  ok JID | err not-found, bad-jid; closes
 *                                   the user's sessions
 *     disable JID [REASON]   priv  ok N JID: the account is disabled (its
 *                                   logins fail with <account-disabled/>),
 *                                   REASON and the time are stored, and
 *                                   its N sessions are closed with
 *                                   <not-authorized/> "Account disabled"
 *                                   (REASON is not sent) | err not-found,
 *                                   bad-jid, usage (REASON not UTF-8 text
 *                                   of at most 1024 bytes)
 *     enable JID             priv  ok JID | err not-found, bad-jid
 *     users [HOST]                 cols jid disabled:bool
 *                                   disabled_since:time disabled_reason;
 *                                   rows by host, then user; ok |
 *                                   err bad-jid, unknown-host
 *     status                       cols key value; rows version,
 *                                   uptime:int, hosts:list, sessions:int,
 *                                   users-online:int, storage-queue:int,
 *                                   storage-commits:int,
 *                                   last-commit-ms:num, rss-kb:int,
 *                                   offline-queue:int, pid:int; ok
 *     roster-add JID CONTACT NAME [GROUP...]
 *                            priv  ok | err not-found, bad-jid, usage
 *                                   (NAME "%-" for none)
 *     roster-del JID CONTACT priv  ok | err not-found (no such user or
 *                                   item), bad-jid
 *     history JID [WITH [SINCE [UNTIL [LIMIT]]]]
 *                            priv  cols id timestamp direction with from
 *                                   to body stanza; rows streamed in
 *                                   chunks; ok | err not-found, bad-jid,
 *                                   usage ("-" for an absent argument)
 *     stop                   priv  ok, then the daemon shuts down
 *     reload                 priv  ok, then the daemon reloads its
 *                                   configuration
 *     subscribe                    ok; events follow (see Events)
 *     unsubscribe                  ok; no more events
 *     sessions                     cols sid:int jid ip tls cipher client
 *                                   show status priority:int since:time
 *                                   idle:int stanzas_in:int
 *                                   stanzas_out:int sm sm_unacked:int
 *                                   auth; one row per bound
 *                                   session in binding order; ok.
 *                                   client: the XEP-0115 caps node of
 *                                   the last presence ("" if none);
 *                                   since: bind time, 3 decimals;
 *                                   idle: whole seconds since the last
 *                                   stanza from the client; sm: off, on,
 *                                   resumable or waiting; auth: how it
 *                                   authenticated ("SASL1 PLAIN", "SASL2
 *                                   HT-SHA-256-EXPR FAST")
 *     online                       cols jid sessions:int; one row per
 *                                   user online, by host, then user; ok
 *     kick JID[/RES] [REASON [CONDITION]]
 *                            priv  ok N (sessions closed) | err
 *                                   not-found, bad-jid, usage.  The
 *                                   stream error is CONDITION,
 *                                   policy-violation (default) or reset,
 *                                   with REASON as its <text/> ("" for
 *                                   none); session-down events follow
 *     broadcast TEXT         priv  ok N: a type="headline" message with
 *                                   TEXT as body, from each session's
 *                                   domain, to every bound session |
 *                                   err usage (not UTF-8 / XML text)
 *     stats                        cols key value; rows uptime:int,
 *                                   sessions:int, users-online:int,
 *                                   logins:int, logins-per-min:int,
 *                                   auth-failures:int, kicks:int,
 *                                   stanzas-in:int, stanzas-out:int,
 *                                   stanzas-in-per-s:num,
 *                                   stanzas-out-per-s:num, bytes-in:int,
 *                                   bytes-out:int, bytes-in-per-s:num,
 *                                   bytes-out-per-s:num,
 *                                   offline-queue:int, rss-kb:int,
 *                                   storage-queue:int,
 *                                   storage-commits:int,
 *                                   last-commit-ms:num; ok
 *     log-level [LEVEL]            ok LEVEL (in force afterwards); setting
 *                                   is priv | err usage, denied
 *     user-show JID                cols key value; rows jid,
 *                                   created:time, sessions:int,
 *                                   resources:list, presence, status
 *                                   (of the most available session, ""
 *                                   offline), last-logout:time (none if
 *                                   never), last-status (the status of
 *                                   the last logout), disabled:bool,
 *                                   disabled-since:time, disabled-reason,
 *                                   roster-items:int,
 *                                   archive-messages:int,
 *                                   offline-messages:int,
 *                                   login-tokens:int, pep-nodes:int,
 *                                   pep-items:int, pep-bytes:int (the
 *                                   items and payload bytes of all its
 *                                   PEP nodes); ok | err not-found,
 *                                   bad-jid
 *     user-tokens JID              cols device_id software device
 *                                   mechanism slot created:time
 *                                   last_used:time expiry:time count:int;
 *                                   one row per XEP-0484 token, by device
 *                                   (slot "current" or "new"); ok | err
 *                                   not-found, bad-jid
 *     user-revoke-tokens JID [DEVICE]
 *                            priv  ok N (tokens deleted: all of the
 *                                   account's, or DEVICE's, a user-agent
 *                                   id) | err not-found, bad-jid, usage
 *     pep-show JID [NODE]          cols kind node access groups:list
 *                                   max_items persist:bool send_last
 *                                   notify_retract:bool
 *                                   notify_delete:bool title
 *                                   item_count:int bytes:int
 *                                   created:time id size:int publisher
 *                                   published:time; per XEP-0163 node
 *                                   (all, by name, or NODE) a row of
 *                                   kind "node" (node through created;
 *                                   max_items a number or "max", title
 *                                   "" for none), then a row of kind
 *                                   "item" per item in publish order
 *                                   (node, then id through published;
 *                                   size in payload bytes, publisher a
 *                                   bare JID or "", published with
 *                                   milliseconds); no payloads; ok | err
 *                                   not-found ("no such user", "no such
 *                                   node"), bad-jid, usage (NODE not
 *                                   UTF-8 of 1 to 1023 bytes)
 *     pep-delete JID NODE    priv  ok: the node and its items are
 *                                   deleted and the PEP module told
 *                                   (hook_run_admin_change) | err
 *                                   not-found ("no such user", "no such
 *                                   node"), bad-jid, usage
 *     roster-show JID              cols jid name subscription ask
 *                                   pending_in:bool groups:list presence;
 *                                   rows by contact; presence the show of
 *                                   a local contact ("" for a remote
 *                                   one); ok | err not-found, bad-jid
 *     check                        cols level subject message; level ok,
 *                                   warning, error or info: the
 *                                   configuration file parsed again, each
 *                                   host's certificate (warning under 30
 *                                   days), and "info host NAME" and
 *                                   "info listener ADDRESS PORT KIND"
 *                                   rows for the client's own checks; ok
 *     components                   cols domain address id:int
 *                                   since:time stanzas_in:int
 *                                   stanzas_out:int; a row per
 *                                   connected XEP-0114 component (its
 *                                   handshake done), oldest first;
 *                                   stanzas counted since then; ok
 *     rooms                        cols jid name occupants:int
 *                                   sessions:int persistent:bool
 *                                   public:bool members_only:bool
 *                                   locked:bool messages_per_min:int;
 *                                   a row per XEP-0045 room, by service
 *                                   and room JID; messages_per_min the
 *                                   groupchat messages with a body the
 *                                   room accepted in the last 60 s; ok |
 *                                   err not-found (no MUC service: the
 *                                   module is off)
 *     room-show ROOM               cols kind name value role affiliation
 *                                   jid sessions:int; rows of kind
 *                                   "setting" (name as NAME or NAME:TYPE
 *                                   like a key of a key/value listing,
 *                                   and value: jid, name, description,
 *                                   subject, subject-by,
 *                                   messages-per-min:int, locked:bool,
 *                                   persistent:bool, public:bool,
 *                                   members-only:bool, moderated:bool,
 *                                   password-protected:bool, whois,
 *                                   change-subject:bool,
 *                                   allow-invites:bool,
 *                                   voice-requests:bool, allow-pm,
 *                                   max-users:int (none: no limit),
 *                                   history-length:int), then
 *                                   "affiliation" (affiliation, jid),
 *                                   owners first, then "occupant" (name:
 *                                   the nick, role, affiliation, jid: the
 *                                   real bare JID, sessions); ok | err
 *                                   not-found (no such room, no MUC
 *                                   service at its domain), bad-jid (not
 *                                   room@service)
 *     room-create ROOM [OPTION...]
 *                            priv  ok ROOM: created without occupants,
 *                                   unlocked; OPTIONs persistent, public,
 *                                   members-only, name=NAME, owner=JID
 *                                   (a bare JID; none: owned by nobody);
 *                                   a persistent room is answered after
 *                                   its commit | err exists, not-found,
 *                                   bad-jid, usage
 *     room-destroy ROOM [REASON]
 *                            priv  ok N: the room is gone, its N
 *                                   occupants got the <destroy/>
 *                                   presence with REASON | err
 *                                   not-found, bad-jid, usage
 *     room-affiliate ROOM JID AFFILIATION
 *                            priv  ok: JID's affiliation (owner, admin,
 *                                   member, outcast, none) set as an
 *                                   owner would (301, 321, 101 sent) |
 *                                   err not-found, bad-jid, usage,
 *                                   refused (the room's only owner;
 *                                   affiliations full)
 *     upload-list [JID]      priv  cols token jid filename content_type
 *                                   size:int created:time
 *                                   completed:time; one row per XEP-0363
 *                                   upload (of JID, or all; at most
 *                                   1000, oldest first; completed empty
 *                                   while the file has not come) | err
 *                                   bad-jid
 *     upload-purge JID       priv  ok N (uploads deleted with their
 *                                   files) | err bad-jid
 *     upload-purge-older SECONDS
 *                            priv  ok N (uploads whose slot is older
 *                                   than SECONDS, deleted with their
 *                                   files) | err usage
 *     push-list JID          priv  cols jid node options:list
 *                                   created:time; one row per XEP-0357
 *                                   registration of JID (app server,
 *                                   node, the names of its
 *                                   publish-options fields; at most
 *                                   1000, oldest first) | err bad-jid
 * Any request: err usage, unknown-command, denied; err internal for a
 * database error, or for a request still running when the daemon stops.
 *
 * Example session (C: client, S: daemon):
 *     S: xmppd-ctl 2 0.1.0
 *     C: hello 2
 *     C: 1 adduser Alice@example.org s3cret%20pass
 *     S: 1 ok alice@example.org
 *     C: 2 users
 *     S: 2 cols jid disabled:bool disabled_since:time disabled_reason
 *     S: 2 row alice@example.org no %- %-
 *     S: 2 ok
 *     C: 3 deluser bob@example.org
 *     S: 3 err not-found no%20such%20user
 */
#ifndef SHARED_CTL_H
#define SHARED_CTL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"

#define CTL_PROTOCOL_VERSION 2
#define CTL_LINE_MAX 65536      /* bytes per line, including the "\n" */
#define CTL_FIELDS_MAX 256      /* fields per line this implementation takes */
#define CTL_GREETING "xmppd-ctl"

/* Error codes, the CODE field of "ID err CODE MESSAGE". */
#define CTL_E_USAGE "usage"
#define CTL_E_UNKNOWN_COMMAND "unknown-command"
#define CTL_E_DENIED "denied"
#define CTL_E_EXISTS "exists"
#define CTL_E_NOT_FOUND "not-found"
#define CTL_E_BAD_JID "bad-jid"
#define CTL_E_UNKNOWN_HOST "unknown-host"
#define CTL_E_BAD_PASSWORD "bad-password"
#define CTL_E_INTERNAL "internal"
#define CTL_E_TOO_LONG "too-long"
#define CTL_E_VERSION "version"
#define CTL_E_BUSY "busy"
#define CTL_E_REFUSED "refused"

/* Typed values (see above). */
enum ctl_type {
	CTL_T_TEXT,
	CTL_T_INT,
	CTL_T_NUM,
	CTL_T_BOOL,
	CTL_T_TIME,
	CTL_T_LIST,
};
#define CTL_LIST_SEP '\x1f'    /* between the items of a list */
/* Cut a column name or key at its ":TYPE" (in place) and return the
 * type; CTL_T_TEXT without one or for a type this program does not know. */
enum ctl_type ctl_name_type(char *name);
/*
 * What to add to "cannot connect to PATH: strerror(err)" for the person
 * who ran the client: the likely cause of a refused or failed connect
 * (permissions, no daemon), or "".
 */
const char *ctl_connect_hint(int err);

/* Fields. */

/* Append the wire form of s[0..len) to b (no separator, no newline). */
void ctl_field_encode(struct buf *b, const char *s, size_t len);
/*
 * Decode the wire form s[0..len) in place into a NUL-terminated string at
 * s (s must have room for len + 1 bytes, which a field inside a line
 * always has: its separator or terminator).  Returns the decoded length,
 * or -1 if the field is malformed (see above).
 */
ssize_t ctl_field_decode(char *s, size_t len);

/*
 * Split a line (len bytes, without its "\n") in place into decoded,
 * NUL-terminated fields stored in fields[0..max).  Returns the number of
 * fields (0 for an empty line), CTL_SPLIT_MALFORMED for bad spacing or a
 * bad field, or CTL_SPLIT_TOO_MANY if there are more than max fields.
 * line must have room for len + 1 bytes.  The fields point into line.
 */
#define CTL_SPLIT_MALFORMED (-1)
#define CTL_SPLIT_TOO_MANY (-2)
int ctl_split(char *line, size_t len, char **fields, size_t max);

/* Parse a request ID (1..4294967295, no sign, no leading zero); 0 or -1. */
int ctl_parse_id(const char *s, uint32_t *id);

/*
 * Building one line into an output buffer, field by field:
 *     struct ctl_line l;
 *     ctl_line_start(&l, out);
 *     ctl_line_addf(&l, "%u", id); ctl_line_add(&l, "ok");
 *     if (ctl_line_end(&l) == -1) ... too long, nothing was added
 * Nothing else may append to or consume from the buffer in between.
 */
struct ctl_line {
	struct buf *b;
	size_t start;           /* line start, relative to the buffer's head */
	size_t nfields;
};
void ctl_line_start(struct ctl_line *l, struct buf *b);
void ctl_line_add(struct ctl_line *l, const char *s);
void ctl_line_addn(struct ctl_line *l, const char *s, size_t len);
void ctl_line_addf(struct ctl_line *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Terminate the line.  Returns 0, or -1 if it would be longer than
 * CTL_LINE_MAX, in which case the partial line is removed again. */
int ctl_line_end(struct ctl_line *l);
/* A whole line from an array of fields; 0 or -1 as ctl_line_end. */
int ctl_line_fields(struct buf *b, const char *const *fields, size_t n);

/*
 * Line reader: accumulates bytes and yields complete lines of at most max
 * bytes including the "\n".  Memory stays bounded by max plus whatever
 * was fed since the last call to ctl_reader_next that returned 0.
 */
struct ctl_reader {
	struct buf in;
	size_t max;             /* line cap including "\n" */
	size_t scanned;         /* bytes of in already searched for "\n" */
	size_t taken;           /* length (with "\n") of the line handed out */
};
void ctl_reader_init(struct ctl_reader *r, size_t max);
void ctl_reader_free(struct ctl_reader *r);
void ctl_reader_feed(struct ctl_reader *r, const void *p, size_t n);
/*
 * Next complete line: returns 1 with *line pointing at it (without "\n",
 * NUL-terminated, writable, valid until the next feed or next call) and
 * its length in *len; 0 if no complete line is buffered yet; -1 if the
 * next line is longer than max (the reader is then unusable).
 */
int ctl_reader_next(struct ctl_reader *r, char **line, size_t *len);
/* Bytes buffered and not yet handed out. */
size_t ctl_reader_pending(const struct ctl_reader *r);

/*
 * Blocking client.  Not thread-safe; one request at a time.  Functions
 * returning int give 0 on success, CTL_EIO when the daemon cannot be
 * reached or the connection failed or closed (errno is set for connect),
 * or CTL_EPROTO when the daemon said something this client cannot
 * accept; c->err then holds a message.
 */
#define CTL_EIO (-1)
#define CTL_EPROTO (-2)

enum ctl_msg_kind {
	CTL_MSG_COLS,
	CTL_MSG_ROW,
	CTL_MSG_OK,
	CTL_MSG_ERR,
	CTL_MSG_EVENT,
	CTL_MSG_UNKNOWN,        /* a kind this client does not know */
};

/* One parsed line from the daemon; valid until the next read. */
struct ctl_msg {
	enum ctl_msg_kind kind;
	uint32_t id;            /* 0 for connection messages and events */
	const char *kindname;   /* the second field as received */
	char **fields;          /* after the kind; for events NAME first */
	size_t nfields;
};

struct ctl_client {
	int fd;
	int timeout_ms;         /* per read, <= 0: wait forever */
	int protocol;           /* version announced by the daemon */
	char *daemon_version;   /* from the greeting */
	uint32_t last_id;
	int closed;             /* connection unusable */
	struct ctl_reader rd;
	char *fields[CTL_FIELDS_MAX];
	char err[512];
};

/* Result of one request: the terminal line. */
struct ctl_result {
	int ok;                 /* 1 for "ok", 0 for "err" */
	uint32_t id;            /* the request's, or 0 for a connection error */
	char *code;             /* err: the code ("" if missing) */
	char *message;          /* err: the message ("" if missing) */
	char **fields;          /* ok: its fields; err: code, message, ... */
	size_t nfields;
	char *mem;
};

/*
 * Connect to the socket at path, read the greeting and send "hello".
 * On CTL_EIO errno tells why connect() failed.  On failure c is left
 * closed (ctl_client_close is still allowed).
 */
int ctl_client_connect(struct ctl_client *c, const char *path);
void ctl_client_close(struct ctl_client *c);
/* Send a request with the next ID (returned in *id). */
int ctl_client_send(struct ctl_client *c, const char *const *argv,
    size_t argc, uint32_t *id);
/* Read and parse the next line from the daemon. */
int ctl_client_read(struct ctl_client *c, struct ctl_msg *m);

/*
 * Called for each cols, row and event line of a request's answer (and any
 * unknown kind); m is valid only during the call.  Return 0 to go on; a
 * positive return stops reading: ctl_client_request then returns it and
 * the connection is closed, because the rest of the answer was not read.
 */
typedef int (*ctl_msg_fn)(void *arg, const struct ctl_msg *m);

/*
 * Send argv as one request and read its answer up to the terminal line,
 * which is stored in res (free it with ctl_result_free).  A connection
 * error with ID 0 ("0 err version ...", "0 err too-long ...") also ends
 * the request: res->id is then 0 and the connection is closed.  Returns
 * 0 when res was filled, else CTL_EIO, CTL_EPROTO or fn's return value.
 */
int ctl_client_request(struct ctl_client *c, const char *const *argv,
    size_t argc, ctl_msg_fn fn, void *arg, struct ctl_result *res);
void ctl_result_free(struct ctl_result *res);

#endif
