"""Offline messages (XEP-0160), beyond test_im_offline.py: XEP-0334 hints,
payloads that are not stored, unknown recipients, blocked senders,
persistence across a restart, large queues (chunked delivery), and
delivery when a resource raises its priority from negative."""

import re
import socket
import sqlite3
import time

import pytest

import xmpp_raw
from xmpp_raw import NS_CLIENT, q, tostr

NS_DELAY = 'urn:xmpp:delay'
NS_HINTS = 'urn:xmpp:hints'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
STAMP_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

SERVER_OPTIONS = {'limits': {'offline-messages': 500}}


def send_raw(c, to, inner, mtype='chat', mid=None):
    attrs = "to='%s'" % to
    if mtype:
        attrs += " type='%s'" % mtype
    if mid:
        attrs += " id='%s'" % mid
    c.send('<message %s>%s</message>' % (attrs, inner))


def sync(c, iq_id='sync'):
    """Round trip to the server: everything c sent before was routed and
    any synchronous answer queued (the storage decision is asynchronous,
    so callers that expect silence wait a little more)."""
    c.send("<iq type='get' id='%s' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>" % iq_id)
    while True:
        el = c.next_element()
        if el.tag == q(NS_CLIENT, 'iq') and el.get('id') == iq_id:
            return
        if el.tag == q(NS_CLIENT, 'presence'):
            continue
        raise AssertionError('unexpected before sync: %s' % tostr(el))


def messages(c, n, timeout=None):
    """The next n <message/> stanzas (presence skipped)."""
    return [c.expect_stanza('message', timeout=timeout) for _ in range(n)]


def body(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


def delay_of(el):
    return el.find(q(NS_DELAY, 'delay'))


def online(srv, jid, resource='r', priority=None):
    c = srv.login(jid, resource=resource)
    c.presence(priority=priority)
    return c


def assert_no_offline(srv, jid='bob@localhost'):
    """A new login of jid gets no stored messages."""
    c = online(srv, jid, resource='check')
    try:
        c.expect_no_stanza('message', duration=0.7)
    finally:
        c.close()


@pytest.fixture
def alice(server):
    c = server.login('alice@localhost', resource='a')
    c.presence()
    yield c
    c.close()


def test_no_store_hint_is_not_stored(server, alice):
    """XEP-0334 §4: <no-store/> means not even offline storage: the
    sender gets RFC 6121 §8.5.2.2.1 <service-unavailable/>."""
    send_raw(alice, 'bob@localhost',
             "<body>ephemeral</body><no-store xmlns='%s'/>" % NS_HINTS,
             mid='ns1')
    el = alice.expect_stanza('message')
    xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                 etype='cancel', sid='ns1')
    assert el.get('from') == 'bob@localhost', tostr(el)
    assert_no_offline(server)


def test_store_hint_without_body_is_stored(server, alice):
    """XEP-0334 §4: <store/> stores a message without a body."""
    send_raw(alice, 'bob@localhost',
             "<received xmlns='urn:xmpp:receipts' id='x1'/>"
             "<store xmlns='%s'/>" % NS_HINTS, mid='st1')
    sync(alice)
    alice.expect_no_stanza('message', duration=0.5)
    bob = online(server, 'bob@localhost')
    try:
        el = bob.expect_stanza('message')
        assert el.get('id') == 'st1', tostr(el)
        assert el.find(q('urn:xmpp:receipts', 'received')) is not None
        assert el.find(q(NS_HINTS, 'store')) is not None
        assert delay_of(el) is not None, tostr(el)
        bob.expect_no_stanza('message', duration=0.5)
    finally:
        bob.close()


def test_no_store_wins_over_store(server, alice):
    send_raw(alice, 'bob@localhost',
             "<body>both</body><store xmlns='%s'/><no-store xmlns='%s'/>"
             % (NS_HINTS, NS_HINTS), mid='both1')
    el = alice.expect_stanza('message')
    xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                 sid='both1')
    assert_no_offline(server)


def test_chat_state_only_is_not_stored(server, alice):
    """XEP-0160 §3: chat messages with only chat state notifications are
    not stored offline; without storage the sender gets the RFC 6121
    §8.5.2.2.1 error."""
    send_raw(alice, 'bob@localhost', "<composing xmlns='%s'/>"
             % NS_CHATSTATES, mid='cs1')
    el = alice.expect_stanza('message')
    xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                 sid='cs1')
    assert el.find(q(NS_CHATSTATES, 'composing')) is not None, tostr(el)
    assert_no_offline(server)


def test_message_to_unknown_user_bounces(server, alice):
    """RFC 6121 §8.5.1: no such account: <service-unavailable/>, with the
    original payload and no <delay/> of ours."""
    alice.message('nobody@localhost', 'hello?', mid='nu1')
    el = alice.expect_stanza('message')
    xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                 etype='cancel', sid='nu1')
    assert el.get('from') == 'nobody@localhost', tostr(el)
    assert el.get('to') == alice.jid, tostr(el)
    assert body(el) == 'hello?', tostr(el)
    assert delay_of(el) is None, tostr(el)


def test_full_jid_of_offline_resource_is_stored(server, alice):
    """RFC 6121 §8.5.3.2.1: a message to an unavailable resource is
    handled as if sent to the bare JID, hence stored."""
    alice.message('bob@localhost/gone', 'to a resource', mid='fj1')
    sync(alice)
    alice.expect_no_stanza('message', duration=0.5)
    bob = online(server, 'bob@localhost', resource='other')
    try:
        el = bob.expect_stanza('message')
        assert el.get('id') == 'fj1' and body(el) == 'to a resource'
        assert el.get('from') == alice.jid, tostr(el)
    finally:
        bob.close()


def test_normal_and_untyped_are_stored_in_order(server, alice):
    alice.message('bob@localhost', 'one', mtype='normal', mid='o1')
    alice.message('bob@localhost', 'two', mtype=None, mid='o2')
    alice.message('bob@localhost', 'three', mtype='chat', mid='o3')
    sync(alice)
    alice.expect_no_stanza('message', duration=0.5)
    bob = online(server, 'bob@localhost')
    try:
        got = messages(bob, 3)
        assert [m.get('id') for m in got] == ['o1', 'o2', 'o3']
        assert [body(m) for m in got] == ['one', 'two', 'three']
        assert got[0].get('type') == 'normal'
        assert got[1].get('type') is None
        for m in got:
            d = delay_of(m)
            assert d is not None and d.get('from') == 'localhost', tostr(m)
            assert STAMP_RE.match(d.get('stamp')), tostr(m)
        bob.expect_no_stanza('message', duration=0.5)
    finally:
        bob.close()
    assert_no_offline(server)


def test_negative_priority_then_non_negative(server, alice):
    """A resource with negative priority gets nothing (RFC 6121
    §8.5.2.1.1); when it raises its priority to 0 it gets the stored
    messages (XEP-0160 §2: "next sends non-negative available
    presence")."""
    alice.message('bob@localhost', 'later', mid='np1')
    sync(alice)
    bob = online(server, 'bob@localhost', priority=-1)
    try:
        bob.expect_no_stanza('message', duration=0.7)
        bob.presence(priority=0)
        el = bob.expect_stanza('message')
        assert el.get('id') == 'np1' and body(el) == 'later', tostr(el)
        assert delay_of(el) is not None
    finally:
        bob.close()
    assert_no_offline(server)


def test_only_one_resource_gets_them(server, alice):
    """Two resources coming online together: the stored messages go to
    one of them, once."""
    alice.message('bob@localhost', 'once', mid='one1')
    sync(alice)
    b1 = server.login('bob@localhost', resource='b1')
    b2 = server.login('bob@localhost', resource='b2')
    try:
        b1.presence()
        b2.presence()
        got = []
        for c in (b1, b2):
            while True:
                el = c.poll_element(1.0)
                if el is None:
                    break
                if el.tag == q(NS_CLIENT, 'message'):
                    got.append(el.get('id'))
        assert got == ['one1'], got
    finally:
        b1.close()
        b2.close()


def test_many_messages_chunked_delivery(server, alice):
    """More than one storage chunk (100): all arrive, in order, once."""
    n = 230
    for i in range(n):
        alice.message('bob@localhost', 'm%d' % i, mid='c%d' % i)
    sync(alice)
    alice.expect_no_stanza('message', duration=0.5)
    bob = online(server, 'bob@localhost')
    try:
        got = messages(bob, n, timeout=10)
        assert [m.get('id') for m in got] == ['c%d' % i for i in range(n)]
        bob.expect_no_stanza('message', duration=0.5)
    finally:
        bob.close()
    assert_no_offline(server)


def small_window_login(srv, jid, resource, monkeypatch):
    """Log in with a 4 KiB receive buffer set before connecting, so the
    kernel cannot absorb what the server queues and a client that does not
    read makes the server's output queue grow."""
    real = xmpp_raw.socket.create_connection

    def connect(addr, timeout=None):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(timeout)
        s.connect(addr)
        return s

    with monkeypatch.context() as m:
        m.setattr(xmpp_raw.socket, 'create_connection', connect)
        c = srv.login(jid, resource=resource)
    assert xmpp_raw.socket.create_connection is real
    return c


def test_large_messages_slow_reader(server_factory, monkeypatch):
    """4 MB of stored messages to a client that does not read for 2 s,
    with output-max 1 MiB: delivery waits for the output queue to drain
    instead of pushing the session past output-max (which disconnects it
    and, as the chunks were handed over, would lose them); all arrive,
    in order, once."""
    # (4 MB sent at once: no byte rate limit, which would pace it)
    srv = server_factory(limits={'output-max': 1048576,
                                 'bytes-per-second': 0})
    alice = srv.login('alice@localhost', resource='a')
    big = 'x' * 100000
    n = 40
    try:
        for i in range(n):
            alice.message('bob@localhost', big, mid='big%d' % i)
        sync(alice)
        alice.expect_no_stanza('message', duration=0.5)
    finally:
        alice.close()
    bob = small_window_login(srv, 'bob@localhost', 'slow', monkeypatch)
    try:
        bob.presence()
        time.sleep(2.0)
        got = messages(bob, n, timeout=20)
        assert [m.get('id') for m in got] == ['big%d' % i for i in range(n)]
        assert all(body(m) == big for m in got)
        bob.expect_no_stanza('message', duration=0.5)
    finally:
        bob.close()
    # The test is only meaningful if the server had to wait.
    assert 'is full, waiting' in srv.stderr_text(), \
        'the output queue never filled: the test did not exercise waiting'
    assert_no_offline(srv)


def test_session_gone_mid_delivery_keeps_the_rest(server_factory,
                                                   monkeypatch):
    """The receiving session goes away while delivery waits for its
    output queue: what was not handed to it stays stored and reaches the
    next session, in order, through the last message."""
    srv = server_factory(limits={'output-max': 1048576,
                                 'bytes-per-second': 0})
    alice = srv.login('alice@localhost', resource='a')
    big = 'y' * 100000
    n = 40
    try:
        for i in range(n):
            alice.message('bob@localhost', big, mid='g%d' % i)
        sync(alice)
        alice.expect_no_stanza('message', duration=0.5)
    finally:
        alice.close()
    bob = small_window_login(srv, 'bob@localhost', 'first', monkeypatch)
    bob.presence()
    time.sleep(1.0)
    bob.close()
    time.sleep(0.5)
    bob2 = online(srv, 'bob@localhost', resource='second')
    try:
        ids = []
        while True:
            el = bob2.poll_element(1.5)
            if el is None:
                break
            if el.tag == q(NS_CLIENT, 'message'):
                ids.append(int(el.get('id')[1:]))
        assert ids, 'nothing was left for the next session'
        assert ids == list(range(ids[0], n)), ids
        assert ids[0] > 0, 'the first session got nothing handed over'
    finally:
        bob2.close()
    assert 'is full, waiting' in srv.stderr_text()
    assert_no_offline(srv)


def test_stored_for_sender_that_left(server):
    """The storage decision completes after the sender has gone: no crash,
    the message is stored."""
    c = server.login('alice@localhost', resource='quick')
    c.message('bob@localhost', 'fire and forget', mid='ff1')
    c.close()
    time.sleep(0.3)
    bob = online(server, 'bob@localhost')
    try:
        el = bob.expect_stanza('message')
        assert el.get('id') == 'ff1', tostr(el)
    finally:
        bob.close()
    server.assert_serves()


def test_full_queue_bounce_after_sender_left(server_factory):
    """A bounce whose sender has gone is dropped quietly."""
    srv = server_factory(limits={'offline-messages': 1})
    c = srv.login('alice@localhost', resource='a')
    c.message('bob@localhost', 'first', mid='q1')
    sync(c)
    c.message('bob@localhost', 'second', mid='q2')
    c.close()
    time.sleep(0.3)
    srv.assert_serves()
    bob = online(srv, 'bob@localhost')
    try:
        el = bob.expect_stanza('message')
        assert el.get('id') == 'q1'
        bob.expect_no_stanza('message', duration=0.5)
    finally:
        bob.close()


def test_restart_keeps_stored_messages(server_factory):
    srv = server_factory()
    c = srv.login('alice@localhost', resource='a')
    c.message('bob@localhost', 'survives a restart', mid='rs1')
    sync(c)
    c.expect_no_stanza('message', duration=0.5)
    c.close()
    srv.stop()
    srv.start(create_users=False)
    bob = online(srv, 'bob@localhost')
    try:
        el = bob.expect_stanza('message')
        assert el.get('id') == 'rs1', tostr(el)
        assert body(el) == 'survives a restart'
        d = delay_of(el)
        assert d is not None and d.get('from') == 'localhost'
        assert STAMP_RE.match(d.get('stamp')), tostr(el)
    finally:
        bob.close()
    srv.stop()


def test_blocked_sender_gets_service_unavailable(server_factory):
    """XEP-0191 §3.5: a message from a JID the recipient blocked is not
    stored and the sender gets <service-unavailable/>, as if there were no
    storage.  A domain item matches every JID of that domain (§4)."""
    srv = server_factory()
    srv.stop()
    db = sqlite3.connect(str(srv.db))
    with db:
        uid = db.execute("SELECT id FROM users WHERE user = 'bob'") \
            .fetchone()[0]
        db.execute("INSERT INTO blocklist (user_id, jid) VALUES (?, ?)",
                   (uid, 'alice@localhost'))
    db.close()
    srv.start(create_users=False)
    c = srv.login('alice@localhost', resource='a')
    try:
        c.message('bob@localhost', 'let me in', mid='bl1')
        el = c.expect_stanza('message')
        xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                     etype='cancel', sid='bl1')
        assert body(el) == 'let me in' and delay_of(el) is None, tostr(el)
    finally:
        c.close()
    assert_no_offline(srv)
    srv.stop()
    db = sqlite3.connect(str(srv.db))
    with db:
        db.execute("UPDATE blocklist SET jid = 'localhost'")
    db.close()
    srv.start(create_users=False)
    c = srv.login('alice@localhost', resource='a2')
    try:
        c.message('bob@localhost', 'domain blocked', mid='bl2')
        el = c.expect_stanza('message')
        xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                     sid='bl2')
    finally:
        c.close()
    srv.stop()
    db = sqlite3.connect(str(srv.db))
    n = db.execute('SELECT count(*) FROM offline').fetchone()[0]
    db.close()
    assert n == 0


def test_user_deletion_drops_stored_messages(server_factory):
    srv = server_factory()
    c = srv.login('alice@localhost', resource='a')
    c.message('bob@localhost', 'for a user about to go', mid='ud1')
    sync(c)
    c.expect_no_stanza('message', duration=0.5)
    c.close()
    r = srv.ctl('deluser', 'bob@localhost')
    assert r.returncode == 0, r.stderr
    srv.stop()
    db = sqlite3.connect(str(srv.db))
    n = db.execute('SELECT count(*) FROM offline').fetchone()[0]
    db.close()
    assert n == 0


def test_disabled_bounces(server_factory):
    """offline-messages 0: no storage, RFC 6121 §8.5.2.2.1 error."""
    srv = server_factory(limits={'offline-messages': 0})
    c = srv.login('alice@localhost', resource='a')
    try:
        c.message('bob@localhost', 'nobody home', mid='d1')
        el = c.expect_stanza('message')
        xmpp_raw.assert_stanza_error(el, 'message', 'service-unavailable',
                                     sid='d1')
    finally:
        c.close()
    assert_no_offline(srv)


def disco_features(srv):
    c = srv.login('alice@localhost', resource='disco')
    try:
        c.send("<iq type='get' id='di1' to='localhost'>"
               "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>")
        el = c.expect_stanza('iq')
        assert el.get('type') == 'result', tostr(el)
        query = el.find(q('http://jabber.org/protocol/disco#info', 'query'))
        return [f.get('var') for f in query.findall(
            q('http://jabber.org/protocol/disco#info', 'feature'))]
    finally:
        c.close()


def test_disco_feature(server):
    """XEP-0160 §6: the server advertises msgoffline."""
    assert 'msgoffline' in disco_features(server)


def test_disco_feature_absent_when_disabled(server_factory):
    srv = server_factory(limits={'offline-messages': 0})
    assert 'msgoffline' not in disco_features(srv)
