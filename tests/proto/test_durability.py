"""Durability (issue 6 item 4): what survives SIGKILL, a full disk and a
database locked by another process.

Crash test.  A message load (online recipients, offline recipients, a
recipient that comes and goes, a recipient that does not exist, one
whose session waits to be resumed) runs while xmppd is killed with
SIGKILL at a random moment; it is restarted on the same database,
CRASH_CYCLES times (XMPPD_CRASH_CYCLES, default 20; XMPPD_CRASH_SEED
repeats a run).  One sender (s3) has no XEP-0198: the
server acknowledges nothing to it and an offline message is written
while the server goes on with the sender's next stanzas (mod_offline.c),
so what a kill may lose is the tail of what was in flight, and "routed"
is the most the test can know: a ping answered after a message was sent
proves it was routed, not committed.  The other two (SM_SENDERS) enable
XEP-0198 stream management and, now and then, pipeline an <r/> after
their messages; they count the stanzas they send, and each <a h/> the
server answers acknowledges the first h of them, which xmppd promises
only once what they caused is committed (smacks_request's barrier on the
store thread).  After every kill a copy of the database (with its WAL,
recovered the way the next start recovers it) must pass PRAGMA
integrity_check, and the ledger of everything sent, delivered, stored
and bounced must show:

  - live delivery: per sender, recipient and incarnation, what arrived
    is a prefix of what was sent live, in order, without duplicates;
  - storage: the messages stored (in the database after the kill, or
    later delivered from it) are a prefix of what each sender sent to be
    stored in that incarnation, whatever the recipient, each stored
    once; a message delivered live is never stored;
  - durability: a row in the database after a kill is in the database
    after the next kill too, unless it was delivered meanwhile; at the
    end every stored row is delivered;
  - redelivery only in the documented at-least-once window of
    mod_offline.c: a stored message delivered again only if it was
    delivered in an incarnation that was then killed before the delete
    committed (its row was still in the database after that kill);
  - bounces: each is an error stanza, for a message that was neither
    delivered nor stored, and a prefix of what was sent to that address;
  - copies: a message delivered more than once carries the same
    <stanza-id/> every time (a client can tell the copy);
  - acknowledgements: no <a h/> counts more stanzas than were sent, and
    every message the server acknowledged before the kill arrived
    (live), is in the offline table after the kill or was delivered
    from it, or bounced, as its recipient called for; and both its
    archive rows (sender's and recipient's) are in the database after
    the kill.  One recipient (WAITING) enables resumable stream
    management and drops its connection at once: what comes for it
    waits in its session's queue, in memory, and a kill loses it from
    everywhere but the archive (XEP-0198 keeps nothing on disk), so for
    it the archive rows are the check.  "lost after ack" counts the
    acknowledged messages that are nowhere (none of the above and no
    archive row): it must be 0.

The figures (kill cycles, sent, delivered, stored, bounced, lost tail,
redeliveries, integrity checks) are printed (pytest -s) as one line
starting with "crash summary:", those of the acknowledged senders (sent,
acked by server, delivered, stored, bounced, archived, lost after ack)
as one starting with "ack summary:".

Disk full: RLIMIT_FSIZE set on the running daemon with prlimit(1) makes
writes past a size fail (EFBIG; xmppd ignores SIGXFSZ).  An offline
message that cannot be stored bounces with <resource-constraint/>
type='wait', nothing of it is stored, online chat and pings go on (an
archive write that fails does not lose the message), and storage works
again once the limit is lifted.

Locked database: another process holding the write lock (BEGIN
EXCLUSIVE, as a backup tool may) or running an online backup does not
block the event loop: pings stay fast, online messages flow, an offline
message is stored when the lock ends or bounced with 'wait' after the
busy timeout (5 s, store_sqlite.c), a read that shares the failed
write's transaction is still answered, and a login waiting behind such a
write completes.
"""

import collections
import os
import random
import re
import select
import shutil
import signal
import sqlite3
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

import xmpp_raw
from im_helpers import IMClient, is_message
from xmpp_raw import NS_CLIENT, q

NS_DELAY = 'urn:xmpp:delay'
NS_SM = 'urn:xmpp:sm:3'
NS_SID = 'urn:xmpp:sid:0'
NS_STANZA_ERR = 'urn:ietf:params:xml:ns:xmpp-stanzas'

CRASH_CYCLES = int(os.environ.get('XMPPD_CRASH_CYCLES', '20'))
CRASH_SEED = os.environ.get('XMPPD_CRASH_SEED')
BUSY_TIMEOUT = 5.0          # STORE_BUSY_TIMEOUT_MS in store_sqlite.c
PING_LIMIT = 0.25           # seconds: the loop is not blocked

# No stanza or byte rate limit (the load is the point) and room for
# everything the offline recipients collect over all cycles.
LIMITS = {'stanzas-per-second': 0, 'bytes-per-second': 0,
          'offline-messages': 100000}

BODY_RE = re.compile(r'<body>crash ([^<]+)</body>')

SENDERS = ['s1', 's2', 's3']
SM_SENDERS = ['s1', 's2']       # enable XEP-0198 and ask for acks
ONLINE = ['on1', 'on2']         # online through every incarnation
OFFLINE = ['off1', 'off2']      # never online until the end
FETCHER = 'fe1'                 # logs in and out during the load
GHOST = 'ghost'                 # no such account: bounced
WAITING = 'wt1'                 # XEP-0198, its connection lost at once:
                                # its session waits to be resumed
ACCOUNTS = SENDERS + ONLINE + OFFLINE + [FETCHER, WAITING]


def jid(user):
    return '%s@localhost' % user


# --- database snapshots ---------------------------------------------------

def snapshot(db_path):
    """Copy the database and its WAL (not the -shm index) and open the
    copy, so SQLite recovers it from the WAL the way the next start of
    xmppd will, without touching the daemon's files.  Returns
    (integrity_check result, {user: [message ids in row order]},
    {(user, outgoing, message id): count} of the archive)."""
    d = Path(tempfile.mkdtemp(prefix='xmppd-snap-'))
    try:
        for suffix in ('', '-wal'):
            src = Path(str(db_path) + suffix)
            if src.exists():
                shutil.copy(src, d / ('copy.db' + suffix))
        db = sqlite3.connect(str(d / 'copy.db'))
        try:
            integrity = '\n'.join(r[0] for r in db.execute(
                'PRAGMA integrity_check'))
            offline = collections.defaultdict(list)
            for user, stanza in db.execute(
                    'SELECT u.user, o.stanza FROM offline o JOIN users u '
                    'ON u.id = o.user_id ORDER BY o.id'):
                m = BODY_RE.search(stanza)
                offline[user].append(m.group(1) if m else stanza)
            archive = collections.Counter()
            for user, outgoing, stanza in db.execute(
                    'SELECT u.user, a.outgoing, a.stanza FROM archive a '
                    'JOIN users u ON u.id = a.user_id'):
                m = BODY_RE.search(stanza)
                if m:
                    archive[(user, outgoing, m.group(1))] += 1
        finally:
            db.close()
        return integrity, dict(offline), archive
    finally:
        shutil.rmtree(d, ignore_errors=True)


def integrity_of(db_path):
    db = sqlite3.connect(str(db_path))
    try:
        return '\n'.join(r[0] for r in db.execute('PRAGMA integrity_check'))
    finally:
        db.close()


# --- the ledger and its checks ---------------------------------------------

class Ledger:
    """Everything the crash test sent and saw.  Message ids are
    'SENDER.INCARNATION.SEQ'; dest is 'live', 'store' or 'bounce'."""

    def __init__(self):
        self.sent = collections.defaultdict(list)   # (inc, s, r) -> ids
        self.by_sender = collections.defaultdict(list)  # (inc, s) -> ids
        self.info = {}          # id -> (inc, s, r, dest)
        self.live = collections.defaultdict(list)   # (inc, s, r) -> ids
        self.delayed = []       # (inc received, r, id) from storage
        self.bounces = []       # (inc, s, id, error type, [conditions])
        self.snapshots = {}     # inc -> {user: [ids]} after its kill
        self.killed = set()     # incarnations that ended with SIGKILL
        self.routed = {}        # id -> when a later ping was answered
        self.kill_time = {}     # inc -> when SIGKILL was sent
        self.integrity = []     # one result per check
        self.archive_dups = []
        self.kill_phase = collections.Counter()
        # XEP-0198 senders: the stanzas each sent after <enabled/>, in
        # order (a message id, or None for an IQ), and the highest h the
        # server acknowledged of them.
        self.out = collections.defaultdict(list)    # (inc, s) -> [mid]
        self.acks = {}                              # (inc, s) -> h
        self.stanza_ids = collections.defaultdict(set)  # mid -> ids seen
        self.unarchived = {}    # acked mid -> archive rows missing

    def send(self, inc, s, r, dest, mid):
        self.sent[(inc, s, r)].append(mid)
        self.by_sender[(inc, s)].append(mid)
        self.info[mid] = (inc, s, r, dest)

    def acked(self):
        """The messages the server acknowledged: [(inc, s, mid)]."""
        return [(inc, s, m) for (inc, s), h in sorted(self.acks.items())
                for m in self.out[(inc, s)][:h] if m is not None]

    def note_archive(self, inc, archive):
        """After kill inc: the archive rows (snapshot()'s Counter) that
        the messages acknowledged in inc lack, for all but bounced ones
        (both parties' rows)."""
        for (minc, s), h in self.acks.items():
            if minc != inc:
                continue
            for m in self.out[(minc, s)][:h]:
                if m is None:
                    continue
                _, _, r, dest = self.info[m]
                if dest == 'bounce':
                    continue
                missing = [k for k in ((s, 1, m), (r, 0, m))
                           if not archive[k]]
                if missing:
                    self.unarchived[m] = missing


def check_prefix(what, key, got, sent):
    """got (a list, order kept) must be sent[:len(got)]."""
    if got != sent[:len(got)]:
        extra = [m for m in got if m not in sent]
        raise AssertionError(
            '%s %s: received %s is not a prefix of sent %s (phantoms %s; '
            'a hole, a duplicate or reordering)'
            % (what, key, got[:40], sent[:40], extra[:10]))


def check_prefix_set(what, key, got, sent):
    """The set got must be the first len(got) of sent: loss only of a
    tail."""
    n = len(got)
    if set(sent[:n]) != set(got):
        holes = [m for m in sent[:n] if m not in got]
        raise AssertionError(
            '%s %s: %d stored but not the first %d sent: missing %s '
            '(a hole in what was committed)'
            % (what, key, n, n, holes[:10]))


def verify(L, final_inc):
    """Check the ledger (see the module docstring); returns the figures.
    Raises AssertionError naming the first violation."""
    stats = collections.Counter()
    stats['redelivered'] = 0
    for result in L.integrity:
        assert result == 'ok', 'PRAGMA integrity_check: %s' % result
    assert not L.archive_dups, 'archive rows stored twice: %s' % (
        L.archive_dups[:10])

    # Every row of every snapshot: stored once, a stored-destined message.
    ever_stored = set()
    for inc, snap in sorted(L.snapshots.items()):
        for user, ids in snap.items():
            dups = [m for m, n in collections.Counter(ids).items() if n > 1]
            assert not dups, 'stored twice after kill %d for %s: %s' % (
                inc, user, dups[:10])
            for m in ids:
                assert m in L.info, 'phantom row %r for %s' % (m, user)
                minc, _, r, dest = L.info[m]
                assert r == user, 'row %s stored for %s, sent to %s' % (
                    m, user, r)
                assert dest == 'store', (
                    'message %s (sent %s) is stored after kill %d'
                    % (m, 'live' if dest == 'live' else 'to ' + dest, inc))
                ever_stored.add(m)

    # Delivered from storage: stored-destined, to its recipient; again
    # only in the at-least-once window.
    first_delivery = {}
    for inc, r, m in L.delayed:
        assert m in L.info, 'phantom delivery %r to %s' % (m, r)
        _, _, to, dest = L.info[m]
        assert to == r, '%s delivered to %s, sent to %s' % (m, r, to)
        assert dest == 'store', (
            '%s was sent %s but came with <delay/> (from storage)'
            % (m, dest))
        ever_stored.add(m)
        if m not in first_delivery:
            first_delivery[m] = inc
            continue
        prev = first_delivery[m]
        window = (prev != inc and prev in L.killed and
                  m in L.snapshots.get(prev, {}).get(r, ()))
        assert window, (
            '%s delivered twice (incarnations %d and %d) outside the '
            'at-least-once window (killed: %s, row left after the kill: '
            '%s)' % (m, prev, inc, prev in L.killed,
                     m in L.snapshots.get(prev, {}).get(r, ())))
        stats['redelivered'] += 1
        first_delivery[m] = inc

    # Live delivery: in order, once, no holes, never also stored.
    live_ids = set()
    for key, got in L.live.items():
        for m in got:
            assert m in L.info, 'phantom live message %r for %s' % (m, key)
            inc, s, r, dest = L.info[m]
            assert (inc, s, r) == key and dest == 'live', (
                '%s (sent %s to %s) arrived live at %s' % (m, dest, r, key))
            assert m not in ever_stored, '%s delivered live and stored' % m
        sent_live = [m for m in L.sent[key] if L.info[m][3] == 'live']
        check_prefix('live delivery', key, got, sent_live)
        live_ids.update(got)

    # Bounces: errors, for messages neither delivered nor stored.
    bounced = collections.defaultdict(list)
    for inc, s, m, etype, conds in L.bounces:
        assert m in L.info, 'bounce of unknown message %r' % m
        minc, ms, r, dest = L.info[m]
        assert (minc, ms) == (inc, s), 'bounce of %s reached %s in %d' % (
            m, s, inc)
        assert etype and conds, 'bounce of %s without an error' % m
        assert m not in live_ids and m not in ever_stored, (
            '%s bounced and also delivered or stored' % m)
        assert dest == 'bounce' and conds == ['service-unavailable'] and \
            etype == 'cancel', (
                'unexpected bounce of %s (sent to %s): %s %s (a storage '
                'error under a plain load?)' % (m, r, etype, conds))
        bounced[(inc, s, r)].append(m)
    for key, got in bounced.items():
        dups = [m for m, n in collections.Counter(got).items() if n > 1]
        assert not dups, 'bounced twice: %s' % dups
        sent_b = [m for m in L.sent[key] if L.info[m][3] == 'bounce']
        check_prefix('bounces', key, got, sent_b)

    # Storage: what was committed is a prefix of what was sent to be
    # stored, per sender and incarnation, whatever the recipient (one
    # FIFO storage queue, transactions committed in order).
    for key, ids in L.by_sender.items():
        store_sent = [m for m in ids if L.info[m][3] == 'store']
        check_prefix_set('storage', key,
                         [m for m in store_sent if m in ever_stored],
                         store_sent)

    # Durability: a row after kill k is still there after kill k+1 or
    # was delivered in between; at the end everything stored was
    # delivered.
    delivered_in = collections.defaultdict(set)
    for inc, r, m in L.delayed:
        delivered_in[inc].add(m)
    incs = sorted(L.snapshots)
    for a, b in zip(incs, incs[1:]):
        for user, ids in L.snapshots[a].items():
            later = set(L.snapshots[b].get(user, ()))
            gone = [m for m in ids if m not in later and
                    not any(m in delivered_in[i] for i in range(a + 1,
                                                                b + 1))]
            assert not gone, (
                'rows of %s in the database after kill %d are gone after '
                'kill %d without being delivered: %s' % (user, a, b,
                                                         gone[:10]))
    delivered_ever = {m for _, _, m in L.delayed}
    for m in ever_stored:
        assert m in delivered_ever, (
            'stored message %s never delivered (final incarnation %d)'
            % (m, final_inc))

    # Copies: the same <stanza-id/> on every delivery of a message.
    times = collections.Counter(m for _, _, m in L.delayed)
    for m, n in times.items():
        ids = L.stanza_ids.get(m, set())
        assert n == 1 or (len(ids) == 1 and None not in ids), (
            '%s delivered %d times with stanza-ids %s: a client cannot '
            'tell the copy' % (m, n, sorted(map(str, ids))))

    bounced_ids = {b[2] for b in L.bounces}
    stats.update(verify_acks(L, live_ids, ever_stored, bounced_ids))

    stats['kill cycles'] = len(L.killed)
    stats['sent'] = len(L.info)
    stats['delivered live'] = len(live_ids)
    stats['stored'] = len(ever_stored)
    stats['delivered from storage'] = len(delivered_ever)
    stats['bounced'] = sum(len(v) for v in bounced.values())
    # Held for the waiting session: only ever in memory (and archived).
    stats['held for a waiting session'] = sum(
        1 for m in L.info if L.info[m][3] == 'held')
    lost = [m for m in L.info if m not in live_ids and
            m not in ever_stored and m not in bounced_ids and
            L.info[m][3] != 'held']
    stats['lost tail'] = len(lost)
    routed = [m for m in lost if m in L.routed]
    stats['lost after a ping was answered'] = len(routed)
    # How long before the kill the oldest of those was known routed: the
    # commit lag of the storage queue under this load.
    stats['max ms routed before the kill'] = max(
        [1000 * (L.kill_time[L.info[m][0]] - L.routed[m]) for m in routed
         if L.info[m][0] in L.kill_time] or [0])
    stats['lost (to be stored)'] = sum(
        1 for m in lost if L.info[m][3] == 'store')
    stats['integrity checks ok'] = len(L.integrity)
    return stats


def verify_acks(L, live_ids, ever_stored, bounced_ids):
    """The acknowledged senders' part of verify(): every message the
    server acknowledged is where its recipient called for (live, stored,
    bounced, or for the waiting session held in memory, which a kill
    loses) and archived; returns the 'sm ...' figures."""
    stats = collections.Counter()
    for k in ('sent', 'acked by server', 'acked delivered live',
              'acked stored', 'acked bounced',
              'acked held for a waiting session', 'acked archived',
              'lost after ack', 'not acked, lost'):
        stats['sm ' + k] = 0        # in this order in the summary
    for key, h in L.acks.items():
        assert h <= len(L.out[key]), (
            'the server acknowledged %d stanzas of %s in incarnation %d, '
            'but %d were sent' % (h, key[1], key[0], len(L.out[key])))
    acked = L.acked()
    lost, misplaced = [], []
    for inc, s, m in acked:
        _, _, r, dest = L.info[m]
        where = {'live': m in live_ids, 'store': m in ever_stored,
                 'bounce': m in bounced_ids}
        archived = dest != 'bounce' and m not in L.unarchived
        # Held: the archive is all there is after the kill.
        where['held'] = archived
        if not any(where.values()) and not archived:
            lost.append((m, dest))
        elif not where[dest]:
            misplaced.append((m, dest, [k for k, v in where.items() if v]
                              or ['archive only']))
        stats['sm acked ' + {'live': 'delivered live', 'store': 'stored',
                             'bounce': 'bounced',
                             'held': 'held for a waiting session'}[dest]] \
            += 1
        stats['sm acked archived'] += archived
    assert not lost, (
        'lost after ack: %d messages the server acknowledged are '
        'nowhere (not delivered, stored, bounced or archived): %s'
        % (len(lost), lost[:10]))
    assert not misplaced, (
        'acknowledged but not %s: %s' % (
            misplaced[0][1], ['%s (sent %s, found: %s)' % x
                              for x in misplaced[:10]]))
    unarchived = [(m, k) for m, k in L.unarchived.items()]
    assert not unarchived, (
        'acknowledged but not archived after the kill: %s'
        % unarchived[:10])
    sm_sent = [m for (inc, s), ids in L.out.items() for m in ids
               if m is not None]
    stats['sm sent'] = len(sm_sent)
    stats['sm acked by server'] = len(acked)
    stats['sm lost after ack'] = len(lost)
    acked_ids = {m for _, _, m in acked}
    stats['sm not acked, lost'] = sum(
        1 for m in sm_sent if m not in acked_ids and m not in live_ids and
        m not in ever_stored and m not in bounced_ids and
        L.info[m][3] != 'held')
    return stats


def test_crash_checks_can_fail():
    """The checks of the crash test notice a hole, a duplicate, a lost
    committed row and a redelivery outside the at-least-once window."""
    def ledger():
        L = Ledger()
        for i in range(4):
            L.send(1, 's1', 'off1', 'store', 's1.1.%d' % i)
            L.send(1, 's1', 'on1', 'live', 's1.1.l%d' % i)
        L.killed.add(1)
        L.snapshots[1] = {'off1': ['s1.1.0', 's1.1.1']}
        L.live[(1, 's1', 'on1')] = ['s1.1.l0', 's1.1.l1']
        L.snapshots[2] = {'off1': ['s1.1.0', 's1.1.1']}
        L.delayed = [(3, 'off1', 's1.1.0'), (3, 'off1', 's1.1.1')]
        L.integrity = ['ok', 'ok']
        return L

    stats = verify(ledger(), 3)
    assert stats['lost tail'] == 4 and stats['stored'] == 2

    def fails(mutate, pattern):
        L = ledger()
        mutate(L)
        with pytest.raises(AssertionError, match=pattern):
            verify(L, 3)

    def hole(L):
        L.snapshots = {1: {'off1': ['s1.1.0', 's1.1.2']},
                       2: {'off1': ['s1.1.0', 's1.1.2']}}
        L.delayed = [(3, 'off1', 's1.1.0'), (3, 'off1', 's1.1.2')]

    fails(hole, 'hole')
    fails(lambda L: L.live.update({(1, 's1', 'on1'): ['s1.1.l0',
                                                      's1.1.l0']}),
          'not a prefix')
    fails(lambda L: L.live.update({(1, 's1', 'on1'): ['s1.1.l1']}),
          'not a prefix')
    fails(lambda L: L.snapshots.update({2: {'off1': ['s1.1.0']}}),
          'gone after kill')
    fails(lambda L: L.snapshots.update({1: {'off1': ['s1.1.0', 's1.1.0',
                                                     's1.1.1']}}),
          'stored twice')
    fails(lambda L: L.delayed.append((3, 'off1', 's1.1.0')),
          'delivered twice')
    fails(lambda L: L.integrity.append('*** in database main ***'),
          'integrity_check')
    fails(lambda L: L.bounces.append((1, 's1', 's1.1.0', 'wait',
                                      ['resource-constraint'])),
          'bounced and also')


def test_ack_checks_can_fail():
    """The acknowledgement checks of the crash test notice an acked
    message that is nowhere (also one held for the waiting session
    without its archive row), one not where its recipient called for,
    one not archived, an <a h/> above what was sent, and a copy that a
    client cannot tell (another stanza-id)."""
    def ledger():
        L = Ledger()
        L.send(1, 's1', 'off1', 'store', 's1.1.0')
        L.send(1, 's1', 'on1', 'live', 's1.1.1')
        L.send(1, 's1', 'ghost', 'bounce', 's1.1.2')
        L.send(1, 's1', 'off1', 'store', 's1.1.3')     # not acked, lost
        # Counted: three messages and a ping between them; acked: 4.
        L.out[(1, 's1')] = ['s1.1.0', None, 's1.1.1', 's1.1.2', 's1.1.3']
        L.acks[(1, 's1')] = 4
        L.killed.add(1)
        L.snapshots[1] = {'off1': ['s1.1.0']}
        L.live[(1, 's1', 'on1')] = ['s1.1.1']
        L.bounces = [(1, 's1', 's1.1.2', 'cancel', ['service-unavailable'])]
        L.delayed = [(2, 'off1', 's1.1.0')]
        L.stanza_ids['s1.1.0'] = {'A1'}
        L.integrity = ['ok', 'ok']
        return L

    stats = verify(ledger(), 2)
    assert (stats['sm sent'], stats['sm acked by server'],
            stats['sm acked stored'], stats['sm acked delivered live'],
            stats['sm acked bounced'], stats['sm lost after ack'],
            stats['sm not acked, lost']) == (4, 3, 1, 1, 1, 0, 1), stats

    def fails(mutate, pattern):
        L = ledger()
        mutate(L)
        with pytest.raises(AssertionError, match=pattern):
            verify(L, 2)

    def nowhere(L):
        L.snapshots[1] = {}
        L.delayed = []
        L.unarchived['s1.1.0'] = [('s1', 1, 's1.1.0'), ('off1', 0, 's1.1.0')]

    fails(nowhere, 'lost after ack: 1 ')
    fails(lambda L: L.live.update({(1, 's1', 'on1'): []}),
          'acknowledged but not live')
    fails(lambda L: L.bounces.clear(), 'lost after ack')
    fails(lambda L: L.unarchived.update({'s1.1.1': [('on1', 0, 's1.1.1')]}),
          'not archived')
    fails(lambda L: L.acks.update({(1, 's1'): 6}), 'but 5 were sent')

    def copy(L):
        # Delivered in incarnation 1, killed before the row went: again
        # in 2 (the at-least-once window), but under another stanza-id.
        L.delayed = [(1, 'off1', 's1.1.0'), (2, 'off1', 's1.1.0')]
        L.stanza_ids['s1.1.0'] = {'A1', 'B2'}

    fails(copy, 'cannot tell the copy')
    L = ledger()
    copy(L)
    L.stanza_ids['s1.1.0'] = {'A1'}
    assert verify(L, 2)['redelivered'] == 1

    def held(L):
        # Acknowledged for the waiting session: in memory only, so the
        # archive is where it must be after the kill.
        L.send(1, 's1', 'wt1', 'held', 's1.1.9')
        L.out[(1, 's1')].insert(0, 's1.1.9')
        L.acks[(1, 's1')] += 1

    L = ledger()
    held(L)
    assert verify(L, 2)['sm acked held for a waiting session'] == 1
    fails(lambda L: (held(L), L.unarchived.update(
        {'s1.1.9': [('wt1', 0, 's1.1.9')]})), 'lost after ack')


# --- the crash driver ------------------------------------------------------

def absorb(L, inc, user, c):
    """Record in L and drop everything queued on user's connection c:
    live messages, messages from storage (with <delay/>) and bounces,
    and the server's acknowledgements (<a h/>)."""
    while c.raw.pending:
        el = c.raw.pending.popleft()
        if el.tag == q(NS_SM, 'a'):
            h = int(el.get('h'))
            L.acks[(inc, user)] = max(h, L.acks.get((inc, user), 0))
            continue
        if el.tag != q(NS_CLIENT, 'message'):
            continue
        body = el.find(q(NS_CLIENT, 'body'))
        m = re.match(r'crash (\S+)$',
                     (body.text or '') if body is not None else '')
        if m is None:
            continue
        mid = m.group(1)
        if el.get('type') == 'error':
            err = el.find(q(NS_CLIENT, 'error'))
            conds = [] if err is None else [
                xmpp_raw.local(x.tag) for x in err
                if xmpp_raw.namespace(x.tag) == NS_STANZA_ERR and
                xmpp_raw.local(x.tag) != 'text']
            L.bounces.append((inc, user, mid,
                              None if err is None else err.get('type'),
                              conds))
        elif el.find(q(NS_DELAY, 'delay')) is not None:
            L.delayed.append((inc, user, mid))
            sid = el.find(q(NS_SID, 'stanza-id'))
            L.stanza_ids[mid].add(None if sid is None else sid.get('id'))
        else:
            info = L.info.get(mid)
            L.live[info[:3] if info else (inc, '?', user)].append(mid)


class ServerDied(Exception):
    """The daemon was killed while the driver talked to it."""


class Incarnation:
    """One run of the daemon between a start and a SIGKILL."""

    def __init__(self, srv, inc, rng, ledger):
        self.srv = srv
        self.inc = inc
        self.rng = rng
        self.L = ledger
        self.clients = {}       # user -> IMClient
        self.fetcher_online = False
        self.seq = collections.Counter()
        self.killed = threading.Event()
        self.phase = 'start'

    # -- the kill --

    def arm(self, delay):
        pid = self.srv.proc.pid

        def kill():
            self.killed.set()
            self.L.kill_time[self.inc] = time.monotonic()
            self.L.kill_phase[self.phase] += 1
            os.kill(pid, signal.SIGKILL)

        self.timer = threading.Timer(delay, kill)
        self.timer.start()

    def check_alive(self):
        if self.killed.is_set():
            raise ServerDied()

    # -- receiving --

    def absorb(self, user):
        c = self.clients.get(user)
        if c is not None:
            absorb(self.L, self.inc, user, c)

    def pump(self, timeout=0.0):
        """Read what has arrived on every connection."""
        socks = {c.raw.sock: u for u, c in self.clients.items()
                 if not (c.raw.eof or c.raw.stream_ended)}
        ready = [s for s in socks if isinstance(s, ssl.SSLSocket) and
                 s.pending()]
        if not ready and socks:
            ready, _, _ = select.select(list(socks), [], [], timeout)
        for s in ready:
            c = self.clients[socks[s]]
            c.raw._read_some(time.monotonic() + 0.5)
            self.absorb(socks[s])

    def drain(self):
        """After the kill: everything the kernel still holds for us."""
        deadline = time.monotonic() + 5
        for user, c in self.clients.items():
            try:
                while not (c.raw.eof or c.raw.stream_ended) and \
                        time.monotonic() < deadline:
                    c.raw._read_some(deadline)
            except (OSError, ssl.SSLError, AssertionError):
                pass
            self.absorb(user)
            c.raw.close()

    # -- sessions --

    def connect(self, user, available):
        self.phase = 'login'
        raw = self.srv.login(jid(user), resource='r%d' % self.inc)
        c = IMClient(raw, jid(user))
        self.clients[user] = c
        if user in SM_SENDERS:
            c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
            c.wait(lambda el: el.tag == q(NS_SM, 'enabled'))
            self.L.out[(self.inc, user)] = []   # counting starts
        if available:
            c.presence()
            c.sync()    # the presence was processed before what follows
        return c

    def sync_senders(self):
        """A ping round trip on every sender: everything they sent
        before was routed."""
        self.phase = 'sync'
        for s in SENDERS:
            c = self.clients.get(s)
            if c is not None:
                self.count_out(s, None)
                c.sync()
                self.absorb(s)
                now = time.monotonic()
                for m in self.unsynced.pop(s, ()):
                    self.L.routed[m] = now

    def lose_waiting(self):
        """WAITING logs in, enables resumable stream management and
        drops its connection: what comes for it waits in its session's
        queue of unacknowledged stanzas, in memory only (a SIGKILL loses
        it; its archive rows stay)."""
        c = self.connect(WAITING, available=True)
        c.send("<enable xmlns='%s' resume='true'/>" % NS_SM)
        c.wait(lambda el: el.tag == q(NS_SM, 'enabled'))
        # Whether or not the server has noticed yet, what it sends from
        # now on is never read: it stays unacknowledged.
        c.raw.close()
        del self.clients[WAITING]

    def fetcher_toggle(self):
        """The fetcher logs in (and gets what was stored for it) or out.
        Senders are synchronised first so that every message is known to
        have been routed live or to storage."""
        self.sync_senders()
        if self.fetcher_online:
            self.phase = 'fetcher logout'
            c = self.clients[FETCHER]
            c.close_stream()
            deadline = time.monotonic() + 5
            while not (c.raw.stream_ended or c.raw.eof):
                if not c.raw._read_some(deadline) and \
                        time.monotonic() >= deadline:
                    raise AssertionError('fetcher: no end of stream')
            self.absorb(FETCHER)
            c.raw.close()
            del self.clients[FETCHER]
            self.fetcher_online = False
        else:
            self.connect(FETCHER, available=True)
            self.absorb(FETCHER)
            self.fetcher_online = True

    def fetch_and_kill(self):
        """Aim the kill at the fetcher's offline delivery: within 50 ms
        of its initial presence, while chunks are handed over and
        deleted (the at-least-once window of mod_offline.c)."""
        self.phase = 'login'
        raw = self.srv.login(jid(FETCHER), resource='r%d' % self.inc)
        c = IMClient(raw, jid(FETCHER))
        self.clients[FETCHER] = c
        self.arm(self.rng.uniform(0.0, 0.05))
        self.phase = 'offline delivery'
        c.presence()
        self.fetcher_online = True
        while True:
            self.check_alive()
            self.pump(0.002)

    # -- sending --

    def destination(self, r):
        if r == GHOST:
            return 'bounce'
        if r == WAITING:
            return 'held'
        if r in ONLINE or (r == FETCHER and self.fetcher_online):
            return 'live'
        return 'store'

    def burst(self):
        self.phase = 'load'
        s = self.rng.choice(SENDERS)
        out = []
        for _ in range(self.rng.randint(1, 8)):
            r = self.rng.choices(
                ONLINE + OFFLINE + [FETCHER, GHOST, WAITING],
                weights=[3, 3, 3, 3, 3, 1, 1])[0]
            mid = '%s.%d.%d' % (s, self.inc, self.seq[s])
            self.seq[s] += 1
            self.L.send(self.inc, s, r, self.destination(r), mid)
            self.unsynced[s].append(mid)
            self.count_out(s, mid)
            out.append("<message to='%s' type='chat' id='%s'><body>crash "
                       "%s</body></message>" % (jid(r), mid, mid))
        if s in SM_SENDERS and self.rng.random() < 0.5:
            out.append("<r xmlns='%s'/>" % NS_SM)
        self.clients[s].send(''.join(out))

    def count_out(self, s, mid):
        """A stanza s sends (a message id, None for an IQ), counted once
        stream management is on (XEP-0198 §4)."""
        key = (self.inc, s)
        if key in self.L.out:
            self.L.out[key].append(mid)

    def run(self):
        """Start the sessions and the load, kill at a random moment: in
        start-up and logins (1 in 5), in the fetcher's offline delivery
        (see fetch_and_kill), otherwise during the load."""
        self.unsynced = collections.defaultdict(list)
        self.timer = None
        mode = self.rng.random()
        if mode < 0.2:
            self.arm(self.rng.uniform(0.0, 0.3))
        try:
            for r in ONLINE:
                self.connect(r, available=True)
                self.check_alive()
            self.lose_waiting()
            if 0.2 <= mode < 0.35:
                self.fetch_and_kill()
            elif self.rng.random() < 0.3:
                self.fetcher_toggle()   # collects while the load starts
            for s in SENDERS:
                self.connect(s, available=False)
                self.check_alive()
            if self.timer is None:
                self.arm(self.rng.uniform(0.02, 0.5))
            while True:
                self.check_alive()
                x = self.rng.random()
                if x < 0.03:
                    self.fetcher_toggle()
                elif x < 0.10:
                    self.sync_senders()
                else:
                    self.burst()
                self.pump(0.002)
        except ServerDied:
            pass
        except (AssertionError, OSError, ssl.SSLError) as e:
            if not self.killed.wait(0.5):
                raise AssertionError('incarnation %d failed without a '
                                     'kill: %r' % (self.inc, e)) from e
        finally:
            if self.timer is not None:
                self.timer.cancel()
        status = self.srv.wait_exit(10)
        assert status == -signal.SIGKILL, (
            'xmppd ended with status %r, not by our SIGKILL\n%s'
            % (status, self.srv.stderr_tail()))
        self.drain()
        self.srv.kill()         # reap, close the stderr file


def final_delivery(srv, inc, L):
    """Log in every recipient of stored messages and collect all that
    the database held after the last kill."""
    expected = L.snapshots.get(inc - 1, {})
    for user in OFFLINE + [FETCHER]:
        want = len(expected.get(user, []))
        c = IMClient(srv.login(jid(user), resource='final'), jid(user))
        c.presence()
        got = 0
        while got < want:
            # Quiet for 2 s: what is missing is reported by verify().
            if not c.raw._read_some(time.monotonic() + 2):
                break
            before = len(L.delayed)
            absorb(L, inc, user, c)
            got += len(L.delayed) - before
        c.absent(is_message(), 0.2)
        absorb(L, inc, user, c)
        c.close_stream()
        c.raw.close()


def test_sigkill_under_load_loses_only_the_tail(server_factory):
    seed = int(CRASH_SEED) if CRASH_SEED else random.randrange(1 << 30)
    rng = random.Random(seed)
    users = {jid(u): 'pw-' + u for u in ACCOUNTS}
    srv = server_factory(limits=LIMITS, users=users)
    L = Ledger()
    t0 = time.monotonic()
    inc = 0
    for inc in range(1, CRASH_CYCLES + 1):
        if inc > 1:
            srv.start(create_users=False)
        Incarnation(srv, inc, rng, L).run()
        L.killed.add(inc)
        integrity, offline, archive = snapshot(srv.db)
        L.integrity.append(integrity)
        L.snapshots[inc] = offline
        L.archive_dups += [(inc, k) for k, n in archive.items()
                           if n > 1]
        L.note_archive(inc, archive)
        assert integrity == 'ok', 'integrity_check after kill %d: %s' % (
            inc, integrity)
    inc += 1
    srv.start(create_users=False)
    final_delivery(srv, inc, L)
    srv.stop()
    L.integrity.append(integrity_of(srv.db))
    stats = verify(L, inc)
    line = ', '.join('%s %d' % kv for kv in stats.items()
                     if not kv[0].startswith('sm '))
    print('\ncrash summary: seed %d, %.1f s: %s; kills during %s'
          % (seed, time.monotonic() - t0, line, dict(L.kill_phase)))
    print('ack summary: %s' % ', '.join(
        '%s %d' % (k[3:], v) for k, v in stats.items()
        if k.startswith('sm ')))
    # The load reached every path.
    assert stats['kill cycles'] == CRASH_CYCLES
    assert stats['delivered live'] > 0 and stats['stored'] > 0 and \
        stats['bounced'] > 0, stats
    assert stats['sm acked delivered live'] > 0 and \
        stats['sm acked stored'] > 0 and stats['sm acked bounced'] > 0, stats


# --- disk full and locked database -----------------------------------------

def login_slow(srv, user, timeout):
    """Log in (STARTTLS, PLAIN, bind) with a longer wait for each answer
    than xmpp_raw.TIMEOUT; returns (IMClient, seconds taken)."""
    t0 = time.monotonic()
    raw = xmpp_raw.RawClient(srv.c2s_port, timeout=timeout)
    raw.open_stream()
    raw.starttls()
    raw.open_stream()
    xmpp_raw.assert_sasl_success(raw.sasl_plain(user.split('@')[0],
                                                srv.users[user]))
    raw.open_stream()
    raw.bind('slow')
    return IMClient(raw, user), time.monotonic() - t0


def ping_time(c):
    t0 = time.monotonic()
    c.sync()
    return time.monotonic() - t0


def assert_wait_bounce(el, mid, frm):
    """An offline message that could not be stored: RFC 6120 §8.3.3.18
    <resource-constraint/> with type='wait', from the recipient."""
    xmpp_raw.assert_stanza_error(el, 'message', 'resource-constraint',
                                 etype='wait', frm=frm, sid=mid)


def set_fsize(pid, limit):
    """Set the soft RLIMIT_FSIZE of pid (the hard limit stays unlimited
    so that it can be raised again without privileges)."""
    subprocess.run(['prlimit', '--pid', str(pid), '--fsize=%s:unlimited'
                    % limit], check=True, capture_output=True)


DURABILITY_USERS = {jid(u): 'pw-' + u for u in ('alice', 'bob', 'carol',
                                                 'dave', 'erin')}


def first_message(c, timeout=5):
    return c.wait(lambda el: el.tag == q(NS_CLIENT, 'message'), timeout,
                  'a message')


@pytest.mark.skipif(shutil.which('prlimit') is None,
                    reason='prlimit (util-linux) not installed')
def test_disk_full_bounces_with_wait_and_recovers(server_factory):
    srv = server_factory(limits=LIMITS, users=DURABILITY_USERS)
    alice, bob, carol = jid('alice'), jid('bob'), jid('carol')
    cb = IMClient(srv.login(bob, resource='b'), bob)
    cc = IMClient(srv.login(carol, resource='c'), carol)
    for c in (cb, cc):
        c.presence()
        c.settle()
    # Writes past the largest file the daemon has now plus 1 MiB fail;
    # a message with a 60 kB body costs 180 kB (the offline row and two
    # archive rows).
    sizes = [p.stat().st_size for p in srv.dir.iterdir() if p.is_file()]
    set_fsize(srv.proc.pid, max(sizes) + (1 << 20))
    big = 'x' * 60000
    sent, bounces = [], {}

    def collect(duration):
        while True:
            el = cb.raw.poll_element(duration)
            if el is None:
                return
            if el.tag == q(NS_CLIENT, 'message'):
                bounces[el.get('id')] = el

    for i in range(40):
        mid = 'fill%d' % i
        cb.message(alice, '%s %s' % (mid, big), mid=mid)
        sent.append(mid)
        cb.sync()
        collect(0.2)
        if bounces:
            break
    assert bounces, 'the store never filled up'
    full_mid = min(bounces, key=sent.index)
    assert_wait_bounce(bounces[full_mid], full_mid, alice)
    stored = sent[:sent.index(full_mid)]
    assert stored, 'nothing fitted before the limit'

    # Still full: a bigger offline message bounces the same way.  (Its
    # offline row may be written in a transaction of its own, after its
    # archive rows failed in another: alone it must still not fit in the
    # gap that the failed message left, which is under 185 kB.)
    cb.message(alice, 'full2 ' + 'z' * 200000, mid='full2')
    el = cb.wait(is_message(frm=alice), 5)
    assert_wait_bounce(el, 'full2', alice)
    assert set(bounces) == {full_mid} and sent[-1] == full_mid, (
        'bounced: %s of %s' % (sorted(bounces), sent))
    # ...while the loop serves: pings, and chat whose archive write fails
    # (300 kB of archive rows cannot fit where 180 kB did not).
    pings = [ping_time(cb) for _ in range(10)]
    assert max(pings) < PING_LIMIT, pings
    huge = 'y' * 150000
    cb.message(carol, 'live ' + huge, mid='live-full')
    el = cc.wait(is_message(frm=cb.full), 5)
    assert el.get('id') == 'live-full' and \
        el.find(q(NS_CLIENT, 'body')).text == 'live ' + huge
    cc.message(bob, 'small reply', mid='reply-full')
    assert cb.wait(is_message(frm=cc.full), 5).get('id') == 'reply-full'
    cd, login_s = login_slow(srv, jid('dave'), 10)
    cd.raw.close()

    # Space returns: storing works again.
    set_fsize(srv.proc.pid, 'unlimited')
    cb.message(alice, 'after ' + big, mid='after')
    cb.absent(is_message(), 0.3)
    stored.append('after')
    print('\ndisk full: %d messages stored before the limit, ping max '
          '%.1f ms, login while full %.0f ms'
          % (len(stored) - 1, 1000 * max(pings), 1000 * login_s))
    cb.raw.close()
    cc.raw.close()
    srv.stop()

    # Nothing of the bounced messages was stored; the database is intact.
    integrity, offline, archive = snapshot(srv.db)
    assert integrity == 'ok', integrity
    db = sqlite3.connect(str(srv.db))
    try:
        rows = [s.split('<body>', 1)[1].split(' ', 1)[0] for (s,) in
                db.execute('SELECT stanza FROM offline ORDER BY id')]
        def archived(mid):
            """Archive rows of the message with id mid."""
            return db.execute(
                'SELECT count(*) FROM archive WHERE instr(stanza, ?) > 0 '
                'OR instr(stanza, ?) > 0',
                ("id='%s'" % mid, 'id="%s"' % mid)).fetchone()[0]

        # One archive row per direction for what was stored; none for
        # the chat whose archive write failed, although it was delivered.
        # The last message stored before the limit may have lost its
        # archive rows: they are requests of their own, and the offline
        # row can fit in a transaction after theirs failed (an archive
        # failure does not bounce: the message is still delivered).
        edge = sent.index(full_mid) - 1
        assert [archived(m) for m in stored[:edge]] == [2] * edge
        assert archived(stored[edge]) in (0, 1, 2)
        assert archived('after') == 2
        assert archived('live-full') == 0
        assert archived('reply-full') in (0, 2)
    finally:
        db.close()
    assert rows == stored, (rows, stored, full_mid)

    # After a restart the stored ones are delivered, once, in order.
    srv.start(create_users=False)
    ca = IMClient(srv.login(alice, resource='a'), alice)
    ca.presence()
    got = [first_message(ca).get('id') for _ in stored]
    assert got == stored
    ca.absent(is_message(), 0.3)
    ca.raw.close()


class Locker(threading.Thread):
    """Another process's view of the database: hold the write lock
    (BEGIN EXCLUSIVE, as the sqlite3 shell or a backup script may) for
    hold seconds."""

    def __init__(self, db_path, hold):
        super().__init__(daemon=True)
        self.db_path = db_path
        self.hold = hold
        self.locked = threading.Event()
        self.released_at = None

    def run(self):
        db = sqlite3.connect(str(self.db_path), isolation_level=None,
                             timeout=10)
        try:
            db.execute('BEGIN EXCLUSIVE')
            self.locked_at = time.monotonic()
            self.locked.set()
            time.sleep(self.hold)
            db.execute('COMMIT')
            self.released_at = time.monotonic()
        finally:
            db.close()


def test_locked_database_does_not_block_the_loop(server_factory):
    # Without the archive an offline message is one storage job, so the
    # first one sent under the lock is alone in the first transaction to
    # wait for it (with the archive, the sender's archive row may be taken
    # alone first and the offline row wait in the next transaction, which
    # the lock's end saves).  test_disk_full_* covers archive failures.
    srv = server_factory(limits=LIMITS, users=DURABILITY_USERS,
                         extra='archive off')
    alice, bob, carol = jid('alice'), jid('bob'), jid('carol')
    cb = IMClient(srv.login(bob, resource='b'), bob)
    cc = IMClient(srv.login(carol, resource='c'), carol)
    for c in (cb, cc):
        c.presence()
        c.settle(0.2)           # session start-up writes are done
    hold = BUSY_TIMEOUT + 1.5
    locker = Locker(srv.db, hold)
    locker.start()
    assert locker.locked.wait(5)

    # With nothing else queued a login only reads, and readers do not
    # wait for a writer in WAL mode.  (dave stays: ending his session
    # writes, and that write would wait for the lock ahead of locked1.)
    cd, login_idle = login_slow(srv, jid('dave'), 10)

    # An offline message waits for the lock; meanwhile the loop serves.
    # With it, in the same read, a request that only reads (bob's own
    # vCard, which he has not set): it shares locked1's transaction or
    # comes after it, and must not fail because the write could not.
    cb.send("<message to='%s' type='chat' id='locked1'><body>during the "
            "lock</body></message><iq type='get' id='vc1'><vCard "
            "xmlns='vcard-temp'/></iq>" % alice)
    vcard = {}
    late = {}

    def late_login():
        try:
            late['client'], late['seconds'] = login_slow(srv, jid('erin'),
                                                         3 * BUSY_TIMEOUT)
        except BaseException as e:      # reported by the main thread
            late['error'] = e

    t_login = threading.Thread(target=late_login, daemon=True)
    t_login.start()
    pings, live, bounce, n = [], [], None, 0
    while bounce is None:
        assert time.monotonic() - locker.locked_at < BUSY_TIMEOUT + 1.0, (
            'no bounce for locked1 after the busy timeout')
        pings.append(ping_time(cb))
        t0 = time.monotonic()
        cb.message(carol, 'live %d' % n, mid='live%d' % n)
        el = cc.wait(is_message(frm=cb.full), 5)
        assert el.get('id') == 'live%d' % n
        live.append(time.monotonic() - t0)
        n += 1
        cb.absent(lambda el: False, 0.05, barrier=False)
        for el in cb.discard(lambda el: el.get('id') == 'vc1'):
            vcard['el'], vcard['at'] = el, time.monotonic()
        for el in cb.discard(is_message(frm=alice)):
            bounce = el
    # The write could not wait longer than the busy timeout: bounced as a
    # transient failure while the lock was still held.
    bounce_at = time.monotonic() - locker.locked_at
    assert locker.released_at is None
    assert_wait_bounce(bounce, 'locked1', alice)

    # Sent now, it waits less than the busy timeout: stored at the end.
    cb.message(alice, 'stored after the lock', mid='locked2')
    locker.join(hold + 5)
    t_login.join(3 * BUSY_TIMEOUT)
    assert 'error' not in late, late.get('error')
    assert 'client' in late, 'login behind the lock did not finish'
    late['client'].raw.close()
    cb.absent(is_message(frm=alice), 0.3)
    if 'el' not in vcard:
        vcard['el'] = cb.wait(lambda el: el.get('id') == 'vc1', 5)
        vcard['at'] = time.monotonic()
    xmpp_raw.assert_stanza_error(vcard['el'], 'iq', 'item-not-found')
    print('\nlocked database (%.1f s): ping max %.1f ms over %d, live '
          'message max %.1f ms, login with nothing queued %.0f ms, login '
          'queued behind a waiting write %.2f s, bounce after %.2f s, '
          'read beside the write answered after %.2f s'
          % (hold, 1000 * max(pings), len(pings), 1000 * max(live),
             1000 * login_idle, late['seconds'], bounce_at,
             vcard['at'] - locker.locked_at))
    assert max(pings) < PING_LIMIT, pings
    assert login_idle < BUSY_TIMEOUT / 2, login_idle

    # Only the second one was stored.
    ca = IMClient(srv.login(alice, resource='a'), alice)
    ca.presence()
    assert first_message(ca).get('id') == 'locked2'
    ca.absent(is_message(), 0.3)
    for c in (ca, cb, cc, cd):
        c.raw.close()
    srv.stop()
    assert integrity_of(srv.db) == 'ok'


def test_online_backup_does_not_block_the_loop(server_factory):
    """sqlite3's online backup (what `sqlite3 DB .backup FILE` does),
    over and over while messages are stored: the daemon's writes go on
    and every copy is intact."""
    srv = server_factory(limits=LIMITS, users=DURABILITY_USERS)
    alice, bob = jid('alice'), jid('bob')
    cb = IMClient(srv.login(bob, resource='b'), bob)
    cb.presence()
    cb.settle()
    copies = []
    stop = threading.Event()
    errors = []

    def backup():
        src = sqlite3.connect('file:%s?mode=ro' % srv.db, uri=True,
                              timeout=10)
        try:
            while not stop.is_set():
                dst_path = srv.dir / ('backup%d.db' % len(copies))
                dst = sqlite3.connect(str(dst_path))
                src.backup(dst)
                dst.close()
                copies.append(dst_path)
        except BaseException as e:
            errors.append(e)
        finally:
            src.close()

    t = threading.Thread(target=backup, daemon=True)
    t.start()
    pings, sent = [], []
    t0 = time.monotonic()
    while time.monotonic() - t0 < 1.5:
        mid = 'b%d' % len(sent)
        cb.message(alice, 'backup ' + mid, mid=mid)
        sent.append(mid)
        pings.append(ping_time(cb))
        time.sleep(0.005)
    stop.set()
    t.join(10)
    assert not errors, errors
    cb.absent(is_message(), 0.3)        # nothing bounced
    print('\nonline backup: %d copies while %d messages were stored, ping '
          'max %.1f ms' % (len(copies), len(sent), 1000 * max(pings)))
    assert copies and max(pings) < PING_LIMIT, (len(copies), pings)
    assert integrity_of(copies[-1]) == 'ok'

    ca = IMClient(srv.login(alice, resource='a'), alice)
    ca.presence()
    got = [first_message(ca).get('id') for _ in sent]
    assert got == sent
    for c in (ca, cb):
        c.raw.close()


def test_storage_queue_limit_pauses_reading(server_factory):
    """limits { storage-queue }: while more requests than that wait for
    storage (here: the database locked by another process), the server
    stops reading its clients instead of queueing without bound; once half
    of them are done it reads again and nothing was lost or bounced."""
    limits = dict(LIMITS, **{'storage-queue': 20})
    srv = server_factory(limits=limits, users=DURABILITY_USERS,
                         extra='archive off')
    alice, bob = jid('alice'), jid('bob')
    ca = IMClient(srv.login(alice, resource='a'), alice)
    cc = IMClient(srv.login(jid('carol'), resource='c'), jid('carol'))
    for c in (ca, cc):
        c.presence()
        c.settle(0.2)
    hold = 2.0
    locker = Locker(srv.db, hold)
    locker.start()
    assert locker.locked.wait(5)
    n = 60
    ca.send(''.join("<message to='%s' type='chat' id='q%d'><body>queued "
                    "%d</body></message>" % (bob, i, i) for i in range(n)))
    time.sleep(0.3)
    # alice's stream is no longer read: her ping waits for the lock's end.
    waited = ping_time(ca)
    locker.join()
    assert waited >= hold - 0.5, waited
    # Reading again: carol is served at once, alice's messages are stored.
    assert ping_time(cc) < 1.0
    log = srv.stderr_tail()
    assert 'reading from clients paused' in log, log
    assert 'reading from clients resumed' in log, log
    assert ca.discard(is_message(frm=bob)) == []    # nothing bounced
    full = ca.full
    ca.raw.close()
    cb = IMClient(srv.login(bob, resource='b'), bob)
    cb.presence()
    got = [cb.wait(is_message(frm=full), 10) for _ in range(n)]
    assert [el.get('id') for el in got] == ['q%d' % i for i in range(n)]
    cb.raw.close()
    cc.raw.close()


def test_storage_gate_leaves_http_alone(server_factory):
    """The storage-queue gate stops reading the clients' streams only:
    an HTTP request that arrives while it is closed (here /metrics) is
    answered then, and the next one after it reopens too (a paused HTTP
    connection was never resumed: its request waited forever)."""
    import http.client
    from conftest import free_ports
    port, = free_ports(1)
    limits = dict(LIMITS, **{'storage-queue': 20})
    srv = server_factory(limits=limits, users=DURABILITY_USERS,
                         extra='archive off\nlisten http %d address '
                         '127.0.0.1\nmetrics {\n\tlistener %d\n}'
                         % (port, port))
    alice, bob = jid('alice'), jid('bob')
    ca = IMClient(srv.login(alice, resource='a'), alice)
    ca.presence()
    ca.settle(0.2)
    locker = Locker(srv.db, 2.0)
    locker.start()
    assert locker.locked.wait(5)
    ca.send(''.join("<message to='%s' type='chat' id='g%d'><body>queued "
                    "%d</body></message>" % (bob, i, i) for i in range(60)))
    time.sleep(0.3)
    t0 = time.time()
    h = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    h.request('GET', '/metrics')
    r = h.getresponse()
    assert r.status == 200 and b'xmppd_storage_queue' in r.read()
    assert time.time() - t0 < 1.0
    locker.join()
    h.request('GET', '/metrics')
    assert h.getresponse().status == 200
    h.close()
    assert 'reading from clients paused' in srv.stderr_tail()
    ca.raw.close()
