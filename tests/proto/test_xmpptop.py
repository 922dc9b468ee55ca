"""xmpptop(1): batch mode against a fake control socket (exact rows for a
known set of sessions) and against a real xmppd with clients logged in;
the interactive view driven in tmux (a session shown, sorting, kick and
disable with confirmation, the filter, the roster's columns, the status
text's room at 160 columns); a refused connection explained.  XMPPTOP_BIN
names the binary (default build/xmpptop)."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import REPO, XMPPCTL_BIN
from fake_ctl_daemon import SESSIONS, FakeDaemon

XMPPTOP_BIN = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))

HEADER = ('xmpptop: up 1:02:05, sessions 3, users 3, logins/min 2, '
          'stanzas/s in 4.5 out 6.0, bytes/s in 1.0K out 2.0K, offline 1, '
          'rss 20.0M, store queue 0, commit 1.5ms')
# SINCE: the bind time (since:time, unix seconds) as UTC, the date when
# not today.
COLUMNS = ('SID  JID                       IP            TLS      '
           'CIPHER                       CLIENT         SHOW       PRI  '
           'SINCE   IDLE   IN  OUT  SM      CSI    AUTH                      '
           'STATUS')
ROW_ALICE = ('  7  alice@example.org/laptop  192.0.2.10    TLSv1.3  '
             'TLS_AES_256_GCM_SHA384       Gajim          available    5  '
             'May01    12s  120  340  -       -      SASL1 SCRAM-SHA-256-PLUS  '
             'at work')
ROW_BOB = ('  9  bob@example.org/phone     198.51.100.7  TLSv1.2  '
           'ECDHE-RSA-AES128-GCM-SHA256  Conversations  away         0  '
           'May01  10:00   15   22  WAIT+3  inact  SASL2 HT-SHA-256-EXPR     '
           'back soon')
ROW_CAROL = (' 12  carol@example.org/desk    2001:db8::1   TLSv1.3  '
             'TLS_AES_128_GCM_SHA256       -              dnd         -1  '
             'May01     3s  900   40  resume  -      SASL1 PLAIN')


SESSIONS_ONE = SESSIONS[:1]


def top(*args, timeout=30, env=None):
    return subprocess.run([XMPPTOP_BIN] + list(args), capture_output=True,
                          text=True, timeout=timeout, env=env)


@pytest.fixture
def fake():
    d = Path(tempfile.mkdtemp(prefix='xmpptop-'))
    daemons = []

    def make(**kw):
        f = FakeDaemon(d / 'ctl.sock', **kw).start()
        daemons.append(f)
        return f
    yield make
    for f in daemons:
        f.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_batch_rows_from_fake(fake):
    f = fake()
    r = top('-b', '-s', f.path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == [HEADER, COLUMNS, ROW_ALICE, ROW_BOB,
                                     ROW_CAROL]


def test_batch_sort_and_count(fake):
    f = fake()
    r = top('-b', '-n', '2', '-d', '0.2', '-o', 'traffic', '-s', f.path)
    assert r.returncode == 0, r.stderr
    block = [HEADER, COLUMNS, ROW_CAROL, ROW_ALICE, ROW_BOB]
    assert r.stdout.splitlines() == block + [''] + block
    r = top('-b', '-o', 'idle', '-s', f.path)
    assert r.stdout.splitlines()[2:] == [ROW_BOB, ROW_ALICE, ROW_CAROL]


def test_batch_socket_from_environment(fake):
    f = fake()
    env = dict(os.environ, XMPPD_SOCKET=f.path)
    r = top('-b', env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == HEADER


def test_batch_without_events_polls_status(fake):
    f = fake(subscribe=False)
    r = top('-b', '-s', f.path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('xmpptop: up 1:02:05, sessions 3, users 3,')
    assert 'no events' in lines[0]
    assert lines[1:] == [COLUMNS, ROW_ALICE, ROW_BOB, ROW_CAROL]


def test_batch_unreachable_and_usage(tmp_path):
    r = top('-b', '-s', str(tmp_path / 'nothing.sock'))
    assert r.returncode == 3
    assert 'disconnected' in r.stderr and 'nothing.sock' in r.stderr
    assert top('-b', '-o', 'bogus').returncode == 2
    assert top('-b', '-n', 'x').returncode == 2
    assert top('-x').returncode == 2


# -- against the real daemon --

def real_daemon_supports(server, command):
    """Whether the daemon's control socket knows command: asked directly,
    since xmppctl may not have a subcommand for it."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
        c.settimeout(5)
        c.connect(str(server.sock))
        f = c.makefile('rb')
        f.readline()
        c.sendall(b'hello 2\n1 ' + command.encode() + b'\n')
        answer = f.readline().split()
        return answer[:2] in ([b'1', b'ok'], [b'1', b'cols'])


@pytest.fixture
def two_clients(server):
    if not real_daemon_supports(server, 'sessions'):
        pytest.skip('xmppd does not answer "sessions" on its control '
                    'socket yet')
    a = server.login('alice@localhost', resource='top-a')
    b = server.login('bob@localhost', resource='top-b')
    yield a, b
    for c in (a, b):
        try:
            c.close()
        except Exception:
            pass


def wait_for(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    return pred()


def test_batch_real_daemon(server, two_clients):
    def rows():
        r = top('-b', '-s', str(server.sock))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        return lines if (any('alice@localhost/top-a' in x for x in lines)
                         and any('bob@localhost/top-b' in x
                                 for x in lines)) else None
    lines = wait_for(rows)
    assert lines, 'sessions missing from xmpptop -b'
    assert lines[0].startswith('xmpptop: up ')
    assert lines[1].split()[:3] == ['SID', 'JID', 'IP']
    jids = [x.split()[1] for x in lines[2:]]
    assert jids == sorted(jids)
    for x in lines[2:]:
        assert '127.0.0.1' in x.split()


def tmux(*args):
    return subprocess.run(['tmux'] + list(args), capture_output=True,
                          text=True, timeout=10)


@pytest.fixture
def tmux_top():
    if shutil.which('tmux') is None:
        pytest.skip('tmux is not installed')
    name = 'xmpptop-test-%d' % os.getpid()

    def start(sock, width=200):
        # The tmux server exits with its last session; a new session
        # started while it is going may meet it ("server exited
        # unexpectedly"): try again.
        for _ in range(20):
            r = tmux('new-session', '-d', '-s', name, '-x', str(width),
                     '-y', '40', '%s -s %s' % (XMPPTOP_BIN, sock))
            if r.returncode == 0 or 'server exited' not in r.stderr:
                break
            time.sleep(0.1)
        assert r.returncode == 0, r.stderr
        return name
    yield start
    tmux('kill-session', '-t', name)


def screen(name):
    return tmux('capture-pane', '-p', '-t', name).stdout


def wait_screen(name, pred, timeout=5.0):
    return wait_for(lambda: pred(screen(name)) and screen(name), timeout)


def session_order(text, jids):
    """The jids in the order of the sessions panel's rows (lines that
    start with a numeric SID), ignoring the status line and events."""
    order = []
    for x in text.split('EVENTS')[0].splitlines():
        words = x.split()
        if len(words) > 1 and words[0].isdigit() and words[1] in jids:
            order.append(words[1])
    return order


def confirm(name, f, key, verb, question):
    """key asks question; 'n' cancels it and sends nothing; key again
    and 'y' sends the request."""
    tmux('send-keys', '-t', name, key)
    assert wait_screen(name, lambda s: question in s), screen(name)
    tmux('send-keys', '-t', name, 'n')
    assert wait_screen(name, lambda s: verb + ' cancelled' in s), \
        screen(name)
    assert [verb] not in [r[:1] for r in f.requests]
    tmux('send-keys', '-t', name, key)
    assert wait_screen(name, lambda s: '(y/n)' in s)
    tmux('send-keys', '-t', name, 'y')


def test_interactive_fake_sort_and_kick(fake, tmux_top):
    f = fake()
    name = tmux_top(f.path)
    jids = ['alice@example.org/laptop', 'bob@example.org/phone',
            'carol@example.org/desk']
    assert wait_screen(name, lambda s: all(j in s for j in jids)), \
        screen(name)
    assert session_order(screen(name), jids) == jids
    tmux('send-keys', '-t', name, 't')
    assert wait_screen(name, lambda s: session_order(s, jids) == [
        jids[2], jids[0], jids[1]]), screen(name)
    # The selection stays on the first row: carol after sorting by traffic.
    tmux('send-keys', '-t', name, 'Home')
    confirm(name, f, 'k', 'kick', 'Kick carol@example.org/desk? (y/n)')
    assert wait_screen(name, lambda s: 'kicked carol@example.org/desk' in s
                       and session_order(s, jids) == jids[:2]), screen(name)
    assert ['kick', 'carol@example.org/desk',
            'kicked by the administrator'] in f.requests
    tmux('send-keys', '-t', name, '?')
    assert wait_screen(name, lambda s: 'this help' in s), screen(name)
    tmux('send-keys', '-t', name, 'q')
    assert wait_for(lambda: tmux('has-session', '-t', name).returncode != 0)


def test_interactive_reconnects(fake, tmux_top):
    f = fake()
    name = tmux_top(f.path)
    assert wait_screen(name, lambda s: 'alice@example.org' in s)
    f.stop()
    assert wait_screen(name, lambda s: 'DISCONNECTED' in s), screen(name)
    f2 = fake()
    assert f2.path == f.path
    assert wait_screen(name, lambda s: 'DISCONNECTED' not in s and
                       'alice@example.org' in s), screen(name)


def test_interactive_real_daemon_kick(server, two_clients, tmux_top):
    if not real_daemon_supports(server, 'subscribe'):
        pytest.skip('xmppd has no "subscribe" request yet')
    name = tmux_top(server.sock)
    jids = ['alice@localhost/top-a', 'bob@localhost/top-b']
    assert wait_screen(name, lambda s: all(j in s for j in jids)), \
        screen(name)
    assert session_order(screen(name), jids) == jids
    tmux('send-keys', '-t', name, 'r')
    assert wait_screen(name, lambda s: session_order(s, jids) == jids[::-1]),\
        screen(name)
    tmux('send-keys', '-t', name, 'Home', 'k')
    assert wait_screen(name, lambda s: 'Kick bob@localhost/top-b? (y/n)'
                       in s), screen(name)
    tmux('send-keys', '-t', name, 'y')
    if wait_screen(name, lambda s: 'unknown' in s, timeout=1.0):
        pytest.skip('xmppd has no "kick" request yet')
    two_clients[1].expect_stream_error('policy-violation')
    assert wait_screen(name, lambda s: session_order(s, jids) == jids[:1]),\
        screen(name)


def test_interactive_disable_with_confirmation(fake, tmux_top):
    """d disables the selected session's account (its bare JID), asking
    first as k does."""
    f = fake()
    name = tmux_top(f.path)
    assert wait_screen(name, lambda s: 'alice@example.org/laptop' in s), \
        screen(name)
    tmux('send-keys', '-t', name, 'Home')
    confirm(name, f, 'd', 'disable', 'Disable alice@example.org: close '
            'all its sessions and refuse its logins? (y/n)')
    assert wait_screen(name, lambda s: 'disabled alice@example.org (1 '
                       'session closed)' in s and
                       'alice@example.org/laptop' not in s), screen(name)
    assert ['disable', 'alice@example.org', 'disabled in xmpptop'] in \
        f.requests
    assert wait_screen(name, lambda s: '2 sessions, sorted by jid' in s)


def test_interactive_one_session_filter_and_roster(fake, tmux_top):
    f = fake(sessions=SESSIONS_ONE)
    name = tmux_top(f.path)
    # "1 session", not "1 sessions"
    assert wait_screen(name, lambda s: '1 session, sorted by jid' in s), \
        screen(name)
    f2 = fake()
    tmux('kill-session', '-t', name)
    name = tmux_top(f2.path)
    assert wait_screen(name, lambda s: '3 sessions, sorted by jid' in s), \
        screen(name)
    # Ctrl-U clears what is typed, and a filter kept
    tmux('send-keys', '-t', name, '/', 'xyz', 'C-u', 'bob', 'Enter')
    assert wait_screen(name, lambda s: 'Filter: bob  (1 shown)' in s and
                       'alice@example.org' not in s), screen(name)
    tmux('send-keys', '-t', name, 'C-u')
    assert wait_screen(name, lambda s: '3 sessions, sorted by jid' in s and
                       'alice@example.org/laptop' in s), screen(name)
    # the roster in the detail view, under labelled columns
    tmux('send-keys', '-t', name, 'Home', 'Enter')
    want = ['  JID              NAME  SUBSCRIPTION  ASK  PENDING_IN  '
            'GROUPS        PRESENCE',
            '  bob@example.org  Bob   both               no          '
            'Friends,Work  away']
    assert wait_screen(name, lambda s: all(w in s.splitlines()
                                           for w in want)), screen(name)


def test_interactive_status_room_at_160_columns(fake, tmux_top):
    """At 160 columns STATUS keeps its room; CIPHER and CLIENT give way
    (they are in the detail view); at 224 all columns are shown."""
    long_status = 'in the lab until five, then home'
    sessions = [list(s) for s in SESSIONS]
    sessions[1][7] = long_status
    f = fake(sessions=sessions)
    name = tmux_top(f.path, width=160)
    assert wait_screen(name, lambda s: long_status in s), screen(name)
    head = [x for x in screen(name).splitlines() if 'STATUS' in x][0]
    assert 'CIPHER' not in head and 'CLIENT' not in head, head
    assert head.split()[:4] == ['SID', 'JIDv', 'IP', 'TLS'], head
    tmux('kill-session', '-t', name)
    name = tmux_top(f.path, width=224)
    assert wait_screen(name, lambda s: 'bob@example.org/phone' in s)
    head = [x for x in screen(name).splitlines() if 'STATUS' in x][0]
    assert 'CIPHER' in head and 'CLIENT' in head, head


def test_batch_permission_denied(fake, other_user):
    """Someone who may not connect to the socket is told so, as by
    xmppctl(8), and batch mode exits 6."""
    f = fake()
    r = other_user.run([XMPPTOP_BIN, '-b', '-s', f.path], member=False)
    assert r.returncode == 6, (r.returncode, r.stderr)
    assert r.stderr == ('xmpptop: disconnected: cannot connect to %s: '
                        'Permission denied (are you in the daemon\'s '
                        'control group?)\n' % f.path), r.stderr


def test_interactive_real_daemon_disable(server, tmux_top):
    if not real_daemon_supports(server, 'subscribe'):
        pytest.skip('xmppd has no "subscribe" request yet')
    server.adduser('victor@localhost', 'victor-secret')
    c = server.login('victor@localhost', resource='top-v')
    try:
        name = tmux_top(server.sock)
        assert wait_screen(name, lambda s: 'victor@localhost/top-v' in s), \
            screen(name)
        tmux('send-keys', '-t', name, '/', 'victor', 'Enter', 'd')
        assert wait_screen(name, lambda s: 'Disable victor@localhost: '
                           in s), screen(name)
        tmux('send-keys', '-t', name, 'y')
        c.expect_stream_error('not-authorized')
        assert wait_screen(name, lambda s: 'disabled victor@localhost (1 '
                           'session closed)' in s), screen(name)
    finally:
        c.close()
    r = server.ctl('--json', 'users')
    victor = [u for u in json.loads(r.stdout)
              if u['jid'] == 'victor@localhost']
    assert victor[0]['disabled'] is True
    assert victor[0]['disabled_reason'] == 'disabled in xmpptop'
    assert server.ctl('deluser', 'victor@localhost').returncode == 0


def test_interactive_rooms_view(server, tmux_top):
    """m shows the rooms by activity and the occupants of the selected
    one, live: a room's message rate and a new occupant appear; Down
    selects the next room; m again goes back to the sessions."""
    from im_helpers import IMFactory, fresh_users
    from test_muc import create, is_msg, join, say
    f = IMFactory(server)
    try:
        a, b = fresh_users(server, 2)
        ca, cb = f(a), f(b)
        busy, quiet = 'aaa-busy@conference.localhost', \
            'zzz-quiet@conference.localhost'
        create(ca, busy, 'alice', {'muc#roomconfig_roomname': 'Busy'})
        create(ca, quiet, 'alice')
        name = tmux_top(server.sock)
        tmux('send-keys', '-t', name, 'm')
        assert wait_screen(name, lambda s: 'ROOMS' in s and busy in s and
                           quiet in s), screen(name)
        for i in range(5):
            say(ca, busy, 'line %d' % i)
            ca.wait(is_msg(busy + '/alice'))
        join(cb, busy, 'bob')
        # busy first (5 messages a minute), its occupants listed
        assert wait_screen(name, lambda s: 'OCCUPANTS of ' + busy in s and
                           'bob' in s and any(
                               ln.split()[:4] == [busy, '2', '2', '5']
                               for ln in s.splitlines()),
                           timeout=8), screen(name)
        tmux('send-keys', '-t', name, 'Down')
        assert wait_screen(name, lambda s: 'OCCUPANTS of ' + quiet in s), \
            screen(name)
        tmux('send-keys', '-t', name, 'm')
        assert wait_screen(name, lambda s: 'OCCUPANTS of' not in s), \
            screen(name)
    finally:
        f.close_all()
