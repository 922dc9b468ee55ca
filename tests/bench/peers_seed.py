#!/usr/bin/env python3
"""Data for tests/bench/peers.sh: the same accounts, rosters and message
archive written straight into the storage of xmppd, Prosody and ejabberd
(each stopped), the archive rows counted afterwards, the MAM page queries
timed, and the results tabled.  See tests/bench/README.md, "Side by side".

Subcommands (all paths are the caller's temporary files):
  creds FILE ITER NAME:COUNT ...   derive SCRAM-SHA-1/256 keys once
  keycache CREDS HASH OUT          xmppbench --key-cache file
  xmppd DB CREDS ROSTER_PREFIX USERS ITEMS
  prosody DATA CREDS HASH ROSTER_PREFIX USERS ITEMS
  ejabberd DB SCHEMA CREDS HASH ROSTER_PREFIX USERS ITEMS
  archive SERVER DB USER ROWS      seed USER's archive, print the middle id
  count SERVER DB EXCLUDE_USER     archived messages of everyone else
  mam PORT TLS MECH USER PW QUERIES PAGE MIDDLE DOMAIN CSV LABEL
  table RESULTS_DIR SERVERS OUT_CSV RUNS
"""

import base64
import csv
import hashlib
import hmac
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import time

HOST = "localhost"


# ---- credentials ----

def derive(args):
    """(name, password, salt, iterations) -> keys of both hashes."""
    name, password, salt, iterations = args
    out = [name, password, salt.hex(), str(iterations)]
    for h in ("sha1", "sha256"):
        salted = hashlib.pbkdf2_hmac(h, password.encode(), salt, iterations)
        client = hmac.new(salted, b"Client Key", h).digest()
        server = hmac.new(salted, b"Server Key", h).digest()
        stored = hashlib.new(h, client).digest()
        out += [client.hex(), server.hex(), stored.hex()]
    return out


def cmd_creds(path, iterations, *groups):
    """One line per account: name, password (pw<index>, or pwmam for the
    archive owner), salt (hex), iterations, then client, server and stored
    key for SHA-1 and for SHA-256.  One salt serves both hashes."""
    iterations = int(iterations)
    jobs = []
    # ASCII salts: Prosody keeps the salt as a string and sends its bytes.
    salt = lambda: os.urandom(12).hex().encode()
    for g in groups:
        prefix, count = g.split(":")
        if count == "1" and prefix == "mamuser":
            jobs.append((prefix, "pwmam", salt(), iterations))
            continue
        for i in range(int(count)):
            jobs.append(("%s%d" % (prefix, i), "pw%d" % i, salt(),
                         iterations))
    with multiprocessing.Pool(max(1, min(4, os.cpu_count() or 1))) as pool:
        rows = pool.map(derive, jobs, chunksize=256)
    with open(path + ".tmp", "w") as f:
        for r in rows:
            f.write("\t".join(r) + "\n")
    os.rename(path + ".tmp", path)


class Cred:
    def __init__(self, fields):
        self.name, self.password = fields[0], fields[1]
        self.salt = bytes.fromhex(fields[2])
        self.iterations = int(fields[3])
        k = [bytes.fromhex(x) for x in fields[4:10]]
        self.sha1 = dict(client=k[0], server=k[1], stored=k[2])
        self.sha256 = dict(client=k[3], server=k[4], stored=k[5])

    def keys(self, hash_name):
        return self.sha1 if hash_name == "sha1" else self.sha256


def load_creds(path):
    with open(path) as f:
        return [Cred(line.rstrip("\n").split("\t")) for line in f if line]


def cmd_keycache(creds, hash_name, out):
    """xmppbench's key cache: USER SALTHEX ITERATIONS CLIENTKEY SERVERKEY."""
    with open(out, "w") as f:
        for c in load_creds(creds):
            k = c.keys(hash_name)
            f.write("%s %s %d %s %s\n" % (c.name, c.salt.hex(), c.iterations,
                                          k["client"].hex(),
                                          k["server"].hex()))


def roster_pairs(users, items):
    """User i's contacts: i-R/2 .. i-1 and i+1 .. i+R/2 (mod U), a
    symmetric relation, so every roster has exactly R items, all 'both'
    (the same relation run.sh seeds)."""
    for i in range(users):
        for off in range(1, items // 2 + 1):
            for j in ((i + off) % users, (i - off) % users):
                yield i, j


# ---- xmppd: its SQLite database, schema created by the daemon ----

def cmd_xmppd(db, creds, prefix, users, items):
    users, items = int(users), int(items)
    con = sqlite3.connect(db)
    now = int(time.time())
    rows = [(HOST, c.name, now, c.salt, c.iterations, c.sha1["stored"],
             c.sha1["server"], c.salt, c.iterations, c.sha256["stored"],
             c.sha256["server"]) for c in load_creds(creds)]
    with con:
        con.executemany(
            "INSERT INTO users (host, user, created, sha1_salt, sha1_iter, "
            "sha1_stored, sha1_server, sha256_salt, sha256_iter, "
            "sha256_stored, sha256_server) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            rows)
        ids = dict(con.execute("SELECT user, id FROM users WHERE host = ?",
                               (HOST,)))
        # sub 35 = SUB_ITEM | SUB_FROM | SUB_TO (xmppd/core/subscription.h).
        con.executemany(
            "INSERT INTO roster (user_id, jid, name, sub, visible, request, "
            "groups) VALUES (?, ?, NULL, 35, 1, NULL, NULL)",
            ((ids["%s%d" % (prefix, i)], "%s%d@%s" % (prefix, j, HOST))
             for i, j in roster_pairs(users, items)))
        con.executemany(
            "INSERT INTO roster_version (user_id, version) VALUES (?, 1)",
            ((ids["%s%d" % (prefix, i)],) for i in range(users)))
    con.close()


# ---- Prosody: internal storage files for accounts and rosters ----

def cmd_prosody(data, creds, hash_name, prefix, users, items):
    users, items = int(users), int(items)
    accounts = os.path.join(data, HOST, "accounts")
    rosters = os.path.join(data, HOST, "roster")
    os.makedirs(accounts, exist_ok=True)
    os.makedirs(rosters, exist_ok=True)
    for c in load_creds(creds):
        k = c.keys(hash_name)
        with open(os.path.join(accounts, c.name + ".dat"), "w") as f:
            f.write('return {\n\t["salt"] = "%s";\n'
                    '\t["iteration_count"] = %d;\n'
                    '\t["stored_key"] = "%s";\n\t["server_key"] = "%s";\n'
                    '};\n' % (c.salt.decode(), c.iterations, k["stored"].hex(),
                              k["server"].hex()))
    contacts = {}
    for i, j in roster_pairs(users, items):
        contacts.setdefault(i, []).append(j)
    for i in range(users):
        with open(os.path.join(rosters, "%s%d.dat" % (prefix, i)), "w") as f:
            f.write('return {\n\t[false] = {\n\t\t["version"] = 1;\n'
                    '\t\t["pending"] = {};\n\t};\n')
            for j in contacts.get(i, []):
                f.write('\t["%s%d@%s"] = {\n\t\t["subscription"] = "both";'
                        '\n\t\t["groups"] = {};\n\t};\n' % (prefix, j, HOST))
            f.write('};\n')


# ---- ejabberd: SQLite with the schema it ships (lite.sql) ----

def cmd_ejabberd(db, schema, creds, hash_name, prefix, users, items):
    users, items = int(users), int(items)
    con = sqlite3.connect(db)
    with open(schema) as f:
        con.executescript(f.read())
    b64 = lambda b: base64.b64encode(b).decode()
    rows = []
    for c in load_creds(creds):
        k = c.keys(hash_name)
        stored = b64(k["stored"])
        if hash_name == "sha256":
            stored = "sha256:" + stored  # ejabberd_auth_sql's hash prefix
        rows.append((c.name, stored, b64(k["server"]), b64(c.salt),
                     c.iterations))
    with con:
        con.executemany("INSERT INTO users (username, password, serverkey, "
                        "salt, iterationcount) VALUES (?,?,?,?,?)", rows)
        con.executemany(
            "INSERT INTO rosterusers (username, jid, nick, subscription, "
            "ask, askmessage, server, subscribe, type) "
            "VALUES (?, ?, '', 'B', 'N', '', 'N', '', 'item')",
            (("%s%d" % (prefix, i), "%s%d@%s" % (prefix, j, HOST))
             for i, j in roster_pairs(users, items)))
    con.close()


# ---- the queried archive: ROWS messages of USER, 10 correspondents ----

WORDS = ("the meeting moved to thursday, can you send the draft before "
         "lunch? thanks, see you there").split()


def archive_messages(user, rows):
    """Yield (i, outgoing, peer bare JID, peer full JID, stamp ms, body,
    stanza) with stamps 2 s apart ending now, as archive.sh seeds."""
    rnd = random.Random(313)
    me = "%s@%s" % (user, HOST)
    end = int(time.time() * 1000)
    start = end - 2000 * rows
    for i in range(rows):
        peer = "contact%d@%s" % (i % 10, HOST)
        full = peer + "/phone"
        body = " ".join(rnd.choice(WORDS) for _ in range(8 + i % 8))
        outgoing = i % 2
        if outgoing:
            stanza = ("<message xmlns='jabber:client' to='%s' type='chat' "
                      "id='m%d' from='%s/laptop'><body>%s</body></message>"
                      % (peer, i, me, body))
        else:
            stanza = ("<message xmlns='jabber:client' to='%s' type='chat' "
                      "id='m%d' from='%s'><body>%s</body></message>"
                      % (me, i, full, body))
        yield i, outgoing, peer, full, start + 2000 * i, body, stanza


PROSODY_SQL = """
CREATE TABLE IF NOT EXISTS "prosody" ("host" TEXT NOT NULL,
  "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL,
  "type" TEXT NOT NULL, "value" MEDIUMTEXT NOT NULL);
CREATE INDEX IF NOT EXISTS "prosody_index"
  ON "prosody" ("host", "user", "store", "key");
CREATE TABLE IF NOT EXISTS "prosodyarchive" (
  "sort_id" INTEGER PRIMARY KEY AUTOINCREMENT, "host" TEXT NOT NULL,
  "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL,
  "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL,
  "value" MEDIUMTEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "prosodyarchive_index"
  ON "prosodyarchive" ("host", "user", "store", "key");
CREATE INDEX IF NOT EXISTS "prosodyarchive_with_when"
  ON "prosodyarchive" ("host", "user", "store", "with", "when");
CREATE INDEX IF NOT EXISTS "prosodyarchive_when"
  ON "prosodyarchive" ("host", "user", "store", "when");
CREATE INDEX IF NOT EXISTS "prosodyarchive_sort"
  ON "prosodyarchive" ("host", "user", "store", "sort_id");
"""


def cmd_archive(server, db, user, rows):
    rows = int(rows)
    middle = None
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode = WAL")
    if server == "xmppd":
        uid = con.execute("SELECT id FROM users WHERE user = ? AND host = ?",
                          (user, HOST)).fetchone()[0]
        rnd = random.Random(7)

        def gen():
            nonlocal middle
            for i, out, peer, full, stamp, body, stanza in \
                    archive_messages(user, rows):
                # mam_id_new(): milliseconds above 22 random bits.
                sid = stamp << 22 | rnd.getrandbits(22)
                if i == rows // 2:
                    middle = "%016x" % sid
                if not out:
                    stanza = stanza.replace(
                        "</message>", "<stanza-id xmlns='urn:xmpp:sid:0' "
                        "by='%s@%s' id='%016x'/></message>"
                        % (user, HOST, sid))
                # mam_archive.c binds the 64-bit id as a signed integer.
                yield (uid, sid - (1 << 64) if sid >= 1 << 63 else sid,
                       stamp, out, peer, peer if out else full, stanza)
        with con:
            con.executemany("INSERT INTO archive (user_id, sid, stamp, "
                            "outgoing, with_bare, with_full, stanza) "
                            "VALUES (?, ?, ?, ?, ?, ?, ?)", gen())
    elif server == "prosody":
        # mod_storage_sql's tables as it creates them on first use; in
        # prosodyarchive the key is the public id, "when" in seconds,
        # "with" the bare JID of the other party (mod_mam).
        con.executescript(PROSODY_SQL)
        rnd = random.Random(7)

        def gen():
            nonlocal middle
            for i, out, peer, full, stamp, body, stanza in \
                    archive_messages(user, rows):
                key = "%08x-%04x-4%03x-a%03x-%012x" % (
                    rnd.getrandbits(32), rnd.getrandbits(16),
                    rnd.getrandbits(12), rnd.getrandbits(12),
                    rnd.getrandbits(48))
                if i == rows // 2:
                    middle = key
                yield (HOST, user, "archive", key, stamp // 1000, peer,
                       "xml", stanza)
        with con:
            con.executemany('INSERT INTO "prosodyarchive" ("host", "user", '
                            '"store", "key", "when", "with", "type", '
                            '"value") VALUES (?,?,?,?,?,?,?,?)', gen())
    elif server == "ejabberd":
        # mod_mam_sql: the id clients see is the timestamp in µs.
        def gen():
            nonlocal middle
            for i, out, peer, full, stamp, body, stanza in \
                    archive_messages(user, rows):
                ts = stamp * 1000
                if i == rows // 2:
                    middle = str(ts)
                yield (user, ts, peer if out else full, peer, stanza, body,
                       "chat", "")
        with con:
            con.executemany("INSERT INTO archive (username, timestamp, peer, "
                            "bare_peer, xml, txt, kind, nick) "
                            "VALUES (?,?,?,?,?,?,?,?)", gen())
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    print(middle)


def cmd_count(server, db, exclude):
    con = sqlite3.connect(db)
    if server == "xmppd":
        q = ("SELECT count(*) FROM archive WHERE user_id != (SELECT id FROM "
             "users WHERE user = ? AND host = '%s')" % HOST)
    elif server == "prosody":
        q = ('SELECT count(*) FROM "prosodyarchive" WHERE "store" = '
             "'archive' AND \"user\" != ?")
    else:
        q = "SELECT count(*) FROM archive WHERE username != ?"
    print(con.execute(q, (exclude,)).fetchone()[0])
    con.close()


# ---- MAM page queries (XEP-0313 with RSM, XEP-0059) ----

def cmd_mam(port, tls, mech, user, password, queries, page, middle, domain,
            out, label):
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(
        __file__)), "..", "proto"))
    import xmpp_raw as X
    port, queries, page = int(port), int(queries), int(page)
    ns_mam, ns_rsm = "urn:xmpp:mam:2", "http://jabber.org/protocol/rsm"
    c = X.login(port, user, password, tls=None if tls == "none" else tls,
                mechanism=mech)
    c.timeout = 30
    form = ("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' "
            "type='hidden'><value>%s</value></field><field var='with'>"
            "<value>contact3@%s</value></field></x>" % (ns_mam, domain))
    kinds = [
        ("first", "", "<max>%d</max>" % page),
        ("middle", "", "<max>%d</max><after>%s</after>" % (page, middle)),
        ("last", "", "<max>%d</max><before/>" % page),
        ("with", form, "<max>%d</max>" % page),
    ]
    n = [0]
    failed = 0

    def query(form_xml, rsm):
        n[0] += 1
        iq_id, qid = "mq%d" % n[0], "q%d" % n[0]
        got = 0
        t = time.perf_counter()
        c.send("<iq type='set' id='%s'><query xmlns='%s' queryid='%s'>%s"
               "<set xmlns='%s'>%s</set></query></iq>"
               % (iq_id, ns_mam, qid, form_xml, ns_rsm, rsm))
        while True:
            el = c.next_element()
            if el.tag == X.q(X.NS_CLIENT, "message"):
                r = el.find(X.q(ns_mam, "result"))
                if r is not None and r.get("queryid") == qid:
                    got += 1
            elif el.tag == X.q(X.NS_CLIENT, "iq") and el.get("id") == iq_id:
                ms = (time.perf_counter() - t) * 1000
                ok = el.get("type") == "result" and \
                    el.find(X.q(ns_mam, "fin")) is not None
                return ms, got, ok

    with open(out, "a") as f:
        for name, form_xml, rsm in kinds:
            for _ in range(3):                  # warm-up, not counted
                query(form_xml, rsm)
            times = []
            for _ in range(queries):
                ms, got, ok = query(form_xml, rsm)
                if not ok or got != page:
                    failed += 1
                    if failed <= 3:
                        print("mam: %s page: ok=%s, %d messages (expected "
                              "%d)" % (name, ok, got, page), file=sys.stderr)
                times.append(ms)
            med = statistics.median(times)
            times.sort()
            p90 = times[min(len(times) - 1,
                            int(round(0.9 * len(times))) - 1)]
            print("  %s page: median %.2f ms, p90 %.2f, min %.2f, max %.2f "
                  "(%d queries)" % (name, med, p90, times[0], times[-1],
                                    len(times)))
            f.write("%s,%s,%.3f,%.3f,%.3f,%d\n" % (label, name, med,
                                                   min(times), max(times),
                                                   failed))
    c.send("</stream:stream>")
    c.close()
    sys.exit(1 if failed else 0)


# ---- the table ----

# (metric, unit, higher is better, source, column or key)
METRICS = [
    ("sequential logins/s", "1/s", True, "seq", "logins_per_s"),
    ("  p50 latency", "ms", False, "seq", "p50_ms"),
    ("  p99 latency", "ms", False, "seq", "p99_ms"),
    ("  server CPU per login", "ms", False, "seq",
     "server_cpu_ms_per_login"),
    ("parallel logins/s", "1/s", True, "par", "logins_per_s"),
    ("  p50 latency", "ms", False, "par", "p50_ms"),
    ("  p99 latency", "ms", False, "par", "p99_ms"),
    ("  server CPU per login", "ms", False, "par",
     "server_cpu_ms_per_login"),
    ("  server CPU use", "%", None, "par", "server_util"),
    ("  load generator CPU use", "%", None, "par", "bench_util"),
    ("bare TLS handshakes/s (parallel)", "1/s", True, "hs", "logins_per_s"),
    ("  server CPU per handshake", "ms", False, "hs",
     "server_cpu_ms_per_login"),
    ("  login CPU / handshake CPU", "x", False, "hs", "login_ratio"),
    ("idle: memory per session", "KiB", False, "idle", "kib_per_session"),
    ("  server RSS with all sessions", "MiB", False, "idle", "rss_after_mib"),
    ("  ramp logins/s", "1/s", True, "idle", "logins_per_s"),
    ("chat: delivered messages/s", "1/s", True, "chat", "messages_per_s"),
    ("  p50 latency", "ms", False, "chat", "p50_ms"),
    ("  p99 latency", "ms", False, "chat", "p99_ms"),
    ("  p99.9 latency", "ms", False, "chat", "p999_ms"),
    ("  server CPU per 100k messages", "s", False, "chat", "cpu_s_100k"),
    ("  server CPU use", "%", None, "chat", "server_util"),
    ("  load generator CPU use", "%", None, "chat", "bench_util"),
    ("chat paced at half that rate", "1/s", None, "chathalf",
     "messages_per_s"),
    ("  p50 latency", "ms", False, "chathalf", "p50_ms"),
    ("  p99 latency", "ms", False, "chathalf", "p99_ms"),
    ("  p99.9 latency", "ms", False, "chathalf", "p999_ms"),
    ("  server CPU per 100k messages", "s", False, "chathalf",
     "cpu_s_100k"),
    ("presence: delivered stanzas/s", "1/s", True, "presence",
     "presence_per_s"),
    ("  p50 latency", "ms", False, "presence", "p50_ms"),
    ("  p99 latency", "ms", False, "presence", "p99_ms"),
    ("  server CPU per stanza", "us", False, "presence",
     "server_cpu_us_per_stanza"),
    ("  server CPU use", "%", None, "presence", "server_util"),
    ("  load generator CPU use", "%", None, "presence", "bench_util"),
    ("archive: delivered messages/s", "1/s", True, "archive",
     "messages_per_s"),
    ("  p99 latency", "ms", False, "archive", "p99_ms"),
    ("  server CPU per archived message", "us", False, "archive",
     "cpu_us_archived"),
    ("  archived / expected rows", "", None, "archive", "archived_ratio"),
    ("  MAM first page", "ms", False, "mam", "first"),
    ("  MAM middle page (after id)", "ms", False, "mam", "middle"),
    ("  MAM last page (before)", "ms", False, "mam", "last"),
    ("  MAM with=contact, first page", "ms", False, "mam", "with"),
]


def read_csv(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def split_label(label):
    """SERVER/RUN/KIND."""
    parts = label.split("/")
    return (parts[0], parts[1], parts[2]) if len(parts) == 3 else None


def collect(results):
    """values[(server, source, key)] = [one value per run]."""
    values = {}

    def add(server, source, key, v):
        try:
            v = float(v)
        except (TypeError, ValueError):
            return
        if v < 0:
            return
        values.setdefault((server, source, key), []).append(v)

    def util(row, server, kind):
        e = float(row.get("elapsed_s") or 0)
        for col, key in (("server_cpu_s", "server_util"),
                         ("bench_cpu_s", "bench_util")):
            v = row.get(col)
            if e > 0 and v not in (None, "", "-1.00"):
                add(server, kind, key, 100 * float(v) / e)

    for row in read_csv(os.path.join(results, "logins.csv")):
        lab = split_label(row["label"])
        if not lab:
            continue
        server, _, kind = lab
        if int(row["failed"]) or int(row["timed_out"]):
            continue
        for col in ("logins_per_s", "p50_ms", "p99_ms",
                    "server_cpu_ms_per_login"):
            add(server, kind, col, row[col])
        util(row, server, kind)
        if kind == "idle":
            add(server, kind, "kib_per_session",
                float(row["bytes_per_session"]) / 1024)
            add(server, kind, "rss_after_mib",
                float(row["server_rss_after_kib"]) / 1024)
    archived = {}
    for row in read_csv(os.path.join(results, "archived.csv")):
        archived[row["label"]] = (int(row["rows"]), int(row["expected"]))
    for row in read_csv(os.path.join(results, "chat.csv")):
        lab = split_label(row["label"])
        if not lab or int(row["timed_out"]) or int(row["errors"]) or \
                int(row["delivered"]) < int(row["n"]):
            continue
        server, _, kind = lab
        for col in ("messages_per_s", "p50_ms", "p99_ms", "p999_ms"):
            add(server, kind, col, row[col])
        util(row, server, kind)
        cpu = float(row["server_cpu_ms_per_1000"])
        if cpu >= 0:
            add(server, kind, "cpu_s_100k", cpu * 100 / 1000)
            # Each delivered message is archived twice (both parties).
            add(server, kind, "cpu_us_archived", cpu / 2)
        if row["label"] in archived:
            rows, expected = archived[row["label"]]
            add(server, kind, "archived_ratio",
                rows / expected if expected else 0)
    for row in read_csv(os.path.join(results, "presence.csv")):
        lab = split_label(row["label"])
        if not lab or int(row["timed_out"]) or \
                int(row["delivered"]) < int(row["expected"]):
            continue
        server, _, kind = lab
        for col in ("presence_per_s", "p50_ms", "p99_ms",
                    "server_cpu_us_per_stanza"):
            add(server, kind, col, row[col])
        util(row, server, kind)
    for row in read_csv(os.path.join(results, "muc.csv")):
        lab = split_label(row["label"])
        if not lab or int(row["timed_out"]) or int(row["errors"]) or \
                int(row["join_failed"]) or \
                int(row["delivered"]) < int(row["expected"]):
            continue
        server, _, kind = lab
        for col in ("copies_per_s", "server_cpu_us_per_copy", "p50_ms",
                    "p99_ms", "join_cpu_ms", "join_p50_ms",
                    "history_per_join", "bytes_per_occupant",
                    "fill_cpu_ms_per_join"):
            add(server, kind, col, row[col])
        util(row, server, kind)
    for row in read_csv(os.path.join(results, "mam.csv")):
        lab = split_label(row["label"])
        if not lab or int(row["failed"]):
            continue
        add(lab[0], "mam", row["page"], row["median_ms"])
    # A full parallel login's server CPU over a bare handshake's, run by
    # run (the two are measured on the same instance).
    for (server, source, key), hs in list(values.items()):
        par = values.get((server, "par", key))
        if source == "hs" and key == "server_cpu_ms_per_login" and par:
            for p, h in zip(par, hs):
                if h > 0:
                    add(server, "hs", "login_ratio", p / h)
    return values


def muc_metrics(values):
    """The muc rows, one group per room size run (label kind mucN)."""
    sizes = sorted({int(src[3:]) for (_, src, _) in values
                    if src.startswith("muc") and src[3:].isdigit()})
    rows = []
    for n in sizes:
        k = "muc%d" % n
        rows += [
            ("muc, %d occupants: copies/s" % n, "1/s", True, k,
             "copies_per_s"),
            ("  server CPU per copy", "us", False, k,
             "server_cpu_us_per_copy"),
            ("  p99 latency of a copy", "ms", False, k, "p99_ms"),
            ("  server CPU per join", "ms", False, k, "join_cpu_ms"),
            ("  join latency p50", "ms", False, k, "join_p50_ms"),
            ("  history messages per join", "", None, k,
             "history_per_join"),
            ("  memory per occupant", "B", False, k, "bytes_per_occupant"),
            ("  filling: server CPU per join", "ms", False, k,
             "fill_cpu_ms_per_join"),
            ("  server CPU use", "%", None, k, "server_util"),
            ("  load generator CPU use", "%", None, k, "bench_util"),
        ]
    return rows


def fmt(v):
    if v >= 1000:
        return "{:,.0f}".format(v)
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def cmd_table(results, servers, out, runs="0"):
    """Failed runs (any failed login, undelivered message or stanza,
    time-out) are left out; a cell from fewer runs than asked says so."""
    servers = servers.split()
    runs = int(runs)
    values = collect(results)
    width = 26
    head = "%-34s %-5s" % ("metric (median [min-max])", "unit")
    for s in servers:
        head += " %*s" % (width, s)
    peers = [s for s in servers if s != "xmppd"]
    if "xmppd" in servers and peers:
        head += "  %s" % "xmppd vs best peer"
    print(head)
    rows = []
    for name, unit, higher, source, key in METRICS + muc_metrics(values):
        cells, med = [], {}
        for s in servers:
            v = sorted(values.get((s, source, key), []))
            if not v:
                cells.append("-")
                continue
            med[s] = statistics.median(v)
            cell = fmt(med[s])
            if len(v) > 1:
                cell += " [%s-%s]" % (fmt(v[0]), fmt(v[-1]))
            if len(v) < runs:
                cell += " n=%d" % len(v)
            cells.append(cell)
            rows.append((s, name.strip(), unit, source, key, len(v), med[s],
                         v[0], v[-1]))
        if all(c == "-" for c in cells):
            continue
        line = "%-34s %-5s" % (name, unit)
        for c in cells:
            line += " %*s" % (width, c)
        if higher is not None and "xmppd" in med and \
                any(p in med for p in peers):
            pv = [med[p] for p in peers if p in med]
            best = max(pv) if higher else min(pv)
            x = med["xmppd"]
            if x > 0 and best > 0:
                r = x / best if higher else best / x
                line += "  x%.2f %s" % (r, "better" if r >= 1 else "worse")
        print(line)
    with open(out, "w") as f:
        f.write("server,metric,unit,source,key,runs,median,min,max\n")
        for r in rows:
            f.write("%s,%s,%s,%s,%s,%d,%.4f,%.4f,%.4f\n" % r)


def main():
    cmds = {"creds": cmd_creds, "keycache": cmd_keycache, "xmppd": cmd_xmppd,
            "prosody": cmd_prosody, "ejabberd": cmd_ejabberd,
            "archive": cmd_archive, "count": cmd_count, "mam": cmd_mam,
            "table": cmd_table}
    if len(sys.argv) < 2 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    cmds[sys.argv[1]](*sys.argv[2:])


if __name__ == "__main__":
    main()
