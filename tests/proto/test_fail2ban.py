"""Failed logins name the account (issue 12, item 6): one stable log line,

    c2s ID ADDR: authentication failed for JID from IP (MECHANISM, CONDITION)

for every wrong password or proof, unknown account and name that cannot
be one, with hostile names escaped into one bounded word; the same words
in xmpptop's events; and contrib/fail2ban's filter run by fail2ban-regex
over the daemon's real log (as written with -d, and as syslog and the
journal would show it), matching exactly these lines and this address.

fail2ban-regex comes from Debian's fail2ban: installed with apt-get when
missing and running as root, otherwise those tests skip and say why."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from test_xmppctl_admin import Ctl
from xmpp_raw import assert_sasl_failure, assert_sasl_success

REPO = Path(__file__).resolve().parents[2]
FILTER = REPO / 'contrib' / 'fail2ban' / 'filter.d' / 'xmppd.conf'
JAIL = REPO / 'contrib' / 'fail2ban' / 'jail.d' / 'xmppd.conf'
XMPPTOP_BIN = os.environ.get('XMPPTOP_BIN', str(REPO / 'build' / 'xmpptop'))

WRONG = 'wrong-password-%d' % os.getpid()  # must never reach the log
FORGED = ('evil\nc2s 1 6.6.6.6:1: authentication failed for x@localhost '
          'from 6.6.6.6 (PLAIN, not-authorized)')


def escaped(name):
    """What the daemon logs for a name that does not prepare (sasl.c's
    log_name): printable ASCII but '\\' and '@' as is, the rest \\xHH,
    64 bytes of the name at most, then '...'."""
    raw = name.encode()
    out = ''.join(chr(b) if 0x20 < b < 0x7f and b not in b'\\@'
                  else '\\x%02x' % b for b in raw[:64])
    return out + ('...' if len(raw) > 64 else '')


# (how to fail, the JID the log must show, the mechanism)
def plain(user, password=WRONG):
    return lambda c: c.sasl_plain(user, password)


def scram(user, hash_name='SHA-256', password=WRONG):
    return lambda c: c.sasl_scram(user, password, hash_name).final


FAILURES = [
    (plain('alice'), 'alice@localhost', 'PLAIN'),
    (scram('bob'), 'bob@localhost', 'SCRAM-SHA-256'),
    (scram('mallory', 'SHA-1'), 'mallory@localhost', 'SCRAM-SHA-1'),
    (plain('NoSuchUser'), 'nosuchuser@localhost', 'PLAIN'),
    (plain('j\u00fcrgen'), 'j\u00fcrgen@localhost', 'PLAIN'),
    (plain('a' * 100), 'a' * 64 + '...@localhost', 'PLAIN'),
    (plain(FORGED), escaped(FORGED) + '@localhost', 'PLAIN'),
    (scram('x from 6.6.6.6 (PLAIN, not-authorized)\r\n'),
     escaped('x from 6.6.6.6 (PLAIN, not-authorized)\r\n') + '@localhost',
     'SCRAM-SHA-256'),
    (plain('line\u2028separator'), escaped('line\u2028separator')
     + '@localhost', 'PLAIN'),
    (plain('at@sign'), 'at\\x40sign@localhost', 'PLAIN'),
    (plain('alice', ''), 'alice@localhost', 'PLAIN'),
]


def tls_client(server):
    c = server.client()
    c.open_stream()
    c.starttls()
    c.open_stream()
    return c


def not_failures(server):
    """Logins that are no failed password: success, slixmpp's -PLUS with
    tls-unique over TLS 1.3 then 'y', a 'y' refused as a downgrade, an
    authzid of someone else.  None may match the filter."""
    c = tls_client(server)
    try:
        assert_sasl_success(c.sasl_scram('alice', 'alice-secret').final)
    finally:
        c.close()
    c = tls_client(server)
    try:
        assert_sasl_failure(c.sasl_scram(
            'alice', 'alice-secret', plus='tls-unique',
            cbdata=b'\0' * 12).final, 'not-authorized')
        assert_sasl_success(c.sasl_scram('alice', 'alice-secret',
                                         cbflag='y').final)
    finally:
        c.close()
    c = tls_client(server)
    try:
        assert_sasl_failure(c.sasl_scram('bob', 'bob-secret',
                                         cbflag='y').final, 'not-authorized')
        assert_sasl_failure(c.sasl_plain('bob', 'bob-secret',
                                         authzid='alice@localhost'),
                            'invalid-authzid')
    finally:
        c.close()


def provoke(server):
    """Every failure of FAILURES on its own stream (the daemon closes a
    stream after 5); returns the log lines they must produce."""
    for fail, _jid, _mech in FAILURES:
        c = tls_client(server)
        try:
            assert_sasl_failure(fail(c), 'not-authorized')
        finally:
            c.close()
    not_failures(server)
    time.sleep(0.3)
    return ['authentication failed for %s from 127.0.0.1 (%s, '
            'not-authorized)' % (jid, mech) for _f, jid, mech in FAILURES]


def failure_lines(text):
    return [m.group(1) for m in re.finditer(
        r'^\S+ xmppd info: c2s \d+ 127\.0\.0\.1:\d+: '
        r'(authentication failed for .*)$', text, re.M)]


def test_failed_logins_logged_in_one_format(server_factory):
    srv = server_factory()
    expected = provoke(srv)
    text = srv.stderr_text()
    assert failure_lines(text) == expected, srv.stderr_tail()
    assert WRONG not in text
    # The hostile names stayed on their line: nothing else forged.
    assert '6.6.6.6' not in ''.join(
        ln for ln in text.splitlines()
        if 'authentication failed' in ln and '\\x' not in ln)
    # Refusals that are no wrong password have words of their own.
    assert "SASL refused for bob@localhost from 127.0.0.1 (SCRAM-SHA-256, " \
        "not-authorized): gs2 flag 'y' although -PLUS was offered" in text
    assert 'login refused for bob@localhost from 127.0.0.1 (PLAIN, ' \
        'invalid-authzid)' in text


def test_failed_login_in_xmpptop_events(server):
    """The control plane's event (what xmpptop's events pane shows) has
    the same words as the log line."""
    ev = Ctl(server.sock)
    try:
        ev.request(1, 'subscribe')
        c = tls_client(server)
        try:
            assert_sasl_failure(c.sasl_plain(FORGED, WRONG),
                                'not-authorized')
        finally:
            c.close()
        log = ev.event('log', lambda f: 'authentication failed' in f[1])
        assert log == ['warning', 'authentication failed for %s@localhost '
                       'from 127.0.0.1 (PLAIN, not-authorized)'
                       % escaped(FORGED)], log
    finally:
        ev.close()


def tmux(*args):
    return subprocess.run(['tmux'] + list(args), capture_output=True,
                          text=True, timeout=10)


def test_failed_login_on_xmpptop_screen(server):
    if shutil.which('tmux') is None:
        pytest.skip('tmux is not installed')
    name = 'xmpptop-f2b-%d' % os.getpid()
    r = tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '40',
             '%s -s %s' % (XMPPTOP_BIN, server.sock))
    assert r.returncode == 0, r.stderr
    try:
        time.sleep(0.5)
        c = tls_client(server)
        try:
            assert_sasl_failure(c.sasl_plain('mallory', WRONG),
                                'not-authorized')
        finally:
            c.close()
        want = ('authentication failed for mallory@localhost from '
                '127.0.0.1 (PLAIN, not-authorized)')
        deadline = time.monotonic() + 5
        while want not in tmux('capture-pane', '-p', '-t', name).stdout:
            assert time.monotonic() < deadline, tmux(
                'capture-pane', '-p', '-t', name).stdout
            time.sleep(0.1)
    finally:
        tmux('kill-session', '-t', name)


# -- fail2ban ----------------------------------------------------------------

@pytest.fixture(scope='module')
def fail2ban_regex():
    path = shutil.which('fail2ban-regex')
    if path is None:
        if os.geteuid() != 0 or shutil.which('apt-get') is None:
            pytest.skip('fail2ban-regex is missing (Debian package '
                        'fail2ban) and only root can install it with '
                        'apt-get')
        r = subprocess.run(['apt-get', 'install', '-y', '-q',
                            '--no-install-recommends', 'fail2ban'],
                           capture_output=True, text=True, timeout=900,
                           env=dict(os.environ,
                                    DEBIAN_FRONTEND='noninteractive'))
        path = shutil.which('fail2ban-regex')
        if path is None:
            pytest.skip('apt-get install fail2ban failed: %s'
                        % (r.stderr.strip().splitlines() or ['?'])[-1])
    return path


@pytest.fixture
def filter_dir(tmp_path):
    """The shipped filter where fail2ban looks for it, next to fail2ban's
    own common.conf, as an installation has it."""
    common = Path('/etc/fail2ban/filter.d/common.conf')
    if not common.exists():
        pytest.skip('%s is missing' % common)
    d = tmp_path / 'filter.d'
    d.mkdir()
    shutil.copy(common, d)
    shutil.copy(FILTER, d)
    return d / 'xmppd.conf'


def run_regex(binary, log, filt):
    """(ip, user) pairs matched, and the summary line."""
    r = subprocess.run([binary, '-o', '<ip> <F-USER>', str(log), str(filt)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    pairs = [tuple(ln.split(' ', 1)) for ln in r.stdout.splitlines()]
    s = subprocess.run([binary, str(log), str(filt)], capture_output=True,
                       text=True, timeout=120)
    summary = re.search(r'^Lines: .*$', s.stdout, re.M)
    return pairs, summary.group(0) if summary else s.stdout


def as_syslog(text):
    """The daemon's -d lines as syslog(3) writes them to a file."""
    out = []
    for ln in text.splitlines():
        m = re.match(r'^\d{4}-\d\d-(\d\d)T(\d\d:\d\d:\d\d)\.\d+Z xmppd '
                     r'\w+: (.*)$', ln)
        if m:
            out.append('Dec %s %s testhost xmppd[4242]: %s'
                       % (m.group(1), m.group(2), m.group(3)))
    return '\n'.join(out) + '\n'


def test_fail2ban_filter_matches_real_log(server_factory, fail2ban_regex,
                                          filter_dir, tmp_path):
    srv = server_factory()
    expected = provoke(srv)
    users = [ln.split(' ')[3] for ln in expected]
    log = srv.stderr_path
    syslog = tmp_path / 'daemon.log'
    syslog.write_text(as_syslog(srv.stderr_text()))
    for path, filt in [(log, filter_dir), (syslog, filter_dir),
                       (syslog, '%s[logtype=journal]' % filter_dir)]:
        pairs, summary = run_regex(fail2ban_regex, path, filt)
        assert pairs == [('127.0.0.1', u) for u in users], (path, filt,
                                                             pairs)
        assert ', %d matched,' % len(FAILURES) in summary, summary


def test_jail_example_loads(fail2ban_regex, tmp_path):
    """fail2ban's own reader takes the shipped jail with the filter: the
    journal backend, xmppd's syslog identifier, the daemon's ports."""
    client = shutil.which('fail2ban-client')
    if client is None or not Path('/etc/fail2ban/jail.conf').exists():
        pytest.skip('fail2ban-client or /etc/fail2ban is missing')
    etc = tmp_path / 'fail2ban'
    shutil.copytree('/etc/fail2ban', etc)
    shutil.copy(FILTER, etc / 'filter.d')
    shutil.copy(JAIL, etc / 'jail.d')
    r = subprocess.run([client, '-c', str(etc), '-d'], capture_output=True,
                       text=True, timeout=120)
    dump = [ln for ln in r.stdout.splitlines() if "'xmppd'" in ln]
    assert "['add', 'xmppd', 'systemd']" in dump, r.stdout + r.stderr
    assert "['set', 'xmppd', 'addjournalmatch', 'SYSLOG_IDENTIFIER=xmppd']" \
        in dump, dump
    assert "['set', 'xmppd', 'maxretry', 5]" in dump, dump
    assert "['port', '5222,5223']" in r.stdout, dump
