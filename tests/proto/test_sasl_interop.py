"""SASL as real clients do it (issue 12, item 2): slixmpp 1.8 (Debian 12's
python3-slixmpp) and poezio, which uses it, must log in with SCRAM, never
PLAIN, with no failed attempt in the daemon's log.

slixmpp knows one channel binding, tls-unique, and ignores XEP-0440.  Over
TLS 1.2 xmppd offers tls-unique (RFC 5929 §3.1, with the extended master
secret), so slixmpp binds with SCRAM-SHA-256-PLUS at once.  TLS 1.3 has
no tls-unique (RFC 8446 §C.5, RFC 9266 §1): slixmpp tries both -PLUS
mechanisms with it, is refused, and falls back to SCRAM-SHA-256 with the
gs2 flag 'y', which xmppd accepts after such an attempt on the same stream
(and refuses otherwise, RFC 5802 §6; see sasl.c).  The XEP-0474 hash in
the server-first-message, tls-unique itself and the 'y' rules are checked
here with the raw client too.
"""

import asyncio
import base64
import hashlib
import logging
import os
import shutil
import ssl
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from im_helpers import run_async
from xmpp_raw import (NS_SASL_CB, RawClient, assert_sasl_failure,
                      assert_sasl_success, client_tls_context, mechanisms,
                      q, scram_parse, tostr)

slixmpp = pytest.importorskip('slixmpp')

PASSWORD = 'alice-secret'
TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3
# The log lines that would count against a client (contrib/fail2ban).
FAILURE_WORDS = ('authentication failed', 'SASL refused', 'login refused')


class LogMark:
    """The daemon's stderr from now on."""

    def __init__(self, server):
        self.server = server
        self.start = len(server.stderr_text())

    def lines(self, settle=0.3):
        time.sleep(settle)
        return self.server.stderr_text()[self.start:].splitlines()

    def failures(self):
        return [line for line in self.lines()
                if any(w in line for w in FAILURE_WORDS)]


# -- slixmpp -----------------------------------------------------------------

def slixmpp_login(server, direct=False, max_version=None):
    """Log alice in with slixmpp as it comes (no mechanism forced) and
    return what it did: 'steps', a list of ('failed', mechanism, gs2
    header, condition) and ('success', mechanism, gs2 header) in order,
    the bound 'jid', and 'errors'."""
    logging.getLogger('slixmpp').setLevel(logging.CRITICAL)
    out = {'steps': [], 'jid': None, 'errors': []}
    clients = []

    async def scenario(loop):
        # Made inside the loop, so that its futures belong to it.
        x = slixmpp.ClientXMPP('alice@localhost/slix', PASSWORD)
        clients.append(x)
        x.ca_certs = Path(server.cert)      # self-signed: its own CA
        if max_version is not None:
            x.ssl_context.maximum_version = max_version
        fm = x['feature_mechanisms']

        def step(*what):
            gs2 = getattr(fm.mech, 'gs2_header', b'').decode()
            out['steps'].append(what[:2] + (gs2,) + what[2:])

        x.add_event_handler('failed_auth', lambda st: step(
            'failed', fm.mech.name, st['condition']))
        x.add_event_handler('auth_success',
                            lambda _st: step('success', fm.mech.name))
        x.add_event_handler('failed_all_auth', lambda _e: out[
            'errors'].append('failed_all_auth'))
        started = loop.create_future()
        x.add_event_handler('session_start', lambda _e: started.done() or
                            started.set_result(True))
        x.connect(('127.0.0.1', server.tls_port if direct else
                   server.c2s_port), use_ssl=direct,
                  force_starttls=not direct)
        try:
            await asyncio.wait_for(started, 10)
            out['jid'] = str(x.boundjid)
        except asyncio.TimeoutError:
            out['errors'].append('no session within 10 s')
        x.disconnect()
        await asyncio.sleep(0.1)

    try:
        run_async(scenario, clients)
    finally:
        # As in test_carbons.py: no "no current event loop" left behind.
        asyncio.set_event_loop_policy(None)
    return out


def test_slixmpp_binds_tls_unique_over_tls12(server):
    mark = LogMark(server)
    r = slixmpp_login(server, max_version=TLS12)
    assert not r['errors'], r
    assert r['steps'] == [('success', 'SCRAM-SHA-256-PLUS',
                           'p=tls-unique,,')], r['steps']
    assert r['jid'] == 'alice@localhost/slix'
    lines = mark.lines()
    assert mark.failures() == [], lines
    assert [ln for ln in lines if ': authenticated as ' in ln][0].endswith(
        ': authenticated as alice@localhost (SCRAM-SHA-256-PLUS)'), lines


@pytest.mark.parametrize('direct', [False, True],
                         ids=['starttls', 'direct-tls'])
def test_slixmpp_ends_on_scram_over_tls13(server, direct):
    """Over TLS 1.3 (what slixmpp negotiates by default) its -PLUS
    attempts name tls-unique, which TLS 1.3 lacks; its 'y' that follows is
    accepted: SCRAM-SHA-256, never PLAIN, and nothing the log counts as a
    failed login."""
    mark = LogMark(server)
    r = slixmpp_login(server, direct=direct)
    assert not r['errors'], r
    assert r['steps'] == [
        ('failed', 'SCRAM-SHA-256-PLUS', 'p=tls-unique,,', 'not-authorized'),
        ('failed', 'SCRAM-SHA-1-PLUS', 'p=tls-unique,,', 'not-authorized'),
        ('success', 'SCRAM-SHA-256', 'y,,'),
    ], r['steps']
    assert r['jid'] == 'alice@localhost/slix'
    lines = mark.lines()
    assert mark.failures() == [], lines
    assert [ln for ln in lines if ': authenticated as ' in ln][0].endswith(
        ': authenticated as alice@localhost (SCRAM-SHA-256)'), lines


# -- poezio, in tmux as a person runs it -------------------------------------

def tmux(*args):
    return subprocess.run(['tmux'] + list(args), capture_output=True,
                          text=True, timeout=10)


@pytest.fixture
def poezio_home():
    """A home for poezio, which refuses to run as root: as root it runs
    as nobody (setpriv), with the home given to nobody."""
    if shutil.which('poezio') is None or shutil.which('tmux') is None:
        pytest.skip('poezio and tmux are needed (apt-get install poezio '
                    'tmux)')
    prefix = []
    home = tempfile.mkdtemp(prefix='poezio-test-')
    if os.geteuid() == 0:
        if shutil.which('setpriv') is None:
            pytest.skip('poezio will not run as root and setpriv is '
                        'missing to run it as nobody')
        prefix = ['setpriv', '--reuid=nobody', '--regid=nogroup',
                  '--clear-groups']
    yield home, prefix
    shutil.rmtree(home, ignore_errors=True)


def test_poezio_logs_in_with_scram(server, poezio_home):
    home, prefix = poezio_home
    shutil.copy(server.cert, os.path.join(home, 'ca.pem'))
    cfg = os.path.join(home, 'poezio.cfg')
    with open(cfg, 'w') as f:
        f.write('[Poezio]\njid = alice@localhost\npassword = %s\n'
                'custom_host = 127.0.0.1\ncustom_port = %d\n'
                'ca_cert_path = %s\nforce_encryption = true\n'
                'use_log = false\n'
                % (PASSWORD, server.c2s_port, os.path.join(home, 'ca.pem')))
    if prefix:
        subprocess.run(['chown', '-R', 'nobody:nogroup', home], check=True)
    env = ' '.join('%s=%s' % kv for kv in (
        ('HOME', home), ('XDG_CONFIG_HOME', home + '/config'),
        ('XDG_DATA_HOME', home + '/data'), ('XDG_CACHE_HOME', home + '/cache'),
        ('TERM', 'xterm')))
    name = 'poezio-test-%d' % os.getpid()
    mark = LogMark(server)
    r = tmux('new-session', '-d', '-s', name, '-x', '200', '-y', '50',
             ' '.join(prefix + ['env', env, 'poezio', '-f', cfg]))
    assert r.returncode == 0, r.stderr
    try:
        deadline = time.monotonic() + 20
        while True:
            screen = tmux('capture-pane', '-p', '-t', name).stdout
            if 'Authentication success' in screen or \
                    'Authentication failed' in screen:
                break
            assert time.monotonic() < deadline, (
                'poezio did not log in:\n%s\n%s'
                % (screen, server.stderr_tail()))
            time.sleep(0.2)
        assert 'Authentication success' in screen, screen
        lines = mark.lines(settle=0.5)
        assert mark.failures() == [], lines
        auth = [ln for ln in lines if ': authenticated as ' in ln]
        assert len(auth) == 1 and auth[0].endswith(
            ': authenticated as alice@localhost (SCRAM-SHA-256)'), lines
    finally:
        tmux('send-keys', '-t', name, '/quit', 'Enter')
        time.sleep(0.3)
        tmux('kill-session', '-t', name)


# -- the raw protocol --------------------------------------------------------

def tls_client(server, version=None):
    c = server.client()
    c.open_stream()
    c.starttls(client_tls_context(version, version) if version else None)
    return c, c.open_stream()


def cb_types(features):
    cb = features.find(q(NS_SASL_CB, 'sasl-channel-binding'))
    return None if cb is None else [
        e.get('type') for e in cb.findall(q(NS_SASL_CB, 'channel-binding'))]


def expected_hash(features, hash_name):
    """XEP-0474 §6.1 from the features as the client received them."""
    s = '\x1e'.join(sorted(mechanisms(features)))
    types = cb_types(features)
    if types is not None:
        s += '\x1f' + '\x1e'.join(sorted(types))
    digest = {'SHA-1': hashlib.sha1, 'SHA-256': hashlib.sha256}[hash_name]
    return base64.b64encode(digest(s.encode()).digest()).decode()


@pytest.mark.parametrize('hash_name', ['SHA-1', 'SHA-256'])
@pytest.mark.parametrize('version', [TLS12, TLS13], ids=['tls12', 'tls13'])
def test_server_first_carries_downgrade_hash(server, version, hash_name):
    c, features = tls_client(server, version)
    try:
        res = c.sasl_scram('alice', PASSWORD, hash_name)
        assert_sasl_success(res.final)
        attrs = scram_parse(res.server_first)
        assert attrs['h'] == expected_hash(features, hash_name), (
            res.server_first, tostr(features))
    finally:
        c.close()


def test_downgrade_hash_without_channel_binding(server_factory):
    """Without TLS there is no XEP-0440 list: the hash covers the
    mechanisms alone (and no -PLUS or PLAIN is among them)."""
    srv = server_factory(starttls='optional')
    c = srv.client()
    try:
        features = c.open_stream()
        assert cb_types(features) is None, tostr(features)
        assert sorted(mechanisms(features)) == ['SCRAM-SHA-1',
                                                'SCRAM-SHA-256']
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256')
        assert_sasl_success(res.final)
        want = base64.b64encode(hashlib.sha256(
            b'SCRAM-SHA-1\x1eSCRAM-SHA-256').digest()).decode()
        assert scram_parse(res.server_first)['h'] == want
    finally:
        c.close()


def test_tls_unique_offered_on_tls12_only(server):
    c, features = tls_client(server, TLS12)
    c.close()
    assert cb_types(features) == ['tls-unique', 'tls-server-end-point']
    c, features = tls_client(server, TLS13)
    c.close()
    assert cb_types(features) == ['tls-exporter', 'tls-server-end-point']


def test_scram_plus_tls_unique_over_tls12(server):
    c, _ = tls_client(server, TLS12)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', plus='tls-unique',
                           cbdata=c.sock.get_channel_binding('tls-unique'))
        assert_sasl_success(res.final)
        assert res.server_signature_ok
    finally:
        c.close()


def scram_once(server, version, **kw):
    """One SCRAM-SHA-256 exchange as alice on a new stream: its last
    element."""
    c, _ = tls_client(server, version)
    try:
        return c.sasl_scram('alice', PASSWORD, 'SHA-256', **kw).final
    finally:
        c.close()


def refused_line(mark):
    """The one "SASL refused" log line since mark, from those words on."""
    lines = [ln[ln.index('SASL refused'):] for ln in mark.lines()
             if 'SASL refused' in ln]
    assert len(lines) == 1, lines
    return lines[0]


def test_scram_plus_tls_unique_wrong_data_refused(server):
    mark = LogMark(server)
    assert_sasl_failure(scram_once(server, TLS12, plus='tls-unique',
                                   cbdata=b'\0' * 12), 'not-authorized')
    assert refused_line(mark) == (
        'SASL refused for alice@localhost from 127.0.0.1 '
        '(SCRAM-SHA-256-PLUS, not-authorized): channel-binding data does '
        'not match this connection: a man in the middle?')


def test_scram_plus_tls_unique_after_resumption(server):
    """A resumed TLS 1.2 session: tls-unique is then the server's Finished
    (RFC 5929 §3.1: the first one sent), which Python computes too."""
    ctx = client_tls_context(TLS12, TLS12)
    first = RawClient(server.tls_port, tls=True, tls_context=ctx)
    try:
        first.open_stream()
        session = first.sock.session
    finally:
        first.close()
    c = RawClient(server.tls_port)
    c.sock = ctx.wrap_socket(c.sock, server_hostname='localhost',
                             session=session)
    try:
        assert c.sock.session_reused, 'TLS 1.2 session not resumed'
        c.open_stream()
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', plus='tls-unique',
                           cbdata=c.sock.get_channel_binding('tls-unique'))
        assert_sasl_success(res.final)
    finally:
        c.close()


# The gs2 flag 'y' (RFC 5802 §6; the policy is in sasl.c's cbflag_ok).

def test_y_refused_without_a_plus_attempt(server):
    """'y' when -PLUS was offered and not asked for: the stripped list of a
    man in the middle is the likely reason; refused, and logged."""
    mark = LogMark(server)
    assert_sasl_failure(scram_once(server, TLS13, cbflag='y'),
                        'not-authorized')
    assert refused_line(mark) == (
        'SASL refused for alice@localhost from 127.0.0.1 (SCRAM-SHA-256, '
        "not-authorized): gs2 flag 'y' although -PLUS was offered: a "
        'possible downgrade (RFC 5802 §6)')


@pytest.mark.parametrize('version,cbtype', [
    (TLS13, 'tls-unique'), (TLS12, 'tls-exporter'),
    (TLS13, 'no-such-binding')])
def test_y_accepted_after_plus_with_a_type_not_offered(server, version,
                                                      cbtype):
    """A client that asked for -PLUS saw it: its 'y' means "no binding type
    in common" (XEP-0440 §4), not a stripped list."""
    c, _ = tls_client(server, version)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', plus=cbtype,
                           cbdata=b'\0' * 32)
        assert_sasl_failure(res.final, 'not-authorized')
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', cbflag='y')
        assert_sasl_success(res.final)
        assert res.server_signature_ok
    finally:
        c.close()


def test_y_refused_after_plus_with_an_offered_type(server):
    """Asking for a type that is offered, then falling back to 'y', is no
    "no common type": still refused."""
    c, _ = tls_client(server, TLS13)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', plus='tls-exporter',
                           cbdata=b'\0' * 32)
        assert_sasl_failure(res.final, 'not-authorized')
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', cbflag='y')
        assert_sasl_failure(res.final, 'not-authorized')
    finally:
        c.close()


def test_y_hint_does_not_outlive_the_stream(server):
    """The hint belongs to one stream: a new connection starts without."""
    assert_sasl_failure(scram_once(server, TLS13, plus='tls-unique',
                                   cbdata=b'\0' * 32), 'not-authorized')
    assert_sasl_failure(scram_once(server, TLS13, cbflag='y'),
                        'not-authorized')
