"""SASL (RFC 6120 §6): the mechanisms offered after TLS, XEP-0440 channel
binding types, PLAIN and SCRAM-SHA-1/-SHA-256 (RFC 5802, RFC 7677) with and
without -PLUS, and every failure condition the daemon must answer."""

import base64
import ssl

import pytest

from xmpp_raw import (NS_SASL, NS_SASL_CB, NS_STREAM, NS_TLS,
                      ChannelBindingUnavailable, RawClient,
                      assert_sasl_failure, assert_sasl_success,
                      client_tls_context, mechanisms, q, tostr)

PASSWORD = 'alice-secret'

ALL_MECHS = {'SCRAM-SHA-256', 'SCRAM-SHA-1', 'SCRAM-SHA-256-PLUS',
             'SCRAM-SHA-1-PLUS', 'PLAIN'}


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def tls_client(server, transport='starttls', version=None):
    """An encrypted, unauthenticated client with features read; returns
    (client, features)."""
    ctx = client_tls_context(version, version) if version else None
    if transport == 'direct':
        c = RawClient(server.tls_port, tls=True, tls_context=ctx)
        return c, c.open_stream()
    c = server.client()
    c.open_stream()
    c.starttls(ctx)
    return c, c.open_stream()


def cb_types(features):
    cb = features.find(q(NS_SASL_CB, 'sasl-channel-binding'))
    assert cb is not None, ('no <sasl-channel-binding xmlns=%r/> feature: %s'
                            % (NS_SASL_CB, tostr(features)))
    return [e.get('type') for e in cb.findall(q(NS_SASL_CB,
                                                'channel-binding'))]


@pytest.mark.parametrize('transport', ['starttls', 'direct'])
def test_mechanisms_after_tls13(server, transport):
    c, features = tls_client(server, transport, ssl.TLSVersion.TLSv1_3)
    try:
        mechs = mechanisms(features)
        assert mechs is not None, tostr(features)
        assert ALL_MECHS <= set(mechs), 'mechanisms offered: %s' % mechs
        types = cb_types(features)
        assert 'tls-server-end-point' in types, types
        assert 'tls-exporter' in types, types
        # RFC 8446 §C.5, RFC 9266 §1: no tls-unique in TLS 1.3
        assert 'tls-unique' not in types, types
        assert features.find(q(NS_TLS, 'starttls')) is None
    finally:
        c.close()


def test_mechanisms_after_tls12(server):
    c, features = tls_client(server, 'starttls', ssl.TLSVersion.TLSv1_2)
    try:
        assert ALL_MECHS <= set(mechanisms(features) or [])
        assert cb_types(features) == ['tls-unique', 'tls-server-end-point']
    finally:
        c.close()


def _check_success(c, res):
    assert_sasl_success(res.final)
    assert res.server_signature_ok, (
        'server signature (v=) missing or wrong: %s' % tostr(res.final))
    assert len(res.challenges) >= 1
    attrs = dict(p.split('=', 1) for p in res.server_first.split(','))
    assert attrs['i'] == '4096', res.server_first
    # The stream restarts authenticated: bind is now offered.
    features = c.open_stream()
    assert features.find(q('urn:ietf:params:xml:ns:xmpp-bind', 'bind')) \
        is not None, tostr(features)


@pytest.mark.parametrize('hash_name', ['SHA-1', 'SHA-256'])
@pytest.mark.parametrize('plus', [None, 'tls-server-end-point',
                                  'tls-exporter'])
@pytest.mark.parametrize('transport', ['starttls', 'direct'])
def test_scram_success(server, hash_name, plus, transport):
    c, _ = tls_client(server, transport)
    try:
        try:
            res = c.sasl_scram('alice', PASSWORD, hash_name, plus=plus)
        except ChannelBindingUnavailable as e:
            pytest.skip('cannot compute %s in this Python: %s' % (plus, e))
        _check_success(c, res)
    finally:
        c.close()


def test_scram_plus_tls12_server_end_point(server):
    """On TLS 1.2 tls-server-end-point is the binding xmppd(8) offers."""
    c, features = tls_client(server, 'starttls', ssl.TLSVersion.TLSv1_2)
    try:
        assert 'tls-server-end-point' in cb_types(features)
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256',
                           plus='tls-server-end-point')
        _check_success(c, res)
    finally:
        c.close()


@pytest.mark.parametrize('authzid', [None, 'alice@localhost'])
def test_plain_success(server, authzid):
    c, _ = tls_client(server)
    try:
        assert_sasl_success(c.sasl_plain('alice', PASSWORD, authzid=authzid))
        c.open_stream()
        assert c.bind('plain') == 'alice@localhost/plain'
    finally:
        c.close()


def test_scram_authzid_bare_jid_accepted(server):
    c, _ = tls_client(server)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256',
                           authzid='alice@localhost')
        _check_success(c, res)
    finally:
        c.close()


def test_plain_wrong_password_then_retry(server):
    """<not-authorized/>; the stream stays open and a retry succeeds
    (RFC 6120 §6.4.5)."""
    c, _ = tls_client(server)
    try:
        assert_sasl_failure(c.sasl_plain('alice', 'wrong'), 'not-authorized')
        assert_sasl_success(c.sasl_plain('alice', PASSWORD))
    finally:
        c.close()


@pytest.mark.parametrize('hash_name', ['SHA-1', 'SHA-256'])
def test_scram_wrong_password(server, hash_name):
    c, _ = tls_client(server)
    try:
        res = c.sasl_scram('alice', 'wrong', hash_name)
        assert_sasl_failure(res.final, 'not-authorized')
    finally:
        c.close()


def test_plain_unknown_user_same_as_wrong_password(server):
    c, _ = tls_client(server)
    try:
        wrong = c.sasl_plain('alice', 'wrong')
        unknown = c.sasl_plain('nosuchuser', 'wrong')
        assert_sasl_failure(unknown, 'not-authorized')
        assert tostr(unknown) == tostr(wrong)
    finally:
        c.close()


@pytest.mark.parametrize('hash_name', ['SHA-1', 'SHA-256'])
def test_scram_unknown_user_same_as_wrong_password(server, hash_name):
    """No user enumeration: an unknown user gets a (mock) challenge with
    the same iteration count and a salt of the same size, then the same
    failure element."""
    c, _ = tls_client(server)
    try:
        wrong = c.sasl_scram('alice', 'wrong', hash_name)
        unknown = c.sasl_scram('nosuchuser', 'wrong', hash_name)
        assert len(unknown.challenges) == len(wrong.challenges) == 1, (
            'unknown user: %s' % tostr(unknown.final))
        w = dict(p.split('=', 1) for p in wrong.server_first.split(','))
        u = dict(p.split('=', 1) for p in unknown.server_first.split(','))
        assert u['i'] == w['i']
        assert len(base64.b64decode(u['s'])) == len(base64.b64decode(w['s']))
        assert_sasl_failure(unknown.final, 'not-authorized')
        assert tostr(unknown.final) == tostr(wrong.final)
    finally:
        c.close()


def test_plain_other_authzid_is_invalid_authzid(server):
    c, _ = tls_client(server)
    try:
        assert_sasl_failure(
            c.sasl_plain('alice', PASSWORD, authzid='bob@localhost'),
            'invalid-authzid')
    finally:
        c.close()


def test_scram_other_authzid_is_invalid_authzid(server):
    c, _ = tls_client(server)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256',
                           authzid='bob@localhost')
        assert_sasl_failure(res.final, 'invalid-authzid')
    finally:
        c.close()


@pytest.mark.parametrize('cbtype', ['tls-server-end-point', 'tls-exporter'])
def test_scram_plus_wrong_channel_binding(server, cbtype):
    c, _ = tls_client(server)
    try:
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256', plus=cbtype,
                           cbdata=b'\0' * 32)
        assert_sasl_failure(res.final, 'not-authorized')
    finally:
        c.close()


@pytest.mark.parametrize('hash_name', ['SHA-1', 'SHA-256'])
def test_scram_y_flag_downgrade_refused(server, hash_name):
    """RFC 5802 §6: 'y' says "I support channel binding but think you do
    not"; a server that advertises -PLUS fails the exchange unless the
    stream asked for -PLUS first (test_sasl_interop.py has the rest)."""
    c, _ = tls_client(server)
    try:
        res = c.sasl_scram('alice', PASSWORD, hash_name, cbflag='y')
        assert_sasl_failure(res.final, 'not-authorized')
    finally:
        c.close()


def test_scram_tampered_nonce_refused(server):
    """A client-final whose r= is not the server's nonce never succeeds."""
    c, _ = tls_client(server)
    try:
        first = 'n,,n=alice,r=clientnonce0123456789'
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
               % (NS_SASL, base64.b64encode(first.encode()).decode()))
        ch = c.expect(q(NS_SASL, 'challenge'))
        sf = base64.b64decode(ch.text).decode()
        final = 'c=biws,r=clientnonce0123456789forged,p=%s' % (
            base64.b64encode(b'\0' * 32).decode())
        c.send("<response xmlns='%s'>%s</response>"
               % (NS_SASL, base64.b64encode(final.encode()).decode()))
        el = c.next_element()
        assert el.tag == q(NS_SASL, 'failure'), (sf, tostr(el))
        conds = [local.tag for local in el if not local.tag.endswith('text')]
        assert conds in ([q(NS_SASL, 'not-authorized')],
                         [q(NS_SASL, 'malformed-request')]), tostr(el)
    finally:
        c.close()


def test_malformed_base64_in_auth(server):
    c, _ = tls_client(server)
    try:
        c.send("<auth xmlns='%s' mechanism='PLAIN'>!!!not*base64!!!</auth>"
               % NS_SASL)
        assert_sasl_failure(c.next_element(), 'incorrect-encoding')
    finally:
        c.close()


def test_malformed_base64_in_scram_response(server):
    c, _ = tls_client(server)
    try:
        first = base64.b64encode(b'n,,n=alice,r=abcdefghijklmnop').decode()
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
               % (NS_SASL, first))
        c.expect(q(NS_SASL, 'challenge'))
        c.send("<response xmlns='%s'>%%%%%%</response>" % NS_SASL)
        assert_sasl_failure(c.next_element(), 'incorrect-encoding')
    finally:
        c.close()


def test_unknown_mechanism(server):
    c, _ = tls_client(server)
    try:
        c.send("<auth xmlns='%s' mechanism='X-NO-SUCH-MECH'>AA==</auth>"
               % NS_SASL)
        assert_sasl_failure(c.next_element(), 'invalid-mechanism')
    finally:
        c.close()


def test_abort_then_retry(server):
    c, _ = tls_client(server)
    try:
        first = base64.b64encode(b'n,,n=alice,r=abcdefghijklmnop').decode()
        c.send("<auth xmlns='%s' mechanism='SCRAM-SHA-256'>%s</auth>"
               % (NS_SASL, first))
        c.expect(q(NS_SASL, 'challenge'))
        c.send("<abort xmlns='%s'/>" % NS_SASL)
        assert_sasl_failure(c.next_element(), 'aborted')
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256')
        _check_success(c, res)
    finally:
        c.close()


# --- a listener with "starttls optional" ------------------------------------

@pytest.fixture(scope='module')
def optional_server(request, certificate):
    from conftest import Server
    srv = Server(certificate, starttls='optional').start()
    yield srv
    srv.stop()


def test_optional_tls_features_without_plain(optional_server):
    c = optional_server.client()
    try:
        features = c.open_stream()
        st = features.find(q(NS_TLS, 'starttls'))
        assert st is not None and st.find(q(NS_TLS, 'required')) is None, (
            tostr(features))
        mechs = mechanisms(features)
        assert mechs is not None, 'no SASL before optional TLS: %s' % tostr(
            features)
        assert 'PLAIN' not in mechs, mechs
        assert not [m for m in mechs if m.endswith('-PLUS')], (
            'channel binding offered without TLS: %s' % mechs)
    finally:
        c.close()
    optional_server.assert_serves()


def test_optional_tls_plain_refused_encryption_required(optional_server):
    c = optional_server.client()
    try:
        c.open_stream()
        assert_sasl_failure(c.sasl_plain('alice', PASSWORD),
                            'encryption-required')
    finally:
        c.close()
    optional_server.assert_serves()


def test_optional_tls_scram_without_tls(optional_server):
    c = optional_server.client()
    try:
        c.open_stream()
        res = c.sasl_scram('alice', PASSWORD, 'SHA-256')
        _check_success(c, res)
        assert c.bind('cleartext') == 'alice@localhost/cleartext'
    finally:
        c.close()
    optional_server.assert_serves()


def test_optional_tls_starttls_still_works(optional_server):
    c = optional_server.client()
    try:
        c.open_stream()
        c.starttls()
        features = c.open_stream()
        assert 'PLAIN' in mechanisms(features)
        assert_sasl_success(c.sasl_plain('alice', PASSWORD))
    finally:
        c.close()


def test_stream_error_not_sent_on_sasl_failure(server):
    """A SASL failure is not a stream error: the stream stays usable."""
    c, _ = tls_client(server)
    try:
        assert_sasl_failure(c.sasl_plain('alice', 'wrong'), 'not-authorized')
        el = c.poll_element(0.3)
        assert el is None or el.tag != q(NS_STREAM, 'error'), tostr(el)
    finally:
        c.close()


def test_auth_failures_per_ip_throttled(server_factory):
    """limits { auth-failures-per-ip N }: after N failures from one address
    within a minute, further attempts (even with the right password) get
    <temporary-auth-failure/> (RFC 6120 §6.5.12)."""
    srv = server_factory(limits={'auth-failures-per-ip': 2})
    for _ in range(2):
        c, _f = tls_client(srv)
        try:
            assert_sasl_failure(c.sasl_plain('alice', 'wrong'),
                                'not-authorized')
        finally:
            c.close()
    c, _f = tls_client(srv)
    try:
        assert_sasl_failure(c.sasl_plain('alice', PASSWORD),
                            'temporary-auth-failure')
    finally:
        c.close()
