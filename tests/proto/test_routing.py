"""Routing between local clients (RFC 6120 §8, RFC 6121 §8.5): a real
client library (slixmpp) over STARTTLS and direct TLS with SCRAM-SHA-256,
then raw clients for full JID, bare JID by priority, unknown resources,
'from' stamping and the errors for unknown payloads, users and domains."""

import asyncio
import logging
from pathlib import Path

import pytest

from xmpp_raw import (NS_CLIENT, assert_stanza_error, q, tostr)


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def body(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


# --- slixmpp ----------------------------------------------------------------

def run_slixmpp_exchange(server, use_ssl):
    import slixmpp

    logging.getLogger('slixmpp').setLevel(logging.WARNING)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    port = server.tls_port if use_ssl else server.c2s_port
    result = {'alice_mech': None, 'bob_mech': None, 'bob_got': None,
              'alice_got': None, 'errors': []}

    def make(jid, password, key):
        x = slixmpp.ClientXMPP(jid, password, sasl_mech='SCRAM-SHA-256')
        # verify the daemon's certificate properly: it is its own CA
        x.ca_certs = Path(server.cert)

        def on_auth(_):
            result[key] = x['feature_mechanisms'].mech.name

        def on_failed(stanza):
            result['errors'].append('%s auth failed: %s' % (jid, stanza))

        # Held to SCRAM-SHA-256, slixmpp 1.8 (which knows only tls-unique)
        # sends the gs2 flag 'y' without trying -PLUS first, which a
        # server advertising -PLUS refuses (RFC 5802 §6; test_sasl.py, and
        # test_sasl_interop.py for slixmpp as it comes).  Make it say 'n'
        # ("no channel binding"), as XEP-0474 §7 has clients do when no
        # type is shared.
        mechs = x['feature_mechanisms']
        default_credentials = mechs.sasl_callback

        def credentials(required, optional):
            creds = default_credentials(required, optional)
            if 'channel_binding' in creds:
                creds['channel_binding'] = None
            return creds

        mechs.sasl_callback = credentials
        x.add_event_handler('auth_success', on_auth)
        x.add_event_handler('failed_auth', on_failed)
        return x

    alice = make('alice@localhost/slix', server.users['alice@localhost'],
                 'alice_mech')
    bob = make('bob@localhost/slix', server.users['bob@localhost'],
               'bob_mech')
    got_bob = loop.create_future()
    got_alice = loop.create_future()

    def bob_message(msg):
        if msg['type'] in ('chat', 'normal') and not got_bob.done():
            got_bob.set_result((str(msg['from']), msg['body']))
            msg.reply('pong').send()

    def alice_message(msg):
        if msg['type'] in ('chat', 'normal') and not got_alice.done():
            got_alice.set_result((str(msg['from']), msg['body']))

    bob.add_event_handler('message', bob_message)
    alice.add_event_handler('message', alice_message)

    async def scenario():
        started = []
        for x in (alice, bob):
            fut = loop.create_future()
            x.add_event_handler('session_start',
                                lambda _e, f=fut: f.done() or
                                f.set_result(True))
            x.connect(('127.0.0.1', port), use_ssl=use_ssl,
                      force_starttls=not use_ssl)
            started.append(fut)
        await asyncio.wait_for(asyncio.gather(*started), 10)
        for x in (alice, bob):
            x.send_presence()
        alice.send_message(mto='bob@localhost/slix', mbody='ping',
                           mtype='chat')
        result['bob_got'] = await asyncio.wait_for(got_bob, 5)
        result['alice_got'] = await asyncio.wait_for(got_alice, 5)
        for x in (alice, bob):
            x.disconnect()
        await asyncio.sleep(0.2)

    try:
        loop.run_until_complete(scenario())
    finally:
        for x in (alice, bob):
            try:
                x.abort()
            except Exception:
                pass
        loop.run_until_complete(asyncio.sleep(0.05))
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending,
                                               return_exceptions=True))
        loop.close()
        asyncio.set_event_loop(None)
    return result


@pytest.mark.parametrize('use_ssl', [False, True],
                         ids=['starttls', 'direct-tls'])
def test_slixmpp_exchange_scram_sha256(server, use_ssl):
    r = run_slixmpp_exchange(server, use_ssl)
    assert not r['errors'], r['errors']
    assert r['alice_mech'] == 'SCRAM-SHA-256'
    assert r['bob_mech'] == 'SCRAM-SHA-256'
    assert r['bob_got'] == ('alice@localhost/slix', 'ping')
    assert r['alice_got'] == ('bob@localhost/slix', 'pong')


# --- raw clients -------------------------------------------------------------

@pytest.fixture
def clients(server):
    """clients(jid, resource, priority=None, tls='starttls') -> bound,
    available RawClient; all closed at teardown."""
    made = []

    def make(jid, resource, priority=None, tls='starttls', presence=True):
        c = server.login(jid, resource=resource, tls=tls)
        made.append(c)
        if presence:
            c.presence(priority=priority)
        return c

    yield make
    for c in made:
        c.close()


def settle(*clients, duration=0.3):
    """Drain presence broadcasts so later checks see only messages."""
    for c in clients:
        c.expect_no_stanza('message', duration)


def test_raw_starttls_to_direct_tls(server, clients):
    a = clients('alice@localhost', 'plain-side', tls='starttls')
    b = clients('bob@localhost', 'tls-side', tls='direct')
    settle(a, b)
    a.message('bob@localhost/tls-side', 'over the bridge', mid='m1')
    el = b.expect_stanza('message')
    assert el.get('from') == 'alice@localhost/plain-side'
    assert el.get('to') == 'bob@localhost/tls-side'
    assert el.get('id') == 'm1' and el.get('type') == 'chat'
    assert body(el) == 'over the bridge'
    b.message('alice@localhost/plain-side', 'and back')
    el = a.expect_stanza('message')
    assert el.get('from') == 'bob@localhost/tls-side'
    assert body(el) == 'and back'


def test_full_jid_delivered_to_that_resource_only(server, clients):
    a1 = clients('alice@localhost', 'a1')
    a2 = clients('alice@localhost', 'a2')
    b = clients('bob@localhost', 'b')
    settle(a1, a2, b)
    b.message('alice@localhost/a1', 'only a1', mid='full')
    el = a1.expect_stanza('message')
    assert body(el) == 'only a1' and el.get('to') == 'alice@localhost/a1'
    assert el.get('from') == 'bob@localhost/b'
    a2.expect_no_stanza('message', 0.5)


@pytest.mark.parametrize('mtype', ['chat', 'normal'])
def test_bare_jid_highest_priority(server, clients, mtype):
    """RFC 6121 §8.5.2.1.1: to the highest non-negative priority
    resource(s); this server delivers to every resource tied highest;
    negative priority never receives bare-JID messages."""
    hi1 = clients('alice@localhost', 'hi1', priority=5)
    hi2 = clients('alice@localhost', 'hi2', priority=5)
    lo = clients('alice@localhost', 'lo', priority=1)
    neg = clients('alice@localhost', 'neg', priority=-1)
    b = clients('bob@localhost', 'b')
    settle(hi1, hi2, lo, neg, b)
    b.message('alice@localhost', 'to the bare jid', mtype=mtype, mid='bare')
    for c in (hi1, hi2):
        el = c.expect_stanza('message')
        assert body(el) == 'to the bare jid', tostr(el)
        assert el.get('from') == 'bob@localhost/b'
    lo.expect_no_stanza('message', 0.5)
    neg.expect_no_stanza('message', 0.1)


def test_bare_jid_skips_negative_priority(server, clients):
    neg = clients('alice@localhost', 'neg', priority=-5)
    zero = clients('alice@localhost', 'zero', priority=0)
    b = clients('bob@localhost', 'b')
    settle(neg, zero, b)
    b.message('alice@localhost', 'not for negatives')
    assert body(zero.expect_stanza('message')) == 'not for negatives'
    neg.expect_no_stanza('message', 0.5)


@pytest.mark.parametrize('mtype', ['chat', 'normal'])
def test_unknown_resource_treated_as_bare(server, clients, mtype):
    """RFC 6121 §8.5.3.2.1: chat/normal to an unavailable resource of an
    online user goes as if to the bare JID."""
    a1 = clients('alice@localhost', 'a1', priority=0)
    b = clients('bob@localhost', 'b')
    settle(a1, b)
    b.message('alice@localhost/nonexistent', 'lost resource', mtype=mtype)
    el = a1.expect_stanza('message')
    assert body(el) == 'lost resource'
    assert el.get('from') == 'bob@localhost/b'


@pytest.mark.parametrize('spoof', ['eve@localhost/x', 'bob@localhost/b',
                                   'localhost', 'alice@localhost/other'])
def test_spoofed_from_overwritten(server, clients, spoof):
    a = clients('alice@localhost', 'real')
    b = clients('bob@localhost', 'b')
    settle(a, b)
    a.send("<message to='bob@localhost/b' from='%s' type='chat'>"
           "<body>who am i</body></message>" % spoof)
    el = b.expect_stanza('message')
    assert el.get('from') == 'alice@localhost/real', tostr(el)
    assert body(el) == 'who am i'


def test_iq_to_server_unknown_payload(server, clients):
    a = clients('alice@localhost', 'iq')
    settle(a)
    a.send("<iq type='get' id='u1' to='localhost'>"
           "<query xmlns='urn:example:no-such-feature'/></iq>")
    el = a.expect_stanza('iq')
    assert_stanza_error(el, 'iq', 'service-unavailable', etype='cancel',
                        frm='localhost', sid='u1')
    assert el.get('to') == 'alice@localhost/iq'


def test_iq_to_bare_jid_unknown_payload(server, clients):
    """An IQ to a bare JID is handled by the server on the user's behalf
    (RFC 6120 §10.5.3.1 / RFC 6121 §8.5.2.1.3)."""
    a = clients('alice@localhost', 'iq')
    b = clients('bob@localhost', 'b')
    settle(a, b)
    a.send("<iq type='get' id='u2' to='bob@localhost'>"
           "<query xmlns='urn:example:no-such-feature'/></iq>")
    el = a.expect_stanza('iq')
    assert_stanza_error(el, 'iq', 'service-unavailable', etype='cancel',
                        frm='bob@localhost', sid='u2')
    b.expect_no_stanza('iq', 0.3)


def test_iq_result_to_bare_jid_not_answered(server, clients):
    """Robustness: an IQ result/error is never answered with an error
    (RFC 6120 §8.3.1), so two servers cannot ping-pong."""
    a = clients('alice@localhost', 'iq')
    settle(a)
    a.send("<iq type='result' id='r1' to='bob@localhost'/>")
    a.send("<iq type='error' id='r2' to='localhost'><error type='cancel'>"
           "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
           "/></error></iq>")
    a.expect_no_stanza('iq', 0.5)


def test_message_to_nonexistent_user(server, clients):
    a = clients('alice@localhost', 'm')
    settle(a)
    a.message('nobody@localhost', 'hello?', mid='nx')
    el = a.expect_stanza('message')
    assert_stanza_error(el, 'message', 'service-unavailable', etype='cancel',
                        frm='nobody@localhost', sid='nx')


def test_message_to_remote_domain(server, clients):
    a = clients('alice@localhost', 'm')
    settle(a)
    a.message('someone@example.org', 'far away', mid='remote')
    el = a.expect_stanza('message')
    assert_stanza_error(el, 'message', 'remote-server-not-found',
                        etype='cancel', frm='someone@example.org',
                        sid='remote')


def test_error_message_not_bounced(server, clients):
    """Robustness: a message of type error to a missing user is dropped,
    not answered with another error (RFC 6120 §8.3.1)."""
    a = clients('alice@localhost', 'm')
    settle(a)
    a.send("<message type='error' to='nobody@localhost' id='e1'>"
           "<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:"
           "ns:xmpp-stanzas'/></error></message>")
    a.expect_no_stanza('message', 0.5)
