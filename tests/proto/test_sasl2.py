"""SASL2 (XEP-0388), Bind 2 (XEP-0386), stream management inline (XEP-0198
in SASL2) and FAST tokens (XEP-0484), with raw XML: the features beside
the legacy ones, SCRAM, -PLUS and PLAIN in the SASL2 framing, every
failure, the stream going on without a restart, stable resources per
user-agent, carbons and stream management enabled inline, resumption
inline after a lost connection, tokens requested, used (with and without
channel binding), replayed, revoked, expired and rotated, and XEP-0474
downgrade protection in SASL2."""

import base64
import hashlib
import json
import ssl
import time

import pytest

from im_helpers import fresh_users
from sasl2_helpers import (NS_BIND2, NS_CARBONS, NS_FAST, NS_SASL2, NS_SM,
                           NS_STANZAS, assert_failure, assert_success,
                           authz_id, connect, fast_mechanisms, ht, login,
                           new_agent, plain, request_token, sasl2_feature,
                           sasl2_mechanisms, scram, send_authenticate,
                           tls_client, token_of)
from xmpp_raw import (NS_BIND, NS_CLIENT, NS_SASL, NS_SASL_CB, NS_STREAM,
                      mechanisms, q, scram_parse, tostr)

SERVER_OPTIONS = {'limits': {'resume-timeout': '60s',
                             'sm-ack-seconds': '0'}}
NS_FORWARD = 'urn:xmpp:forward:0'
NS_DELAY = 'urn:xmpp:delay'
TLS12 = ssl.TLSVersion.TLSv1_2
TLS13 = ssl.TLSVersion.TLSv1_3


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def user_of(jid):
    return jid.split('@')[0]


def sessions(server):
    r = server.ctl('sessions', '--json')
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def session_row(server, full):
    rows = [s for s in sessions(server) if s['jid'] == full]
    assert len(rows) == 1, (full, sessions(server))
    return rows[0]


def ctl_ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def wait_for(cond, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError('timed out waiting for %s' % what)


def ping(c, iq_id='p1'):
    """An IQ to the server answered on the same stream: the session
    works (and the stream was not restarted)."""
    c.send("<iq type='get' id='%s'><ping xmlns='urn:xmpp:ping'/></iq>"
           % iq_id)
    el = c.next_element()
    while el.tag == q(NS_SM, 'r'):      # the server's own ack request
        el = c.next_element()
    assert el.tag == q(NS_CLIENT, 'iq'), tostr(el)
    assert el.get('type') == 'result' and el.get('id') == iq_id, tostr(el)
    return el


# --- the feature -------------------------------------------------------------

@pytest.mark.parametrize('version', [TLS12, TLS13])
def test_feature_beside_mechanisms(server, version):
    c, f = tls_client(server, version=version)
    try:
        legacy = mechanisms(f)
        assert sasl2_mechanisms(f) == legacy, tostr(f)
        assert 'PLAIN' in legacy and 'SCRAM-SHA-256-PLUS' in legacy
        # XEP-0440 stays advertised.
        assert f.find(q(NS_SASL_CB, 'sasl-channel-binding')) is not None
        auth = sasl2_feature(f)
        inline = auth.find(q(NS_SASL2, 'inline'))
        bind = inline.find(q(NS_BIND2, 'bind'))
        assert bind is not None, tostr(auth)
        feats = [e.get('var') for e in bind.find(q(NS_BIND2, 'inline'))
                 .findall(q(NS_BIND2, 'feature'))]
        assert sorted(feats) == [NS_CARBONS, 'urn:xmpp:csi:0', NS_SM], feats
        assert inline.find(q(NS_SM, 'sm')) is not None
        fast = fast_mechanisms(f)
        if version == TLS13:
            assert fast == ['HT-SHA-256-EXPR', 'HT-SHA-256-ENDP',
                            'HT-SHA-256-NONE'], fast
        else:
            # tls-exporter is TLS 1.3's (RFC 9266).
            assert fast == ['HT-SHA-256-ENDP', 'HT-SHA-256-NONE'], fast
        # FAST mechanisms are offered inside <fast/> only.
        assert not [m for m in legacy if m.startswith('HT-')]
    finally:
        c.close()


def test_feature_in_cleartext_follows_the_same_rules(server_factory):
    srv = server_factory(starttls='optional')
    c = srv.client()
    try:
        f = c.open_stream()
        mechs = sasl2_mechanisms(f)
        assert mechs == mechanisms(f)
        assert 'PLAIN' not in mechs
        assert not [m for m in mechs if m.endswith('-PLUS')]
        assert fast_mechanisms(f) == []
        # PLAIN anyway: encryption-required, in the SASL2 framing.
        res = plain(c, 'alice', 'x')
        assert_failure(res.final, 'encryption-required')
        # A FAST mechanism in the clear too.
        res = ht(c, 'alice', 'x' * 80, agent=new_agent())
        assert_failure(res.final, 'encryption-required')
    finally:
        c.close()


def test_not_offered_after_authentication(server):
    (alice,) = fresh_users(server, 1)
    c, res = login(server, alice, tag=None)
    try:
        assert sasl2_feature(res.features) is None, tostr(res.features)
        assert res.features.find(q(NS_SASL, 'mechanisms')) is None
    finally:
        c.close()


# --- authentication ------------------------------------------------------------

@pytest.mark.parametrize('mech,plus', [('SCRAM-SHA-256', None),
                                       ('SCRAM-SHA-1', None),
                                       ('SCRAM-SHA-256-PLUS', 'tls-exporter'),
                                       ('SCRAM-SHA-1-PLUS',
                                        'tls-server-end-point')])
def test_scram_without_bind(server, mech, plus):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        hash_name = mech[len('SCRAM-'):].replace('-PLUS', '')
        res = scram(c, user_of(alice), server.users[alice], hash_name,
                    plus=plus, agent=new_agent())
        assert_success(res.final)
        assert res.signature_ok, tostr(res.final)
        # §2.6.1: the bare JID without a bound resource.
        assert authz_id(res.final) == alice
        # No restart: features follow at once, with legacy binding.
        assert res.features.find(q(NS_BIND, 'bind')) is not None
        assert res.features.find(q(NS_SM, 'sm')) is not None
        full = c.bind('legacy')
        assert full == alice + '/legacy'
        ping(c)
        assert session_row(server, full)['auth'] == 'SASL2 ' + mech
    finally:
        c.close()


def test_scram_with_bind(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        res = scram(c, user_of(alice), server.users[alice],
                    plus='tls-exporter', agent=new_agent(),
                    bind='AwesomeXMPP')
        assert_success(res.final)
        full = authz_id(res.final)
        assert full.startswith(alice + '/AwesomeXMPP.'), full
        assert res.child(NS_BIND2, 'bound') is not None, tostr(res.final)
        # Bound already: no legacy binding offered, the stream goes on.
        assert res.features.find(q(NS_BIND, 'bind')) is None
        assert res.features.find(q(NS_SM, 'sm')) is not None
        ping(c)
        row = session_row(server, full)
        assert row['auth'] == 'SASL2 SCRAM-SHA-256-PLUS', row
        # A stream header now would be a restart that SASL2 has none of:
        # the stream is what it was.
        c.send("<iq type='get' id='r1'><query xmlns='jabber:iq:roster'/>"
               "</iq>")
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()


@pytest.mark.parametrize('bind,condition', [(None, 'not-authorized'),
                                             ('t', 'unsupported-stanza-type')])
def test_authenticate_after_success_is_a_stream_error(server, bind,
                                                      condition):
    """XEP-0388 "Multiple Authentication": once <success/> is sent, a
    further <authenticate/> is a stream error."""
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        res = scram(c, user_of(alice), server.users[alice], bind=bind)
        assert_success(res.final)
        send_authenticate(c, 'PLAIN', ('\0%s\0%s' % (
            user_of(alice), server.users[alice])).encode())
        c.expect_stream_error(condition)
    finally:
        c.close()


def test_plain(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server, TLS12)
    try:
        res = plain(c, user_of(alice), server.users[alice], bind='')
        assert_success(res.final)
        full = authz_id(res.final)
        assert full.startswith(alice + '/'), full
        assert session_row(server, full)['auth'] == 'SASL2 PLAIN'
    finally:
        c.close()


def test_legacy_sasl_auth_column(server):
    (alice,) = fresh_users(server, 1)
    c = server.login(alice, resource='old')
    try:
        assert session_row(server, alice + '/old')['auth'] == 'SASL1 PLAIN'
    finally:
        c.close()


def test_no_initial_response_gets_an_empty_challenge(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        send_authenticate(c, 'PLAIN', None)
        el = c.next_element()
        assert el.tag == q(NS_SASL2, 'challenge') and not el.text, tostr(el)
        c.send("<response xmlns='%s'>%s</response>" % (
            NS_SASL2, base64.b64encode(('\0%s\0%s' % (
                user_of(alice), server.users[alice])).encode()).decode()))
        assert_success(c.next_element())
        c.expect(q(NS_STREAM, 'features'))
    finally:
        c.close()


# --- failures ----------------------------------------------------------------

def test_wrong_password(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        res = scram(c, user_of(alice), 'x', password_proof='wrong',
                    agent=new_agent(), bind='t')
        assert_failure(res.final, 'not-authorized')
        # §2.6.2: the stream is as it was: another attempt works.
        res = scram(c, user_of(alice), server.users[alice], bind='t')
        assert_success(res.final)
    finally:
        c.close()


def test_unknown_mechanism(server):
    c = connect(server)
    try:
        send_authenticate(c, 'DIGEST-MD5', b'x')
        assert_failure(c.next_element(), 'invalid-mechanism')
        send_authenticate(c, 'HT-SHA-256-FOO', b'x', agent=new_agent())
        assert_failure(c.next_element(), 'invalid-mechanism')
    finally:
        c.close()


def test_plus_without_binding_is_invalid_mechanism_in_cleartext(
        server_factory):
    srv = server_factory(starttls='optional')
    c = srv.client()
    try:
        c.open_stream()
        send_authenticate(c, 'SCRAM-SHA-256-PLUS', b'p=tls-exporter,,n=a,r=x')
        assert_failure(c.next_element(), 'invalid-mechanism')
    finally:
        c.close()


def test_malformed_requests(server):
    c = connect(server)
    try:
        send_authenticate(c, 'SCRAM-SHA-256', b'garbage')
        assert_failure(c.next_element(), 'malformed-request')
        # A user-agent id that is too long.
        send_authenticate(c, 'SCRAM-SHA-256', b'n,,n=a,r=abc',
                          agent='x' * 65)
        assert_failure(c.next_element(), 'malformed-request')
        # A tag that is too long.
        send_authenticate(c, 'SCRAM-SHA-256', b'n,,n=a,r=abc', bind='t' * 65)
        assert_failure(c.next_element(), 'malformed-request')
        # <resume/> without previd.
        send_authenticate(c, 'SCRAM-SHA-256', b'n,,n=a,r=abc',
                          extra="<resume xmlns='%s' h='0'/>" % NS_SM)
        assert_failure(c.next_element(), 'malformed-request')
        # A token for a mechanism not offered, or without a user-agent.
        send_authenticate(c, 'SCRAM-SHA-256', b'n,,n=a,r=abc',
                          agent=new_agent(),
                          extra=request_token('HT-SHA-256-FOO'))
        assert_failure(c.next_element(), 'malformed-request')
        send_authenticate(c, 'SCRAM-SHA-256', b'n,,n=a,r=abc',
                          extra=request_token('HT-SHA-256-NONE'))
        assert_failure(c.next_element(), 'malformed-request')
        # A response with nothing under way.
        c.send("<response xmlns='%s'>eA==</response>" % NS_SASL2)
        assert_failure(c.next_element(), 'malformed-request')
        # Bad base64.
        send_authenticate(c, 'PLAIN', None)
        el = c.next_element()
        assert el.tag == q(NS_SASL2, 'challenge'), tostr(el)
        c.send("<response xmlns='%s'>!!!</response>" % NS_SASL2)
        assert_failure(c.next_element(), 'incorrect-encoding')
    finally:
        c.close()


def test_abort(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        send_authenticate(c, 'SCRAM-SHA-256',
                          ('n,,n=%s,r=abcdefgh' % user_of(alice)).encode())
        el = c.next_element()
        assert el.tag == q(NS_SASL2, 'challenge'), tostr(el)
        c.send("<abort xmlns='%s'/>" % NS_SASL2)
        assert_failure(c.next_element(), 'aborted')
        res = scram(c, user_of(alice), server.users[alice])
        assert_success(res.final)
    finally:
        c.close()


def test_other_traffic_during_exchange_ends_the_stream(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server)
    try:
        send_authenticate(c, 'SCRAM-SHA-256',
                          ('n,,n=%s,r=abcdefgh' % user_of(alice)).encode())
        assert c.next_element().tag == q(NS_SASL2, 'challenge')
        c.send("<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>")
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


def test_account_disabled(server):
    (alice,) = fresh_users(server, 1)
    ctl_ok(server.ctl('disable', alice))
    c = connect(server)
    try:
        res = scram(c, user_of(alice), server.users[alice], bind='t')
        assert_failure(res.final, 'account-disabled')
    finally:
        c.close()
        ctl_ok(server.ctl('enable', alice))


def test_temporary_auth_failure_when_throttled(server_factory):
    srv = server_factory(limits={'auth-failures-per-ip': 2,
                                 'auth-ban-time': 0})
    (bob,) = fresh_users(srv, 1)
    c = connect(srv)
    try:
        for _ in range(2):
            res = scram(c, user_of(bob), 'x', password_proof='wrong')
            assert_failure(res.final, 'not-authorized')
        c.close()
        c = connect(srv)
        send_authenticate(c, 'SCRAM-SHA-256',
                          ('n,,n=%s,r=abcdefgh' % user_of(bob)).encode())
        assert_failure(c.next_element(timeout=10), 'temporary-auth-failure')
    finally:
        c.close()


def test_sessions_per_user_refuses_bind(server_factory):
    srv = server_factory(limits={'sessions-per-user': 1})
    (carol,) = fresh_users(srv, 1)
    c1, _ = login(srv, carol, agent=new_agent())
    c2 = connect(srv)
    try:
        res = scram(c2, user_of(carol), srv.users[carol], agent=new_agent(),
                    bind='t')
        assert_failure(res.final, 'temporary-auth-failure')
        assert res.final.find(q(NS_STANZAS, 'resource-constraint')) \
            is not None, tostr(res.final)
        # Not authenticated: nothing but authentication is allowed.
        ping_el = "<iq type='get' id='x'><ping xmlns='urn:xmpp:ping'/></iq>"
        c2.send(ping_el)
        c2.expect_stream_error('not-authorized')
        ping(c1)
    finally:
        c1.close()
        c2.close()


# --- XEP-0474 ----------------------------------------------------------------

def test_downgrade_protection_hash(server):
    (alice,) = fresh_users(server, 1)
    c, f = tls_client(server, version=TLS13)
    try:
        mechs = sorted(sasl2_mechanisms(f))
        types = sorted(e.get('type') for e in f.find(
            q(NS_SASL_CB, 'sasl-channel-binding')))
        res = scram(c, user_of(alice), server.users[alice])
        assert_success(res.final)
        h = scram_parse(res.server_first).get('h')
        want = hashlib.sha256(('\x1e'.join(mechs) + '\x1f' +
                               '\x1e'.join(types)).encode()).digest()
        # What a client checks (XEP-0474 §6.2): a stripped list differs.
        assert base64.b64decode(h) == want, res.server_first
        stripped = [m for m in mechs if not m.endswith('-PLUS')]
        assert hashlib.sha256(('\x1e'.join(stripped) + '\x1f' +
                               '\x1e'.join(types)).encode()).digest() != want
    finally:
        c.close()


# --- Bind 2 ------------------------------------------------------------------

def test_stable_resource_per_user_agent(server):
    (alice,) = fresh_users(server, 1)
    agent = new_agent()
    c1, r1 = login(server, alice, agent=agent, tag='Conversations')
    full1 = authz_id(r1.final)
    assert full1.startswith(alice + '/Conversations.'), full1
    # The id itself is not in the resource (XEP-0386 §3.2.1).
    assert agent not in full1
    c2, r2 = login(server, alice, agent=agent, tag='Conversations')
    try:
        assert authz_id(r2.final) == full1
        # The same device's earlier session ends with <conflict/>.
        c1.expect_stream_error('conflict')
        c3, r3 = login(server, alice, agent=new_agent(), tag='Conversations')
        try:
            full3 = authz_id(r3.final)
            assert full3 != full1 and full3.startswith(
                alice + '/Conversations.'), full3
            ping(c2)
            ping(c3)
        finally:
            c3.close()
        # Another account with the same agent: another resource.
        (bob,) = fresh_users(server, 1)
        c4, r4 = login(server, bob, agent=agent, tag='Conversations')
        assert authz_id(r4.final).split('/')[1] != full1.split('/')[1]
        c4.close()
    finally:
        c1.close()
        c2.close()


def test_resource_without_agent_or_tag(server):
    (alice,) = fresh_users(server, 1)
    c1, r1 = login(server, alice, agent=None, tag='')
    c2, r2 = login(server, alice, agent=None, tag='')
    try:
        f1, f2 = authz_id(r1.final), authz_id(r2.final)
        assert f1 != f2 and f1.startswith(alice + '/'), (f1, f2)
        ping(c1)
        ping(c2)
    finally:
        c1.close()
        c2.close()


def test_inline_stream_management(server):
    (alice,) = fresh_users(server, 1)
    c, res = login(server, alice, agent=new_agent(),
                   bind_inline="<enable xmlns='%s' resume='true'/>" % NS_SM)
    try:
        bound = res.child(NS_BIND2, 'bound')
        en = bound.find(q(NS_SM, 'enabled'))
        assert en is not None, tostr(res.final)
        assert en.get('resume') == 'true' and len(en.get('id')) >= 22
        assert en.get('max') == '60'
        # Enabled already: not offered again.
        assert res.features.find(q(NS_SM, 'sm')) is None
        row = session_row(server, authz_id(res.final))
        assert row['sm'] == 'resumable', row
        ping(c)
        c.send("<r xmlns='%s'/>" % NS_SM)
        a = c.expect(q(NS_SM, 'a'))
        assert a.get('h') == '1', tostr(a)
    finally:
        c.close()


def test_inline_carbons(server):
    alice, bob = fresh_users(server, 2)
    c, res = login(server, alice, agent=new_agent(), tag='phone',
                   bind_inline="<enable xmlns='%s'/>" % NS_CARBONS)
    other = server.login(alice, resource='desktop')
    b = server.login(bob, resource='b')
    try:
        # Nothing to answer for carbons in <bound/> (XEP-0386 §3.2).
        assert len(list(res.child(NS_BIND2, 'bound'))) == 0
        c.presence()
        other.presence()
        b.message(alice + '/desktop', 'to-the-desktop')
        el = c.expect_stanza('message')
        fwd = el.find('%s/%s/%s' % (q(NS_CARBONS, 'received'),
                                    q(NS_FORWARD, 'forwarded'),
                                    q(NS_CLIENT, 'message')))
        assert fwd is not None, tostr(el)
        assert fwd.findtext(q(NS_CLIENT, 'body')) == 'to-the-desktop'
    finally:
        c.close()
        other.close()
        b.close()


def test_no_carbons_without_inline_enable(server):
    alice, bob = fresh_users(server, 2)
    c, res = login(server, alice, agent=new_agent(), tag='phone')
    other = server.login(alice, resource='desktop')
    b = server.login(bob, resource='b')
    try:
        c.presence()
        other.presence()
        b.message(alice + '/desktop', 'to-the-desktop')
        c.expect_no_stanza('message')
    finally:
        c.close()
        other.close()
        b.close()


def test_inline_resume_after_lost_connection(server):
    alice, bob = fresh_users(server, 2)
    agent = new_agent()
    c, res = login(server, alice, agent=agent, tag='phone',
                   bind_inline="<enable xmlns='%s' resume='true'/>" % NS_SM)
    full = authz_id(res.final)
    sid = res.child(NS_BIND2, 'bound').find(q(NS_SM, 'enabled')).get('id')
    b = server.login(bob, resource='b')
    try:
        c.presence()
        b.message(full, 'one')
        b.message(full, 'two')
        got = [c.expect_stanza('message') for _ in range(2)]
        assert [m.findtext(q(NS_CLIENT, 'body')) for m in got] == \
            ['one', 'two']
        c.close()                       # lost, nothing acknowledged
        wait_for(lambda: session_row(server, full)['sm'] == 'waiting',
                 what='the session to wait')
        b.message(full, 'three')
        c2, res2 = login(server, alice, agent=agent, tag='phone',
                         extra="<resume xmlns='%s' previd='%s' h='0'/>"
                         % (NS_SM, sid))
        try:
            assert authz_id(res2.final) == full
            resumed = res2.child(NS_SM, 'resumed')
            assert resumed is not None, tostr(res2.final)
            assert resumed.get('previd') == sid
            assert resumed.get('h') == '1', tostr(resumed)    # presence
            # §3.2 of XEP-0386: a resumed session binds nothing.
            assert res2.child(NS_BIND2, 'bound') is None
            # Features first, then what was not acknowledged, again,
            # with a delay.
            again = [c2.expect_stanza('message')
                     for _ in range(3)]
            assert [m.findtext(q(NS_CLIENT, 'body')) for m in again] == \
                ['one', 'two', 'three'], [tostr(m) for m in again]
            assert again[0].find(q(NS_DELAY, 'delay')) is not None
            ping(c2)
            row = session_row(server, full)
            assert row['sm'] == 'resumable' and \
                row['auth'] == 'SASL2 SCRAM-SHA-256', row
        finally:
            c2.close()
    finally:
        b.close()


def test_inline_resume_failure_then_bind(server):
    (alice,) = fresh_users(server, 1)
    c, res = login(server, alice, agent=new_agent(), tag='phone',
                   extra="<resume xmlns='%s' previd='nope' h='0'/>" % NS_SM)
    try:
        failed = res.child(NS_SM, 'failed')
        assert failed is not None, tostr(res.final)
        assert failed.find(q(NS_STANZAS, 'item-not-found')) is not None
        assert res.child(NS_BIND2, 'bound') is not None
        assert authz_id(res.final).startswith(alice + '/phone.')
        ping(c)
    finally:
        c.close()


def test_inline_resume_of_another_users_session_fails(server):
    alice, bob = fresh_users(server, 2)
    c, res = login(server, alice, agent=new_agent(),
                   bind_inline="<enable xmlns='%s' resume='true'/>" % NS_SM)
    sid = res.child(NS_BIND2, 'bound').find(q(NS_SM, 'enabled')).get('id')
    try:
        c2, res2 = login(server, bob, agent=new_agent(), tag=None,
                         extra="<resume xmlns='%s' previd='%s' h='0'/>"
                         % (NS_SM, sid))
        assert res2.child(NS_SM, 'failed') is not None
        assert authz_id(res2.final) == bob
        c2.close()
        ping(c)
    finally:
        c.close()


# --- FAST (XEP-0484) ---------------------------------------------------------

def get_token(server, jid, mech='HT-SHA-256-NONE', agent=None,
              version=TLS13):
    """Log in with the password asking for a token; returns (token,
    expiry, agent)."""
    agent = agent or new_agent()
    c, res = login(server, jid, agent=agent, tag=None,
                   extra=request_token(mech), version=version)
    try:
        token, expiry = token_of(res)
    finally:
        c.close()
    return token, expiry, agent


def token_login(server, jid, token, agent, mech='HT-SHA-256-NONE',
                version=TLS13, **kw):
    """A new connection trying token; returns (client, Result)."""
    c = connect(server, version)
    kw.setdefault('bind', 'fast')
    return c, ht(c, user_of(jid), token, mech, agent=agent, **kw)


def expect_token_login(server, jid, token, agent, *args, fails=None, **kw):
    """token_login, then the connection closed: it succeeds, or fails with
    the condition fails; returns the Result."""
    c, res = token_login(server, jid, token, agent, *args, **kw)
    try:
        if fails is None:
            assert_success(res.final)
        else:
            assert_failure(res.final, fails)
    finally:
        c.close()
    return res


def test_token_requested_and_issued(server):
    (alice,) = fresh_users(server, 1)
    before = time.time()
    token, expiry, _ = get_token(server, alice)
    # At least 128 random bits (80 base64url characters here).
    assert len(token) >= 22 and len(set(token)) > 10, token
    when = time.mktime(time.strptime(expiry, '%Y-%m-%dT%H:%M:%SZ')) - \
        time.timezone
    # fast-token-lifetime: 14 days by default.
    assert abs(when - (before + 14 * 86400)) < 60, expiry


@pytest.mark.parametrize('mech,version', [('HT-SHA-256-NONE', TLS13),
                                          ('HT-SHA-256-ENDP', TLS13),
                                          ('HT-SHA-256-EXPR', TLS13),
                                          ('HT-SHA-256-ENDP', TLS12)])
def test_login_with_token(server, mech, version):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice, mech, version=version)
    c, res = token_login(server, alice, token, agent, mech, version,
                         count=1)
    try:
        assert_success(res.final)
        # The server proves it knows the token too ("Responder").
        assert res.signature_ok, tostr(res.final)
        full = authz_id(res.final)
        assert full.startswith(alice + '/fast.'), full
        ping(c)
        assert session_row(server, full)['auth'] == \
            'SASL2 %s FAST' % mech
        # Not due for rotation: no new token unasked.
        assert res.child(NS_FAST, 'token') is None
    finally:
        c.close()


def test_token_login_without_count(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    expect_token_login(server, alice, token, agent, fast=False)


def test_replayed_count_fails(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    expect_token_login(server, alice, token, agent, count=5)
    for count in (5, 4):
        expect_token_login(server, alice, token, agent, count=count, fails='not-authorized')
    expect_token_login(server, alice, token, agent, count=6)


def test_same_count_racing_on_two_connections(server):
    """Two logins with one count sent at once: the count is checked and
    taken in one step on the storage thread, so one of them fails."""
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    import hmac as hmac_mod
    msg = user_of(alice).encode() + b'\0' + hmac_mod.new(
        token.encode(), b'Initiator', hashlib.sha256).digest()
    conns = [connect(server) for _ in range(2)]
    try:
        for c in conns:
            send_authenticate(c, 'HT-SHA-256-NONE', msg, agent=agent,
                              extra="<fast xmlns='%s' count='7'/>" % NS_FAST)
        answers = [c.next_element() for c in conns]
        tags = sorted(a.tag for a in answers)
        assert tags == [q(NS_SASL2, 'failure'), q(NS_SASL2, 'success')], \
            [tostr(a) for a in answers]
        for a in answers:
            if a.tag == q(NS_SASL2, 'failure'):
                assert_failure(a, 'not-authorized', 'Replayed FAST count')
    finally:
        for c in conns:
            c.close()


def test_wrong_token_and_other_device_fail(server):
    alice, bob = fresh_users(server, 2)
    token, _, agent = get_token(server, alice)
    for who, tok, ag in ((alice, 'x' * 80, agent),         # wrong token
                         (alice, token, new_agent()),      # other device
                         (bob, token, agent)):             # other account
        expect_token_login(server, who, tok, ag, fails='not-authorized')
    # A token needs a user-agent id.
    expect_token_login(server, alice, token, None, fails='malformed-request')
    expect_token_login(server, alice, token, agent)


def test_wrong_channel_binding_fails(server):
    (alice,) = fresh_users(server, 1)
    for mech in ('HT-SHA-256-ENDP', 'HT-SHA-256-EXPR'):
        token, _, agent = get_token(server, alice, mech)
        expect_token_login(server, alice, token, agent, mech,
                             cbdata=b'\0' * 32, fails='not-authorized')


def test_token_bound_to_its_mechanism(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice, 'HT-SHA-256-ENDP')
    # §3.4: not with a weaker mechanism ...
    expect_token_login(server, alice, token, agent, 'HT-SHA-256-NONE', fails='mechanism-too-weak')
    # ... nor with another one.
    token, _, agent = get_token(server, alice, 'HT-SHA-256-NONE')
    expect_token_login(server, alice, token, agent, 'HT-SHA-256-EXPR', fails='not-authorized')


def test_expr_not_on_tls12(server):
    (alice,) = fresh_users(server, 1)
    c = connect(server, TLS12)
    try:
        send_authenticate(c, 'HT-SHA-256-EXPR', b'a\0' + b'x' * 32,
                          agent=new_agent())
        assert_failure(c.next_element(), 'invalid-mechanism')
    finally:
        c.close()


def test_password_change_revokes_tokens(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    ctl_ok(server.ctl('passwd', alice, '--password-stdin',
                      input=server.users[alice]))
    expect_token_login(server, alice, token, agent, fails='not-authorized')


def test_password_change_in_band_revokes_tokens(server_factory):
    srv = server_factory(extra='registration on')
    (alice,) = fresh_users(srv, 1)
    token, _, agent = get_token(srv, alice)
    c, _ = login(srv, alice, tag='t')
    try:
        c.send("<iq type='set' id='pw'><query xmlns='jabber:iq:register'>"
               "<username>%s</username><password>new-secret</password>"
               "</query></iq>" % user_of(alice))
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'result', tostr(el)
    finally:
        c.close()
    expect_token_login(srv, alice, token, agent, fails='not-authorized')


def test_account_deletion_revokes_tokens(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    ctl_ok(server.ctl('deluser', alice))
    server.adduser(alice, server.users[alice])
    expect_token_login(server, alice, token, agent, fails='not-authorized')


def test_disabled_account_with_token(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    ctl_ok(server.ctl('disable', alice))
    try:
        expect_token_login(server, alice, token, agent, fails='account-disabled')
    finally:
        ctl_ok(server.ctl('enable', alice))


def test_tokens_at_rest_are_sealed(server_factory):
    """What the database holds of a token is neither the token nor its
    SHA-256 (which logs in as well as the token, ht.h): it is sealed with
    a key kept beside it in a file of its own (mode 0600).  Without that
    file the database logs nobody in: a new key is made and the token
    fails; the password still works."""
    import os
    import sqlite3
    import stat
    srv = server_factory()
    (alice,) = fresh_users(srv, 1)
    token, _, agent = get_token(srv, alice)
    keyfile = str(srv.db) + '-fastkey'
    st = os.stat(keyfile)
    assert st.st_size == 32 and stat.S_IMODE(st.st_mode) == 0o600
    def stored():
        db = sqlite3.connect('file:%s?mode=ro' % srv.db, uri=True)
        try:
            return [bytes(r[0]) for r in
                    db.execute('SELECT hash FROM fast_token')]
        finally:
            db.close()
    wait_for(stored, what='the token stored')
    rows = stored()
    assert len(rows) == 1 and len(rows[0]) == 32, rows
    assert rows[0] != hashlib.sha256(token.encode()).digest()
    assert token.encode() not in open(srv.db, 'rb').read()
    c, res = token_login(srv, alice, token, agent)
    c.close()
    assert res.ok, tostr(res.final)
    srv.stop()
    os.unlink(keyfile)
    srv.start(create_users=False)
    res = expect_token_login(srv, alice, token, agent, count=2, fails='not-authorized')
    c, res = login(srv, alice)
    c.close()
    assert res.ok


def test_expired_token(server_factory):
    srv = server_factory(limits={'fast-token-lifetime': '1s'})
    (alice,) = fresh_users(srv, 1)
    token, _, agent = get_token(srv, alice)
    time.sleep(1.5)
    c, res = token_login(srv, alice, token, agent)
    try:
        # XEP-0484 §4.2: credentials-expired (RFC 6120 §6.5.2).
        assert_failure(res.final, 'credentials-expired')
    finally:
        c.close()


def test_rotation_keeps_the_old_token_until_the_new_is_used(server):
    (alice,) = fresh_users(server, 1)
    t1, _, agent = get_token(server, alice)
    # Logged in with t1, the client asks for a new token.
    c, res = token_login(server, alice, t1, agent,
                         extra=request_token('HT-SHA-256-NONE'))
    assert_success(res.final)
    t2, _ = token_of(res)
    assert t2 != t1
    c.close()
    # §3.5: t1 stays good until t2 is used ...
    res = expect_token_login(server, alice, t1, agent)
    res = expect_token_login(server, alice, t2, agent)
    # ... and then it is gone.
    res = expect_token_login(server, alice, t1, agent, fails='not-authorized')
    res = expect_token_login(server, alice, t2, agent)


def test_unused_new_token_is_replaced(server):
    (alice,) = fresh_users(server, 1)
    agent = new_agent()
    t1, _, _ = get_token(server, alice, agent=agent)
    t2, _, _ = get_token(server, alice, agent=agent)
    # §3.5: issuing t2 invalidated t1, never used.
    expect_token_login(server, alice, t1, agent, fails='not-authorized')
    expect_token_login(server, alice, t2, agent)


def test_server_rotates_a_token_past_half_its_life(server_factory):
    srv = server_factory(limits={'fast-token-lifetime': '4s'})
    (alice,) = fresh_users(srv, 1)
    t1, _, agent = get_token(srv, alice)
    c, res = token_login(srv, alice, t1, agent)
    assert_success(res.final)
    assert res.child(NS_FAST, 'token') is None
    c.close()
    time.sleep(2.5)
    c, res = token_login(srv, alice, t1, agent)
    try:
        assert_success(res.final)
        t2, _ = token_of(res)           # unasked
        assert t2 != t1
    finally:
        c.close()
    res = expect_token_login(srv, alice, t2, agent)


def test_invalidate(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    c, res = token_login(server, alice, token, agent, invalidate=True)
    assert_success(res.final)
    # §3.6: no new token unless asked.
    assert res.child(NS_FAST, 'token') is None
    c.close()
    res = expect_token_login(server, alice, token, agent, fails='not-authorized')


def test_xmppctl_tokens_and_revoke(server):
    (alice,) = fresh_users(server, 1)
    phone, laptop = new_agent(), new_agent()
    t_phone, _, _ = get_token(server, alice, agent=phone)
    t_laptop, _, _ = get_token(server, alice, 'HT-SHA-256-EXPR',
                               agent=laptop)
    expect_token_login(server, alice, t_phone, phone)
    rows = json.loads(ctl_ok(server.ctl('user', 'tokens', alice,
                                        '--json')).stdout)
    by_dev = {r['device_id']: r for r in rows}
    assert set(by_dev) == {phone, laptop}, rows
    assert by_dev[phone]['software'] == 'TestXMPP'
    assert by_dev[phone]['device'] == 'pytest'
    assert by_dev[phone]['mechanism'] == 'HT-SHA-256-NONE'
    assert by_dev[laptop]['mechanism'] == 'HT-SHA-256-EXPR'
    assert by_dev[phone]['last_used'] is not None
    assert by_dev[laptop]['last_used'] is None
    assert by_dev[phone]['expiry'] > by_dev[phone]['created']
    # user show counts them.
    show = json.loads(ctl_ok(server.ctl('user', 'show', alice,
                                        '--json')).stdout)
    assert show['login-tokens'] == 2, show
    # No token itself, nor its hash, is ever shown.
    text = ctl_ok(server.ctl('user', 'tokens', alice)).stdout
    assert t_phone not in text and t_laptop not in text
    # Revoke one device, then all.
    r = ctl_ok(server.ctl('user', 'revoke-tokens', alice, phone))
    assert r.stdout.strip() == '1 token revoked', r.stdout
    expect_token_login(server, alice, t_phone, phone, fails='not-authorized')
    expect_token_login(server, alice, t_laptop, laptop, 'HT-SHA-256-EXPR')
    r = ctl_ok(server.ctl('user', 'revoke-tokens', alice, '--json'))
    assert json.loads(r.stdout) == {'tokens': 1}, r.stdout
    expect_token_login(server, alice, t_laptop, laptop, 'HT-SHA-256-EXPR', fails='not-authorized')
    r = server.ctl('user', 'tokens', 'nobody@localhost')
    assert r.returncode != 0
    assert json.loads(ctl_ok(server.ctl('user', 'tokens', alice,
                                        '--json')).stdout) == []


def test_fast_bad_input(server):
    (alice,) = fresh_users(server, 1)
    token, _, agent = get_token(server, alice)
    c = connect(server)
    try:
        # No NUL between name and HMAC.
        send_authenticate(c, 'HT-SHA-256-NONE', b'x' * 40, agent=agent)
        assert_failure(c.next_element(), 'malformed-request')
        # A short HMAC.
        send_authenticate(c, 'HT-SHA-256-NONE',
                          user_of(alice).encode() + b'\0abc', agent=agent)
        assert_failure(c.next_element(), 'not-authorized')
        # A count that is no number.
        send_authenticate(c, 'HT-SHA-256-NONE', b'a\0' + b'x' * 32,
                          agent=agent,
                          extra="<fast xmlns='%s' count='-1'/>" % NS_FAST)
        assert_failure(c.next_element(), 'malformed-request')
    finally:
        c.close()
