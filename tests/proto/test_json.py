"""xmppctl --json (xmppctl(8), JSON OUTPUT): every listing parsed with
Python's json and checked against its schema — the exact keys, and numbers
and booleans as JSON numbers and booleans, times as ISO 8601 UTC strings
(null for none), lists as arrays — and the same through jq(1) where it is
installed: `select(.idle > 100)` must not match a session idle for a
second."""

import json
import re
import shutil
import subprocess
import time

import pytest

import xmpp_raw

ISO = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
ISO_MS = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')

# The schemas of xmppctl(8): field -> JSON type.  "time": an ISO 8601 UTC
# string; "time?": the same or null; "list": an array of strings.
USERS = {'jid': 'str', 'disabled': 'bool', 'disabled_since': 'time?',
         'disabled_reason': 'str'}
ONLINE = {'jid': 'str', 'sessions': 'int'}
TOKENS = {'device_id': 'str', 'software': 'str', 'device': 'str',
          'mechanism': 'str', 'slot': 'str', 'created': 'time',
          'last_used': 'time?', 'expiry': 'time', 'count': 'int'}
SESSIONS = {'sid': 'int', 'jid': 'str', 'ip': 'str', 'tls': 'str',
            'cipher': 'str', 'client': 'str', 'show': 'str', 'status': 'str',
            'priority': 'int', 'since': 'time', 'idle': 'int',
            'stanzas_in': 'int', 'stanzas_out': 'int', 'sm': 'str',
            'sm_unacked': 'int', 'csi': 'str', 'auth': 'str',
            'transport': 'str'}
ROSTER = {'jid': 'str', 'name': 'str', 'subscription': 'str', 'ask': 'str',
          'pending_in': 'bool', 'groups': 'list', 'presence': 'str'}
USER_SHOW = {'jid': 'str', 'created': 'time', 'sessions': 'int',
             'resources': 'list', 'presence': 'str', 'status': 'str',
             'last-logout': 'time?', 'last-status': 'str',
             'disabled': 'bool', 'disabled-since': 'time?',
             'disabled-reason': 'str', 'roster-items': 'int',
             'archive-messages': 'int', 'offline-messages': 'int',
             'login-tokens': 'int', 'pep-nodes': 'int', 'pep-items': 'int',
             'pep-bytes': 'int'}
STATUS = {'version': 'str', 'uptime': 'int', 'hosts': 'list',
          'sessions': 'int', 'users-online': 'int', 'storage-queue': 'int',
          'storage-commits': 'int', 'last-commit-ms': 'num', 'rss-kb': 'int',
          'offline-queue': 'int', 'pid': 'int'}
STATS = {'uptime': 'int', 'sessions': 'int', 'users-online': 'int',
         'logins': 'int', 'logins-per-min': 'int', 'auth-failures': 'int',
         'kicks': 'int', 'stanzas-in': 'int', 'stanzas-out': 'int',
         'stanzas-in-per-s': 'num', 'stanzas-out-per-s': 'num',
         'bytes-in': 'int', 'bytes-out': 'int', 'bytes-in-per-s': 'num',
         'bytes-out-per-s': 'num', 'offline-queue': 'int', 'rss-kb': 'int',
         'storage-queue': 'int', 'storage-commits': 'int',
         'last-commit-ms': 'num', 'proxy65-waiting': 'int',
         'proxy65-active': 'int', 'proxy65-bytes': 'int'}
CHECK = {'level': 'str', 'subject': 'str', 'message': 'str'}
HISTORY = {'id': 'str', 'timestamp': 'time-ms', 'direction': 'str',
           'with': 'str', 'from': 'str', 'to': 'str', 'body': 'str',
           'stanza': 'str'}


def type_ok(value, kind):
    if kind == 'str':
        return isinstance(value, str)
    if kind == 'int':
        return type(value) is int
    if kind == 'num':
        return type(value) in (int, float)
    if kind == 'bool':
        return type(value) is bool
    if kind == 'time':
        return isinstance(value, str) and ISO.match(value) is not None
    if kind == 'time?':
        return value is None or type_ok(value, 'time')
    if kind == 'time-ms':
        return isinstance(value, str) and ISO_MS.match(value) is not None
    if kind == 'list':
        return isinstance(value, list) and all(isinstance(x, str)
                                               for x in value)
    raise AssertionError('unknown kind %s' % kind)


def check_object(obj, schema):
    assert isinstance(obj, dict), obj
    assert set(obj) == set(schema), 'keys %s, want %s' % (
        sorted(obj), sorted(schema))
    for k, kind in schema.items():
        assert type_ok(obj[k], kind), '%s: %r is not %s' % (k, obj[k], kind)


def check_list(rows, schema):
    assert isinstance(rows, list), rows
    for row in rows:
        check_object(row, schema)


def ctl_json(server, *args):
    r = server.ctl('--json', *args)
    assert r.returncode == 0, (args, r.returncode, r.stderr)
    return json.loads(r.stdout)


@pytest.fixture
def busy(server):
    """alice online with status and caps, a roster item, a disabled account
    and an archived message: every listing has rows to check."""
    server.adduser('dora@localhost', 'dora-secret')
    assert server.ctl('disable', 'dora@localhost', '--reason',
                      'test').returncode == 0
    a = server.login('alice@localhost', resource='json')
    b = server.login('bob@localhost', resource='json')
    a.send("<iq type='set' id='r1'><query xmlns='jabber:iq:roster'>"
           "<item jid='bob@localhost' name='Bob'><group>A</group>"
           "<group>B, C</group></item></query></iq>")
    a.expect(xmpp_raw.q(xmpp_raw.NS_CLIENT, 'iq'))
    a.send("<presence><show>away</show><status>at lunch</status>"
           "<priority>3</priority></presence>")
    b.presence()
    a.message('bob@localhost', 'hello json')
    b.expect_stanza('message')
    yield a, b
    a.close()
    b.close()
    server.ctl('deluser', 'dora@localhost')


def test_listings_match_their_schemas(server, busy):
    users = ctl_json(server, 'users')
    check_list(users, USERS)
    dora = [u for u in users if u['jid'] == 'dora@localhost'][0]
    assert dora['disabled'] is True and dora['disabled_reason'] == 'test'
    assert type_ok(dora['disabled_since'], 'time')
    check_list(ctl_json(server, 'users', '--online'), ONLINE)
    sessions = ctl_json(server, 'sessions')
    check_list(sessions, SESSIONS)
    assert len(sessions) >= 2
    deadline = time.monotonic() + 5
    while True:
        roster = ctl_json(server, 'roster', 'show', 'alice@localhost')
        check_list(roster, ROSTER)
        if roster:
            break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert roster[0]['groups'] == ['A', 'B, C'], roster
    assert roster[0]['pending_in'] is False
    deadline = time.monotonic() + 5
    while True:
        show = ctl_json(server, 'user', 'show', 'alice@localhost')
        check_object(show, USER_SHOW)
        if show['status'] == 'at lunch':
            break
        assert time.monotonic() < deadline, show
        time.sleep(0.05)
    assert show['resources'] == ['json'] and show['sessions'] == 1
    assert show['presence'] == 'away'
    check_object(ctl_json(server, 'user', 'show', 'dora@localhost'),
                 USER_SHOW)
    status = ctl_json(server, 'status')
    check_object(status, STATUS)
    assert status['hosts'] == ['localhost']
    assert status['pid'] == server.proc.pid
    check_object(ctl_json(server, 'stats'), STATS)
    check_list(ctl_json(server, 'check'), CHECK)
    history = ctl_json(server, 'history', 'alice@localhost')
    check_list(history, HISTORY)
    assert any(m['body'] == 'hello json' for m in history)


def test_change_commands_json(server, busy):
    assert ctl_json(server, 'log', 'level') == {'level': 'debug'}
    assert ctl_json(server, 'broadcast', 'json test') == {'sessions': 2}
    for c in busy:
        c.expect_stanza('message')
    r = server.ctl('--json', 'adduser', 'Ivan@localhost', '--password-stdin',
                   input='ivan-secret')
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {'jid': 'ivan@localhost'}
    assert ctl_json(server, 'disable', 'ivan@localhost') == {
        'jid': 'ivan@localhost', 'sessions': 0}
    assert ctl_json(server, 'enable', 'ivan@localhost') == {
        'jid': 'ivan@localhost'}
    assert server.ctl('deluser', 'ivan@localhost').returncode == 0


def test_empty_listings(server_factory):
    """No rows: [] (and the header line in text)."""
    srv = server_factory()
    assert ctl_json(srv, 'sessions') == []
    assert ctl_json(srv, 'users', '--online') == []
    assert ctl_json(srv, 'roster', 'show', 'alice@localhost') == []


@pytest.mark.skipif(shutil.which('jq') is None, reason='jq is not installed')
def test_jq_compares_numbers(server, busy):
    """The issue's example: select(.idle > 100) matched every session while
    idle was the string "4"."""
    out = server.ctl('--json', 'sessions').stdout

    def jq(program):
        r = subprocess.run(['jq', '-c', program], input=out,
                           capture_output=True, text=True, timeout=10)
        assert r.returncode == 0, r.stderr
        return r.stdout.split()

    assert jq('.[] | select(.idle > 100) | .jid') == []
    assert len(jq('.[] | select(.idle >= 0) | .jid')) >= 2
    assert jq('[.[] | .sid | type] | unique') == ['["number"]']
    assert jq('[.[] | .since | test("^[0-9-]+T[0-9:]+Z$")] | all') == \
        ['true']
    users = server.ctl('--json', 'users').stdout
    r = subprocess.run(['jq', '-r', '.[] | select(.disabled) | .jid'],
                       input=users, capture_output=True, text=True,
                       timeout=10)
    assert r.stdout.split() == ['dora@localhost'], r.stdout


def test_tokens_json(server):
    """user tokens and user revoke-tokens (XEP-0484 FAST tokens)."""
    import sasl2_helpers
    server.adduser('tina@localhost', 'tina-secret')
    try:
        c, res = sasl2_helpers.login(
            server, 'tina@localhost', agent=sasl2_helpers.new_agent(),
            tag=None, extra=sasl2_helpers.request_token('HT-SHA-256-NONE'))
        c.close()
        rows = ctl_json(server, 'user', 'tokens', 'tina@localhost')
        check_list(rows, TOKENS)
        assert len(rows) == 1 and rows[0]['slot'] == 'new', rows
        assert rows[0]['last_used'] is None and rows[0]['count'] == 0
        assert ctl_json(server, 'user', 'revoke-tokens',
                        'tina@localhost') == {'tokens': 1}
        assert ctl_json(server, 'user', 'tokens', 'tina@localhost') == []
    finally:
        server.ctl('deluser', 'tina@localhost')
