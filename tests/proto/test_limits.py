"""The abuse limits of xmppd.conf(5) that issue 6 added: the stanza rate
limit with backpressure (stanzas-per-second, stanza-burst), unauthenticated
connections per address (preauth-connections-per-ip), the authentication
tarpit and ban (auth-failures-per-ip, auth-ban-time), and the XEP-0478
announcement of a stream's limits.  Each test asserts the exact error or
effect and the log line with the connection id, and ends with a fresh
client being served.  Attackers connect from 127.0.0.2 so that the limits
they hit are seen not to touch 127.0.0.1."""

import base64
import re
import time

from xmpp_raw import (NS_BIND, NS_CLIENT, NS_STREAM, NS_TLS, StreamClosed,
                      assert_sasl_failure, assert_sasl_success, q,
                      source_address, tostr)

NS_LIMITS = 'urn:xmpp:stream-limits:0'
ATTACKER = '127.0.0.2'


def client_from(ip, srv, **kw):
    with source_address(ip):
        return srv.client(**kw)


def tls_stream_from(ip, srv):
    """A STARTTLS'd, unauthenticated stream from ip; (client, features)."""
    c = client_from(ip, srv)
    try:
        c.open_stream()
        c.starttls()
        return c, c.open_stream()
    except BaseException:
        c.close()
        raise


def refused_at_accept(c, timeout=3):
    """The server closed the connection without a stream header."""
    try:
        c.send(c.stream_header())
    except OSError:
        return True
    try:
        c.read_header(timeout)
    except (StreamClosed, OSError):
        return True
    except AssertionError:
        return False          # timed out: still open, not refused
    return False


def log_lines(srv, pattern):
    return re.findall(pattern, srv.stderr_text(), re.M)


def wait_log(srv, pattern, timeout=3):
    deadline = time.monotonic() + timeout
    while True:
        found = log_lines(srv, pattern)
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def body(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


def flood_sessions(srv):
    """alice/flood floods bob/sink while carol/chat and dave/chat talk:
    their four bound streams."""
    srv.adduser('carol@localhost', 'carol-secret')
    srv.adduser('dave@localhost', 'dave-secret')
    return (srv.login('alice@localhost', resource='flood'),
            srv.login('bob@localhost', resource='sink'),
            srv.login('carol@localhost', resource='chat'),
            srv.login('dave@localhost', resource='chat'))


def receive_flood(sink, n, probe=None, limit=20.0, each=None):
    """Read the messages that come to sink until n came or limit seconds
    passed: [(message, arrival time)].  With probe (carol, dave: two
    streams of other users) carol sends dave a message before each read,
    and their latencies are returned too; each() runs after each read."""
    got, latencies, i = [], [], 0
    t_end = time.monotonic() + limit
    while len(got) < n and time.monotonic() < t_end:
        if probe is not None:
            t = time.monotonic()
            probe[0].message('dave@localhost/chat', 'hello %d' % i)
            el = probe[1].expect_stanza('message', timeout=2)
            latencies.append(time.monotonic() - t)
            assert body(el) == 'hello %d' % i, tostr(el)
            i += 1
        while True:
            el = sink.poll_element(0.05)
            if el is None:
                break
            if el.tag == q(NS_CLIENT, 'message'):
                got.append((el, time.monotonic()))
        if each is not None:
            each()
    return got, latencies


# --- stanzas-per-second --------------------------------------------------------

def test_stanza_flood_throttled_others_unaffected(server_factory):
    """stanzas-per-second 400, stanza-burst 50: 1200 messages (about
    110 KiB) sent in one write reach their recipient complete and in
    order, but no faster than the bucket allows ((1200 - 50) / 400 =
    2.9 s; what one 16 KiB read brings is processed at once, then reading
    pauses until the debt is paid); the flooding stream is paused, not
    closed, and a conversation between two other users keeps its latency
    meanwhile."""
    rate, burst, n = 400, 50, 1200
    srv = server_factory(limits={'stanzas-per-second': rate,
                                 'stanza-burst': burst})
    flooder, sink, carol, dave = flood_sessions(srv)
    try:
        flood = ''.join("<message to='bob@localhost/sink' type='chat' "
                        "id='f%d'><body>flood %d</body></message>" % (i, i)
                        for i in range(n))
        t0 = time.monotonic()
        flooder.send(flood)
        arrived, latencies = receive_flood(sink, n, (carol, dave))
        got = [el.get('id') for el, _ in arrived]
        last = arrived[-1][1] if arrived else t0
        assert got == ['f%d' % k for k in range(n)], (
            'lost or reordered: %d of %d arrived' % (len(got), n))
        took = last - t0
        assert took >= 0.8 * (n - burst) / rate, (
            'flood not throttled: %d messages in %.2f s' % (n, took))
        assert took < 10, took
        assert max(latencies) < 0.5, (
            'other users slowed down: %s' % ['%.3f' % x for x in latencies])
        # throttled, not closed: the flooder's stream still works
        flooder.message('alice@localhost/flood', 'still here')
        el = flooder.expect_stanza('message', timeout=5)
        assert body(el) == 'still here'
        assert wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.1:\d+: over %d stanzas '
                        r'per second \(burst %d\): reading paused' % (rate,
                                                                      burst))
    finally:
        for c in (flooder, sink, carol, dave):
            c.close()
    srv.assert_serves()


def test_stanza_rate_limit_off(server_factory):
    """stanzas-per-second 0: 400 messages in one write are not throttled
    (with the default 50/s and burst 200 they would take 4 s)."""
    srv = server_factory(limits={'stanzas-per-second': 0})
    a = srv.login('alice@localhost', resource='fast')
    b = srv.login('bob@localhost', resource='sink')
    try:
        n = 400
        t0 = time.monotonic()
        a.send(''.join("<message to='bob@localhost/sink' id='m%d'>"
                       "<body>%d</body></message>" % (i, i)
                       for i in range(n)))
        for i in range(n):
            el = b.expect_stanza('message')
            assert el.get('id') == 'm%d' % i
        assert time.monotonic() - t0 < 2.5
        assert not log_lines(srv, r'stanzas per second')
    finally:
        a.close()
        b.close()
    srv.assert_serves()


# --- preauth-connections-per-ip --------------------------------------------------

def test_preauth_connections_per_ip(server_factory):
    """preauth-connections-per-ip 3: a fourth unauthenticated connection
    from one address is accepted and the address's oldest one is closed
    to make room, with a log line; other addresses are not affected; a
    connection that authenticates gives its slot back (the next one
    closes nobody).  The order of victims is test_preauth_evict.py's."""
    srv = server_factory(limits={'preauth-connections-per-ip': 3})
    held = []
    try:
        for _ in range(3):
            c = client_from(ATTACKER, srv)
            held.append(c)
            c.open_stream()
        fourth = client_from(ATTACKER, srv)
        held.append(fourth)
        assert fourth.open_stream().tag == q(NS_STREAM, 'features')
        held[0].expect_eof()
        lines = wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.2:\d+: closed to '
                         r'make room for c2s \d+ '
                         r'\(preauth-connections-per-ip 3 for 127\.0\.0\.2\): '
                         r'the oldest, '
                         r'all have sent a stream header, not authenticated '
                         r'after \d+\.\d s$')
        assert len(lines) == 1, 'no log line for the eviction'
        # 127.0.0.1 is unaffected
        t0 = time.monotonic()
        srv.login('bob@localhost', resource='other-address').close()
        assert time.monotonic() - t0 < 2
        # one of the three authenticates: its slot is free again
        c = held[1]
        c.starttls()
        c.open_stream()
        assert_sasl_success(c.sasl_plain('alice',
                                         srv.users['alice@localhost']))
        c.open_stream()
        c.bind('from-attacker-address')
        c5 = client_from(ATTACKER, srv)
        held.append(c5)
        assert c5.open_stream().tag == q(NS_STREAM, 'features')
        assert len(log_lines(srv, r'closed to make room')) == 1, \
            'an authenticated stream still counted'
        for other in (held[2], fourth):
            assert other.poll_element(0.2) is None and not other.eof
    finally:
        for c in held:
            c.close()
    srv.assert_serves()


# --- auth-failures-per-ip, tarpit, auth-ban-time --------------------------------

def auth_plain(c, user, password):
    """Send PLAIN without waiting; returns the time it was sent."""
    msg = ('\0%s\0%s' % (user, password)).encode()
    c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
           "mechanism='PLAIN'>%s</auth>" % base64.b64encode(msg).decode())
    return time.monotonic()


def test_auth_tarpit_then_ban(server_factory):
    """auth-failures-per-ip 2, auth-ban-time 3s: two failures are answered
    at once; past the limit every attempt (even with the right password)
    gets <temporary-auth-failure/> after the 2 s tarpit, while logins from
    another address go on promptly; at four failures (twice the limit)
    the address is banned: its new connections are closed at accept; when
    the ban is over it may log in again."""
    srv = server_factory(limits={'auth-failures-per-ip': 2,
                                 'auth-ban-time': '3s'})
    alice_pw = srv.users['alice@localhost']
    # two ordinary failures, answered at once
    for _ in range(2):
        c, _f = tls_stream_from(ATTACKER, srv)
        try:
            t0 = auth_plain(c, 'alice', 'wrong')
            assert_sasl_failure(c.next_element(), 'not-authorized')
            assert time.monotonic() - t0 < 1.0
        finally:
            c.close()
    # third: throttled; the right password does not help; the tarpit
    # holds the answer while another address logs in unhindered
    c, _f = tls_stream_from(ATTACKER, srv)
    try:
        t0 = auth_plain(c, 'alice', alice_pw)
        t1 = time.monotonic()
        srv.login('bob@localhost', resource='during-tarpit').close()
        assert time.monotonic() - t1 < 1.0, 'the tarpit blocked the loop'
        assert_sasl_failure(c.next_element(), 'temporary-auth-failure')
        assert time.monotonic() - t0 >= 1.8, 'no tarpit delay'
        # fourth, on the same stream: twice the limit, the address is
        # banned (the answer is tarpitted as well)
        t0 = auth_plain(c, 'alice', 'wrong')
        assert_sasl_failure(c.next_element(), 'temporary-auth-failure')
        assert time.monotonic() - t0 >= 1.8
    finally:
        c.close()
    assert wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.2:\d+: 4 authentication '
                    r'failures from 127\.0\.0\.2 within 60 s: refusing its '
                    r'connections for 3 s$')
    banned_at = time.monotonic()
    c = client_from(ATTACKER, srv)
    try:
        assert refused_at_accept(c), 'banned address accepted'
    finally:
        c.close()
    assert wait_log(srv, r'^.*c2s \d+ 127\.0\.0\.2:\d+: refused: '
                    r'127\.0\.0\.2 banned for \d+ s more after '
                    r'authentication failures$')
    srv.assert_serves()               # 127.0.0.1 is not banned
    # after the ban the address starts afresh
    time.sleep(max(0, banned_at + 3.2 - time.monotonic()))
    c, _f = tls_stream_from(ATTACKER, srv)
    try:
        auth_plain(c, 'alice', alice_pw)
        assert_sasl_success(c.next_element())
    finally:
        c.close()


def test_no_ban_when_ban_time_is_zero(server_factory):
    """auth-ban-time 0: past twice the limit the address is still only
    tarpitted, never refused at accept."""
    srv = server_factory(limits={'auth-failures-per-ip': 1,
                                 'auth-ban-time': 0})
    c, _f = tls_stream_from(ATTACKER, srv)
    try:
        for cond in ('not-authorized', 'temporary-auth-failure',
                     'temporary-auth-failure'):
            auth_plain(c, 'alice', 'wrong')
            assert_sasl_failure(c.next_element(), cond)
    finally:
        c.close()
    c, features = tls_stream_from(ATTACKER, srv)
    c.close()
    assert not log_lines(srv, r'refusing its connections')


# --- XEP-0478 ------------------------------------------------------------------

def announced(features):
    lim = features.find(q(NS_LIMITS, 'limits'))
    assert lim is not None, 'no XEP-0478 <limits/>: %s' % tostr(features)
    out = {}
    for ch in lim:
        assert ch.tag in (q(NS_LIMITS, 'max-bytes'),
                          q(NS_LIMITS, 'idle-seconds')), tostr(lim)
        out[ch.tag.split('}')[1]] = int(ch.text)
    return out


def test_stream_limits_announced(server_factory):
    """XEP-0478: after TLS the pre-authentication stanza limit; after
    authentication stanza-size and the silence before the server pings
    (ping-interval) or closes (idle-timeout), whichever is shorter.  With
    STARTTLS required nothing but <starttls/> is offered before TLS."""
    srv = server_factory(limits={'stanza-size': 20000,
                                 'preauth-stanza-size': '8K',
                                 'ping-interval': '2m',
                                 'idle-timeout': '90s'})
    c = srv.client()
    try:
        features = c.open_stream()
        assert [ch.tag for ch in features] == [q(NS_TLS, 'starttls')]
        c.starttls()
        assert announced(c.open_stream()) == {'max-bytes': 8192}
        assert_sasl_success(c.sasl_plain('alice',
                                         srv.users['alice@localhost']))
        features = c.open_stream()
        assert features.find(q(NS_BIND, 'bind')) is not None
        assert announced(features) == {'max-bytes': 20000,
                                       'idle-seconds': 90}
        c.bind('limits')
        # the announced size is the one enforced
        envelope = "<message to='alice@localhost/limits' id='fits'>" \
            "<body>%s</body></message>"
        fits = envelope % ('x' * (20000 - len(envelope) - 100))
        c.send(fits)
        el = c.expect_stanza('message')
        assert el.get('id') == 'fits'
        c.send(envelope.replace('fits', 'over') % ('x' * 20001))
        c.expect_stream_error('policy-violation')
    finally:
        c.close()
    srv.assert_serves()


def test_stream_limits_idle_seconds_from_ping_interval(server):
    """Defaults: stanza-size as configured by the test fixture (256 KiB),
    ping-interval 5m before idle-timeout 1h: idle-seconds is 300; before
    authentication only max-bytes (preauth-stanza-size, 16 KiB)."""
    c = server.client(tls=True)
    try:
        assert announced(c.open_stream()) == {'max-bytes': 16384}
        assert_sasl_success(c.sasl_plain('alice',
                                         server.users['alice@localhost']))
        assert announced(c.open_stream()) == {'max-bytes': 262144,
                                              'idle-seconds': 300}
    finally:
        c.close()
    server.assert_serves()


def test_optional_tls_announces_limits_before_tls(server_factory):
    """With STARTTLS optional the plaintext features carry the limits too
    (RFC 6120 §5.3.1 restricts only the required case)."""
    srv = server_factory(starttls='optional')
    c = srv.client()
    try:
        assert announced(c.open_stream()) == {'max-bytes': 16384}
    finally:
        c.close()
    srv.assert_serves()
