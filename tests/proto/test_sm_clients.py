"""XEP-0198 stream management with real clients (issue 14).

slixmpp 1.8 (Debian's python3-slixmpp) with its xep_0198 plugin connects
through a TCP proxy on loopback (tcp_proxy.py), enables stream
management with resumption, exchanges messages with a raw client of
another account, and loses its connection while stanzas are in flight
both ways: the proxy resets both sides (RST), or only the client's side
(the daemon's side stays open and unread, dead in silence), or the
kernel destroys the proxy's sockets (ss -K).  While it is cut the other
account goes on writing to it; then slixmpp reconnects through the same
proxy port and resumes.  Checked: 'session_resumed' (no new bind, the
same full JID), every message sent to it (those in flight at the cut,
those sent while it was away) arriving once, the count the server gives
back in <resumed h/> being exactly what it handled of the client's, and
each message the server acknowledged before the cut reaching the other
account once.  Coming back after resume-timeout, slixmpp's <resume/>
fails and it binds anew: what the old session had not got acknowledged
reaches the new one from offline storage, the only copy being one it
can tell (same id, same stanza-id).

slixmpp 1.8.3's own limit, seen here and not the server's: its plugin
empties its queue of unacknowledged stanzas when it sends <resume/>
(_handle_outgoing treats Resume like Enable), so what it sent that the
server had not handled (held in the proxy at the cut) is never sent
again, although <resumed h/> told it so.  The test asserts the server's
side of that (h excludes them, nothing of them is delivered, none twice)
and records them as the client's loss.

Profanity 0.13.1 on libstrophe 0.12.2 (Debian 12), in tmux as in
test_profanity.py: libstrophe enables stream management with resumption
by itself when the server offers it; `xmppctl sessions` shows its
session resumable, messages reach it, and its acknowledgements leave
nothing unacknowledged; cut, profanity reconnects ('/reconnect 1') and
resumes the same session, nothing shown twice.

Two server bugs found on the way have their tests here: a resumed
stream kept the CSI state of the one it replaced (XEP-0352 says it
starts active), and an <a h/> below the last one ended the stream with
<handled-count-too-high/>.
"""

import asyncio
import json
import logging
import threading
import time

import pytest

from im_helpers import IMFactory, fresh_users, is_message, slixmpp_client
from tcp_proxy import TcpProxy, ss_kill_works
from xmpp_raw import NS_CLIENT, q

pytest.importorskip('slixmpp')
from slixmpp.plugins.xep_0198 import stanza as sm_stanza  # noqa: E402
from slixmpp.xmlstream.handler import Callback  # noqa: E402
from slixmpp.xmlstream.matcher import MatchXPath  # noqa: E402

NS_SID = 'urn:xmpp:sid:0'
NS_DELAY = 'urn:xmpp:delay'

SERVER_OPTIONS = {'limits': {'resume-timeout': '60s',
                             'stanzas-per-second': 0,
                             'bytes-per-second': 0}}


# --- the daemon's view -------------------------------------------------------

def sessions_of(server, jid):
    r = server.ctl('sessions', '--json')
    assert r.returncode == 0, r.stderr
    return [s for s in json.loads(r.stdout)
            if s['jid'] == jid or s['jid'].startswith(jid + '/')]


def wait_for(cond, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError('timed out waiting for %s' % what)
        time.sleep(0.05)


def session_row(server, full):
    rows = [s for s in sessions_of(server, full) if s['jid'] == full]
    return rows[0] if rows else None


# --- slixmpp on a loop of its own --------------------------------------------

class Slix:
    """A slixmpp ClientXMPP with the xep_0198 plugin, run on an asyncio
    loop in a thread of its own, so that the test drives it (and the raw
    client of the other account) from the main thread.  Everything it
    sees is recorded under .lock: messages, events, stanzas the server
    acknowledged (slixmpp's 'stanza_acked')."""

    def __init__(self, server, jid, port):
        self.server = server
        self.jid = jid
        self.port = port
        self.lock = threading.Lock()
        self.messages = []          # (body, id, stanza-id, delayed)
        self.events = []            # (name, detail)
        self.acked = []             # ids of our messages the server acked
        self.resumed_h = []         # h of every <resumed/>
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.x = self.call(self._make)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, fn, *args, timeout=10):
        """fn(*args) on the client's loop; its result (or exception)."""
        async def wrap():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(
            wrap(), self.loop).result(timeout)

    def _make(self):
        x = slixmpp_client(self.server, self.jid)
        logging.getLogger('slixmpp').setLevel(logging.CRITICAL)
        x.register_plugin('xep_0198')
        for name in ('session_start', 'sm_enabled', 'session_resumed',
                     'sm_failed', 'disconnected', 'session_end',
                     'connection_failed', 'stream_error'):
            x.add_event_handler(name, self._recorder(name))
        x.add_event_handler('message', self._on_message)
        x.add_event_handler('stanza_acked', self._on_acked)
        x.register_handler(Callback(
            'resumed h', MatchXPath(sm_stanza.Resumed.tag_name()),
            lambda st: self.resumed_h.append(st['h']), instream=True))
        return x

    def _recorder(self, name):
        def record(ev):
            with self.lock:
                self.events.append((name, str(ev)[:300]))
        return record

    def _on_message(self, msg):
        sid = msg.xml.find(q(NS_SID, 'stanza-id'))
        with self.lock:
            self.messages.append((msg['body'], msg['id'],
                                  None if sid is None else sid.get('id'),
                                  msg.xml.find(q(NS_DELAY, 'delay'))
                                  is not None))

    def _on_acked(self, stanza):
        if stanza.name == 'message':
            with self.lock:
                self.acked.append(stanza['id'])

    # -- driving --

    def connect(self):
        self.call(lambda: self.x.connect(('127.0.0.1', self.port),
                                         force_starttls=True))

    def count(self, name):
        with self.lock:
            return sum(1 for n, _ in self.events if n == name)

    def wait_event(self, name, n=1, timeout=10):
        wait_for(lambda: self.count(name) >= n, timeout,
                 'slixmpp event %s #%d (events: %s)' % (name, n,
                                                         self.events))

    def send(self, to, body, mid):
        def go():
            m = self.x.make_message(mto=to, mbody=body, mtype='chat')
            m['id'] = mid
            m.send()
        self.call(go)

    def presence(self):
        self.call(lambda: self.x.send_presence())

    def request_ack(self):
        self.call(lambda: self.x.plugin['xep_0198'].request_ack())

    def sm(self, attr):
        return self.call(lambda: getattr(self.x.plugin['xep_0198'], attr))

    def bodies(self):
        with self.lock:
            return [m[0] for m in self.messages]

    def ids(self):
        with self.lock:
            return [m[1] for m in self.messages]

    def wait_bodies(self, want, timeout=10):
        wait_for(lambda: set(want) <= set(self.bodies()), timeout,
                 'slixmpp to receive %s (has %s)' % (
                     sorted(set(want) - set(self.bodies())),
                     self.bodies()))

    def close(self):
        try:
            self.call(lambda: self.x.abort(), timeout=5)
        except Exception:
            pass

        async def drain():
            await asyncio.sleep(0.05)
            tasks = [t for t in asyncio.all_tasks()
                     if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        try:
            asyncio.run_coroutine_threadsafe(drain(), self.loop).result(10)
        except Exception:
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def proxied(server):
    """(proxy, make) where make(jid) is a Slix through the proxy."""
    proxy = TcpProxy(server.c2s_port)
    made = []

    def make(jid):
        s = Slix(server, jid, proxy.port)
        made.append(s)
        return s
    yield proxy, make
    for s in made:
        s.close()
    proxy.close()


def received_by(c, n, timeout=10):
    """n messages on raw IMClient c: [(body, id)]."""
    return [(m.findtext(q(NS_CLIENT, 'body')), m.get('id'))
            for m in (c.wait(is_message(), timeout) for _ in range(n))]


def assert_once(got, what):
    """No body twice in got [(body, id, ...)], except as a copy with the
    same id, which a client can tell (and which is still reported)."""
    seen = {}
    copies = []
    for g in got:
        body, mid = g[0], g[1]
        if body in seen:
            assert seen[body] == mid, (
                '%s: %r came twice with different ids %r and %r'
                % (what, body, seen[body], mid))
            copies.append(body)
        seen[body] = mid
    return copies


# --- slixmpp -----------------------------------------------------------------

CUTS = ['rst', 'silent', 'ss-K']


@pytest.mark.parametrize('cut', CUTS)
def test_slixmpp_resumes_after_cut(server, proxied, cut):
    if cut == 'ss-K' and not ss_kill_works():
        pytest.skip('ss -K cannot destroy sockets here (needs root and '
                    'CONFIG_INET_DIAG_DESTROY)')
    proxy, make = proxied
    alice, bob = fresh_users(server, 2)
    f = IMFactory(server)
    try:
        b = f(bob, resource='raw')
        s = make(alice)
        s.connect()
        s.wait_event('session_start')
        s.wait_event('sm_enabled')
        sm_id = s.sm('sm_id')
        assert sm_id, 'slixmpp got no resumption id: %s' % s.events
        full = s.call(lambda: str(s.x.boundjid))
        assert full == alice + '/slix'
        s.presence()
        row = wait_for(lambda: session_row(server, full), what='session')
        assert row['sm'] == 'resumable', row

        # Both ways, connected.
        for i in range(5):
            b.message(full, 'to-slix %d' % i, mid='t%d' % i)
        s.wait_bodies(['to-slix %d' % i for i in range(5)])
        for i in range(5):
            s.send(bob, 'from-slix %d' % i, 'f%d' % i)
        assert received_by(b, 5) == [('from-slix %d' % i, 'f%d' % i)
                                     for i in range(5)]

        # Received and counted by slixmpp, not yet acknowledged (the
        # server asks every 5 stanzas): its h at the resumption covers
        # them, so they must not come again.
        b.message(full, 'seen-unacked 0', mid='s0')
        b.message(full, 'seen-unacked 1', mid='s1')
        s.wait_bodies(['seen-unacked 0', 'seen-unacked 1'])
        assert session_row(server, full)['sm_unacked'] >= 2

        # Sent and acknowledged by the server before the cut.
        acked_ids = ['a%d' % i for i in range(6)]
        for i, mid in enumerate(acked_ids):
            s.send(bob, 'acked %d' % i, mid)
        s.request_ack()
        wait_for(lambda: set(acked_ids) <= set(s.acked), what='server acks '
                 'of %s (acked: %s)' % (acked_ids, s.acked))
        acked_seq = s.sm('seq')
        assert s.sm('last_ack') == acked_seq
        # In flight from the client: held in the proxy, lost at the cut.
        proxy.hold('up')
        unhandled = ['u%d' % i for i in range(3)]
        for i, mid in enumerate(unhandled):
            s.send(bob, 'unhandled %d' % i, mid)
        # In flight to the client: sent by the server, held in the proxy.
        proxy.hold('down')
        base = session_row(server, full)['sm_unacked']
        for i in range(3):
            b.message(full, 'in-flight %d' % i, mid='i%d' % i)
        wait_for(lambda: session_row(server, full)['sm_unacked'] >=
                 base + 3, what='the server to send the in-flight three')

        # The cut.
        if cut == 'rst':
            proxy.cut()
        elif cut == 'silent':
            proxy.cut(server=False)
        else:
            assert proxy.cut_with_ss(), 'ss -K did not destroy the sockets'
        s.wait_event('disconnected')
        if cut != 'silent':
            wait_for(lambda: session_row(server, full)['sm'] == 'waiting',
                     what='the session to wait for resumption')
            row = session_row(server, full)
            # xmppctl(8): no address or TLS while it waits.
            assert (row['ip'], row['tls']) == ('', ''), row
        # Meanwhile the other account goes on writing to it (full and
        # bare JID), and the client writes too (slixmpp queues it).
        for i in range(4):
            b.message(full if i % 2 else alice, 'while-cut %d' % i,
                      mid='w%d' % i)
        s.send(bob, 'queued while cut', 'q0')
        b.sync()
        row = session_row(server, full)
        assert row is not None, 'the session ended during the cut'

        # slixmpp reconnects (as an application does on 'disconnected')
        # through the same proxy port, and resumes.
        s.connect()
        s.wait_event('session_resumed')
        assert s.count('session_start') == 1, s.events
        assert s.count('sm_failed') == 0, s.events
        assert s.call(lambda: str(s.x.boundjid)) == full
        assert proxy.accepted == 2
        row = session_row(server, full)
        assert row['sm'] == 'resumable' and row['ip'] == '127.0.0.1' and \
            row['tls'].startswith('TLS'), row
        assert [r['jid'] for r in sessions_of(server, alice)] == [full]
        # <resumed h/>: what the server handled of the client's, which
        # is what it had acknowledged; not the three held in the proxy.
        assert s.resumed_h == [acked_seq], (s.resumed_h, acked_seq)
        if cut == 'silent':
            # The old connection, left open, is closed by the daemon.
            assert proxy.orphan_closed(5), 'old connection still open'

        want = (['in-flight %d' % i for i in range(3)] +
                ['while-cut %d' % i for i in range(4)])
        s.wait_bodies(want)
        s.request_ack()
        # Everything arrived, once; what came again came with its delay.
        b.sync()
        time.sleep(0.3)
        with s.lock:
            got = list(s.messages)
        copies = assert_once(got, 'slixmpp')
        assert copies == [], 'copies (same id) delivered: %s' % copies
        expected = (['to-slix %d' % i for i in range(5)] +
                    ['seen-unacked 0', 'seen-unacked 1'] + want)
        assert sorted(m[0] for m in got) == sorted(expected), got
        after_cut = [m for m in got if m[0] in want]
        assert [m[0] for m in after_cut] == want, (
            'order after the resumption: %s' % after_cut)
        for body, mid, sid, delayed in after_cut:
            assert sid is not None, (body, 'no stanza-id')
        # The in-flight three came again from the server's queue: with
        # a delay (XEP-0198 §5 via XEP-0203).
        assert all(m[3] for m in after_cut[:3]), after_cut

        # bob: what the server acknowledged came once, in order; the
        # message queued while cut came after the resumption; the three
        # the server never had were not delivered (slixmpp does not send
        # them again, see the docstring), and nothing twice.
        got_b = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            el = b.raw.poll_element(0.3)
            if el is None:
                if any(m[0] == 'queued while cut' for m in got_b):
                    break
                continue
            if el.tag == q(NS_CLIENT, 'message'):
                got_b.append((el.findtext(q(NS_CLIENT, 'body')),
                              el.get('id')))
        assert_once(got_b, 'bob')
        bodies_b = [m[0] for m in got_b]
        assert bodies_b[:6] == ['acked %d' % i for i in range(6)], got_b
        assert 'queued while cut' in bodies_b, got_b
        resent = [m for m in bodies_b if m.startswith('unhandled')]
        lost_by_client = sorted(set('unhandled %d' % i for i in range(3)) -
                                set(resent))
        assert sorted(bodies_b) == sorted(
            ['acked %d' % i for i in range(6)] + ['queued while cut'] +
            resent), got_b
        # slixmpp's ack of what came again leaves nothing unacknowledged.
        s.call(lambda: s.x.plugin['xep_0198'].send_ack())
        wait_for(lambda: session_row(server, full)['sm_unacked'] == 0,
                 what='sm_unacked 0 after the ack')
        row = session_row(server, full)
        assert row['sm'] == 'resumable', row
        print('\nslixmpp %s cut: resumed %s, %d to the client after the '
              'cut (all once), %d acked by the server before it (all '
              'once), %d held in the proxy: lost by slixmpp %s'
              % (cut, full, len(want), len(acked_ids), len(unhandled),
                 lost_by_client))
    finally:
        f.close_all()


def test_slixmpp_resumption_too_late_loses_nothing(server_factory):
    """The client comes back after resume-timeout: <resume/> fails
    (item-not-found), slixmpp binds a new session, and what the old one
    had not got acknowledged was stored offline when it ended, so the
    new session gets it with its initial presence, with the stanza-id it
    had.  A message slixmpp had received but not acknowledged comes
    again: a copy it can tell by its id and stanza-id (the only copies
    allowed)."""
    srv = server_factory(limits={'resume-timeout': '2s',
                                 'sm-ack-seconds': '0',
                                 'stanzas-per-second': 0})
    alice, bob = fresh_users(srv, 2)
    proxy = TcpProxy(srv.c2s_port)
    f = IMFactory(srv)
    s = Slix(srv, alice, proxy.port)
    try:
        b = f(bob, resource='raw')
        s.connect()
        s.wait_event('session_start')
        s.wait_event('sm_enabled')
        full = s.call(lambda: str(s.x.boundjid))
        s.presence()
        wait_for(lambda: session_row(srv, full), what='session')
        b.message(alice, 'seen-unacked', mid='s0')
        s.wait_bodies(['seen-unacked'])
        proxy.hold('down')
        b.message(alice, 'in-flight', mid='i0')
        b.message(full, 'in-flight full', mid='i1')
        wait_for(lambda: session_row(srv, full)['sm_unacked'] >= 3,
                 what='three unacknowledged')
        proxy.cut()
        s.wait_event('disconnected')
        wait_for(lambda: session_row(srv, full)['sm'] == 'waiting',
                 what='waiting')
        b.message(alice, 'while waiting', mid='w0')
        b.sync()
        # The wait ends: the session goes, its unacknowledged messages
        # to offline storage.
        wait_for(lambda: session_row(srv, full) is None, timeout=10,
                 what='the session to end after resume-timeout')
        b.message(alice, 'after the end', mid='e0')
        b.sync()

        s.connect()
        s.wait_event('sm_failed')
        s.wait_event('session_start', 2)      # bound anew
        assert s.count('session_resumed') == 0, s.events
        s.presence()            # initial presence: offline delivery
        want = ['in-flight', 'in-flight full', 'while waiting',
                'after the end']
        s.wait_bodies(want)
        b.sync()
        time.sleep(0.3)
        with s.lock:
            got = list(s.messages)
        copies = assert_once(got, 'slixmpp')
        # The copy slixmpp can tell: same id and the same stanza-id.
        assert copies in ([], ['seen-unacked']), copies
        firsts = {}
        for body, mid, sid, delayed in got:
            if body in firsts:
                assert firsts[body] == (mid, sid), (body, firsts[body],
                                                    (mid, sid))
            firsts[body] = (mid, sid)
        assert sorted(set(m[0] for m in got)) == sorted(
            ['seen-unacked'] + want), got
        for body, mid, sid, delayed in got:
            if body in want:
                assert delayed and sid is not None, (body, mid, sid)
        b.absent(is_message(), 0.2)     # nothing bounced to bob
        print('\nslixmpp too late: %d messages from offline storage, '
              'copies (same id and stanza-id) %s' % (len(want), copies))
    finally:
        s.close()
        f.close_all()
        proxy.close()


def test_slixmpp_resumed_stream_starts_active(server, proxied):
    """slixmpp says it is inactive (XEP-0352), loses its connection and
    resumes.  The new stream starts active (XEP-0352: "A stream always
    begins in 'active' state", and the state is not restored by a
    resumption), as slixmpp, whose plugin keeps no state across
    connections, assumes: what was held is sent, and a chat state that
    comes after the resumption is not held."""
    proxy, make = proxied
    alice, bob = fresh_users(server, 2)
    f = IMFactory(server)
    try:
        b = f(bob, resource='raw')
        s = make(alice)
        s.call(lambda: s.x.register_plugin('xep_0352'))
        # slixmpp's 'message' event is for messages with a body; chat
        # states come as XEP-0085's 'chatstate'.
        states = []
        s.call(lambda: s.x.register_plugin('xep_0085'))
        s.call(lambda: s.x.add_event_handler(
            'chatstate', lambda m: states.append(m['id'])))
        s.connect()
        s.wait_event('session_start')
        s.wait_event('sm_enabled')
        full = s.call(lambda: str(s.x.boundjid))
        s.presence()
        wait_for(lambda: session_row(server, full), what='session')
        s.call(lambda: s.x.plugin['xep_0352'].send_inactive())
        wait_for(lambda: session_row(server, full)['csi'] == 'inactive',
                 what='csi inactive')
        state = ("<message to='%s' type='chat' id='%s'><%s xmlns='http://"
                 "jabber.org/protocol/chatstates'/></message>")
        b.send(state % (full, 'cs1', 'composing'))
        b.sync()
        time.sleep(0.3)
        assert 'cs1' not in states, 'a chat state was not held'
        proxy.cut()
        s.wait_event('disconnected')
        wait_for(lambda: session_row(server, full)['sm'] == 'waiting',
                 what='waiting')
        s.connect()
        s.wait_event('session_resumed')
        b.send(state % (full, 'cs2', 'paused'))
        b.sync()
        row = session_row(server, full)
        wait_for(lambda: states == ['cs1', 'cs2'], timeout=3,
                 what='the chat states after the resumption (csi %s)'
                 % row['csi'])
        assert session_row(server, full)['csi'] == 'active'
    finally:
        f.close_all()


def test_ack_below_last_ack_changes_nothing(server):
    """Raw XML, found while driving the clients: test_sm.py's
    test_ack_older_count_is_accepted says "An <a/> with an h at or below
    one already acknowledged changes nothing", but checks only "at"."""
    from im_helpers import is_message as message
    from sm_helpers import ack, enable, request
    alice, bob = fresh_users(server, 2)
    f = IMFactory(server)
    try:
        a = f(alice)
        b = f(bob)
        enable(a)
        b.message(a.full, 'one')
        b.message(a.full, 'two')
        a.wait(message(body='one'))
        a.wait(message(body='two'))
        ack(a, 2)
        ack(a, 1)                   # older than the last: a repetition
        assert request(a) == 0
        assert session_row(server, a.full)['sm_unacked'] == 0
    finally:
        f.close_all()


# --- profanity (libstrophe) --------------------------------------------------

from profanity_helpers import Profanity, needs_profanity  # noqa: E402


@pytest.fixture
def profanity():
    p = Profanity()
    yield p
    p.close()


def profanity_login(p, server, jid, port):
    p.type('/connect %s server 127.0.0.1 port %d' % (jid, port))
    p.wait(lambda s: 'password' in s.lower(), what='password prompt')
    p.type(server.users[jid])
    p.wait(lambda s: '/tls allow' in s, what='certificate prompt')
    # 'always': a reconnection must not stop at the prompt again.
    p.type('/tls always')
    p.wait(lambda s: 'logged in successfully' in s, what='login')


def window_lines(p, n):
    """The screen of profanity's window n."""
    p.type('/win %d' % n)
    time.sleep(0.3)
    return p.screen()


@needs_profanity
def test_profanity_stream_management_and_resumption(server_factory,
                                                    profanity):
    """libstrophe enables resumable stream management on its own, answers
    the server's <r/> (asked here after 1 s), and profanity, reconnecting
    after a cut ('/reconnect 1'), resumes the session: the same full JID,
    what was sent while it was away shown once, nothing shown twice."""
    srv = server_factory(limits={'resume-timeout': '60s',
                                 'sm-ack-seconds': '1'})
    alice, bob = fresh_users(srv, 2)
    proxy = TcpProxy(srv.c2s_port)
    f = IMFactory(srv)
    try:
        p = profanity
        p.type('/reconnect 1')
        profanity_login(p, srv, alice, proxy.port)
        rows = wait_for(lambda: sessions_of(srv, alice), what='session')
        assert len(rows) == 1 and rows[0]['sm'] == 'resumable', rows
        full = rows[0]['jid']
        b = f(bob, resource='raw')
        before = ['hello profanity %d' % i for i in range(7)]
        for i, body in enumerate(before):
            b.message(full, body, mid='p%d' % i)
        p.wait(lambda s: s.count('<< chat message: %s' % b.full) == 7,
               what='seven messages announced')
        # libstrophe answers the server's <r/>: nothing stays unacked.
        wait_for(lambda: session_row(srv, full)['sm_unacked'] == 0,
                 what='sm_unacked 0 (libstrophe answering <r/>)')

        proxy.cut()
        wait_for(lambda: session_row(srv, full)['sm'] == 'waiting',
                 what='the session to wait for resumption')
        during = ['while cut %d' % i for i in range(3)]
        for i, body in enumerate(during):
            b.message(full if i % 2 else alice, body, mid='c%d' % i)
        b.sync()
        p.wait(lambda s: 'Connection re-established' in s, timeout=20,
               what='reconnection')
        assert proxy.accepted == 2
        rows = sessions_of(srv, alice)
        assert [r['jid'] for r in rows] == [full], rows
        assert rows[0]['sm'] == 'resumable', rows
        assert 'session %s: resumed on c2s' % full in srv.stderr_text()
        wait_for(lambda: session_row(srv, full)['sm_unacked'] == 0,
                 what='sm_unacked 0 after the resumption')
        win = window_lines(p, 2)
        for body in before + during:
            assert win.count(': ' + body + '\n') == 1, (body, win)
        b.absent(is_message(), 0.2)     # nothing bounced to the sender
    finally:
        f.close_all()
        proxy.close()
