"""Deadlines on the monotonic clock: the daemon runs under libfaketime
(FAKETIME_DONT_FAKE_MONOTONIC=1, its wall clock read from a file this test
rewrites), and its wall clock is stepped an hour forward or back while a
pre-authentication timeout, an idle timeout or a ping round runs.  Each
must end when due, not at once and not an hour late.

libfaketime comes from Debian (make deps installs it); when it is missing
the test installs it as root, and skips, saying why, when it cannot."""

import contextlib
import datetime
import glob
import os
import select
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from test_tls_policy import wait_log
from xmpp_raw import NS_CLIENT, q

LIB_GLOB = '/usr/lib/*/faketime/libfaketimeMT.so.1'
STEP = 3600
PREAUTH = 4        # preauth-timeout, idle-timeout, ping-interval/-timeout
STEP_AFTER = 0.5   # seconds into the wait when the wall clock steps


def find_libfaketime():
    libs = glob.glob(LIB_GLOB)
    return libs[0] if libs else None


@pytest.fixture(scope='module')
def libfaketime():
    """The multi-threaded libfaketime (the daemon has storage and worker
    threads), installed with apt-get when root and missing."""
    lib = find_libfaketime()
    if lib is None and os.geteuid() == 0 and shutil.which('apt-get'):
        env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
        cmd = ['apt-get', 'install', '-y', '-qq', 'libfaketime']
        if subprocess.run(cmd, env=env, capture_output=True).returncode:
            subprocess.run(['apt-get', 'update', '-qq'], env=env,
                           capture_output=True)
            subprocess.run(cmd, env=env, capture_output=True)
        lib = find_libfaketime()
    if lib is None:
        pytest.skip('libfaketime is not installed (Debian package '
                    'libfaketime; "make deps" as root installs it)')
    return lib


@contextlib.contextmanager
def environment(**env):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class WallClock:
    """The daemon's wall clock: FAKETIME_TIMESTAMP_FILE holds its offset
    from the real time, read on every call (FAKETIME_NO_CACHE)."""

    def __init__(self, path):
        self.path = path
        self.set(0)

    def set(self, offset):
        tmp = self.path.with_suffix('.new')
        tmp.write_text('%+d\n' % offset)
        os.replace(tmp, self.path)


@pytest.fixture
def faked_server(server_factory, libfaketime, tmp_path):
    """faked_server(limits) -> (Server, WallClock): a daemon whose wall
    clock the test steps; its monotonic clock is the real one."""
    def make(limits):
        clock = WallClock(tmp_path / 'faketime.rc')
        srv = server_factory(start=False, limits=limits)
        asan = os.environ.get('ASAN_OPTIONS', '')
        with environment(LD_PRELOAD=libfaketime,
                         FAKETIME_TIMESTAMP_FILE=str(clock.path),
                         FAKETIME_NO_CACHE='1',
                         FAKETIME_DONT_FAKE_MONOTONIC='1',
                         # ASan wants to be first; libfaketime only wraps
                         # clock calls.
                         ASAN_OPTIONS=(asan + ':' if asan else '') +
                         'verify_asan_link_order=0'):
            srv.start()
        return srv, clock
    return make


def wall_offset(srv):
    """The daemon's wall clock minus ours, from the time stamp of the line
    it logs for a connection made now."""
    start = len(srv.stderr_text())
    socket.create_connection(('127.0.0.1', srv.c2s_port), timeout=5).close()
    now = time.time()
    m = wait_log(srv, r'^(\S+)Z xmppd debug: conn \d+ \S+: accepted',
                 start=start)
    assert m, srv.stderr_tail()
    stamp = datetime.datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S.%f')
    return stamp.replace(tzinfo=datetime.timezone.utc).timestamp() - now


def step(srv, clock, offset):
    clock.set(offset)
    got = wall_offset(srv)
    assert abs(got - offset) < 60, (
        'the daemon\'s wall clock is %+.0f s from ours, not %+d: is '
        'libfaketime working?' % (got, offset))


def closed_at(sock, timeout):
    """When (time.monotonic()) the server closed sock, reading and
    dropping what it sends meanwhile; None if still open at timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sock], [], [],
                                max(0.0, deadline - time.monotonic()))
        if not r and not (isinstance(sock, ssl.SSLSocket) and
                          sock.pending()):
            continue
        try:
            if sock.recv(65536) == b'':
                return time.monotonic()
        except ssl.SSLWantReadError:
            continue
        except (OSError, ssl.SSLError):
            return time.monotonic()
    return None


def assert_due(t, start, due, what):
    assert t is not None, '%s: not within %.1f s (an hour late?)' % (what,
                                                                    due + 2)
    took = t - start
    assert due - 0.6 <= took <= due + 2.0, (
        '%s after %.2f s, due after %d s' % (what, took, due))


def expect_closed_when_due(srv, clock, c, t0, direction, what, logged,
                           after_step=None):
    """STEP_AFTER seconds after t0 the daemon's wall clock steps an hour
    in direction (then after_step() runs); c must be closed PREAUTH
    seconds after t0, saying logged in the log.  The clock is set back
    and the daemon must serve a fresh client."""
    try:
        time.sleep(max(0.0, t0 + STEP_AFTER - time.monotonic()))
        step(srv, clock, direction * STEP)
        if after_step is not None:
            after_step()
        assert_due(closed_at(c.sock, PREAUTH + 2), t0, PREAUTH, what)
        assert wait_log(srv, logged), srv.stderr_tail()
    finally:
        c.close()
    clock.set(0)
    srv.assert_serves()


@pytest.mark.parametrize('direction', [1, -1], ids=['forward', 'back'])
def test_preauth_timeout(faked_server, direction):
    """A stream that does not authenticate is closed preauth-timeout after
    it connected.  The step comes while it waits; forward, the client then
    does STARTTLS, which re-arms the deadline for the rest of the time (a
    wall-clock deadline was already past: closed at once)."""
    srv, clock = faked_server({'preauth-timeout': PREAUTH})
    c = srv.client()
    t0 = time.monotonic()
    c.open_stream()
    expect_closed_when_due(srv, clock, c, t0, direction,
                           'pre-auth connection closed',
                           r'authentication timeout',
                           c.starttls if direction > 0 else None)


@pytest.mark.parametrize('direction', [1, -1], ids=['forward', 'back'])
def test_idle_timeout(faked_server, direction):
    """A bound session that says nothing is closed idle-timeout after its
    last bytes."""
    srv, clock = faked_server({'idle-timeout': PREAUTH, 'ping-interval': 0})
    c = srv.login('alice@localhost', resource='idle')
    expect_closed_when_due(srv, clock, c, time.monotonic(), direction,
                           'idle session closed', r'idle for \d+ s, closing')


@pytest.mark.parametrize('direction', [1, -1], ids=['forward', 'back'])
def test_ping_round(faked_server, direction):
    """XEP-0199 keepalive: a session silent for ping-interval gets a ping;
    unanswered for ping-timeout, the session ends with
    <connection-timeout/>."""
    srv, clock = faked_server({'ping-interval': PREAUTH,
                               'ping-timeout': PREAUTH})
    c = srv.login('alice@localhost', resource='ping')
    t0 = time.monotonic()
    try:
        time.sleep(STEP_AFTER)
        step(srv, clock, direction * STEP)
        el = c.poll_element(PREAUTH + 2)
        t1 = time.monotonic()
        assert el is not None, 'no ping within %d s (an hour late?)' % (
            PREAUTH + 2)
        assert el.tag == q(NS_CLIENT, 'iq') and \
            el.find('{urn:xmpp:ping}ping') is not None, el
        assert_due(t1, t0, PREAUTH, 'ping sent')
        c.expect_stream_error('connection-timeout', timeout=PREAUTH + 3)
        assert_due(time.monotonic(), t1, PREAUTH, 'unanswered ping ended '
                   'the session')
    finally:
        c.close()
    clock.set(0)
    srv.assert_serves()


def test_rate_buckets_after_a_step_back(faked_server):
    """The stanza and byte token buckets refill by the time elapsed: a
    step back must not count as an hour of debt (reading paused for an
    hour after the stanza that took it), a step forward not as an hour
    of credit."""
    srv, clock = faked_server({})
    c = srv.login('alice@localhost', resource='rate')
    try:
        for i, offset in enumerate((-STEP, 0, STEP)):
            step(srv, clock, offset)
            # libev reads the wall clock again at most every 0.5 s.
            time.sleep(0.7)
            c.send("<iq type='get' id='r%d' to='localhost'><ping xmlns="
                   "'urn:xmpp:ping'/></iq>" % i)
            t0 = time.monotonic()
            el = c.next_element(PREAUTH)
            assert el.tag == q(NS_CLIENT, 'iq') and \
                el.get('id') == 'r%d' % i, el
            assert time.monotonic() - t0 < 1.0
    finally:
        c.close()
    clock.set(0)
    srv.assert_serves()
