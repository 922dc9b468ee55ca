"""The edges of a client stream (issue 13, item 6): first bytes that are
no stream header, a peer's own stream error, data after its closing tag,
first-level elements the server does not know, XEP-0138 <compress/>
(not offered), a restart that switches virtual host, a header without a
usable 'to', and the pre-authentication deadline.  Each case checks the
stream header the server sends, the exact stream error condition (or
that there is none) and that the connection is closed within a second
of the offending bytes; test_stream.py has the other header and XML
errors.  The decisions (unknown elements, the missing 'to', the host
switch) are documented in xmppd(8), STREAM ERRORS."""

import json
import re
import time

import pytest

from xmpp_raw import (NS_CLIENT, NS_STREAM, NS_STREAM_ERR, q,
                      assert_sasl_success, tostr)

CLOSE_WITHIN = 1.0
NS_COMPRESS = 'http://jabber.org/protocol/compress'
NS_COMPRESS_FEATURE = 'http://jabber.org/features/compress'
NS_XML = 'http://www.w3.org/XML/1998/namespace'
XML_DECL = b"<?xml version='1.0'?>"
OUR_HEADER = (b"<stream:stream xmlns='jabber:client' "
              b"xmlns:stream='http://etherx.jabber.org/streams' "
              b"version='1.0' xml:lang='en' id='")


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def received(c):
    return b''.join(d for way, d in c.log if way == '<')


def check_header(c, host='localhost'):
    """The server's last stream header is ours (RFC 6120 §4.7): after an
    XML declaration, the content and stream namespaces, version 1.0,
    xml:lang, an id of 16 hex digits, and 'from' the stream's domain
    when it has one (host None: the header came before any domain was
    accepted, and is not checked for 'from')."""
    raw = received(c)
    i = raw.rfind(b'<stream:stream ')
    assert i >= 0, 'no stream header from the server\n' + c.history()
    assert raw[:i].endswith(XML_DECL), raw[max(0, i - 40):i + 200]
    head = raw[i:raw.index(b'>', i) + 1]
    assert head.startswith(OUR_HEADER), head
    assert re.search(rb" id='[0-9a-f]{16}'", head), head
    h = c.header
    assert h is not None and h.tag == q(NS_STREAM, 'stream')
    assert h.get('version') == '1.0' and h.get(q(NS_XML, 'lang')) == 'en'
    if host is not None:
        assert h.get('from') == host, head


def expect_error_closed(c, condition, t0, host='localhost'):
    """Our header, then <stream:error> with exactly condition, then
    </stream:stream> and the close, all within CLOSE_WITHIN of t0."""
    c.read_header(CLOSE_WITHIN + 1)
    check_header(c, host)
    el = c.next_element(CLOSE_WITHIN + 1)
    assert el.tag != q(NS_STREAM, 'features'), (
        'stream accepted instead of <%s/>: %s' % (condition, tostr(el)))
    c.pending.appendleft(el)
    c.expect_stream_error(condition, timeout=CLOSE_WITHIN + 1)
    took = time.monotonic() - t0
    assert took < CLOSE_WITHIN, 'closed %.2f s after the bytes' % took


def expect_plain_close(c, t0):
    """</stream:stream> alone, no stream error, then the close, within
    CLOSE_WITHIN of t0."""
    c.expect_stream_end(timeout=CLOSE_WITHIN + 1)
    assert not c.pending, 'after the end: %s' % tostr(c.pending[0])
    took = time.monotonic() - t0
    assert took < CLOSE_WITHIN, 'closed %.2f s after the bytes' % took
    errors = [d for way, d in c.log if way == '<' and b'stream:error' in d]
    assert not errors, 'the server answered with an error: %r' % errors


def opened(server):
    c = server.client()
    c.open_stream()
    return c


def after_tls(server):
    """STARTTLS done, stream restarted: (client, features)."""
    c = server.client()
    c.open_stream()
    c.starttls()
    return c, c.open_stream()


def after_sasl(server, user='alice'):
    """Authenticated, stream restarted, not bound: (client, features)."""
    c, _ = after_tls(server)
    assert_sasl_success(c.sasl_plain(user, server.users[user +
                                                       '@localhost']))
    return c, c.open_stream()


def body_of(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


# --- the first bytes -------------------------------------------------------------

@pytest.mark.parametrize('data, condition', [
    # a quote opens an attribute value only after '=': anything else
    # goes to expat at once (shared/xml.c, lex_scan)
    (b"<'/>", 'not-well-formed'),
    (b"GET / HTTP/1.1\r\nHost: localhost\r\nUser-Agent: probe\r\n\r\n",
     'not-well-formed'),
    # RFC 6120 §4.8.1: a root that is not <stream:stream> in the stream
    # namespace
    (b"<presence/>", 'invalid-namespace'),
    (b"<presence xmlns='jabber:client'/>", 'invalid-namespace'),
], ids=['quote-tag', 'http-get', 'presence', 'presence-jabber-client'])
def test_first_bytes_not_a_stream_header(server, data, condition):
    """RFC 6120 §4.9.1.2: an error in what should be the stream header
    is still answered with a stream header, then the error."""
    c = server.client()
    try:
        t0 = time.monotonic()
        c.send(data)
        expect_error_closed(c, condition, t0, host=None)
    finally:
        c.close()


# --- the peer's own stream error ---------------------------------------------------

PEER_ERROR = ("<stream:error><undefined-condition xmlns='%s'/>"
              "<text xmlns='%s'>client gives up</text></stream:error>"
              % (NS_STREAM_ERR, NS_STREAM_ERR))


@pytest.mark.parametrize('then_close', [False, True],
                         ids=['error', 'error-and-close'])
@pytest.mark.parametrize('stage', ['before-tls', 'after-sasl', 'bound'])
def test_peer_stream_error_answered_with_close_only(server, stage,
                                                    then_close):
    """A client's <stream:error/> is answered with </stream:stream> alone,
    never an error of ours (RFC 6120 §4.9.1.1, §4.4), the connection
    closes within a second, and the session ends."""
    if stage == 'before-tls':
        c = opened(server)
    elif stage == 'after-sasl':
        c, _ = after_sasl(server)
    else:
        c = server.login('alice@localhost', resource='gives-up')
    try:
        t0 = time.monotonic()
        c.send(PEER_ERROR + ('</stream:stream>' if then_close else ''))
        expect_plain_close(c, t0)
        check_header(c)
    finally:
        c.close()
    assert re.search(r'c2s \d+ 127\.0\.0\.1:\d+: stream error from the '
                     r'peer: <undefined-condition/>$',
                     server.stderr_text(), re.M)
    if stage == 'bound':
        deadline = time.monotonic() + 2
        while 'alice@localhost/gives-up' in server.ctl('sessions').stdout:
            assert time.monotonic() < deadline, 'session still bound'
            time.sleep(0.05)


# --- data after </stream:stream> ---------------------------------------------------

AFTER = {
    'message': "<message to='bob@localhost/watch' id='after'>"
               "<body>after the end</body></message>",
    'garbage': "<'/><message to='bob@localhost/watch' id='after'>"
               "<body>after the end</body></message>",
}


@pytest.mark.parametrize('after', sorted(AFTER))
@pytest.mark.parametrize('how', ['same-write', 'next-write'])
def test_data_after_stream_end_never_delivered(server, after, how):
    """What follows the client's </stream:stream> is never read: the
    message before it arrives, the one after it does not, garbage after
    it is not answered with <not-well-formed/>; the server closes with
    its own closing tag within a second."""
    bob = server.login('bob@localhost', resource='watch')
    c = server.login('alice@localhost', resource='closer')
    try:
        before = ("<message to='bob@localhost/watch' id='before'>"
                  "<body>before the end</body></message>")
        t0 = time.monotonic()
        if how == 'same-write':
            c.send(before + '</stream:stream>' + AFTER[after])
        else:
            c.send(before + '</stream:stream>')
            try:
                c.send(AFTER[after])
            except OSError:
                pass          # closed already: nothing could be read
        expect_plain_close(c, t0)
        el = bob.expect_stanza('message')
        assert el.get('id') == 'before' and body_of(el) == 'before the end'
        bob.expect_no_stanza('message', 0.5)
    finally:
        c.close()
        bob.close()


# --- first-level elements the server does not know -----------------------------------

UNKNOWN = {
    # an XEP-0198 request before <enable/> (test_sm.py has the rest) and
    # an element of XEP-0352's namespace that it does not define
    'sm-request': "<r xmlns='urn:xmpp:sm:3'/>",
    'csi-unknown': "<sleepy xmlns='urn:xmpp:csi:0'/>",
    # a stanza wrapped in an unknown element is not a stanza
    'wrapped-message': "<wrap xmlns='urn:example:unknown'><message "
                       "xmlns='jabber:client' to='bob@localhost/watch' "
                       "id='wrapped'><body>wrapped</body></message></wrap>",
    # a stanza name in another namespace
    'message-other-ns': "<message xmlns='urn:example:unknown' "
                        "to='bob@localhost/watch' id='other-ns'>"
                        "<body>other namespace</body></message>",
}


@pytest.mark.parametrize('name', sorted(UNKNOWN))
def test_unknown_first_level_element_after_bind(server, name):
    """Decision: RFC 6120 §4.9.3.24's <unsupported-stanza-type/>, not a
    silent drop (xmppd(8), STREAM ERRORS); nothing of it or after it is
    delivered.  test_stream.py has an unknown name in jabber:client."""
    bob = server.login('bob@localhost', resource='watch')
    c = server.login('alice@localhost', resource='odd')
    try:
        t0 = time.monotonic()
        c.send(UNKNOWN[name] + "<message to='bob@localhost/watch' "
               "id='next'><body>next</body></message>")
        expect_error_closed(c, 'unsupported-stanza-type', t0)
        bob.expect_no_stanza('message', 0.5)
    finally:
        c.close()
        bob.close()


# --- XEP-0138 <compress/>, never offered ----------------------------------------------

COMPRESS = ("<compress xmlns='%s'><method>zlib</method></compress>"
            % NS_COMPRESS)


@pytest.mark.parametrize('stage, condition', [
    ('after-tls', 'not-authorized'),
    ('after-sasl', 'not-authorized'),
    ('bound', 'unsupported-stanza-type'),
])
def test_compress_not_offered(server, stage, condition):
    """Stream compression is never offered (no <compression/> feature at
    any stage, and TLS compression is off); a client that asks anyway
    gets the stream error of any element it may not send there: before
    binding <not-authorized/> (§4.9.3.12), after it
    <unsupported-stanza-type/> (§4.9.3.24)."""
    if stage == 'after-tls':
        c, features = after_tls(server)
    elif stage == 'after-sasl':
        c, features = after_sasl(server)
    else:
        c, features = after_sasl(server)
        c.bind('compress')
    try:
        assert features.find(q(NS_COMPRESS_FEATURE, 'compression')) is None, \
            tostr(features)
        t0 = time.monotonic()
        c.send(COMPRESS)
        expect_error_closed(c, condition, t0)
    finally:
        c.close()


# --- a restart that switches virtual host ---------------------------------------------

@pytest.fixture
def two_hosts(server_factory):
    """A daemon serving localhost and example.net (the same certificate),
    with alice on both, each with her own password."""
    srv = server_factory(start=False)
    srv.extra = ('host "example.net" {\n\tcertificate "%s"\n\tkey "%s"\n}'
                 % (srv.cert, srv.key))
    srv.start()
    srv.adduser('alice@example.net', 'alice-net-secret')
    return srv


def bound_sessions(srv):
    r = srv.ctl('--json', 'sessions')
    assert r.returncode == 0, r.stderr
    return [s['jid'] for s in json.loads(r.stdout)]


@pytest.mark.parametrize('stage', ['after-sasl', 'after-tls'])
def test_restart_cannot_switch_host(two_hosts, stage):
    """CVE-2018-10847 class: alice authenticates at localhost, then
    restarts the stream to example.net (where another alice lives).  The
    switch is refused with <not-authorized/> (the domain is served, so
    <host-unknown/> would be untrue), our header names the stream's own
    domain, and no session of either alice is bound; alice@example.net
    logs in with her own password meanwhile."""
    srv = two_hosts
    c = srv.client()
    try:
        c.open_stream()
        c.starttls()
        if stage == 'after-sasl':
            c.open_stream()
            assert_sasl_success(c.sasl_plain('alice', 'alice-secret'))
        t0 = time.monotonic()
        c._reset_parser()
        c.send(c.stream_header(to='example.net'))
        expect_error_closed(c, 'not-authorized', t0)
    finally:
        c.close()
    assert bound_sessions(srv) == []
    other = srv.client()
    try:
        other.open_stream(to='example.net')
        other.starttls()
        other.open_stream(to='example.net')
        assert_sasl_success(other.sasl_plain('alice', 'alice-net-secret'))
        other.open_stream(to='example.net')
        assert other.bind('own') == 'alice@example.net/own'
        assert bound_sessions(srv) == ['alice@example.net/own']
    finally:
        other.close()
    srv.assert_serves()


# --- the stream header's 'to' --------------------------------------------------------------

@pytest.mark.parametrize('to', [None, '', 'local host', '@'],
                         ids=['missing', 'empty', 'space', 'at-sign'])
def test_header_without_usable_to(server, to):
    """Decision: a header without 'to', with an empty one or one that is
    no domain gets <improper-addressing/> (RFC 6120 §4.7.2, §4.9.3.7, as
    Prosody and ejabberd answer); an unserved domain keeps
    <host-unknown/> (test_stream.py)."""
    c = server.client()
    try:
        t0 = time.monotonic()
        c.send(c.stream_header(to=to))
        expect_error_closed(c, 'improper-addressing', t0, host=None)
    finally:
        c.close()


# --- the pre-authentication deadline ------------------------------------------------------

@pytest.mark.parametrize('stage', ['silent-tcp', 'header', 'after-tls'])
def test_preauth_timeout_says_connection_timeout(server_factory, stage):
    """preauth-timeout 2: a connection that has not authenticated in time
    is sent <connection-timeout/> (RFC 6120 §4.9.3.4) and closed, not cut
    off without a word: in plain text before or after its header, and
    over TLS after STARTTLS.  (A TLS handshake that never completes has
    nobody to tell: test_stream.py's handshake timeout.)"""
    srv = server_factory(limits={'preauth-timeout': 2})
    t0 = time.monotonic()
    if stage == 'after-tls':
        c, _ = after_tls(srv)
    else:
        c = srv.client()
        if stage == 'header':
            c.open_stream()
    try:
        c.read_header(4)
        el = c.next_element(4)
        took = time.monotonic() - t0
        assert 1.5 < took < 3.0, 'deadline after %.2f s' % took
        c.pending.appendleft(el)
        expect_error_closed(c, 'connection-timeout', time.monotonic(),
                            host=None if stage == 'silent-tcp'
                            else 'localhost')
    finally:
        c.close()
    assert re.search(r'c2s \d+ 127\.0\.0\.1:\d+: stream error '
                     r'<connection-timeout/>', srv.stderr_text())
