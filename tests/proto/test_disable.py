"""xmppctl disable / enable and kick --disable (xmppctl(8)): a disabled
account's logins fail with the SASL condition <account-disabled/> (RFC 6120
§6.5.1) once its password is right, and only then (a wrong password is
<not-authorized/>, as for an unknown account); its sessions are closed
with <not-authorized/> "Account disabled"; users and user show list it with
the time and reason; the flag survives a restart; enable lets it in again.
passwd and deluser work on a disabled account, in-band registration of its
name is a conflict, and a login under way when the account is disabled
cannot bind."""

import datetime
import json
import re
import time

import pytest

from conftest import XMPPCTL_BIN, control_group_server
from test_register_extra import tls_stream
import xmpp_raw
from xmpp_raw import (NS_CLIENT, NS_STREAM_ERR, assert_sasl_failure,
                      assert_sasl_success, q, tostr)

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_DENIED = 0, 1, 2, 5, 6
NS_REGISTER = 'jabber:iq:register'

SERVER_OPTIONS = {'extra': 'registration on',
                  'limits': {'registrations-per-ip': 1000}}


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def sasl_answer(server, user, password, mechanism):
    """The server's last SASL element for user/password on a new stream."""
    c, _ = tls_stream(server)
    try:
        if mechanism == 'PLAIN':
            return c.sasl_plain(user, password)
        return c.sasl_scram(user, password,
                            mechanism[len('SCRAM-'):]).final
    finally:
        c.close()


MECHANISMS = ['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256']


def assert_refused(server, user, password):
    """Right password: <account-disabled/>; wrong password and unknown
    user: <not-authorized/>, with every mechanism."""
    for mech in MECHANISMS:
        assert_sasl_failure(sasl_answer(server, user, password, mech),
                            'account-disabled')
        assert_sasl_failure(sasl_answer(server, user, 'wrong ' + password,
                                        mech), 'not-authorized')
        assert_sasl_failure(sasl_answer(server, 'nobody-' + user, password,
                                        mech), 'not-authorized')


def assert_accepted(server, user, password):
    for mech in MECHANISMS:
        assert_sasl_success(sasl_answer(server, user, password, mech))


def iso_age(text):
    """Seconds since an ISO 8601 UTC time as xmppctl prints it."""
    t = datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    return time.time() - t.timestamp()


def listed(server, jid):
    """(users --json entry, users text line, user show --json) of jid."""
    entries = [u for u in json.loads(ok(server.ctl('--json', 'users')).stdout)
               if u['jid'] == jid]
    lines = [x for x in ok(server.ctl('users')).stdout.splitlines()
             if x.split('\t')[0] == jid]
    assert len(entries) == 1 and len(lines) == 1, (entries, lines)
    show = json.loads(ok(server.ctl('--json', 'user', 'show', jid)).stdout)
    return entries[0], lines[0], show


def assert_listed_disabled(server, jid, reason):
    entry, line, show = listed(server, jid)
    assert entry['disabled'] is True, entry
    assert 0 <= iso_age(entry['disabled_since']) < 120, entry
    assert entry['disabled_reason'] == reason, entry
    want = 'disabled since %s%s' % (entry['disabled_since'],
                                    ': ' + reason if reason else '')
    assert line == jid + '\t' + want, line
    assert show['disabled'] is True, show
    assert show['disabled-since'] == entry['disabled_since'], show
    assert show['disabled-reason'] == reason, show
    text = ok(server.ctl('user', 'show', jid)).stdout
    assert re.search(r'^disabled\s+yes$', text, re.M), text
    assert re.search(r'^disabled-since\s+%s$' % entry['disabled_since'],
                     text, re.M), text


def assert_listed_enabled(server, jid):
    entry, line, show = listed(server, jid)
    assert entry == {'jid': jid, 'disabled': False, 'disabled_since': None,
                     'disabled_reason': ''}, entry
    assert line == jid, line
    assert show['disabled'] is False and show['disabled-since'] is None, show
    assert show['disabled-reason'] == '', show


def expect_disabled_error(client):
    el = client.expect_stream_error('not-authorized')
    text = el.find(q(NS_STREAM_ERR, 'text'))
    assert text is not None and text.text == 'Account disabled', tostr(el)
    return el


def test_disable_refuses_login_closes_sessions_and_enable(server_factory):
    srv = server_factory()
    srv.adduser('mallory@localhost', 'mallory-secret')
    assert_listed_enabled(srv, 'mallory@localhost')
    a = srv.login('mallory@localhost', resource='one')
    b = srv.login('mallory@localhost', resource='two')
    bob = srv.login('bob@localhost', resource='stays')
    try:
        r = ok(srv.ctl('disable', 'mallory@localhost', '--reason',
                       'spam in the lobby'))
        assert r.stdout == 'disabled mallory@localhost, 2 sessions ' \
            'closed\n', r.stdout
        for c in (a, b):
            el = expect_disabled_error(c)
            # the reason is for the administrators only
            assert 'spam' not in tostr(el)
        sessions = json.loads(ok(srv.ctl('--json', 'sessions')).stdout)
        assert [s['jid'] for s in sessions] == ['bob@localhost/stays']
    finally:
        for c in (a, b, bob):
            c.close()
    assert_refused(srv, 'mallory', 'mallory-secret')
    assert_listed_disabled(srv, 'mallory@localhost', 'spam in the lobby')
    # the other accounts are untouched
    assert_accepted(srv, 'bob', 'bob-secret')
    assert_listed_enabled(srv, 'bob@localhost')

    # durable: the same after a restart
    srv.stop()
    srv.start(create_users=False)
    assert_refused(srv, 'mallory', 'mallory-secret')
    assert_listed_disabled(srv, 'mallory@localhost', 'spam in the lobby')

    r = ok(srv.ctl('enable', 'mallory@localhost'))
    assert r.stdout == 'enabled mallory@localhost\n'
    assert_accepted(srv, 'mallory', 'mallory-secret')
    assert_listed_enabled(srv, 'mallory@localhost')
    c = srv.login('mallory@localhost', password='mallory-secret',
                  resource='back')
    c.close()
    # enabled after a restart too
    srv.stop()
    srv.start(create_users=False)
    assert_accepted(srv, 'mallory', 'mallory-secret')


def test_kick_disable(server):
    server.adduser('spammer@localhost', 'spammer-secret')
    a = server.login('spammer@localhost', resource='bot1')
    b = server.login('spammer@localhost', resource='bot2')
    try:
        # --disable is for the account: every session goes, not just bot1
        r = ok(server.ctl('kick', '--disable', 'spammer@localhost/bot1',
                          'flooding'))
        assert r.stdout == 'disabled spammer@localhost, 2 sessions ' \
            'closed\n', r.stdout
        expect_disabled_error(a)
        expect_disabled_error(b)
    finally:
        a.close()
        b.close()
    assert_sasl_failure(sasl_answer(server, 'spammer', 'spammer-secret',
                                    'PLAIN'), 'account-disabled')
    assert_listed_disabled(server, 'spammer@localhost', 'flooding')
    # an account without sessions: disabled all the same, as JSON
    assert json.loads(ok(server.ctl('--json', 'kick', '--disable',
                                    'spammer@localhost')).stdout) == {
        'jid': 'spammer@localhost', 'sessions': 0}
    assert_listed_disabled(server, 'spammer@localhost', '')
    r = server.ctl('kick', '--disable', '--reset', 'spammer@localhost')
    assert r.returncode == EXIT_USAGE, (r.returncode, r.stderr)
    ok(server.ctl('deluser', 'spammer@localhost'))


def test_passwd_deluser_and_registration_of_a_disabled_account(server):
    server.adduser('eve@localhost', 'eve-first')
    ok(server.ctl('disable', 'Eve@localhost'))
    # passwd works and keeps the account disabled
    ok(server.ctl('passwd', 'eve@localhost', '--password-stdin',
                  input='eve-second'))
    assert_sasl_failure(sasl_answer(server, 'eve', 'eve-second', 'PLAIN'),
                        'account-disabled')
    assert_sasl_failure(sasl_answer(server, 'eve', 'eve-first', 'PLAIN'),
                        'not-authorized')
    # in-band registration of the name: taken (XEP-0077 §3.1.1)
    c, _ = tls_stream(server)
    try:
        c.send("<iq type='set' id='r1'><query xmlns='%s'><username>eve"
               "</username><password>x</password></query></iq>"
               % NS_REGISTER)
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'error', tostr(el)
        assert xmpp_raw.stanza_error(el)[1] == ['conflict'], tostr(el)
    finally:
        c.close()
    # deluser works; the name is free again, and not disabled
    ok(server.ctl('deluser', 'eve@localhost'))
    assert 'eve@localhost' not in ok(server.ctl('users')).stdout.split()
    r = ok(server.ctl('adduser', 'eve@localhost', '--password-stdin',
                      input='eve-new'))
    assert r.stdout == 'created eve@localhost\n'
    c = server.login('eve@localhost', password='eve-new', resource='new')
    try:
        c.presence()
        c.message('eve@localhost/new', 'still here')
        assert c.expect_stanza('message').find(
            q(NS_CLIENT, 'body')).text == 'still here'
    finally:
        c.close()
    ok(server.ctl('deluser', 'eve@localhost'))


def test_login_under_way_cannot_bind(server):
    """The credentials were read before the disable committed: SASL
    succeeds, but the bind that follows is ended at once."""
    server.adduser('trudy@localhost', 'trudy-secret')
    c, _ = tls_stream(server)
    send = c.send

    def disable_before_final(data):
        if data.startswith('<response'):
            ok(server.ctl('disable', 'trudy@localhost'))
        send(data)
    c.send = disable_before_final
    try:
        res = c.sasl_scram('trudy', 'trudy-secret', 'SHA-256')
        assert_sasl_success(res.final)
        c.send = send
        c.open_stream()
        c.bind('late')
        expect_disabled_error(c)
    finally:
        c.close()
    assert_sasl_failure(sasl_answer(server, 'trudy', 'trudy-secret',
                                    'SCRAM-SHA-256'), 'account-disabled')
    ok(server.ctl('enable', 'trudy@localhost'))
    c = server.login('trudy@localhost', password='trudy-secret',
                     resource='again')
    c.close()
    ok(server.ctl('deluser', 'trudy@localhost'))


def test_disable_events(server):
    """xmpptop learns of it: session-down "disabled: REASON" and a log."""
    from test_xmppctl_admin import Ctl
    server.adduser('oscar@localhost', 'oscar-secret')
    ev = Ctl(server.sock)
    c = server.login('oscar@localhost', resource='watched')
    try:
        ev.request(1, 'subscribe')
        ok(server.ctl('disable', 'oscar@localhost', '--reason', 'bot'))
        down = ev.event('session-down',
                        lambda f: f[1] == 'oscar@localhost/watched')
        assert down[2] == 'disabled: bot', down
        log = ev.event('log', lambda f: f[1].startswith('disabled '))
        assert log == ['info', 'disabled oscar@localhost (1 session '
                       'closed): bot'], log
        expect_disabled_error(c)
    finally:
        c.close()
        ev.close()
    ok(server.ctl('deluser', 'oscar@localhost'))


@pytest.mark.parametrize('args, code', [
    (('disable', 'nobody@localhost'), EXIT_NOT_FOUND),
    (('enable', 'nobody@localhost'), EXIT_NOT_FOUND),
    (('kick', '--disable', 'nobody@localhost'), EXIT_NOT_FOUND),
    (('disable', 'alice@localhost/res'), EXIT_ERROR),
    (('disable', 'not a jid'), EXIT_ERROR),
    (('disable', 'alice@localhost', '--reason', 'bell\x07'), EXIT_ERROR),
    (('disable', 'alice@localhost', '--reason', 'x' * 1025), EXIT_ERROR),
    (('disable',), EXIT_USAGE),
    (('enable', 'alice@localhost', '--reason', 'x'), EXIT_USAGE),
], ids=['unknown', 'enable-unknown', 'kick-unknown', 'full-jid', 'bad-jid',
        'control-char', 'long-reason', 'no-jid', 'enable-reason'])
def test_errors(server, args, code):
    r = server.ctl(*args)
    assert r.returncode == code, (args, r.returncode, r.stderr)
    assert r.stderr.startswith('xmppctl: '), r.stderr
    assert_listed_enabled(server, 'alice@localhost')


def test_read_only_uid_refused(server_factory, other_user):
    srv = control_group_server(server_factory, other_user)
    for args in (('disable', 'alice@localhost'),
                 ('enable', 'alice@localhost'),
                 ('kick', '--disable', 'alice@localhost')):
        r = other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] + list(args))
        assert r.returncode == EXIT_DENIED, (args, r.returncode, r.stderr)
    assert_listed_enabled(srv, 'alice@localhost')
