"""TLS on the c2s listeners: STARTTLS required (RFC 6120 §5), what happens
before it, STARTTLS command injection, direct TLS (XEP-0368) with ALPN and
the TLS version floor."""

import socket
import ssl

import pytest

from xmpp_raw import (DOMAIN, NS_CLIENT, NS_SASL, NS_STREAM, NS_TLS,
                      RawClient, StreamClosed, client_tls_context, mechanisms,
                      q, tostr)


@pytest.fixture(autouse=True)
def still_serving(server):
    """Robustness: after every case the daemon serves a fresh client."""
    yield
    server.assert_serves()


def test_stream_header_and_features_before_tls(server):
    c = server.client()
    try:
        features = c.open_stream()
        h = c.header
        assert h.get('from') == 'localhost'
        assert h.get('version') == '1.0'
        assert h.get('id'), 'stream header without id'
        assert [ch.tag for ch in features] == [q(NS_TLS, 'starttls')], (
            'features before TLS must be only <starttls/>: %s'
            % tostr(features))
        starttls = features.find(q(NS_TLS, 'starttls'))
        assert [ch.tag for ch in starttls] == [q(NS_TLS, 'required')]
        assert mechanisms(features) is None
    finally:
        c.close()


def test_message_before_starttls_is_not_authorized(server):
    c = server.client()
    try:
        c.open_stream()
        c.send("<message to='bob@localhost'><body>early</body></message>")
        c.expect_stream_error('not-authorized')
    finally:
        c.close()


def test_sasl_before_starttls_is_policy_violation(server):
    c = server.client()
    try:
        c.open_stream()
        el = c.sasl_plain('alice', server.users['alice@localhost'])
        # sasl_plain returns the next element: must be the stream error
        assert el.tag == q(NS_STREAM, 'error'), (
            'SASL before STARTTLS must be refused, got %s' % tostr(el))
        c.pending.appendleft(el)
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


def test_starttls_injection_is_discarded(server):
    """Plaintext after <starttls/> in the same write must be thrown away
    (the CVE-2011-0411 class): the injected message is addressed to bob, who
    is online, so processing it before or after TLS would be visible."""
    bob = server.login('bob@localhost', resource='victim')
    c = server.client()
    try:
        bob.presence()
        c.open_stream()
        c.send("<starttls xmlns='%s'/><message to='bob@localhost' "
               "type='chat'><body>injected</body></message>" % NS_TLS)
        c.expect(q(NS_TLS, 'proceed'))
        c._wrap_tls(client_tls_context())
        features = c.open_stream()
        assert mechanisms(features), (
            'fresh features after TLS must offer SASL: %s' % tostr(features))
        assert features.find(q(NS_TLS, 'starttls')) is None
        el = c.sasl_plain('alice', server.users['alice@localhost'])
        assert el.tag == q(NS_SASL, 'success'), tostr(el)
        c.open_stream()
        c.bind('injector')
        el = c.poll_element(0.5)
        assert el is None, 'unexpected element after login: %s' % tostr(el)
        bob.expect_no_stanza('message', 0.5)
    finally:
        c.close()
        bob.close()


def test_direct_tls_alpn_and_features(server):
    c = server.client(tls=True)
    try:
        assert c.sock.selected_alpn_protocol() == 'xmpp-client'
        assert c.sock.version() in ('TLSv1.2', 'TLSv1.3')
        features = c.open_stream()
        assert features.find(q(NS_TLS, 'starttls')) is None, (
            'STARTTLS offered on an already encrypted stream: %s'
            % tostr(features))
        assert 'PLAIN' in (mechanisms(features) or [])
    finally:
        c.close()


def assert_server_refused(excinfo):
    """The handshake failed because the server refused (a protocol_version
    alert, or closing the connection), not because this client could not
    offer TLS 1.1 at all."""
    e = excinfo.value
    if isinstance(e, ssl.SSLError):
        assert e.reason in ('TLSV1_ALERT_PROTOCOL_VERSION',
                            'UNSUPPORTED_PROTOCOL',
                            'UNEXPECTED_EOF_WHILE_READING',
                            'WRONG_VERSION_NUMBER', 'EOF'), repr(e)
    else:
        assert isinstance(e, (ConnectionResetError, BrokenPipeError,
                              StreamClosed)), repr(e)


def tls11_context():
    return client_tls_context(ssl.TLSVersion.TLSv1_1, ssl.TLSVersion.TLSv1_1)


def test_tls11_refused_direct(server):
    with pytest.raises((OSError, StreamClosed)) as excinfo:
        c = RawClient(server.tls_port, tls=True, tls_context=tls11_context())
        try:
            c.open_stream()     # a server that accepted would answer
        finally:
            c.close()
    assert_server_refused(excinfo)


def test_tls11_refused_starttls(server):
    c = server.client()
    try:
        c.open_stream()
        with pytest.raises((OSError, StreamClosed)) as excinfo:
            c.starttls(tls11_context())
            c.open_stream()
        assert_server_refused(excinfo)
    finally:
        c.close()


@pytest.mark.parametrize('version', ['TLSv1_2', 'TLSv1_3'])
@pytest.mark.parametrize('transport', ['starttls', 'direct'])
def test_tls_versions_accepted(server, version, transport):
    v = getattr(ssl.TLSVersion, version)
    ctx = client_tls_context(v, v)
    c = server.login('alice@localhost', resource='tls-' + version,
                     tls=transport, tls_context=ctx)
    try:
        assert c.sock.version() == version.replace('_', '.')
        c.message('alice@localhost/tls-' + version, 'self')
        el = c.expect_stanza('message')
        assert el.find(q(NS_CLIENT, 'body')).text == 'self'
    finally:
        c.close()


@pytest.mark.parametrize('transport', ['starttls', 'direct'])
def test_tls13_session_ticket_and_resumption(server, transport):
    """TLS 1.3: the server sends a session ticket with its first data (the
    stream features; RFC 8446 §4.6.1 allows any time after the client's
    Finished) and a client resumes with it (§2.2)."""
    ctx = client_tls_context(ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_3)
    c = server.client(tls=transport == 'direct', tls_context=ctx)
    try:
        if transport == 'starttls':
            c.open_stream()
            c.starttls(ctx)
        c.open_stream()
        session = c.sock.session
        assert session is not None and session.has_ticket, (
            'no session ticket came with the stream features')
        assert not c.sock.session_reused
    finally:
        c.close()
    raw = socket.create_connection(('127.0.0.1', server.tls_port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname=DOMAIN, session=session) as s:
        assert s.session_reused, 'the ticket did not resume the session'
