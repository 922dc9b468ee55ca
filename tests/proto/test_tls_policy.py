"""The TLS policy (xmppd.conf(5) tls-ciphers, tls-ciphersuites): with an RSA
certificate, TLS 1.2 takes exactly the ECDHE suites with AEAD ciphers
(no static-RSA key exchange, no CBC); TLS 1.3 keeps OpenSSL's suites; both
lists are configurable, checked at start-up and on reload; renegotiation
is refused while other clients are served."""

import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import time

import pytest

from conftest import XMPPD_BIN, Server
from xmpp_raw import NS_CLIENT, client_tls_context, q

# CONF_TLS_CIPHERS (xmppd/conf.h), as xmppd.conf(5) states it.
DEFAULT_TLS12 = [
    'ECDHE-ECDSA-AES128-GCM-SHA256', 'ECDHE-RSA-AES128-GCM-SHA256',
    'ECDHE-ECDSA-AES256-GCM-SHA384', 'ECDHE-RSA-AES256-GCM-SHA384',
    'ECDHE-ECDSA-CHACHA20-POLY1305', 'ECDHE-RSA-CHACHA20-POLY1305',
]
STATIC_RSA = ['AES128-GCM-SHA256', 'AES256-GCM-SHA384', 'AES128-SHA256']
CBC = ['ECDHE-RSA-AES128-SHA256', 'ECDHE-RSA-AES256-SHA384',
       'ECDHE-RSA-AES128-SHA']


@pytest.fixture(scope='module')
def rsa_certificate(tmp_path_factory):
    """A self-signed RSA 2048 certificate for localhost (conftest's is EC,
    which only ECDSA suites can use)."""
    d = tmp_path_factory.mktemp('rsa')
    cert, key = d / 'cert.pem', d / 'key.pem'
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-sha256',
         '-nodes', '-days', '30', '-subj', '/CN=localhost', '-addext',
         'subjectAltName=DNS:localhost', '-keyout', str(key), '-out',
         str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope='module')
def rsa_server(rsa_certificate):
    srv = Server(rsa_certificate).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def rsa_server_factory(server_factory, rsa_certificate):
    """server_factory(**options) with the RSA certificate."""
    def make(**opts):
        srv = server_factory(start=False, **opts)
        shutil.copy(rsa_certificate[0], srv.cert)
        shutil.copy(rsa_certificate[1], srv.key)
        return srv.start()
    return make


def tls12_context(ciphers):
    """A TLS 1.2-only client offering exactly ciphers (security level 0, so
    that the client's own policy does not hide a suite)."""
    ctx = client_tls_context(min_version=ssl.TLSVersion.TLSv1_2,
                             max_version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers(ciphers + ':@SECLEVEL=0')
    return ctx


def direct_handshake(port, ctx):
    """The cipher negotiated on the direct TLS port, or the SSLError."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    try:
        t = ctx.wrap_socket(s, server_hostname='localhost')
    except ssl.SSLError as e:
        s.close()
        return e
    name = t.cipher()[0]
    t.close()
    return name


def client_tls12_suites():
    """Every TLS 1.2 suite this Python's OpenSSL can offer."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.set_ciphers('ALL:COMPLEMENTOFALL:@SECLEVEL=0')
    return sorted(c['name'] for c in ctx.get_ciphers()
                  if not c['name'].startswith('TLS_'))


def assert_refused(srv, result, suite):
    assert isinstance(result, ssl.SSLError), (
        'TLS 1.2 with only %s was accepted (%s)' % (suite, result))
    assert 'HANDSHAKE_FAILURE' in str(result), result


@pytest.mark.parametrize('kind', ['rsa', 'ec'])
def test_tls12_accepts_exactly_the_default_suites(request, kind):
    """Offered one at a time, the suites the server takes are the
    documented list's for the certificate's key type, and no other."""
    srv = request.getfixturevalue('rsa_server' if kind == 'rsa' else
                                  'server')
    offered = client_tls12_suites()
    assert set(STATIC_RSA + CBC) <= set(offered), offered
    accepted = {}
    for suite in offered:
        r = direct_handshake(srv.tls_port, tls12_context(suite))
        if isinstance(r, str):
            accepted[suite] = r
    auth = '-RSA-' if kind == 'rsa' else '-ECDSA-'
    want = [s for s in DEFAULT_TLS12 if auth in s]
    assert sorted(accepted) == sorted(want), sorted(accepted)
    assert all(k == v for k, v in accepted.items()), accepted


@pytest.mark.parametrize('suite', STATIC_RSA + CBC)
def test_tls12_static_rsa_and_cbc_refused(rsa_server, suite):
    """A TLS 1.2 client offering only static-RSA key exchange or only CBC
    suites fails the handshake (handshake_failure: no shared cipher)."""
    r = direct_handshake(rsa_server.tls_port, tls12_context(suite))
    assert_refused(rsa_server, r, suite)
    rsa_server.assert_serves()


def test_tls12_refused_over_starttls(rsa_server):
    """The same context serves STARTTLS: static RSA and CBC refused there
    too, an allowed suite logs in."""
    for suite in ('AES256-GCM-SHA384', 'ECDHE-RSA-AES256-SHA384'):
        c = rsa_server.client()
        try:
            c.open_stream()
            with pytest.raises(ssl.SSLError, match='HANDSHAKE_FAILURE'):
                c.starttls(tls12_context(suite))
        finally:
            c.close()
    c = rsa_server.login('alice@localhost', resource='tls12',
                         tls_context=tls12_context(
                             'ECDHE-RSA-CHACHA20-POLY1305'))
    try:
        assert c.sock.version() == 'TLSv1.2'
        assert c.sock.cipher()[0] == 'ECDHE-RSA-CHACHA20-POLY1305'
    finally:
        c.close()


def test_tls13_keeps_openssl_suites(rsa_server):
    """TLS 1.3 is untouched by tls-ciphers: OpenSSL's suites, the
    server's first choice when the client offers all three."""
    ctx = client_tls_context(min_version=ssl.TLSVersion.TLSv1_3)
    assert direct_handshake(rsa_server.tls_port, ctx) == \
        'TLS_AES_256_GCM_SHA384'


def wait_log(srv, pattern, timeout=5.0, start=0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, srv.stderr_text()[start:], re.M)
        if m:
            return m
        time.sleep(0.05)
    return None


def renegotiate(port):
    """openssl s_client over TLS 1.2: once the handshake is done, 'R'
    (renegotiate) on its standard input.  Returns (exit status, output)."""
    p = subprocess.Popen(
        ['openssl', 's_client', '-connect', '127.0.0.1:%d' % port,
         '-servername', 'localhost', '-tls1_2'], stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = b''
    deadline = time.monotonic() + 10
    # s_client prints the session and flushes before it reads commands.
    while b'Verify return code' not in out or not out.endswith(b'---\n'):
        assert time.monotonic() < deadline, out.decode(errors='replace')
        r, _, _ = select.select([p.stdout], [], [], 0.2)
        if r:
            chunk = os.read(p.stdout.fileno(), 65536)
            assert chunk, 'handshake failed: %s' % out.decode(
                errors='replace')
            out += chunk
    p.stdin.write(b'R\n')
    p.stdin.flush()
    try:
        rest, _ = p.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        rest, _ = p.communicate()
        return None, (out + rest).decode(errors='replace')
    return p.returncode, (out + rest).decode(errors='replace')


def test_renegotiation_refused_while_others_are_served(rsa_server):
    """A client that asks for a new handshake on a TLS 1.2 connection gets
    the no_renegotiation alert (no second handshake happens: OpenSSL 3
    refuses it by default, SSL_OP_NO_RENEGOTIATION says so explicitly),
    while a logged-in client keeps being answered."""
    bystander = rsa_server.login('bob@localhost', resource='bystander')
    start = len(rsa_server.stderr_text())
    try:
        for i in range(3):
            status, out = renegotiate(rsa_server.tls_port)
            assert 'RENEGOTIATING' in out, out
            assert 'no renegotiation' in out, out
            assert status not in (None, 0), (status, out)
            bystander.send("<iq type='get' id='r%d' to='localhost'>"
                           "<ping xmlns='urn:xmpp:ping'/></iq>" % i)
            t0 = time.monotonic()
            el = bystander.expect(q(NS_CLIENT, 'iq'))
            assert el.get('id') == 'r%d' % i and el.get('type') == 'result'
            assert time.monotonic() - t0 < 1.0
        log = rsa_server.stderr_text()[start:]
        # Each connection: one handshake, then the client's fatal alert.
        assert len(re.findall(r'TLS established: TLSv1\.2', log)) == 3, log
        assert len(re.findall(r'TLS error during read: .*alert handshake '
                              r'failure', log)) == 3, log
    finally:
        bystander.close()
    rsa_server.assert_serves()


def config_with(certificate, line):
    srv = Server(certificate, extra=line)
    srv.c2s_port, srv.tls_port = 15993, 15992
    srv.conf.write_text(srv.config_text())
    return srv


@pytest.mark.parametrize('line,message', [
    ('tls-ciphers "NOSUCHSUITE"',
     "invalid value 'NOSUCHSUITE' for 'tls-ciphers' (OpenSSL selects no "
     "TLS 1.2 cipher suite from it)"),
    ('tls-ciphers "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA265"',
     "'ECDHE-RSA-AES128-GCM-SHA265' in 'tls-ciphers' is no TLS 1.2 cipher "
     "suite OpenSSL knows"),
    ('tls-ciphers "TLS_AES_128_GCM_SHA256"',
     "invalid value 'TLS_AES_128_GCM_SHA256' for 'tls-ciphers' (OpenSSL "
     "selects no TLS 1.2 cipher suite from it)"),
    ('tls-ciphersuites "TLS_NO_SUCH_SUITE"',
     "invalid value 'TLS_NO_SUCH_SUITE' for 'tls-ciphersuites' (OpenSSL "
     "selects no TLS 1.3 cipher suite from it)"),
    ('tls-ciphersuites "TLS_AES_128_GCM_SHA256:TLS_NO_SUCH_SUITE"',
     "'TLS_NO_SUCH_SUITE' in 'tls-ciphersuites' is no TLS 1.3 cipher "
     "suite OpenSSL knows"),
], ids=['unknown', 'typo', 'tls13-name', 'tls13-unknown', 'tls13-typo'])
def test_invalid_cipher_strings_refused(certificate, line, message):
    srv = config_with(certificate, line)
    try:
        r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
        n = srv.config_text().splitlines().index(line) + 1
        assert r.stderr == 'xmppd: %s:%d: %s\n' % (srv.conf, n, message), \
            r.stderr
    finally:
        shutil.rmtree(srv.dir, ignore_errors=True)


def test_valid_cipher_strings_accepted(certificate):
    srv = config_with(certificate, 'tls-ciphers "ECDHE+AESGCM:!aNULL:'
                      '@STRENGTH"\ntls-ciphersuites "TLS_AES_128_GCM_SHA256"')
    try:
        r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                           capture_output=True, text=True, timeout=20)
        assert r.returncode == 0, r.stderr
        assert r.stdout == 'configuration OK: %s\n' % srv.conf
    finally:
        shutil.rmtree(srv.dir, ignore_errors=True)


def test_configured_suites_and_dhe(rsa_server_factory):
    """tls-ciphers replaces the TLS 1.2 list (DHE works when listed: the
    group follows the key, 2048 bits for RSA 2048); tls-ciphersuites the
    TLS 1.3 one."""
    srv = rsa_server_factory(extra='tls-ciphers "DHE-RSA-AES128-GCM-SHA256:'
                             'ECDHE-RSA-AES256-GCM-SHA384"\n'
                             'tls-ciphersuites "TLS_CHACHA20_POLY1305_SHA256"')
    port = srv.tls_port
    assert direct_handshake(port, tls12_context('DHE-RSA-AES128-GCM-SHA256')
                            ) == 'DHE-RSA-AES128-GCM-SHA256'
    assert direct_handshake(port, tls12_context(
        'ECDHE-RSA-AES256-GCM-SHA384')) == 'ECDHE-RSA-AES256-GCM-SHA384'
    assert_refused(srv, direct_handshake(port, tls12_context(
        'ECDHE-RSA-AES128-GCM-SHA256')), 'ECDHE-RSA-AES128-GCM-SHA256')
    ctx = client_tls_context(min_version=ssl.TLSVersion.TLSv1_3)
    assert direct_handshake(port, ctx) == 'TLS_CHACHA20_POLY1305_SHA256'
    srv.assert_serves()


def test_reload_applies_cipher_suites(rsa_server_factory):
    """SIGHUP (or xmppctl reload) applies a changed tls-ciphers to new
    connections; an invalid one is refused with the reason, the running
    policy kept, and xmppctl check names it."""
    srv = rsa_server_factory()
    port = srv.tls_port
    aes128 = 'ECDHE-RSA-AES128-GCM-SHA256'
    assert direct_handshake(port, tls12_context(aes128)) == aes128
    srv.extra = 'tls-ciphers "ECDHE-RSA-AES256-GCM-SHA384"'
    srv.conf.write_text(srv.config_text())
    start = len(srv.stderr_text())
    srv.signal(signal.SIGHUP)
    assert wait_log(srv, 'configuration and certificates reloaded',
                    start=start), srv.stderr_tail()
    assert_refused(srv, direct_handshake(port, tls12_context(aes128)),
                   aes128)
    assert direct_handshake(port, tls12_context(
        'ECDHE-RSA-AES256-GCM-SHA384')) == 'ECDHE-RSA-AES256-GCM-SHA384'

    srv.extra = 'tls-ciphers "NOSUCHSUITE"'
    srv.conf.write_text(srv.config_text())
    r = srv.ctl('check')
    assert r.returncode != 0, (r.returncode, r.stdout)
    assert re.search(r"^error: configuration: .*xmppd\.conf:\d+: invalid "
                     r"value 'NOSUCHSUITE' for 'tls-ciphers' \(OpenSSL "
                     r"selects no TLS 1\.2 cipher suite from it\)$",
                     r.stdout, re.M), r.stdout
    start = len(srv.stderr_text())
    assert srv.ctl('reload').returncode == 0
    assert wait_log(srv, r"reload failed, keeping the running configuration:"
                    r" .*invalid value 'NOSUCHSUITE' for 'tls-ciphers'",
                    start=start), srv.stderr_tail()
    assert direct_handshake(port, tls12_context(
        'ECDHE-RSA-AES256-GCM-SHA384')) == 'ECDHE-RSA-AES256-GCM-SHA384'
    assert_refused(srv, direct_handshake(port, tls12_context(aes128)),
                   aes128)
    srv.assert_serves()
