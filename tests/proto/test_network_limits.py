"""Per-IP limits count networks, not addresses (issue 13, item 3):
limits ipv6-prefix (64 by default) and ipv4-prefix (32) key every per-IP
counter, so one routed IPv6 /64 does not escape them.  With ipv4-prefix
24 and loopback addresses (any 127/8 address reaches the daemon on
Linux): connections-per-ip, preauth-connections-per-ip, the
authentication failures and the ban, and registrations-per-ip each count
two addresses of one /24 together and leave another /24 alone, with log
lines that name the network.  As root, with two addresses of one IPv6
/64 and one outside it added to the loopback device (and removed after):
failures from one address count for the other, the ban covers both, the
address outside is served.  The key function itself is unit-tested in
tests/unit/test_netkey.c."""

import os
import random
import re
import shutil
import socket
import subprocess
import time

import pytest

from test_im_register import (REGISTER_RATE_LIMITED, fields, new_name,
                              reg_iq)
from test_limits import (auth_plain, client_from, log_lines,
                         refused_at_accept, tls_stream_from, wait_log)
import xmpp_raw
from xmpp_raw import (NS_STREAM, assert_sasl_failure, assert_sasl_success,
                      assert_stanza_error, q, tostr)

PREFIX24 = {'ipv4-prefix': 24}


def esc(s):
    return re.escape(s)


def fail_auth(ip, srv, condition='not-authorized'):
    """One wrong password from ip, answered with condition."""
    c, _ = tls_stream_from(ip, srv)
    try:
        auth_plain(c, 'alice', 'wrong')
        assert_sasl_failure(c.next_element(), condition)
    finally:
        c.close()


def login_ok(ip, srv):
    """alice logs in from ip: the network of ip is not banned."""
    c, _ = tls_stream_from(ip, srv)
    try:
        auth_plain(c, 'alice', srv.users['alice@localhost'])
        assert_sasl_success(c.next_element())
    finally:
        c.close()


def ban_shared_network(srv, first, second, outside, net):
    """auth-failures-per-ip 2: two failures from first, then second is
    already throttled (<temporary-auth-failure/> after the tarpit) and
    its second failure is the fourth of the network: banned.  Both
    addresses are refused at accept; outside logs in."""
    fail_auth(first, srv)
    fail_auth(first, srv)
    fail_auth(second, srv, 'temporary-auth-failure')
    fail_auth(second, srv, 'temporary-auth-failure')
    assert wait_log(srv, r'^.*c2s \d+ %s:\d+: 4 authentication failures '
                    r'from %s within 60 s: refusing its connections for '
                    r'60 s$' % (esc(srv_addr(second)), esc(net)))
    for ip in (first, second):
        c = client_from(ip, srv)
        try:
            assert refused_at_accept(c), '%s accepted while %s is ' \
                'banned' % (ip, net)
        finally:
            c.close()
    assert wait_log(srv, r'^.*c2s \d+ %s:\d+: refused: %s banned for \d+ s '
                    r'more after authentication failures$'
                    % (esc(srv_addr(first)), esc(net)))
    t0 = time.monotonic()
    login_ok(outside, srv)
    assert time.monotonic() - t0 < 1.5, 'the address outside was slowed'


def srv_addr(ip):
    """How log lines write a peer's address before its port."""
    return '[%s]' % ip if ':' in ip else ip


# --- IPv4 networks (ipv4-prefix 24) ------------------------------------------------

def test_auth_failures_and_ban_by_ipv4_network(server_factory):
    srv = server_factory(limits=dict(PREFIX24, **{
        'auth-failures-per-ip': 2, 'auth-ban-time': '60s'}))
    ban_shared_network(srv, '127.0.5.2', '127.0.5.3', '127.0.6.2',
                       '127.0.5.0/24')
    srv.assert_serves()             # 127.0.0.1 is another /24


def test_connections_by_ipv4_network(server_factory):
    """connections-per-ip 3: two connections from .2 and one from .3 of
    127.0.7.0/24 fill it; a fourth from .4 is refused with a log line
    naming the network, while 127.0.8.2 connects."""
    srv = server_factory(limits=dict(PREFIX24, **{'connections-per-ip': 3}))
    held = []
    try:
        for ip in ('127.0.7.2', '127.0.7.2', '127.0.7.3'):
            c = client_from(ip, srv)
            held.append(c)
            c.open_stream()
        c = client_from('127.0.7.4', srv)
        held.append(c)
        assert refused_at_accept(c), 'a fourth connection of the /24'
        assert wait_log(srv, r'refusing connection from 127\.0\.7\.4: 3 '
                        r'connections from 127\.0\.7\.0/24 '
                        r'\(connections-per-ip\)$')
        c = client_from('127.0.8.2', srv)
        held.append(c)
        assert c.open_stream().tag == q(NS_STREAM, 'features')
    finally:
        for c in held:
            c.close()
    srv.assert_serves()


def test_preauth_connections_by_ipv4_network(server_factory):
    """preauth-connections-per-ip 2: a connection from 127.0.9.3 closes
    the oldest unauthenticated one of 127.0.9.2, of the same /24; one
    from 127.0.10.2 closes nothing."""
    srv = server_factory(limits=dict(PREFIX24, **{
        'preauth-connections-per-ip': 2}))
    held = []
    try:
        for _ in range(2):
            c = client_from('127.0.9.2', srv)
            held.append(c)
            c.open_stream()
        c = client_from('127.0.9.3', srv)
        held.append(c)
        assert c.open_stream().tag == q(NS_STREAM, 'features')
        held[0].expect_eof()
        assert wait_log(srv, r'^.*c2s \d+ 127\.0\.9\.2:\d+: closed to make '
                        r'room for c2s \d+ \(preauth-connections-per-ip 2 '
                        r'for 127\.0\.9\.0/24\): the oldest, all have sent '
                        r'a stream header')
        c = client_from('127.0.10.2', srv)
        held.append(c)
        assert c.open_stream().tag == q(NS_STREAM, 'features')
        assert len(log_lines(srv, r'closed to make room')) == 1
        assert held[1].poll_element(0.2) is None and not held[1].eof
    finally:
        for c in held:
            c.close()
    srv.assert_serves()


def register_from(ip, srv):
    c, _ = tls_stream_from(ip, srv)
    try:
        return reg_iq(c, 'set', fields(new_name(), 'pw'))
    finally:
        c.close()


def test_registrations_by_ipv4_network(server_factory):
    """registrations-per-ip 1: 127.0.11.2 registers, 127.0.11.3 of the
    same /24 is refused (<not-acceptable/>, wait) with a log line naming
    the network, 127.0.12.2 registers."""
    srv = server_factory(extra='registration on',
                         limits=dict(PREFIX24, **{'registrations-per-ip': 1}))
    el = register_from('127.0.11.2', srv)
    assert el.get('type') == 'result', tostr(el)
    el = register_from('127.0.11.3', srv)
    assert_stanza_error(el, 'iq', REGISTER_RATE_LIMITED[0],
                        etype=REGISTER_RATE_LIMITED[1])
    assert wait_log(srv, r'c2s \d+ 127\.0\.11\.3:\d+: registration refused: '
                    r'more than 1 from 127\.0\.11\.0/24 in an hour$')
    el = register_from('127.0.12.2', srv)
    assert el.get('type') == 'result', tostr(el)


# --- one IPv6 /64 (root) -------------------------------------------------------------

def ip_cmd(*args):
    return subprocess.run(['ip'] + list(args), capture_output=True,
                          text=True)


@pytest.fixture
def ipv6_lo():
    """Two addresses of one random ULA /64 and one of the next /64 on the
    loopback device: (inside1, inside2, outside, network); removed at the
    end.  Skips unless root with ip(8) and IPv6."""
    if os.geteuid() != 0:
        pytest.skip('adding addresses to the loopback device needs root')
    if shutil.which('ip') is None:
        pytest.skip('no ip(8) (iproute2)')
    if not os.path.exists('/proc/net/if_inet6'):
        pytest.skip('no IPv6 in this kernel or namespace')
    r = random.Random(os.getpid() ^ int(time.time()))
    g = 'fd00:%x:%x' % (r.randrange(1, 0xffff), r.randrange(1, 0xffff))
    sub = r.randrange(0, 0xfffe)
    addrs = ['%s:%x::1' % (g, sub), '%s:%x::2' % (g, sub),
             '%s:%x::1' % (g, sub + 1)]
    added = []
    try:
        for a in addrs:
            res = ip_cmd('-6', 'addr', 'add', a + '/64', 'dev', 'lo',
                         'nodad')
            if res.returncode != 0:
                pytest.skip('ip -6 addr add %s dev lo: %s'
                            % (a, res.stderr.strip()))
            added.append(a)
        yield addrs[0], addrs[1], addrs[2], '%s:%x::/64' % (g, sub)
    finally:
        for a in added:
            ip_cmd('-6', 'addr', 'del', a + '/64', 'dev', 'lo')


def test_auth_failures_and_ban_cover_an_ipv6_64(server_factory, ipv6_lo):
    """Default prefixes: the daemon also listens on the first address;
    failures from ::1 count for ::2 of the same /64 (throttled at its
    first attempt), the fourth bans the /64 (both refused at accept, the
    log names the /64), and the address of the next /64 logs in."""
    inside1, inside2, outside, net = ipv6_lo
    srv = server_factory(start=False, limits={'auth-failures-per-ip': 2,
                                              'auth-ban-time': '60s'})
    port = free_port6(inside1)
    srv.extra = 'listen c2s %d address %s starttls required' % (port,
                                                               inside1)
    srv.start()
    v6 = V6Server(srv, inside1, port)
    ban_shared_network(v6, inside1, inside2, outside, net)
    srv.assert_serves()             # 127.0.0.1 is untouched


def free_port6(addr):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        s.bind((addr, 0))
        return s.getsockname()[1]
    finally:
        s.close()


class V6Server:
    """The daemon as the helpers above see it, reached on its IPv6
    listener: client() connects to that address from the source address
    of client_from."""

    def __init__(self, srv, addr, port):
        self.srv, self.addr, self.port = srv, addr, port
        self.users = srv.users

    def client(self, **kw):
        return xmpp_raw.RawClient(self.port, host=self.addr, **kw)

    def stderr_text(self):
        return self.srv.stderr_text()

