"""XEP-0065 SOCKS5 bytestreams proxy (issue 18 item 4) against a real
daemon with a "listen proxy65" listener: proxy.localhost in disco (what
the Conversations compliance tester checks), the streamhost query, a
mediated transfer of a few MB both ways through raw SOCKS5 sockets
activated over XMPP, the SOCKS5 refusals, wrong hashes, activation by a
third party or before both parties are there, the timeouts, the stream
and rate limits, and accounts of another host."""

import hashlib
import os
import socket
import threading
import time

import pytest

from conftest import Server, free_ports
from im_helpers import IMFactory
from xmpp_raw import q, tostr

NS_BS = 'http://jabber.org/protocol/bytestreams'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
PROXY = 'proxy.localhost'


class ProxyServer(Server):
    """A daemon with a proxy65 listener (and what extra adds)."""

    def __init__(self, certificate, proxy_extra='', **kw):
        super().__init__(certificate, **kw)
        self.proxy_port = None
        self.proxy_extra = proxy_extra

    def config_text(self):
        return super().config_text() + '\n'.join([
            'listen proxy65 %d address 127.0.0.1' % self.proxy_port,
            self.proxy_extra, '']) + '\n'

    def start(self, create_users=True):
        self.proxy_port, = free_ports(1)
        return super().start(create_users)


@pytest.fixture(scope='module')
def server(certificate):
    srv = ProxyServer(certificate).start()
    yield srv
    srv.stop()


@pytest.fixture
def im(server):
    f = IMFactory(server)
    yield f
    f.close_all()


def recv_exact(s, n, timeout=10):
    s.settimeout(timeout)
    data = b''
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise AssertionError('EOF after %d of %d bytes: %r'
                                 % (len(data), n, data[:64]))
        data += chunk
    return data


def assert_closed(s, timeout=5):
    """The proxy closes s (EOF, or a reset) within timeout."""
    s.settimeout(timeout)
    try:
        rest = s.recv(65536)
        while rest:
            rest = s.recv(65536)
    except ConnectionResetError:
        pass


def stream_hash(sid, requester, target):
    return hashlib.sha1((sid + requester + target).encode()).hexdigest()


def socks5(port, hsh, dport=0):
    """A SOCKS5 connection to the proxy, CONNECTed to hsh: the socket
    after the success reply (which echoes the address and port)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(b'\x05\x01\x00')
    assert recv_exact(s, 2) == b'\x05\x00'
    h = hsh.encode()
    s.sendall(b'\x05\x01\x00\x03' + bytes([len(h)]) + h +
              dport.to_bytes(2, 'big'))
    reply = recv_exact(s, 7 + len(h))
    assert reply == (b'\x05\x00\x00\x03' + bytes([len(h)]) + h +
                     dport.to_bytes(2, 'big')), reply
    return s


def socks5_refused(port, greeting, request=None):
    """Send a greeting (and request); the proxy's answer then EOF."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        s.sendall(greeting)
        answer = recv_exact(s, 2)
        if request is not None:
            assert answer == b'\x05\x00', answer
            s.sendall(request)
            answer = recv_exact(s, 10)
        assert_closed(s)
        return answer
    finally:
        s.close()


def activate(c, sid, target, to=PROXY):
    return c.iq('set', "<query xmlns='%s' sid='%s'><activate>%s</activate>"
                "</query>" % (NS_BS, sid, target), to=to)


def assert_error(el, condition, etype):
    assert el.get('type') == 'error', tostr(el)
    err = el.find(q('jabber:client', 'error'))
    assert err is not None and err.get('type') == etype, tostr(el)
    conds = [ch.tag.split('}')[1] for ch in err
             if ch.tag.startswith('{urn:ietf:params:xml:ns:xmpp-stanzas}')
             and not ch.tag.endswith('}text')]
    assert conds == [condition], tostr(el)


def pair(server, alice, bob, sid):
    """Target (bob) and initiator (alice) connected under the hash of
    sid: (target socket, initiator socket)."""
    hsh = stream_hash(sid, alice.full, bob.full)
    t = socks5(server.proxy_port, hsh)
    i = socks5(server.proxy_port, hsh)
    return t, i


# -- discovery --

def test_disco_items_and_info(server, im):
    c = im('alice@localhost')
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                 to='localhost')
    jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
    assert PROXY in jids, tostr(el)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=PROXY)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    ids = [(i.get('category'), i.get('type'))
           for i in query.findall(q(NS_DISCO_INFO, 'identity'))]
    assert ids == [('proxy', 'bytestreams')]
    features = [f.get('var')
                for f in query.findall(q(NS_DISCO_INFO, 'feature'))]
    assert NS_BS in features
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=PROXY)
    assert len(el.find(q(NS_DISCO_ITEMS, 'query'))) == 0


def test_streamhost_query(server, im):
    c = im('alice@localhost')
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_BS, to=PROXY)
    hosts = el.find(q(NS_BS, 'query')).findall(q(NS_BS, 'streamhost'))
    assert [(h.get('jid'), h.get('host'), h.get('port')) for h in hosts] \
        == [(PROXY, '127.0.0.1', str(server.proxy_port))], tostr(el)


def test_unknown_payloads(server, im):
    c = im('alice@localhost')
    el = c.iq('get', "<query xmlns='urn:example:nothing'/>", to=PROXY)
    assert_error(el, 'service-unavailable', 'cancel')
    el = c.iq('get', "<query xmlns='%s'/>" % NS_BS, to='x@' + PROXY)
    assert_error(el, 'service-unavailable', 'cancel')
    el = c.iq('set', "<query xmlns='%s' sid='s'/>" % NS_BS, to=PROXY)
    assert_error(el, 'bad-request', 'modify')
    el = c.iq('set', "<query xmlns='%s'><activate>bob@localhost"
              "</activate></query>" % NS_BS, to=PROXY)
    assert_error(el, 'bad-request', 'modify')
    el = c.iq('set', "<query xmlns='%s' sid='s'><activate/></query>"
              % NS_BS, to=PROXY)
    assert_error(el, 'bad-request', 'modify')
    el = activate(c, 's', 'a@b@c')
    assert_error(el, 'jid-malformed', 'modify')


def test_proxy_absent_without_listener(server_factory):
    srv = server_factory()
    im = IMFactory(srv)
    try:
        c = im('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
        assert PROXY not in jids, tostr(el)
    finally:
        im.close_all()


def test_proxy65_off_and_public_address(certificate):
    srv = ProxyServer(certificate, host_extra='\tproxy65 off').start()
    im = IMFactory(srv)
    try:
        c = im('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
        assert PROXY not in jids, tostr(el)
    finally:
        im.close_all()
        srv.stop()
    srv = ProxyServer(certificate, host_extra='\tproxy65 bytes.localhost',
                      proxy_extra='proxy65-address "files.example.net" '
                      '7777').start()
    im = IMFactory(srv)
    try:
        c = im('alice@localhost')
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_BS,
                     to='bytes.localhost')
        hosts = el.find(q(NS_BS, 'query')).findall(q(NS_BS, 'streamhost'))
        assert [(h.get('jid'), h.get('host'), h.get('port'))
                for h in hosts] == [('bytes.localhost', 'files.example.net',
                                     '7777')], tostr(el)
    finally:
        im.close_all()
        srv.stop()


# -- a mediated transfer --

def transfer(a, b, size_ab, size_ba):
    """Send size_ab random bytes from a to b and size_ba from b to a at
    the same time; both arrive intact."""
    data_ab, data_ba = os.urandom(size_ab), os.urandom(size_ba)
    got = {}
    errors = []

    def send(s, data):
        try:
            s.sendall(data)
        except OSError as e:
            errors.append(e)

    def recv(s, n, key):
        try:
            got[key] = recv_exact(s, n, timeout=60)
        except (OSError, AssertionError) as e:
            errors.append(e)

    threads = [threading.Thread(target=send, args=(a, data_ab)),
               threading.Thread(target=send, args=(b, data_ba)),
               threading.Thread(target=recv, args=(b, size_ab, 'ab')),
               threading.Thread(target=recv, args=(a, size_ba, 'ba'))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert hashlib.sha256(got['ab']).digest() == \
        hashlib.sha256(data_ab).digest()
    assert hashlib.sha256(got['ba']).digest() == \
        hashlib.sha256(data_ba).digest()


def test_mediated_transfer_both_ways(server, im):
    alice, bob = im('alice@localhost'), im('bob@localhost')
    t, i = pair(server, alice, bob, 'sid-transfer')
    try:
        el = activate(alice, 'sid-transfer', bob.full)
        assert el.get('type') == 'result', tostr(el)
        transfer(i, t, 4 * 1024 * 1024, 2 * 1024 * 1024)
        # The initiator is done: the target gets EOF once all has gone.
        i.close()
        assert_closed(t)
    finally:
        t.close()
        i.close()
    server.assert_serves()


def test_bytes_before_activation_wait(server, im):
    """What a party sends before activation is held, then delivered."""
    alice, bob = im('alice@localhost'), im('bob@localhost')
    hsh = stream_hash('sid-early', alice.full, bob.full)
    t = socks5(server.proxy_port, hsh)
    t.sendall(b'early from target')
    i = socks5(server.proxy_port, hsh)
    try:
        assert activate(alice, 'sid-early', bob.full).get('type') == 'result'
        assert recv_exact(i, 17) == b'early from target'
        i.sendall(b'hello')
        assert recv_exact(t, 5) == b'hello'
    finally:
        t.close()
        i.close()


def test_activated_twice(server, im):
    alice, bob = im('alice@localhost'), im('bob@localhost')
    t, i = pair(server, alice, bob, 'sid-twice')
    try:
        assert activate(alice, 'sid-twice', bob.full).get('type') == 'result'
        assert_error(activate(alice, 'sid-twice', bob.full), 'not-allowed',
                     'cancel')
        # A third connection under an active hash is refused.
        s = socket.create_connection(('127.0.0.1', server.proxy_port))
        s.sendall(b'\x05\x01\x00')
        assert recv_exact(s, 2) == b'\x05\x00'
        h = stream_hash('sid-twice', alice.full, bob.full).encode()
        s.sendall(b'\x05\x01\x00\x03\x28' + h + b'\x00\x00')
        assert recv_exact(s, 2) == b'\x05\x02'
        assert_closed(s)
        s.close()
        transfer(i, t, 1000, 1000)
    finally:
        t.close()
        i.close()


# -- refusals --

def test_wrong_hash(server, im):
    alice, bob = im('alice@localhost'), im('bob@localhost')
    t, i = pair(server, alice, bob, 'sid-right')
    try:
        # Another sid, or the target's bare JID: another hash.
        assert_error(activate(alice, 'sid-wrong', bob.full),
                     'item-not-found', 'cancel')
        assert_error(activate(alice, 'sid-right', 'bob@localhost'),
                     'item-not-found', 'cancel')
        assert activate(alice, 'sid-right', bob.full).get('type') == 'result'
        transfer(i, t, 100, 100)
    finally:
        t.close()
        i.close()


def test_third_party_cannot_activate(server, im):
    """The hash holds the requester's full JID: someone else sending the
    same sid and target names another stream (XEP-0065 §6.3.4)."""
    alice, bob = im('alice@localhost'), im('bob@localhost')
    alice2 = im('alice@localhost', resource='other')
    t, i = pair(server, alice, bob, 'sid-third')
    try:
        assert_error(activate(bob, 'sid-third', bob.full), 'item-not-found',
                     'cancel')
        assert_error(activate(alice2, 'sid-third', bob.full),
                     'item-not-found', 'cancel')
        assert activate(alice, 'sid-third', bob.full).get('type') == 'result'
    finally:
        t.close()
        i.close()


def test_activation_before_both_connected(server, im):
    alice, bob = im('alice@localhost'), im('bob@localhost')
    hsh = stream_hash('sid-early-act', alice.full, bob.full)
    assert_error(activate(alice, 'sid-early-act', bob.full),
                 'item-not-found', 'cancel')
    t = socks5(server.proxy_port, hsh)
    try:
        assert_error(activate(alice, 'sid-early-act', bob.full),
                     'not-allowed', 'cancel')
        i = socks5(server.proxy_port, hsh)
        try:
            assert activate(alice, 'sid-early-act',
                            bob.full).get('type') == 'result'
            transfer(i, t, 5000, 10)
        finally:
            i.close()
    finally:
        t.close()


@pytest.mark.parametrize('greeting,request_,answer', [
    (b'\x04\x01\x00', None, b'\x05\xff'),           # SOCKS4
    (b'\x05\x01\x02', None, b'\x05\xff'),           # user/password only
    (b'\x05\x00', None, b'\x05\xff'),               # no method at all
    (b'\x05\x01\x00', b'\x05\x02\x00\x03\x28' + b'a' * 40 + b'\x00\x00',
     b'\x05\x07'),                                  # BIND
    (b'\x05\x01\x00', b'\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x50',
     b'\x05\x08'),                                  # an IPv4 address
    (b'\x05\x01\x00', b'\x05\x01\x00\x03\x0bexample.org\x00\x50',
     b'\x05\x04'),                                  # not a hash
    (b'\x05\x01\x00', b'\x05\x01\x00\x03\x28' + b'g' * 40 + b'\x00\x00',
     b'\x05\x04'),                                  # not hex
])
def test_socks5_refusals(server, greeting, request_, answer):
    if request_ is None:
        got = socks5_refused(server.proxy_port, greeting)
        assert got == answer
    else:
        got = socks5_refused(server.proxy_port, greeting, request_)
        assert got[:2] == answer, got
    server.assert_serves()


def test_other_host_accounts_forbidden(certificate):
    """proxy.other.test serves accounts of other.test only."""
    srv = ProxyServer(certificate, extra='host "other.test" {\n'
                      '\tcertificate "cert.pem"\n\tkey "key.pem"\n}').start()
    im = IMFactory(srv)
    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        el = alice.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                         to='other.test')
        jids = [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]
        assert 'proxy.other.test' in jids, tostr(el)
        el = alice.iq('get', "<query xmlns='%s'/>" % NS_BS,
                      to='proxy.other.test')
        assert_error(el, 'forbidden', 'auth')
        hsh = stream_hash('sid-x', alice.full, bob.full)
        t = socks5(srv.proxy_port, hsh)
        i = socks5(srv.proxy_port, hsh)
        try:
            assert_error(activate(alice, 'sid-x', bob.full,
                                  to='proxy.other.test'), 'forbidden', 'auth')
            assert activate(alice, 'sid-x', bob.full).get('type') == 'result'
        finally:
            t.close()
            i.close()
    finally:
        im.close_all()
        srv.stop()


# -- timeouts and limits --

@pytest.fixture(scope='module')
def limited(certificate):
    srv = ProxyServer(certificate, limits={
        'proxy65-timeout': 1, 'proxy65-idle-timeout': 2,
        'proxy65-user-streams': 1, 'proxy65-streams': 2,
        'proxy65-pending': 4}).start()
    srv.adduser('carol@localhost', 'carol-secret')
    yield srv
    srv.stop()


@pytest.fixture
def lim_im(limited):
    f = IMFactory(limited)
    yield f
    f.close_all()


def test_unactivated_connection_times_out(limited):
    start = time.monotonic()
    s = socks5(limited.proxy_port, 'a' * 40)
    try:
        assert_closed(s, timeout=5)
        assert 0.5 < time.monotonic() - start < 4
    finally:
        s.close()
    # A handshake that never finishes: the same deadline.
    s = socket.create_connection(('127.0.0.1', limited.proxy_port))
    try:
        s.sendall(b'\x05')
        assert_closed(s, timeout=5)
    finally:
        s.close()


def test_idle_stream_times_out(limited, lim_im):
    alice, bob = lim_im('alice@localhost'), lim_im('bob@localhost')
    t, i = pair(limited, alice, bob, 'sid-idle')
    try:
        assert activate(alice, 'sid-idle', bob.full).get('type') == 'result'
        # Past proxy65-timeout, the active stream lives on while bytes
        # move, then idles out.
        for _ in range(3):
            time.sleep(0.6)
            i.sendall(b'x')
            assert recv_exact(t, 1) == b'x'
        start = time.monotonic()
        assert_closed(t, timeout=6)
        assert_closed(i, timeout=2)
        assert time.monotonic() - start > 1
    finally:
        t.close()
        i.close()


def test_stream_limits(limited, lim_im):
    alice, bob = lim_im('alice@localhost'), lim_im('bob@localhost')
    carol = lim_im('carol@localhost')
    socks = []
    try:
        t, i = pair(limited, alice, bob, 'sid-l1')
        socks += [t, i]
        assert activate(alice, 'sid-l1', bob.full).get('type') == 'result'
        # proxy65-user-streams 1: alice's second stream waits.
        t2, i2 = pair(limited, alice, bob, 'sid-l2')
        socks += [t2, i2]
        assert_error(activate(alice, 'sid-l2', bob.full),
                     'resource-constraint', 'wait')
        # Another account may.
        t3, i3 = pair(limited, bob, alice, 'sid-l3')
        socks += [t3, i3]
        assert activate(bob, 'sid-l3', alice.full).get('type') == 'result'
        # proxy65-streams 2: nobody else now.
        assert_error(activate(carol, 'sid-l4', bob.full),
                     'item-not-found', 'cancel')
        t4, i4 = pair(limited, carol, bob, 'sid-l4')
        socks += [t4, i4]
        assert_error(activate(carol, 'sid-l4', bob.full),
                     'resource-constraint', 'wait')
        # proxy65-pending 4 (t2, i2, t4, i4 wait): the next is refused
        # at once.
        s = socket.create_connection(('127.0.0.1', limited.proxy_port))
        socks.append(s)
        assert_closed(s, timeout=2)
        # One ends: alice may start another.
        t.close()
        i.close()
        deadline = time.monotonic() + 5
        while True:
            el = activate(alice, 'sid-l2', bob.full)
            if el.get('type') == 'result' or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert el.get('type') == 'result', tostr(el)
        transfer(i2, t2, 1000, 1000)
    finally:
        for s in socks:
            s.close()
    limited.assert_serves()


@pytest.mark.parametrize('key', ['proxy65-stream-rate', 'proxy65-user-rate',
                                 'proxy65-rate'])
def test_rate_limit(certificate, key):
    rate = 256 * 1024
    srv = ProxyServer(certificate, limits={key: rate}).start()
    im = IMFactory(srv)
    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        t, i = pair(srv, alice, bob, 'sid-rate')
        try:
            assert activate(alice, 'sid-rate',
                            bob.full).get('type') == 'result'
            start = time.monotonic()
            # A burst of one second, then the rate: 3 x rate takes 2 s.
            transfer(i, t, 3 * rate, 0)
            assert time.monotonic() - start > 1.5
        finally:
            t.close()
            i.close()
    finally:
        im.close_all()
        srv.stop()


def test_metrics(certificate):
    import http.client
    http_port, = free_ports(1)
    srv = ProxyServer(certificate, proxy_extra='listen http %d address '
                      '127.0.0.1\nmetrics {\n\tlistener %d\n}'
                      % (http_port, http_port)).start()
    im = IMFactory(srv)

    def metrics():
        conn = http.client.HTTPConnection('127.0.0.1', http_port, timeout=10)
        try:
            conn.request('GET', '/metrics', headers={'Host': 'localhost'})
            r = conn.getresponse()
            assert r.status == 200
            lines = r.read().decode().splitlines()
        finally:
            conn.close()
        return {ln.rsplit(' ', 1)[0]: float(ln.rsplit(' ', 1)[1])
                for ln in lines if ln.startswith('xmppd_proxy65')}

    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        t, i = pair(srv, alice, bob, 'sid-metrics')
        try:
            m = metrics()
            assert m['xmppd_proxy65_streams{state="waiting"}'] == 2, m
            assert m['xmppd_proxy65_activations_total'] == 0, m
            assert activate(alice, 'sid-metrics',
                            bob.full).get('type') == 'result'
            transfer(i, t, 100000, 2345)
            m = metrics()
            assert m['xmppd_proxy65_streams{state="waiting"}'] == 0, m
            assert m['xmppd_proxy65_streams{state="active"}'] == 1, m
            assert m['xmppd_proxy65_activations_total'] == 1, m
            assert m['xmppd_proxy65_bytes_total'] == 102345, m
            import json
            r = srv.ctl('--json', 'stats')
            assert r.returncode == 0, r.stderr
            st = json.loads(r.stdout)
            assert (st['proxy65-waiting'], st['proxy65-active'],
                    st['proxy65-bytes']) == (0, 1, 102345), st
        finally:
            t.close()
            i.close()
    finally:
        im.close_all()
        srv.stop()


# -- a real client library --

def test_slixmpp_transfer_through_proxy(server):
    """slixmpp's XEP-0065 plugin, which only knows mediated streams: the
    requester finds proxy.localhost through disco, asks its streamhost,
    offers it to the target, which connects and says so; the requester
    connects and activates; a 10 MiB file goes one way intact (issue
    18), an answer the other."""
    import asyncio
    from im_helpers import run_async, slixmpp_started, until

    payload = os.urandom(10 * 1024 * 1024)
    reply = b'thanks: ' + hashlib.sha256(payload).hexdigest().encode()
    got = {'a': bytearray(), 'b': bytearray()}
    clients = []
    plugins = ['xep_0030', ('xep_0065', {'auto_accept': True})]

    async def scenario(loop):
        xa, sa = slixmpp_started(server, 'alice@localhost', plugins, loop)
        xb, sb = slixmpp_started(server, 'bob@localhost', plugins, loop)
        clients.extend([xa, xb])
        await sa
        await sb
        streams = []
        xb.add_event_handler('socks5_stream', streams.append)
        xb.add_event_handler('socks5_data', got['b'].extend)
        xa.add_event_handler('socks5_data', got['a'].extend)
        proxies = await xa.plugin['xep_0065'].discover_proxies()
        assert list(proxies) == [PROXY], proxies
        assert proxies[PROXY][0] == '127.0.0.1'
        assert int(proxies[PROXY][1]) == server.proxy_port
        sock = await xa.plugin['xep_0065'].handshake(xb.boundjid)
        assert sock is not None, 'handshake failed'
        await until(lambda: streams, 'stream at the target')
        await sock.write(payload)
        await until(lambda: len(got['b']) >= len(payload), 'payload', 60)
        assert hashlib.sha256(got['b']).digest() == \
            hashlib.sha256(payload).digest()
        await streams[0].write(reply)
        await until(lambda: got['a'] == reply, 'reply')
        xa.disconnect()
        xb.disconnect()
        await asyncio.sleep(0.1)

    run_async(scenario, clients, timeout=120)


def test_back_pressure(server, im):
    """A target that does not read for a while: the proxy stops reading
    from the initiator instead of queueing (output-max, 4 MiB, would cut
    the target off otherwise), and everything arrives once it reads."""
    alice, bob = im('alice@localhost'), im('bob@localhost')
    t, i = pair(server, alice, bob, 'sid-slow')
    size = 24 * 1024 * 1024
    data = os.urandom(size)
    sent = []
    try:
        assert activate(alice, 'sid-slow', bob.full).get('type') == 'result'

        def send():
            i.settimeout(60)
            i.sendall(data)
            sent.append(True)
        th = threading.Thread(target=send)
        th.start()
        time.sleep(1.5)
        # Kernel buffers on both sides and 64 KiB at the proxy hold less
        # than this: the sender is still blocked.
        assert not sent
        got = recv_exact(t, size, timeout=60)
        th.join(30)
        assert sent
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    finally:
        t.close()
        i.close()
    server.assert_serves()


def test_reload(certificate):
    """A reload turns the host's proxy off (gone from disco) and on again
    under another domain; new limits apply."""
    import signal
    srv = ProxyServer(certificate).start()
    im = IMFactory(srv)

    def reload():
        srv.conf.write_text(srv.config_text())
        mark = len(srv.stderr_text())
        srv.signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while 'configuration and certificates reloaded' not in \
                srv.stderr_text()[mark:]:
            assert time.monotonic() < deadline, srv.stderr_tail()
            time.sleep(0.05)

    def items(c):
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                     to='localhost')
        return [i.get('jid') for i in el.find(q(NS_DISCO_ITEMS, 'query'))]

    try:
        c, bob = im('alice@localhost'), im('bob@localhost')
        assert PROXY in items(c)
        srv.host_extra = '\tproxy65 off'
        reload()
        assert PROXY not in items(c)
        assert_error(c.iq('get', "<query xmlns='%s'/>" % NS_BS, to=PROXY),
                     'remote-server-not-found', 'cancel')
        srv.host_extra = '\tproxy65 files.localhost'
        srv.limits['proxy65-user-streams'] = 1
        reload()
        assert 'files.localhost' in items(c)
        socks = []
        try:
            for sid in ('r1', 'r2'):
                socks += pair(srv, c, bob, sid)
            assert activate(c, 'r1', bob.full,
                            to='files.localhost').get('type') == 'result'
            assert_error(activate(c, 'r2', bob.full, to='files.localhost'),
                         'resource-constraint', 'wait')
        finally:
            for s in socks:
                s.close()
    finally:
        im.close_all()
        srv.stop()


def test_shutdown_with_streams(certificate):
    """SIGTERM with a stream active and a connection waiting: both are
    closed and the daemon exits cleanly."""
    srv = ProxyServer(certificate).start()
    im = IMFactory(srv)
    socks = []
    try:
        alice, bob = im('alice@localhost'), im('bob@localhost')
        socks += pair(srv, alice, bob, 'sid-stop')
        assert activate(alice, 'sid-stop', bob.full).get('type') == 'result'
        socks.append(socks5(srv.proxy_port, 'b' * 40))
        transfer(socks[1], socks[0], 1000, 1000)
        srv.stop()
        for s in socks:
            assert_closed(s, timeout=2)
    finally:
        for s in socks:
            s.close()
        im.close_all()
