"""Out of file descriptors (the EMFILE path of net/conn.c): with the
running daemon's RLIMIT_NOFILE lowered (prlimit) until accept(2) fails, a
new client is refused at once (closed with the spare descriptor kept for
this, not left hanging in the listen queue), the daemon says so in its
log, existing sessions go on being served, and new clients are served
again once connections close."""

import os
import re
import resource
import shutil
import socket
import subprocess
import time

import pytest

from xmpp_raw import NS_CLIENT, q

HEADER = (b"<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
          b"xmlns:stream='http://etherx.jabber.org/streams' to='localhost' "
          b"version='1.0'>")
SPARE = 6          # descriptors left free under the lowered limit


def open_fds(pid):
    return sorted(int(n) for n in os.listdir('/proc/%d/fd' % pid))


def set_nofile(pid, soft, hard):
    subprocess.run(['prlimit', '--pid', str(pid),
                    '--nofile=%d:%d' % (soft, hard)], check=True,
                   capture_output=True)


def answer(s, timeout=3.0):
    """What the server answers to a stream header within timeout: its
    bytes, b'' when it closed the connection, None when it said nothing
    (a connection left hanging)."""
    s.settimeout(timeout)
    try:
        s.sendall(HEADER)
        data = s.recv(65536)
    except (ConnectionResetError, BrokenPipeError):
        return b''
    except socket.timeout:
        return None
    return data


def new_client(srv):
    return socket.create_connection(('127.0.0.1', srv.c2s_port), timeout=5)


def ping(c, iq_id):
    c.send("<iq type='get' id='%s' to='localhost'><ping xmlns="
           "'urn:xmpp:ping'/></iq>" % iq_id)
    t0 = time.monotonic()
    el = c.expect(q(NS_CLIENT, 'iq'))
    assert el.get('id') == iq_id and el.get('type') == 'result', el
    assert time.monotonic() - t0 < 1.0


@pytest.mark.skipif(not shutil.which('prlimit'),
                    reason='prlimit (util-linux) is missing')
def test_out_of_descriptors(server_factory):
    srv = server_factory(limits={'preauth-connections-per-ip': 0})
    pid = srv.proc.pid
    bystander = srv.login('alice@localhost', resource='bystander')
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    fds = open_fds(pid)
    # Descriptors are numbered below the limit: leave SPARE free numbers
    # above the highest in use (and whatever holes there are below it).
    limit = fds[-1] + 1 + SPARE
    set_nofile(pid, limit, hard)
    start = len(srv.stderr_text())
    fillers = []
    try:
        refused = None
        for _ in range(limit):
            s = new_client(srv)
            got = answer(s)
            assert got is not None, (
                'connection %d left hanging at %d open descriptors'
                % (len(fillers) + 1, len(open_fds(pid))))
            if got == b'':
                refused = s
                break
            assert b'<stream:stream' in got, got
            fillers.append(s)
        assert refused is not None and len(fillers) >= SPARE - 1, (
            len(fillers), open_fds(pid))
        refused.close()
        # Each further client is refused the same way, one by one.
        for _ in range(3):
            s = new_client(srv)
            t0 = time.monotonic()
            assert answer(s) == b'', 'not refused at the limit'
            assert time.monotonic() - t0 < 1.0
            s.close()
        said = re.compile(r'^.* warn: c2s 127\.0\.0\.1:%d: out of file '
                          r'descriptors \(limit %d\), refused a connection '
                          r'from 127\.0\.0\.1$' % (srv.c2s_port, limit),
                          re.M)
        deadline = time.monotonic() + 2
        while len(said.findall(srv.stderr_text()[start:])) < 4:
            assert time.monotonic() < deadline, srv.stderr_tail(40)
            time.sleep(0.05)
        assert len(said.findall(srv.stderr_text()[start:])) == 4
        # The session that was there goes on.
        ping(bystander, 'at-limit')
        # Room again: new clients are served.
        for s in fillers[:2]:
            s.close()
        del fillers[:2]
        deadline = time.monotonic() + 5
        while len(open_fds(pid)) > limit - 2:
            assert time.monotonic() < deadline, open_fds(pid)
            time.sleep(0.05)
        s = new_client(srv)
        got = answer(s)
        s.close()
        assert got and b'<stream:stream' in got, got
        ping(bystander, 'after')
    finally:
        for s in fillers:
            s.close()
        set_nofile(pid, soft, hard)
        bystander.close()
    srv.assert_serves()


def cpu_seconds(pid):
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


@pytest.mark.skipif(not shutil.which('prlimit'),
                    reason='prlimit (util-linux) is missing')
def test_control_socket_out_of_descriptors(server_factory):
    """The control socket at the fd limit: accept(2) fails and the peer
    stays queued, so a level-triggered watcher would fire again at once
    (it spun at 100% CPU, logging 'accept: Too many open files' some
    140,000 times a second).  It stops listening for a second instead: the
    daemon stays idle, and the queued client is served once there is
    room."""
    srv = server_factory(limits={'preauth-connections-per-ip': 0})
    pid = srv.proc.pid
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    limit = open_fds(pid)[-1] + 1 + SPARE
    set_nofile(pid, limit, hard)
    fillers = []
    ctl = None
    try:
        for _ in range(limit):
            s = new_client(srv)
            got = answer(s)
            if got == b'':
                s.close()
                break
            fillers.append(s)
        start = len(srv.stderr_text())
        ctl = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        ctl.connect(str(srv.sock))      # queued: the daemon cannot accept
        t0 = cpu_seconds(pid)
        time.sleep(2.0)
        used = cpu_seconds(pid) - t0
        warns = srv.stderr_text()[start:].count('control: accept')
        assert used < 0.5, 'daemon used %.2f s of CPU in 2 s' % used
        assert 1 <= warns <= 4, warns
        for s in fillers[:3]:
            s.close()
        del fillers[:3]
        ctl.settimeout(5)
        ctl.sendall(b'hello 2\n')
        assert ctl.recv(4096), 'the queued control client was not served'
    finally:
        if ctl is not None:
            ctl.close()
        for s in fillers:
            s.close()
        set_nofile(pid, soft, hard)
    srv.assert_serves()
