"""Robustness against hostile clients (issue 6, item 3), the cases that
test_stream.py, test_tls.py, test_sasl.py, test_bind.py, test_routing.py
and the IM test files do not already cover: oversize stanzas trickled
slowly (before and after authentication), attribute and namespace floods
(also on the stream header), bad IQ shapes, another user's roster, block
list, private storage and vCard addressed directly, slowloris connections
while a real client logs in, and a reader with a zero TCP window.  Each
case asserts the exact error and is followed by a fresh client being
served (still_serving)."""

import json
import re
import socket
import ssl
import threading
import time

import pytest

from xmpp_raw import NS_CLIENT, assert_stanza_error, q, source_address, tostr

NS_ROSTER = 'jabber:iq:roster'
NS_BLOCKING = 'urn:xmpp:blocking'
NS_PRIVATE = 'jabber:iq:private'
NS_PING = 'urn:xmpp:ping'


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def opened(server):
    c = server.client()
    c.open_stream()
    return c


def trickle(c, data, chunk, delay):
    """Send data in chunks with a delay between them until the server
    answers or closes; returns the number of bytes sent."""
    sent = 0
    for i in range(0, len(data), chunk):
        try:
            c.sock.sendall(data[i:i + chunk])
        except (OSError, ssl.SSLError):
            return sent
        sent += len(data[i:i + chunk])
        el = c.poll_element(delay)
        if el is not None:
            c.pending.appendleft(el)
            return sent
        if c.eof or c.stream_ended:
            return sent
    return sent


def log_has(server, pattern):
    return re.search(pattern, server.stderr_text(), re.M) is not None


# --- oversize stanzas sent slowly ----------------------------------------------

def test_oversize_stanza_trickled_before_auth(server):
    """1 KiB every 20 ms: <policy-violation/> as soon as the 16 KiB
    pre-authentication limit is crossed, not when the stanza ends."""
    c = opened(server)
    try:
        data = b"<message><body>" + b'y' * 64 * 1024 + b"</body></message>"
        sent = trickle(c, data, 1024, 0.02)
        c.expect_stream_error('policy-violation')
        assert sent <= 16384 + 2048, 'read %d bytes past the limit' % sent
    finally:
        c.close()


def test_oversize_stanza_trickled_after_auth(server):
    """8 KiB every 10 ms up to 1 MiB: <policy-violation/> once past
    stanza-size (256 KiB); a conversation meanwhile is not affected."""
    c = server.login('alice@localhost', resource='trickle')
    a = server.login('bob@localhost', resource='a')
    try:
        data = (b"<message to='bob@localhost/a'><body>" +
                b'z' * 1024 * 1024 + b"</body></message>")
        sent = 0
        chunk = 8192
        for i in range(0, len(data), chunk):
            try:
                c.sock.sendall(data[i:i + chunk])
            except (OSError, ssl.SSLError):
                break
            sent += chunk
            if i % (64 * chunk) == 0:
                a.message('bob@localhost/a', 'tick %d' % i)
                el = a.expect_stanza('message', timeout=1)
                assert el.find(q(NS_CLIENT, 'body')).text == 'tick %d' % i
            el = c.poll_element(0.01)
            if el is not None:
                c.pending.appendleft(el)
                break
            if c.eof or c.stream_ended:
                break
        c.expect_stream_error('policy-violation')
        assert sent <= 262144 + 16 * chunk, sent
        assert a.poll_element(0.2) is None
    finally:
        c.close()
        a.close()


def test_oversize_stream_header(server):
    """The stream header counts against the pre-authentication limit: a
    header with a 20 KiB attribute is a <policy-violation/>."""
    c = server.client()
    try:
        data = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                "xmlns:stream='http://etherx.jabber.org/streams' "
                "to='localhost' version='1.0' x='%s'>" % ('a' * 20480))
        trickle(c, data.encode(), 4096, 0.005)
        c.read_header()
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


# --- attribute floods ----------------------------------------------------------

def test_attribute_flood_on_stream_header(server):
    """65 attributes on the stream header (limit 64) end the stream."""
    c = server.client()
    try:
        extra = ''.join(" a%d='v'" % i for i in range(65))
        c.send(c.stream_header(extra=extra))
        c.read_header()
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


def test_namespace_declaration_flood(server):
    """65 namespace declarations on one element (counted apart from
    attributes, limit 64) end the stream; 64 pass."""
    sink = server.login('alice@localhost', resource='sink')
    c = server.login('bob@localhost', resource='ns')
    try:
        def msg(n, mid):
            decls = ''.join(" xmlns:p%d='urn:example:ns%d'" % (i, i)
                            for i in range(n))
            return ("<message to='alice@localhost/sink' id='%s'>"
                    "<x xmlns='urn:example:x'%s/></message>" % (mid, decls))
        c.send(msg(63, 'ok'))    # + the default namespace = 64
        assert sink.expect_stanza('message').get('id') == 'ok'
        c.send(msg(65, 'bad'))
        c.expect_stream_error('policy-violation')
        sink.expect_no_stanza('message', 0.3)
    finally:
        c.close()
        sink.close()


def test_attribute_flood_before_auth(server):
    """An attribute flood before authentication is refused the same way
    (and before TLS)."""
    c = opened(server)
    try:
        attrs = ' '.join("a%d='v'" % i for i in range(1000))
        c.send("<message %s/>" % attrs)
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


def test_huge_attribute_values_hit_stanza_size(server):
    """Few attributes but each 100 KiB: the stanza size limit applies."""
    c = server.login('alice@localhost', resource='bigattr')
    try:
        attrs = ' '.join("a%d='%s'" % (i, 'v' * 100 * 1024)
                         for i in range(4))
        c.sock.settimeout(5)
        try:
            c.send("<message to='bob@localhost' %s/>" % attrs)
        except OSError:
            pass
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


# --- bad IQ shapes -------------------------------------------------------------

BAD_IQS = {
    'no-id': "<iq type='get' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
    'no-type': "<iq id='bad' to='%s'><ping xmlns='urn:xmpp:ping'/></iq>",
    'bad-type': "<iq type='query' id='bad' to='%s'>"
                "<ping xmlns='urn:xmpp:ping'/></iq>",
    'get-no-payload': "<iq type='get' id='bad' to='%s'/>",
    'get-two-payloads': "<iq type='get' id='bad' to='%s'>"
                        "<ping xmlns='urn:xmpp:ping'/>"
                        "<query xmlns='jabber:iq:version'/></iq>",
    'set-two-payloads': "<iq type='set' id='bad' to='%s'>"
                        "<query xmlns='jabber:iq:roster'/>"
                        "<query xmlns='jabber:iq:private'/></iq>",
}


@pytest.mark.parametrize('shape', sorted(BAD_IQS))
@pytest.mark.parametrize('to', ['localhost', 'bob@localhost',
                                'bob@localhost/target'])
def test_bad_iq_shape(server, shape, to):
    """RFC 6120 §8.2.3: an IQ without id or type, with another type, or
    a get/set without exactly one payload is answered <bad-request/>
    (modify) by the server, whoever it was addressed to, and never
    reaches the addressee."""
    target = server.login('bob@localhost', resource='target')
    c = server.login('alice@localhost', resource='shapes')
    try:
        c.send(BAD_IQS[shape] % to)
        el = c.expect_stanza('iq')
        assert_stanza_error(el, 'iq', 'bad-request', etype='modify')
        assert el.get('id') == (None if shape == 'no-id' else 'bad'), \
            tostr(el)
        target.expect_no_stanza('iq', 0.3)
        # the stream goes on
        c.send("<iq type='get' id='after' to='localhost'>"
               "<ping xmlns='urn:xmpp:ping'/></iq>")
        el = c.expect_stanza('iq')
        assert el.get('id') == 'after' and el.get('type') == 'result'
    finally:
        c.close()
        target.close()


# --- another user's data addressed directly ------------------------------------

def iq(c, itype, payload, to, iq_id):
    c.send("<iq type='%s' id='%s' to='%s'>%s</iq>" % (itype, iq_id, to,
                                                      payload))
    while True:
        el = c.expect_stanza('iq')
        if el.get('id') == iq_id:
            return el


OTHERS_DATA = [
    ('roster-get', 'get', "<query xmlns='jabber:iq:roster'/>",
     'forbidden', 'auth'),
    ('blocklist-get', 'get', "<blocklist xmlns='urn:xmpp:blocking'/>",
     'forbidden', 'auth'),
    ('block', 'set', "<block xmlns='urn:xmpp:blocking'>"
     "<item jid='mallory@example.com'/></block>", 'forbidden', 'auth'),
    ('unblock', 'set', "<unblock xmlns='urn:xmpp:blocking'/>",
     'forbidden', 'auth'),
]


@pytest.mark.parametrize('case', OTHERS_DATA, ids=[c[0] for c in OTHERS_DATA])
def test_another_users_data(server, case):
    """Bob's roster and block list, addressed to his bare JID by Alice,
    are refused and unchanged (RFC 6121 §2.1.5, XEP-0191).  Private
    storage, vCard sets and roster sets of other users are covered in
    test_im_vcard_private.py, test_vcard_extra.py and test_im_roster.py."""
    name, itype, payload, cond, etype = case
    bob = server.login('bob@localhost', resource='owner')
    alice = server.login('alice@localhost', resource='intruder')
    try:
        el = iq(bob, 'set', "<block xmlns='urn:xmpp:blocking'>"
                "<item jid='spam@example.net'/></block>", 'bob@localhost',
                'pre')
        assert el.get('type') == 'result', tostr(el)
        el = iq(alice, itype, payload, 'bob@localhost', 'x1')
        assert_stanza_error(el, 'iq', cond, etype=etype)
        assert 'spam@example.net' not in tostr(el)
        el = iq(bob, 'get', "<blocklist xmlns='urn:xmpp:blocking'/>",
                'bob@localhost', 'check')
        items = [i.get('jid') for i in el.iter(q(NS_BLOCKING, 'item'))]
        assert items == ['spam@example.net'], tostr(el)
    finally:
        iq(bob, 'set', "<unblock xmlns='urn:xmpp:blocking'/>",
           'bob@localhost', 'clean')
        alice.close()
        bob.close()


# --- slowloris -----------------------------------------------------------------

def test_slowloris_preauth_while_real_client_logs_in(server_factory):
    """40 connections from one address trickle a stream header one byte
    per 100 ms, and 8 more open TCP to the direct TLS port and say
    nothing.  preauth-connections-per-ip (16): each one past it closes
    the address's oldest without a complete stream header (the silent
    TLS ones first); a real client from another address logs in promptly
    three times meanwhile; preauth-timeout closes the trickling ones."""
    srv = server_factory(limits={'preauth-timeout': 3,
                                 'handshake-timeout': 2})
    header = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' "
              b"to='localhost' version='1.0'>")
    socks = []
    with source_address('127.0.0.2'):
        for _ in range(8):
            socks.append(socket.create_connection(('127.0.0.1',
                                                   srv.tls_port)))
        for _ in range(40):
            socks.append(socket.create_connection(('127.0.0.1',
                                                   srv.c2s_port)))
    stop = threading.Event()
    closed_at = {}

    def trickler():
        pos = 0
        while not stop.is_set() and pos < len(header):
            for s in socks[8:]:
                if s in closed_at:
                    continue
                try:
                    s.send(header[pos:pos + 1])
                except OSError:
                    closed_at[s] = time.monotonic()
            pos += 1
            stop.wait(0.1)

    t = threading.Thread(target=trickler, daemon=True)
    t0 = time.monotonic()
    t.start()
    try:
        for i in range(3):
            t1 = time.monotonic()
            c = srv.login('alice@localhost', resource='real%d' % i)
            took = time.monotonic() - t1
            c.send("<iq type='get' id='p' to='localhost'>"
                   "<ping xmlns='urn:xmpp:ping'/></iq>")
            assert c.expect_stanza('iq').get('type') == 'result'
            c.close()
            assert took < 2.0, 'login took %.2f s under slowloris' % took
            time.sleep(0.3)
        # every slowloris connection ends: refused at once, or closed at
        # the pre-authentication / handshake deadline
        for s in socks:
            s.settimeout(max(0.1, t0 + 3 + 3 - time.monotonic()))
            try:
                while s.recv(4096):
                    pass
            except socket.timeout:
                raise AssertionError('slowloris connection still open '
                                     'after %.1f s' % (time.monotonic() - t0))
            except OSError:
                pass
        evicted = len(re.findall(
            r'c2s \d+ 127\.0\.0\.2:\d+: closed to make room for c2s \d+ '
            r'\(preauth-connections-per-ip 16 for 127\.0\.0\.2\): the '
            r'oldest without a '
            r'complete stream header', srv.stderr_text()))
        assert evicted == 8 + 40 - 16, evicted
    finally:
        stop.set()
        t.join()
        for s in socks:
            s.close()
    srv.assert_serves()


# --- zero-window reader --------------------------------------------------------

def test_zero_window_reader(server_factory):
    """A client that never reads, with a tiny receive buffer, is sent
    messages by another user: it is disconnected once its queue passes
    output-max, with a log line naming its connection; meanwhile two
    other users chat with low latency, and later messages to the reader
    are stored offline as for any unavailable user (what was queued but
    unsent is lost: no XEP-0198 yet, see xmppd.conf(5) output-max)."""
    srv = server_factory(limits={'output-buffer': '16K',
                                 'output-max': '128K',
                                 'stanzas-per-second': 0,
                                 'bytes-per-second': 0})
    srv.adduser('carol@localhost', 'carol-secret')
    srv.adduser('dave@localhost', 'dave-secret')
    orig = socket.create_connection

    def small_window(addr, timeout=None, source_address=None):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(timeout)
        s.connect(addr)
        return s

    socket.create_connection = small_window
    try:
        reader = srv.login('bob@localhost', resource='stuck')
    finally:
        socket.create_connection = orig
    sender = srv.login('alice@localhost', resource='sender')
    carol = srv.login('carol@localhost', resource='c')
    dave = srv.login('dave@localhost', resource='d')
    try:
        reader.presence()
        chunk = 'w' * 4000
        latencies = []
        gone = False
        for batch in range(200):
            for i in range(20):
                sender.message('bob@localhost/stuck', chunk, mtype='chat')
            t = time.monotonic()
            carol.message('dave@localhost/d', 'hi %d' % batch)
            el = dave.expect_stanza('message', timeout=2)
            latencies.append(time.monotonic() - t)
            assert el.find(q(NS_CLIENT, 'body')).text == 'hi %d' % batch
            if log_has(srv, r'output queue over 131072 bytes, '
                       r'disconnecting slow reader'):
                gone = True
                break
        assert gone, 'reader not disconnected'
        m = re.search(r'conn (\d+) 127\.0\.0\.1:(\d+): output queue over '
                      r'131072 bytes, disconnecting slow reader',
                      srv.stderr_text())
        assert int(m.group(2)) == reader.sock.getsockname()[1], m.group(0)
        assert max(latencies) < 0.5, latencies
        # bob has no session left: a new message goes offline and is
        # delivered when bob comes back
        deadline = time.monotonic() + 5
        while json.loads(srv.ctl('--json', 'status').stdout)['sessions'] \
                != 3:
            assert time.monotonic() < deadline, srv.ctl('status').stdout
            time.sleep(0.1)
        sender.message('bob@localhost', 'after the cut', mid='later')
        time.sleep(0.3)
        back = srv.login('bob@localhost', resource='back')
        back.presence()
        while True:
            el = back.expect_stanza('message')
            if el.get('id') == 'later':
                break
        assert el.find(q(NS_CLIENT, 'body')).text == 'after the cut'
        back.close()
    finally:
        for c in (reader, sender, carol, dave):
            c.close()
    srv.assert_serves()
