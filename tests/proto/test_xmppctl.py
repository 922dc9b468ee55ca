"""xmppctl(8) against a running daemon: account round trips checked by
logging in, exit codes (0 ok, 1 daemon error, 2 usage, 3 unreachable,
4 exists, 5 no such user, 6 denied), listings and status, text and JSON."""

import json
import os
import re
import socket
import subprocess
import time

import pytest

from conftest import (XMPPCTL_BIN, assert_control_socket,
                      control_group_server)
from xmpp_raw import assert_sasl_failure, assert_sasl_success

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3
EXIT_EXISTS, EXIT_NO_USER, EXIT_DENIED = 4, 5, 6

# Stream error a deleted user's open sessions receive.
DELUSER_CONDITION = 'not-authorized'


def plain_result(server, user, password):
    """The SASL answer to PLAIN user/password after STARTTLS."""
    c = server.client()
    try:
        c.open_stream()
        c.starttls()
        c.open_stream()
        return c.sasl_plain(user, password)
    finally:
        c.close()


def scram_result(server, user, password):
    c = server.client()
    try:
        c.open_stream()
        c.starttls()
        c.open_stream()
        return c.sasl_scram(user, password, 'SHA-256').final
    finally:
        c.close()


def ok(r):
    assert r.returncode == EXIT_OK, 'exit %d\nstdout: %s\nstderr: %s' % (
        r.returncode, r.stdout, r.stderr)
    return r


def test_adduser_login_passwd_deluser_round_trip(server):
    ok(server.ctl('adduser', 'carol@localhost', '--password-stdin',
                  input='first pass'))
    assert_sasl_success(plain_result(server, 'carol', 'first pass'))
    assert_sasl_success(scram_result(server, 'carol', 'first pass'))

    kept = server.login('carol@localhost', password='first pass',
                        resource='kept')
    ok(server.ctl('passwd', 'carol@localhost', '--password-stdin',
                  input='second pass'))
    # xmppctl(8): sessions already logged in stay connected
    kept.message('carol@localhost/kept', 'after passwd')
    assert kept.expect_stanza('message').find(
        '{jabber:client}body').text == 'after passwd'
    kept.close()
    assert_sasl_failure(plain_result(server, 'carol', 'first pass'),
                        'not-authorized')
    assert_sasl_failure(scram_result(server, 'carol', 'first pass'),
                        'not-authorized')
    assert_sasl_success(plain_result(server, 'carol', 'second pass'))
    assert_sasl_success(scram_result(server, 'carol', 'second pass'))

    session = server.login('carol@localhost', password='second pass',
                           resource='doomed')
    try:
        ok(server.ctl('deluser', 'carol@localhost'))
        session.expect_stream_error(DELUSER_CONDITION)
    finally:
        session.close()
    assert_sasl_failure(plain_result(server, 'carol', 'second pass'),
                        'not-authorized')
    assert_sasl_failure(scram_result(server, 'carol', 'second pass'),
                        'not-authorized')
    r = ok(server.ctl('users'))
    assert 'carol@localhost' not in r.stdout.split()


def test_password_stdin_trailing_newline_stripped(server):
    ok(server.ctl('adduser', 'dave@localhost', '--password-stdin',
                  input='line pass\n'))
    try:
        assert_sasl_success(plain_result(server, 'dave', 'line pass'))
    finally:
        ok(server.ctl('deluser', 'dave@localhost'))


def test_adduser_existing(server):
    r = server.ctl('adduser', 'alice@localhost', '--password-stdin',
                   input='other')
    assert r.returncode == EXIT_EXISTS, (r.returncode, r.stderr)
    assert r.stderr.startswith('xmppctl: adduser alice@localhost: '), (
        r.stderr)
    # and the password did not change
    assert_sasl_success(plain_result(server, 'alice',
                                     server.users['alice@localhost']))


@pytest.mark.parametrize('jid', ['nobody@localhost', 'nobody@example.org'])
def test_deluser_unknown(server, jid):
    """Unknown accounts are 5 even on hosts no longer configured."""
    r = server.ctl('deluser', jid)
    assert r.returncode == EXIT_NO_USER, (r.returncode, r.stderr)
    assert r.stderr.startswith('xmppctl: deluser %s: ' % jid), r.stderr


def test_passwd_unknown(server):
    r = server.ctl('passwd', 'nobody@localhost', '--password-stdin',
                   input='x')
    assert r.returncode == EXIT_NO_USER, (r.returncode, r.stderr)


@pytest.mark.parametrize('jid', ['bad user@localhost', '@localhost',
                                 'alice@localhost/resource', 'a@b@localhost',
                                 'x' * 1100 + '@localhost'],
                         ids=['space', 'empty-local', 'full-jid',
                              'two-at', 'too-long'])
def test_adduser_bad_jid(server, jid):
    r = server.ctl('adduser', jid, '--password-stdin', input='pw')
    assert r.returncode == EXIT_ERROR, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith('xmppctl: adduser %s: ' % jid), r.stderr
    assert jid not in ok(server.ctl('users')).stdout.split('\n')


@pytest.mark.parametrize('jid', ['erin@example.org', 'localhost'],
                         ids=['other-domain', 'domain-only'])
def test_adduser_unknown_host_or_no_local(server, jid):
    r = server.ctl('adduser', jid, '--password-stdin', input='pw')
    assert r.returncode == EXIT_ERROR, (r.returncode, r.stderr)
    assert r.stderr.startswith('xmppctl: adduser %s: ' % jid), r.stderr


@pytest.mark.parametrize('stdin, code', [
    ('', EXIT_USAGE),            # no line at all: nothing could be read
    ('\n', EXIT_ERROR),          # an empty password: the daemon refuses
    ('\u0007bell\n', EXIT_ERROR),  # SASLprep prohibits control characters
    ('x' * 1024 + '\n', EXIT_ERROR),  # longer than 1023 bytes
], ids=['no-input', 'empty-line', 'prohibited-char', 'too-long'])
def test_adduser_bad_password_refused(server, stdin, code):
    r = server.ctl('adduser', 'frank@localhost', '--password-stdin',
                   input=stdin)
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.strip()
    assert 'frank@localhost' not in ok(server.ctl('users')).stdout.split()


def test_daemon_unreachable_missing_socket(server, tmp_path):
    r = server.ctl('users', socket_path=tmp_path / 'no-such.sock')
    assert r.returncode == EXIT_UNREACHABLE, (r.returncode, r.stderr)
    assert r.stderr.startswith('xmppctl: '), r.stderr


def test_daemon_unreachable_stale_socket(server, tmp_path):
    path = tmp_path / 'stale.sock'
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(path))
    s.close()       # the file stays, nobody listens
    r = server.ctl('status', socket_path=path)
    assert r.returncode == EXIT_UNREACHABLE, (r.returncode, r.stderr)


@pytest.mark.parametrize('args', [
    [], ['frobnicate'], ['adduser'], ['deluser'],
    ['adduser', 'a@localhost', '--no-such-flag'], ['s'],
    ['deluser', 'a@localhost', 'b@localhost'], ['status', 'extra']],
    ids=['none', 'unknown-command', 'adduser-no-jid', 'deluser-no-jid',
         'unknown-flag', 'ambiguous-abbreviation', 'extra-argument',
         'status-extra-argument'])
def test_usage_errors(server, args):
    r = server.ctl(*args, input='')
    assert r.returncode == EXIT_USAGE, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()


def test_users_lists_alice_and_bob(server):
    r = ok(server.ctl('users'))
    lines = r.stdout.splitlines()
    assert 'alice@localhost' in lines and 'bob@localhost' in lines, lines
    assert all(re.fullmatch(r'[^\s@]+@localhost', l) for l in lines), lines
    assert lines == sorted(lines), 'not ordered by user: %s' % lines
    assert ok(server.ctl('users', '--host', 'localhost')).stdout.splitlines(
    ) == lines


def test_users_host_not_configured(server):
    r = server.ctl('users', '--host', 'example.org')
    assert r.returncode == EXIT_ERROR, (r.returncode, r.stderr)
    assert r.stdout == ''
    assert r.stderr.startswith('xmppctl: users'), r.stderr


def test_users_json(server):
    """users --json: an array of objects, one per row, keyed by column,
    typed (xmppctl(8) JSON OUTPUT)."""
    r = ok(server.ctl('users', '--json'))
    data = json.loads(r.stdout)
    assert isinstance(data, list) and all(
        isinstance(d, dict) and set(d) == {'jid', 'disabled',
                                           'disabled_since',
                                           'disabled_reason'}
        for d in data), data
    assert all(d['disabled'] is False and d['disabled_since'] is None and
               d['disabled_reason'] == '' for d in data), data
    jids = [d['jid'] for d in data]
    assert {'alice@localhost', 'bob@localhost'} <= set(jids), jids
    text = ok(server.ctl('users')).stdout.split()
    assert sorted(jids) == sorted(text)


def _status_sessions_text(out):
    m = re.search(r'^\s*sessions\s*[:=]?\s*(\d+)\s*$', out, re.M)
    assert m, 'no "sessions N" line in status output:\n' + out
    return int(m.group(1))


STATUS_KEYS = {'version', 'uptime', 'hosts', 'sessions', 'users-online',
               'storage-queue', 'storage-commits', 'last-commit-ms', 'pid'}


def _status_sessions_json(out):
    """status --json: one object, the key/value rows with typed values."""
    data = json.loads(out)
    assert isinstance(data, dict), data
    assert STATUS_KEYS <= set(data), data
    assert isinstance(data['version'], str), data
    assert data['hosts'] == ['localhost'], data
    assert isinstance(data['last-commit-ms'], (int, float)), data
    assert all(type(data[k]) is int for k in STATUS_KEYS - {
        'version', 'hosts', 'last-commit-ms'}), data
    return data['sessions']


def test_status_sessions_count(server_factory):
    srv = server_factory()
    out = ok(srv.ctl('status')).stdout
    assert _status_sessions_text(out) == 0
    assert re.search(r'^pid\s+%d$' % srv.proc.pid, out, re.M), out
    assert re.search(r'^hosts\s+localhost$', out, re.M), out
    a = srv.login('alice@localhost', resource='s1')
    b = srv.login('bob@localhost', resource='s2')
    try:
        out = ok(srv.ctl('status')).stdout
        assert _status_sessions_text(out) == 2
        assert re.search(r'^users-online\s+2$', out, re.M), out
        assert _status_sessions_json(
            ok(srv.ctl('status', '--json')).stdout) == 2
    finally:
        a.end_stream()
        a.expect_stream_end()
        a.close()
        b.close()
    deadline = time.monotonic() + 3
    while _status_sessions_text(ok(srv.ctl('status')).stdout) != 0:
        assert time.monotonic() < deadline, 'sessions not released'
        time.sleep(0.05)


def test_control_socket_mode_and_group(server):
    """Without a 'user' or 'control-group', the socket is the daemon's:
    its uid and group, mode 0660 (checked as any user, root or not)."""
    assert_control_socket(server, os.geteuid(), os.getegid())


def test_denied_for_other_uid(server_factory, other_user):
    """Privileged commands are for uid 0 or the daemon's user; a member of
    the control group may connect (group access to the 0660 socket) and
    read, and gets 6 for a change."""
    srv = control_group_server(server_factory, other_user)

    def as_member(*args, input=None):
        return other_user.run([XMPPCTL_BIN, '-s', str(srv.sock)] +
                              list(args), input=input)

    r = as_member('adduser', 'mallory@localhost', '--password-stdin',
                  input='pw')
    assert r.returncode == EXIT_DENIED, (r.returncode, r.stderr)
    r = as_member('deluser', 'alice@localhost')
    assert r.returncode == EXIT_DENIED, (r.returncode, r.stderr)
    r = as_member('users')
    assert r.returncode == EXIT_OK, (r.returncode, r.stderr)
    assert 'mallory@localhost' not in r.stdout.split()
    assert 'alice@localhost' in r.stdout.split()
    assert re.search(r'control \d+: connection from uid %d pid \d+ '
                     r'\(read-only\)' % other_user.uid, srv.stderr_text())


def test_abbreviations_and_option_order(server):
    """"add" is adduser, "st" is ambiguous (status, stop), "sta" is status;
    --json may come before or after the command."""
    ok(server.ctl('add', 'gina@localhost', '--password-stdin', input='g'))
    assert 'gina@localhost' in ok(server.ctl('us')).stdout.split()
    assert server.ctl('st').returncode == EXIT_USAGE
    before = json.loads(ok(server.ctl('--json', 'sta')).stdout)
    after = json.loads(ok(server.ctl('status', '--json')).stdout)
    assert before['pid'] == after['pid'] == server.proc.pid
    ok(server.ctl('del', 'gina@localhost'))
    assert 'gina@localhost' not in ok(server.ctl('users')).stdout.split()


def test_socket_from_environment(server):
    env = dict(os.environ, XMPPD_SOCKET=str(server.sock))
    r = subprocess.run([XMPPCTL_BIN, 'status'], capture_output=True,
                       text=True, timeout=30, env=env, cwd='/')
    assert r.returncode == EXIT_OK, r.stderr
    assert re.search(r'^pid\s+%d$' % server.proc.pid, r.stdout, re.M)


def test_version_and_help(server):
    r = subprocess.run([XMPPCTL_BIN, '-V'], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == EXIT_OK and r.stdout.strip(), (r.returncode,
                                                          r.stderr)
    r = subprocess.run([XMPPCTL_BIN, '-h'], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == EXIT_OK, r.stderr
    out = r.stdout + r.stderr
    for cmd in ('adduser', 'passwd', 'deluser', 'users', 'status', 'stop',
                'reload'):
        assert cmd in out, out


def test_reload_keeps_serving(server):
    a = server.login('alice@localhost', resource='reload')
    try:
        r = ok(server.ctl('reload'))
        assert r.stdout == ''
        time.sleep(0.2)
        server.assert_serves()
        a.message('alice@localhost/reload', 'still')
        assert a.expect_stanza('message').find(
            '{jabber:client}body').text == 'still'
    finally:
        a.close()


def test_stop_command(server_factory):
    """stop: like SIGTERM, <system-shutdown/> to streams, exit 0."""
    srv = server_factory()
    a = srv.login('alice@localhost', resource='stop')
    try:
        ok(srv.ctl('stop'))
        a.expect_stream_error('system-shutdown')
        assert srv.wait_exit(5) == 0, srv.stderr_tail()
        assert srv.stop(check=False) == []
        r = srv.ctl('status')
        assert r.returncode == EXIT_UNREACHABLE, (r.returncode, r.stderr)
    finally:
        a.close()


def test_denied_cannot_connect(server_factory, other_user):
    """Someone outside the control group may not connect to the 0660
    socket at all: exit 6, and the daemon never hears of it."""
    srv = control_group_server(server_factory, other_user)
    r = other_user.run([XMPPCTL_BIN, '-s', str(srv.sock), 'status'],
                       member=False)
    assert r.returncode == EXIT_DENIED, (r.returncode, r.stderr)
    assert 'Permission denied' in r.stderr, r.stderr
    assert 'uid %d ' % other_user.uid not in srv.stderr_text()
