"""preauth-connections-per-ip under attack from a shared address: many
users behind one NAT, one of them holding idle and half-open connections.
When a new connection would go past the limit, the address's
unauthenticated connection that has made the least progress (the oldest
without a complete stream header, else the oldest) is closed to make
room, so a real client from that address still gets in.

The daemon's side is read from /proc: which TCP connections from the
attacker's address its descriptors hold open, after every connection it
accepted.  Attackers connect from 127.0.0.2; the address under test is
the attacker's own (the NAT case), not another one."""

import os
import re
import select
import signal
import socket
import struct
import threading
import time

from xmpp_raw import assert_sasl_failure, assert_sasl_success, source_address

ATTACKER = '127.0.0.2'
CAP = 16                       # the default preauth-connections-per-ip

HEADER = ("<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          "xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
          "version='1.0'>")
HALF_HEADER = HEADER[:70]      # stops inside the xmlns:stream attribute

EVICT_RE = (r'^.*c2s (\d+) 127\.0\.0\.2:(\d+): closed to make room for '
            r'c2s (\d+) \(preauth-connections-per-ip (\d+) for '
            r'127\.0\.0\.2\): (.*), not '
            r'authenticated after \d+\.\d s$')
NO_HEADER = 'the oldest without a complete stream header'
ALL_HEADERS = 'the oldest, all have sent a stream header'


# --- the daemon's view ----------------------------------------------------------

def server_peers(srv, ip):
    """Source ports of the TCP connections from ip whose sockets the
    daemon holds open (its descriptors, /proc/PID/fd, against
    /proc/net/tcp)."""
    fd_dir = '/proc/%d/fd' % srv.proc.pid
    inodes = set()
    for fd in os.listdir(fd_dir):
        try:
            link = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue                  # closed meanwhile
        if link.startswith('socket:['):
            inodes.add(link[len('socket:['):-1])
    want = '%08X' % struct.unpack('<I', socket.inet_aton(ip))[0]
    ports = set()
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            host, port = fields[2].split(':')
            if host == want and fields[9] in inodes:
                ports.add(int(port, 16))
    return ports


def closed_by_server(sock):
    """The server has closed this connection (EOF or reset); bytes it
    sent (a stream header, features) are read and dropped."""
    while select.select([sock], [], [], 0)[0]:
        try:
            if not sock.recv(65536):
                return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except BlockingIOError:
            return False
    return False


def port_of(sock):
    return sock.getsockname()[1]


def wait_accepted(srv, sock, timeout=3):
    """Wait until the daemon holds the connection (accepted); fails if it
    closes it first (refused at accept)."""
    port = port_of(sock)
    deadline = time.monotonic() + timeout
    while port not in server_peers(srv, ATTACKER):
        assert not closed_by_server(sock), (
            'connection from port %d refused at accept' % port)
        assert time.monotonic() < deadline, 'connection %d not accepted' \
            % port
        time.sleep(0.005)


def evictions(srv):
    """(victim port, new connection id, limit, reason) per eviction line,
    in log order."""
    return [(int(m[1]), int(m[2]), int(m[3]), m[4]) for m in re.findall(
        EVICT_RE, srv.stderr_text(), re.M)]


def conn_ids(srv):
    """Connection id -> source port, for the attacker's connections."""
    return {int(i): int(p) for i, p in re.findall(
        r'conn (\d+) 127\.0\.0\.2:(\d+): accepted', srv.stderr_text())}


def conn_id(srv, s):
    """The daemon's id for the connection (from its accept log line)."""
    return {p: i for i, p in conn_ids(srv).items()}[s.port]


def wait_for(cond, timeout=3, what='condition'):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


# --- the attacker's connections -------------------------------------------------

class Stalled:
    """One stalled connection from the attacker's address: 'idle' (TCP
    only), 'tls' (direct TLS port, no ClientHello: stuck before its
    handshake), 'half' (half a stream header) or 'header' (a complete
    stream header, answered with features, then silence)."""

    def __init__(self, srv, kind):
        self.kind = kind
        port = srv.tls_port if kind == 'tls' else srv.c2s_port
        self.sock = socket.create_connection(('127.0.0.1', port),
                                             source_address=(ATTACKER, 0))
        self.port = port_of(self.sock)
        if kind == 'half':
            self.sock.sendall(HALF_HEADER.encode())
        elif kind == 'header':
            self.sock.sendall(HEADER.encode())
            got = b''
            self.sock.settimeout(3)
            while b'</stream:features>' not in got:
                data = self.sock.recv(65536)
                assert data, 'closed before the stream features: %r' % got
                got += data
        self.sock.setblocking(False)

    @property
    def has_header(self):
        return self.kind == 'header'

    def close(self):
        self.sock.close()


def expected_victim(open_list):
    """The rule: the oldest without a complete header, else the oldest."""
    for s in open_list:
        if not s.has_header:
            return s
    return open_list[0]


def ping(c):
    c.send("<iq type='get' id='p1' to='localhost'>"
           "<ping xmlns='urn:xmpp:ping'/></iq>")
    el = c.expect_stanza('iq')
    assert el.get('id') == 'p1' and el.get('type') == 'result'


def login_from(srv, ip, resource):
    with source_address(ip):
        return srv.login('alice@localhost', resource=resource)


# --- tests ------------------------------------------------------------------------

def test_sixty_stalled_then_login_from_same_address(server_factory):
    """60 stalled connections from one address (idle, half a header, a
    direct TLS connection that never says hello, a few with a complete
    header): every one is accepted, each past the 16th closes the
    address's oldest connection without a complete header (checked
    against the log, in order, and on the sockets), never more than 16
    are open at the daemon, the complete-header ones all survive, and
    then a full login (STARTTLS, SASL, bind) from that address takes
    under 2 s."""
    srv = server_factory()
    kinds = []
    for i in range(60):
        if i in (0, 1, 2, 30):
            kinds.append('header')
        elif i % 5 == 4:
            kinds.append('tls')
        else:
            kinds.append('half' if i % 2 else 'idle')
    stalled, open_list, expected = [], [], []
    try:
        for kind in kinds:
            if len(open_list) >= CAP:
                victim = expected_victim(open_list)
                open_list.remove(victim)
                expected.append(victim)
            s = Stalled(srv, kind)
            stalled.append(s)
            open_list.append(s)
            wait_accepted(srv, s.sock)
            held = server_peers(srv, ATTACKER)
            assert len(held) <= CAP, (
                '%d pre-auth connections from one address open after the '
                '%dth' % (len(held), len(stalled)))
            assert held == {o.port for o in open_list}, (
                'open at the daemon: %s, expected %s'
                % (sorted(held), sorted(o.port for o in open_list)))
        ev = evictions(srv)
        assert [e[0] for e in ev] == [v.port for v in expected]
        assert all(e[2] == CAP and e[3] == NO_HEADER for e in ev), ev
        ids = conn_ids(srv)
        assert [ids[e[1]] for e in ev] == [s.port for s in stalled[CAP:]]
        for s in expected:
            wait_for(lambda: closed_by_server(s.sock),
                     what='%s connection %d not closed' % (s.kind, s.port))
        for s in open_list:
            assert not closed_by_server(s.sock), (
                '%s connection %d closed' % (s.kind, s.port))
        headers = [s for s in stalled if s.has_header]
        assert all(s in open_list for s in headers)

        # a real user behind the same address
        victim = expected_victim(open_list)
        t0 = time.monotonic()
        c = login_from(srv, ATTACKER, 'behind-nat')
        took = time.monotonic() - t0
        try:
            assert took < 2.0, 'login took %.2f s' % took
            ping(c)
            open_list.remove(victim)
            wait_for(lambda: closed_by_server(victim.sock),
                     what='no connection closed for the login')
            held = server_peers(srv, ATTACKER) - {port_of(c.sock)}
            assert held == {o.port for o in open_list}
            assert len(evictions(srv)) == len(expected) + 1
            assert evictions(srv)[-1][0] == victim.port
        finally:
            c.close()
    finally:
        for s in stalled:
            s.close()
    srv.assert_serves()


def test_victim_order_and_slot_release(server_factory):
    """preauth-connections-per-ip 3: with three complete headers the
    oldest goes (all have made the same progress); then a newer idle one
    goes before two older ones with a header; a connection that
    authenticates leaves the count (the next one closes nobody)."""
    srv = server_factory(limits={'preauth-connections-per-ip': 3})
    conns = []

    def new(kind):
        s = Stalled(srv, kind)
        conns.append(s)
        wait_accepted(srv, s.sock)
        return s

    try:
        a, b, c = new('header'), new('header'), new('header')
        assert len(evictions(srv)) == 0
        d = new('idle')
        assert evictions(srv) == [(a.port, conn_id(srv, d), 3, ALL_HEADERS)]
        wait_for(lambda: closed_by_server(a.sock), what='a not closed')
        assert server_peers(srv, ATTACKER) == {b.port, c.port, d.port}
        e = new('half')
        assert evictions(srv)[1:] == [(d.port, conn_id(srv, e), 3,
                                       NO_HEADER)]
        assert server_peers(srv, ATTACKER) == {b.port, c.port, e.port}
        assert not closed_by_server(b.sock)
        assert not closed_by_server(c.sock)

        # one of the address's streams authenticates: two left counting
        with source_address(ATTACKER):
            u = srv.client()
        try:
            u.open_stream()           # evicts e (no header)
            assert evictions(srv)[-1][0] == e.port
            u.starttls()
            u.open_stream()
            assert_sasl_success(u.sasl_plain(
                'alice', srv.users['alice@localhost']))
            u.open_stream()
            u.bind('authed')
            f = new('idle')
            assert len(evictions(srv)) == 3, 'authenticated stream counted'
            assert server_peers(srv, ATTACKER) == {b.port, c.port, f.port,
                                                   port_of(u.sock)}
            g = new('idle')
            assert evictions(srv)[-1][0] == f.port
            assert server_peers(srv, ATTACKER) == {b.port, c.port, g.port,
                                                   port_of(u.sock)}
            ping(u)
        finally:
            u.close()
    finally:
        for s in conns:
            s.close()
    srv.assert_serves()


def test_banned_address_still_refused(server_factory):
    """A banned address's new connections are refused at accept as
    before; its connections still open are not closed to make room."""
    srv = server_factory(limits={'preauth-connections-per-ip': 3,
                                 'auth-failures-per-ip': 1,
                                 'auth-ban-time': '60s'})
    conns = []
    try:
        i1 = Stalled(srv, 'idle')
        conns.append(i1)
        wait_accepted(srv, i1.sock)
        with source_address(ATTACKER):
            x = srv.client()
        conns.append(x)
        x.open_stream()
        x.starttls()
        x.open_stream()
        auth = ("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' "
                "mechanism='PLAIN'>AGFsaWNlAHdyb25n</auth>")  # alice/wrong
        x.send(auth)
        assert_sasl_failure(x.next_element(), 'not-authorized')
        x.send(auth)                  # twice the limit: banned
        wait_for(lambda: re.search(r'refusing its connections for 60 s',
                                   srv.stderr_text()), what='no ban')
        i2 = Stalled(srv, 'idle')
        conns.append(i2)
        wait_for(lambda: closed_by_server(i2.sock), what='banned address '
                 'accepted')
        assert re.search(r'c2s \d+ 127\.0\.0\.2:%d: refused: 127\.0\.0\.2 '
                         r'banned'
                         % i2.port, srv.stderr_text())
        assert evictions(srv) == []
        assert server_peers(srv, ATTACKER) == {i1.port, port_of(x.sock)}
        assert not closed_by_server(i1.sock)
    finally:
        for s in conns:
            s.close()
    srv.assert_serves()


def test_limit_lowered_by_reload(server_factory):
    """Five idle connections, then SIGHUP lowers the limit to 2: the next
    connection closes the four oldest, so the address is at the new
    limit at once, never above it."""
    srv = server_factory(limits={'preauth-connections-per-ip': 5})
    conns = []
    try:
        for _ in range(5):
            conns.append(Stalled(srv, 'idle'))
            wait_accepted(srv, conns[-1].sock)
        srv.limits['preauth-connections-per-ip'] = 2
        srv.conf.write_text(srv.config_text())
        srv.signal(signal.SIGHUP)
        wait_for(lambda: 'configuration and certificates reloaded' in
                 srv.stderr_text(), what='no reload')
        new = Stalled(srv, 'half')
        conns.append(new)
        wait_accepted(srv, new.sock)
        assert [e[0] for e in evictions(srv)] == [s.port for s in conns[:4]]
        assert all(e[2] == 2 for e in evictions(srv))
        assert server_peers(srv, ATTACKER) == {conns[4].port, new.port}
    finally:
        for s in conns:
            s.close()
    srv.assert_serves()


def test_logins_while_address_floods(server_factory):
    """While the shared address keeps opening idle connections (one every
    5 ms, closing those the server closed), three logins from it succeed
    within 2 s each and stay usable; the flood never holds more than 16
    connections at the daemon."""
    srv = server_factory()
    stop = threading.Event()
    state = {'opened': 0, 'most': 0, 'error': None}
    flood_ports = set()
    socks = []                        # the flood's, closed by the test

    def held():
        return len(server_peers(srv, ATTACKER) & flood_ports)

    def flood():
        try:
            while not stop.is_set():
                s = socket.create_connection(('127.0.0.1', srv.c2s_port),
                                             source_address=(ATTACKER, 0))
                s.setblocking(False)
                socks.append(s)
                flood_ports.add(port_of(s))
                state['opened'] += 1
                for o in [o for o in socks if closed_by_server(o)]:
                    socks.remove(o)
                    o.close()
                # /proc is read while the daemon works: between accepting
                # a connection and closing the one it replaces it holds
                # both for microseconds (longer on a loaded machine); a
                # few more looks tell that apart from a 17th stream
                # really kept open.
                n = held()
                for _ in range(3):
                    if n <= CAP:
                        break
                    time.sleep(0.002)
                    n = held()
                state['most'] = max(state['most'], n)
                stop.wait(0.005)
        except Exception as e:        # reported by the main thread
            state['error'] = e

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    sessions = []
    try:
        wait_for(lambda: state['opened'] >= 3 * CAP, timeout=10,
                 what='flood did not start')
        for i in range(3):
            t0 = time.monotonic()
            c = login_from(srv, ATTACKER, 'nat%d' % i)
            sessions.append(c)
            took = time.monotonic() - t0
            assert took < 2.0, 'login %d took %.2f s' % (i, took)
        time.sleep(0.3)
        for c in sessions:
            ping(c)
        stop.set()
        t.join()
        assert state['error'] is None, state['error']
        assert 0 < state['most'] <= CAP, state['most']
        # every flood connection past the limit closed one before it
        wait_for(lambda: len(evictions(srv)) >= state['opened'] - CAP,
                 what='fewer evictions than connections past the limit')
        assert {e[0] for e in evictions(srv)} <= flood_ports, \
            'a login was closed'
    finally:
        stop.set()
        t.join()
        for c in sessions + socks:
            c.close()
    srv.assert_serves()

