"""The admin's xmppctl commands and the control protocol's events
(shared/ctl.h, xmppctl(8)) against a running daemon: what sessions,
kick, user show, roster show, broadcast, stats, log level and check
report is checked against what raw clients see; subscribe receives
session-up, presence and session-down events within a second; read-only
users are refused changes; malformed requests get errors."""

import datetime
import json
import re
import socket
import time

import pytest

from conftest import XMPPCTL_BIN, control_group_server
import xmpp_raw

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
EXIT_NOT_FOUND, EXIT_DENIED = 5, 6
PROTOCOL = 2        # CTL_PROTOCOL_VERSION (shared/ctl.h)


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def ctl_json(server, *args):
    return json.loads(ok(server.ctl('--json', *args)).stdout)


def decode(field):
    if field == '%-':
        return ''
    return re.sub(r'%([0-9A-Fa-f]{2})',
                  lambda m: chr(int(m.group(1), 16)), field)


def encode(s):
    if s == '':
        return '%-'
    return ''.join('%%%02X' % ord(c) if ord(c) <= 0x20 or c in '%\x7f'
                   else c for c in s)


class Ctl:
    """A raw control-protocol connection (shared/ctl.h)."""

    def __init__(self, path, hello=True):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(5)
        self.s.connect(str(path))
        self.buf = b''
        self.greeting = self.line()
        if hello:
            self.s.sendall(b'hello %d\n' % PROTOCOL)

    def line(self, timeout=5):
        deadline = time.monotonic() + timeout
        while b'\n' not in self.buf:
            self.s.settimeout(max(0.01, deadline - time.monotonic()))
            data = self.s.recv(65536)
            if not data:
                raise EOFError('control connection closed')
            self.buf += data
        line, self.buf = self.buf.split(b'\n', 1)
        return [decode(f) for f in line.decode().split(' ')]

    def send(self, raw):
        self.s.sendall(raw if isinstance(raw, bytes) else raw.encode())

    def request(self, rid, *args):
        """Send a request; returns (rows, terminal line, events seen)."""
        self.send(' '.join([str(rid)] + [encode(a) for a in args]) + '\n')
        rows, events = [], []
        while True:
            f = self.line()
            if f[0] == '*':
                events.append(f[2:])
                continue
            assert f[0] == str(rid), f
            if f[1] in ('ok', 'err'):
                return rows, f, events
            rows.append(f)

    def event(self, name, pred=lambda f: True, timeout=1.0):
        """The next event NAME matching pred, within timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            assert left > 0, 'no %s event within %.1f s' % (name, timeout)
            f = self.line(left)
            if f[:2] == ['*', 'event'] and f[2] == name and pred(f[3:]):
                return f[3:]

    def close(self):
        self.s.close()


def by_jid(sessions, jid):
    found = [s for s in sessions if s['jid'] == jid]
    assert len(found) == 1, (jid, sessions)
    return found[0]


def test_sessions_shows_resource_presence_and_client(server):
    c = server.login('alice@localhost', resource='desk')
    try:
        c.send("<presence><show>dnd</show><status>in a meeting</status>"
               "<priority>5</priority>"
               "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' "
               "node='https://example.org/rawclient' ver='abc='/>"
               "</presence>")
        deadline = time.monotonic() + 5
        while True:
            s = by_jid(ctl_json(server, 'sessions'),
                       'alice@localhost/desk')
            if s['show'] == 'dnd' or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert s['show'] == 'dnd'
        assert s['status'] == 'in a meeting'
        assert s['priority'] == 5
        assert s['client'] == 'https://example.org/rawclient'
        assert s['ip'] == '127.0.0.1'
        assert s['tls'].startswith('TLSv1.')
        assert s['cipher'] != ''
        since = datetime.datetime.strptime(s['since'], '%Y-%m-%dT%H:%M:%SZ')
        assert abs(since.replace(tzinfo=datetime.timezone.utc).timestamp()
                   - time.time()) < 60
        assert s['stanzas_in'] >= 1
        # text output: a header, then one tab-separated row per session
        text = ok(server.ctl('sessions')).stdout.splitlines()
        assert text[0].split('\t')[:3] == ['sid', 'jid', 'ip']
        assert any(l.split('\t')[1] == 'alice@localhost/desk'
                   for l in text[1:])
        # users --online lists the bare JID with its session count
        online = ctl_json(server, 'users', '--online')
        assert {'jid': 'alice@localhost', 'sessions': 1} in online
    finally:
        c.close()


def test_kick_closes_with_reason_text(server):
    c = server.login('alice@localhost', resource='kickme')
    other = server.login('alice@localhost', resource='stays')
    try:
        r = ok(server.ctl('kick', 'alice@localhost/kickme',
                          'spamming the lobby'))
        assert r.stdout.strip() == '1 session closed'
        el = c.expect_stream_error('policy-violation')
        text = el.find('{%s}text' % xmpp_raw.NS_STREAM_ERR)
        assert text is not None and text.text == 'spamming the lobby'
        jids = [s['jid'] for s in ctl_json(server, 'sessions')]
        assert 'alice@localhost/kickme' not in jids
        assert 'alice@localhost/stays' in jids
        # --reset uses <reset/>
        assert ctl_json(server, 'kick', '--reset',
                        'alice@localhost/stays') == {'sessions': 1}
        other.expect_stream_error('reset')
        r = server.ctl('kick', 'alice@localhost/nothere')
        assert r.returncode == EXIT_NOT_FOUND, (r.returncode, r.stderr)
        assert server.ctl('kick', 'not a jid@').returncode == EXIT_ERROR
    finally:
        c.close()
        other.close()


def test_subscribe_events_for_login_status_and_logout(server):
    ev = Ctl(server.sock)
    try:
        _, term, _ = ev.request(1, 'subscribe')
        assert term[1] == 'ok'
        c = server.login('alice@localhost', resource='watched')
        up = ev.event('session-up', lambda f: f[1] ==
                      'alice@localhost/watched')
        sid = up[0]
        assert up[2] == '127.0.0.1' and up[3].startswith('TLSv1.')
        assert abs(float(up[5]) - time.time()) < 60
        c.send("<presence><show>away</show><status>lunch</status>"
               "<priority>2</priority></presence>")
        pres = ev.event('presence', lambda f: f[0] == sid)
        assert pres == [sid, 'alice@localhost/watched', 'away', '2',
                        'lunch']
        c.send("<presence type='unavailable'><status>bye</status>"
               "</presence>")
        pres = ev.event('presence', lambda f: f[0] == sid)
        assert pres[2] == 'unavailable' and pres[4] == 'bye'
        c.end_stream()
        down = ev.event('session-down', lambda f: f[0] == sid)
        assert down[1] == 'alice@localhost/watched'
        assert down[2] == 'closed'
        c.close()
        log = ev.event('log', lambda f: 'alice@localhost/watched' in f[1])
        assert log[0] == 'info'
        counters = ev.event('counters', timeout=2.5)
        assert len(counters) == 12
        assert int(counters[0]) >= 0 and int(counters[9]) > 0
        # a kick arrives as session-down with its reason
        c = server.login('alice@localhost', resource='kicked')
        up = ev.event('session-up', lambda f: f[1] ==
                      'alice@localhost/kicked')
        ok(server.ctl('kick', 'alice@localhost/kicked', 'go away'))
        down = ev.event('session-down', lambda f: f[0] == up[0])
        assert down[2] == 'kicked: go away'
        c.close()
        # a failed login is a log event
        bad = server.client()
        bad.open_stream()
        bad.starttls()
        bad.open_stream()
        bad.sasl_plain('alice', 'wrong password')
        bad.close()
        ev.event('log', lambda f: f[0] == 'warning' and
                 'authentication failed' in f[1])
        _, term, _ = ev.request(2, 'unsubscribe')
        assert term[1] == 'ok'
    finally:
        ev.close()


def test_events_never_inside_a_listing(server):
    """Events held during a response go out after its terminal line."""
    ev = Ctl(server.sock)
    clients = []
    try:
        ev.request(1, 'subscribe')
        for i in range(3):
            clients.append(server.login('alice@localhost',
                                        resource='l%d' % i))
        for rid in range(2, 12):
            ev.send('%d users\n' % rid)
            inside = False
            while True:
                f = ev.line()
                if f[0] == str(rid):
                    inside = f[1] not in ('ok', 'err')
                    if not inside:
                        break
                else:
                    assert f[0] == '*' and not inside, f
    finally:
        for c in clients:
            c.close()
        ev.close()


def test_user_show_and_roster_show(server):
    a = server.login('alice@localhost', resource='rs')
    try:
        a.send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
               "<item jid='bob@localhost' name='Bob'><group>Friends</group>"
               "</item></query></iq>")
        a.expect(xmpp_raw.q(xmpp_raw.NS_CLIENT, 'iq'))
        a.presence(show='chat')
        info = ctl_json(server, 'user', 'show', 'alice@localhost')
        assert info['jid'] == 'alice@localhost'
        assert info['sessions'] == 1 and info['resources'] == ['rs']
        assert info['presence'] == 'chat'
        assert info['disabled'] is False
        assert info['roster-items'] >= 1
        assert info['archive-messages'] >= 0
        roster = ctl_json(server, 'roster', 'show', 'alice@localhost')
        bob = [i for i in roster if i['jid'] == 'bob@localhost']
        assert bob and bob[0]['name'] == 'Bob'
        assert bob[0]['groups'] == ['Friends']
        assert bob[0]['pending_in'] is False
        assert bob[0]['subscription'] == 'none'
        # bob is local and offline
        assert bob[0]['presence'] == 'unavailable'
        # abbreviations work word by word
        assert json.loads(ok(server.ctl('--json', 'ro', 'sh',
                                        'alice@localhost')).stdout) == roster
        r = server.ctl('user', 'show', 'nobody-here@localhost')
        assert r.returncode == EXIT_NOT_FOUND, r.stderr
        r = server.ctl('roster', 'show', 'nobody-here@localhost')
        assert r.returncode == EXIT_NOT_FOUND, r.stderr
    finally:
        a.close()


def test_broadcast_reaches_every_session(server):
    a = server.login('alice@localhost', resource='b1')
    b = server.login('bob@localhost', resource='b2')
    try:
        a.presence()
        b.presence()
        time.sleep(0.2)
        r = ok(server.ctl('broadcast', 'Maintenance at 22:00 <UTC> & co'))
        assert re.match(r'\d+ sessions? reached', r.stdout.strip())
        for c in (a, b):
            m = c.expect_stanza('message')
            assert m.get('type') == 'headline'
            assert m.get('from') == 'localhost'
            assert m.find('{jabber:client}body').text == \
                'Maintenance at 22:00 <UTC> & co'
    finally:
        a.close()
        b.close()


def test_stats_and_status(server):
    st = ctl_json(server, 'stats')
    for key in ('uptime', 'sessions', 'users-online', 'logins',
                'logins-per-min', 'stanzas-in-per-s', 'bytes-in-per-s',
                'offline-queue', 'rss-kb', 'storage-queue',
                'last-commit-ms', 'auth-failures'):
        assert key in st, key
    assert int(st['rss-kb']) > 0
    # "sta" stays status; stats must be spelt out
    status = json.loads(ok(server.ctl('--json', 'sta')).stdout)
    assert status['pid'] == server.proc.pid
    assert int(status['rss-kb']) > 0


def test_offline_queue_counts_stored_messages(server):
    before = int(ctl_json(server, 'stats')['offline-queue'])
    a = server.login('alice@localhost', resource='oq')
    try:
        a.presence()
        for i in range(3):
            a.message('bob@localhost', 'offline %d' % i)
        deadline = time.monotonic() + 5
        while int(ctl_json(server, 'stats')['offline-queue']) < before + 3:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        a.close()
    b = server.login('bob@localhost', resource='oq')
    try:
        b.presence()
        for i in range(3):
            b.expect_stanza('message')
        deadline = time.monotonic() + 5
        while int(ctl_json(server, 'stats')['offline-queue']) > before:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        b.close()


def test_log_level(server):
    assert ok(server.ctl('log', 'level')).stdout.strip() == 'debug'
    assert ctl_json(server, 'log', 'level', 'info') == {'level': 'info'}
    assert ok(server.ctl('log', 'level')).stdout.strip() == 'info'
    ok(server.ctl('log', 'level', 'debug'))
    assert server.ctl('log', 'level', 'loud').returncode == EXIT_ERROR


def test_check_reports_certificate_and_listeners(server):
    r = server.ctl('check')
    assert r.returncode == EXIT_OK, (r.stdout, r.stderr)
    # the test certificate is valid for 30 days: a warning, not an error
    assert re.search(r'warning: localhost: certificate .* expires in '
                     r'\d+ days', r.stdout), r.stdout
    assert r.stdout.strip().endswith('0 errors, 1 warning'), r.stdout
    rows = ctl_json(server, 'check')
    listeners = [x for x in rows if x['subject'] == 'listener']
    assert len(listeners) == 2
    assert all(x['level'] == 'ok' for x in listeners)


def test_malformed_requests_get_errors(server):
    c = Ctl(server.sock)
    try:
        assert c.request(1, 'kick')[1][:3] == ['1', 'err', 'usage']
        assert c.request(2, 'sessions', 'extra')[1][:3] == \
            ['2', 'err', 'usage']
        assert c.request(3, 'kick', 'a@localhost', 'r', 'bogus')[1][:3] \
            == ['3', 'err', 'usage']
        assert c.request(4, 'broadcast', 'bell\x07')[1][:3] == \
            ['4', 'err', 'usage']
        assert c.request(5, 'log-level', 'loud')[1][:3] == \
            ['5', 'err', 'usage']
        assert c.request(6, 'user-show', 'not a jid')[1][:3] == \
            ['6', 'err', 'bad-jid']
        c.send('7 sessions %ZZ\n')
        assert c.line()[:3] == ['7', 'err', 'usage']
        c.send('x\n')
        assert c.line()[:3] == ['0', 'err', 'usage']
        # still answering on the same connection
        assert c.request(8, 'stats')[1][1] == 'ok'
        c.send(b'9 ' + b'a' * 70000 + b'\n')
        assert c.line()[:3] == ['0', 'err', 'too-long']
    finally:
        c.close()
    server.assert_serves()


def test_per_uid_connection_cap(server):
    conns = []
    try:
        for _ in range(8):
            conns.append(Ctl(server.sock, hello=False))
        extra = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        extra.settimeout(5)
        extra.connect(str(server.sock))
        data = extra.recv(4096)
        extra.close()
        assert data.startswith(b'0 err busy '), data
    finally:
        for c in conns:
            c.close()
    time.sleep(0.1)
    ok(server.ctl('status'))


def test_read_only_uid(server_factory, other_user):
    """A member of the control group reads everything, changes nothing."""
    srv = control_group_server(server_factory, other_user)

    def as_nobody(*args):
        return other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] +
                              list(args))

    c = srv.login('alice@localhost', resource='ro')
    try:
        for args in (('kick', 'alice@localhost'),
                     ('broadcast', 'hello'),
                     ('log', 'level', 'info'),
                     ('stop',), ('reload',)):
            r = as_nobody(*args)
            assert r.returncode == EXIT_DENIED, (args, r.returncode,
                                                 r.stderr)
        for args in (('sessions',), ('stats',), ('status',),
                     ('log', 'level'), ('user', 'show', 'alice@localhost'),
                     ('roster', 'show', 'alice@localhost'),
                     ('users', '--online')):
            r = as_nobody('--json', *args)
            assert r.returncode == EXIT_OK, (args, r.returncode, r.stderr)
            json.loads(r.stdout)
        sessions = json.loads(as_nobody('--json', 'sessions').stdout)
        assert [s['jid'] for s in sessions] == ['alice@localhost/ro']
    finally:
        c.close()


def test_text_listings(server):
    """sessions prints since as ISO 8601; users --online is ordered as
    users (host, then user); an empty roster show prints its header;
    adduser names the JID as created (prepared); user show has the
    status of an online user and, after the logout, last-logout and
    last-status (the status of the unavailable presence)."""
    r = ok(server.ctl('adduser', 'Zoe@localhost', '--password-stdin',
                      input='zoe-secret'))
    assert r.stdout == 'created zoe@localhost\n', r.stdout
    ok(server.ctl('adduser', 'mia@localhost', '--password-stdin',
                  input='mia-secret'))
    r = ok(server.ctl('roster', 'show', 'zoe@localhost'))
    assert r.stdout == ('jid\tname\tsubscription\task\tpending_in\tgroups\t'
                        'presence\n'), r.stdout
    clients = [server.login(jid, password=pw, resource='t')
               for jid, pw in (('zoe@localhost', 'zoe-secret'),
                               ('bob@localhost', None),
                               ('mia@localhost', 'mia-secret'),
                               ('alice@localhost', None))]
    try:
        online = ok(server.ctl('users', '--online')).stdout.splitlines()
        assert online[0] == 'jid\tsessions'
        jids = [x.split('\t')[0] for x in online[1:]]
        everyone = ok(server.ctl('users')).stdout.splitlines()
        assert jids == [j for j in everyone if j in jids], (jids, everyone)
        assert len(jids) == 4
        for line in ok(server.ctl('sessions')).stdout.splitlines()[1:]:
            since = line.split('\t')[9]
            assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', since), \
                line
        z = clients[0]
        z.send("<presence><show>xa</show><status>gone fishing</status>"
               "</presence>")
        deadline = time.monotonic() + 5
        while True:
            out = ok(server.ctl('user', 'show', 'zoe@localhost')).stdout
            if re.search(r'^status\s+gone fishing$', out, re.M):
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.05)
        assert re.search(r'^presence\s+xa$', out, re.M), out
        assert re.search(r'^last-logout\s+-$', out, re.M), out
        z.send("<presence type='unavailable'><status>back on monday"
               "</status></presence>")
        z.end_stream()
        deadline = time.monotonic() + 5
        while True:
            info = ctl_json(server, 'user', 'show', 'zoe@localhost')
            if info['last-logout'] is not None:
                break
            assert time.monotonic() < deadline, info
            time.sleep(0.05)
        assert info['last-status'] == 'back on monday', info
        assert info['status'] == '' and info['sessions'] == 0, info
        assert info['presence'] == 'unavailable', info
    finally:
        for c in clients:
            c.close()
    ok(server.ctl('deluser', 'zoe@localhost'))
    ok(server.ctl('deluser', 'mia@localhost'))
