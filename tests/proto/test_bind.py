"""Resource binding (RFC 6120 §7) and the legacy session feature (RFC 3921
§3, as kept by draft-cridland-xmpp-session): client and server chosen
resources, conflicts, stanzas before binding."""

import pytest

from xmpp_raw import (NS_BIND, NS_CLIENT, NS_SESSION, NS_STREAM, q, tostr)


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def post_auth_features(server):
    c = server.client()
    c.open_stream()
    c.starttls()
    c.open_stream()
    el = c.sasl_plain('alice', server.users['alice@localhost'])
    assert el.tag.endswith('success'), tostr(el)
    return c, c.open_stream()


def test_client_chosen_resource(server):
    c, features = post_auth_features(server)
    try:
        assert features.find(q(NS_BIND, 'bind')) is not None, tostr(features)
        assert c.bind('laptop') == 'alice@localhost/laptop'
    finally:
        c.close()


def test_server_generated_resource(server):
    a, _ = post_auth_features(server)
    b, _ = post_auth_features(server)
    try:
        ja = a.bind(None)
        jb = b.bind(None)
        for j in (ja, jb):
            assert j.startswith('alice@localhost/') and \
                len(j) > len('alice@localhost/'), j
        assert ja != jb
    finally:
        a.close()
        b.close()


def test_empty_resource_element_gets_generated_resource(server):
    """<resource/> present but empty is the same as no resource."""
    c, _ = post_auth_features(server)
    try:
        c.send("<iq type='set' id='b2'><bind xmlns='%s'><resource/></bind>"
               "</iq>" % NS_BIND)
        el = c.expect(q(NS_CLIENT, 'iq'))
        jid = el.find('%s/%s' % (q(NS_BIND, 'bind'), q(NS_BIND, 'jid')))
        if el.get('type') == 'error':
            # RFC 6120 §7.7.2.1 also allows <bad-request/> here.
            err = el.find(q(NS_CLIENT, 'error'))
            assert err.find(
                q('urn:ietf:params:xml:ns:xmpp-stanzas', 'bad-request')) \
                is not None, tostr(el)
        else:
            assert el.get('type') == 'result' and jid is not None and \
                jid.text.startswith('alice@localhost/') and \
                len(jid.text) > len('alice@localhost/'), tostr(el)
    finally:
        c.close()


def test_bind_conflict_replaces_old_session(server):
    old = server.login('alice@localhost', resource='dup')
    new = None
    try:
        new = server.login('alice@localhost', resource='dup')
        assert new.jid == 'alice@localhost/dup'
        old.expect_stream_error('conflict')
        bob = server.login('bob@localhost', resource='sender')
        try:
            bob.message('alice@localhost/dup', 'to the new session')
            el = new.expect_stanza('message')
            assert el.find(q(NS_CLIENT, 'body')).text == 'to the new session'
        finally:
            bob.close()
    finally:
        old.close()
        if new:
            new.close()


@pytest.mark.parametrize('to', [None, 'localhost'])
def test_session_feature_optional_and_answered(server, to):
    c, features = post_auth_features(server)
    try:
        sess = features.find(q(NS_SESSION, 'session'))
        assert sess is not None, 'no session feature: %s' % tostr(features)
        assert [ch.tag for ch in sess] == [q(NS_SESSION, 'optional')], (
            tostr(sess))
        c.bind('sess')
        c.send("<iq type='set' id='s1'%s><session xmlns='%s'/></iq>"
               % (" to='%s'" % to if to else '', NS_SESSION))
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'result' and el.get('id') == 's1', tostr(el)
    finally:
        c.close()


@pytest.mark.parametrize('stanza', [
    "<message to='bob@localhost' type='chat'><body>unbound</body></message>",
    "<presence/>",
    "<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/></iq>",
])
def test_stanza_after_auth_before_bind(server, stanza):
    bob = server.login('bob@localhost', resource='watch')
    c, _ = post_auth_features(server)
    try:
        bob.presence()
        c.send(stanza)
        c.expect_stream_error('not-authorized')
        bob.expect_no_stanza('message', 0.3)
    finally:
        c.close()
        bob.close()


def test_bind_twice_on_one_stream(server):
    """Robustness: a second bind on a bound stream gets an IQ answer (an
    error, or a result if the server binds several resources per stream),
    not a stream error; the first binding stays usable."""
    c = server.login('alice@localhost', resource='once')
    try:
        c.send("<iq type='set' id='again'><bind xmlns='%s'><resource>twice"
               "</resource></bind></iq>" % NS_BIND)
        el = c.next_element()
        if el.tag == q(NS_STREAM, 'error'):
            raise AssertionError('second bind closed the stream: %s'
                                 % tostr(el))
        assert el.tag == q(NS_CLIENT, 'iq') and el.get('type') in (
            'error', 'result') and el.get('id') == 'again', tostr(el)
        c.message('alice@localhost/once', 'still bound')
        assert c.expect_stanza('message').find(
            q(NS_CLIENT, 'body')).text == 'still bound'
    finally:
        c.close()


def test_sessions_per_user_limit(server_factory):
    """limits { sessions-per-user 2 }: a third binding gets
    <resource-constraint/> (RFC 6120 §7.6.2.1) and the others stay."""
    srv = server_factory(limits={'sessions-per-user': 2})
    a = srv.login('alice@localhost', resource='one')
    b = srv.login('alice@localhost', resource='two')
    c = srv.login('alice@localhost', bind=False)
    try:
        c.send("<iq type='set' id='third'><bind xmlns='%s'><resource>three"
               "</resource></bind></iq>" % NS_BIND)
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'error' and el.get('id') == 'third', (
            tostr(el))
        err = el.find(q(NS_CLIENT, 'error'))
        assert err.get('type') == 'wait', tostr(el)
        assert [ch.tag for ch in err] == [q(
            'urn:ietf:params:xml:ns:xmpp-stanzas', 'resource-constraint')], (
            tostr(el))
        # a replacement of an existing resource is not a new session
        d = srv.login('alice@localhost', resource='two')
        b.expect_stream_error('conflict')
        d.close()
        assert a.poll_element(0.2) is None and not a.eof
    finally:
        for x in (a, b, c):
            x.close()
