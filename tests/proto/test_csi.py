"""XEP-0352 client state indication with raw XML: the feature, presence
coalesced to the newest per contact resource while inactive, chat
states held, everything held sent in order before something urgent (a
message with a body, a subscription request, an IQ) or when the client
becomes active, the bound on what is held, counting under stream
management through holds, and nothing lost when an inactive session
ends with stanzas held."""

import json

import pytest

from im_helpers import (fresh_users, is_iq, is_message, is_presence,
                        subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from sm_helpers import ack, enable, request
from xmpp_raw import NS_CLIENT, RawClient, assert_sasl_success, q, tostr

NS_CSI = 'urn:xmpp:csi:0'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
INACTIVE = "<inactive xmlns='%s'/>" % NS_CSI
ACTIVE = "<active xmlns='%s'/>" % NS_CSI
SERVER_OPTIONS = {'limits': {'csi-queue': '20', 'sm-ack-seconds': '0',
                             'sm-ack-stanzas': '0'}}


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def sessions_of(server, jid):
    r = server.ctl('sessions', '--json')
    assert r.returncode == 0, r.stderr
    return [s for s in json.loads(r.stdout) if s['jid'].startswith(jid + '/')]


def nothing_arrives(c, duration=0.4):
    """Nothing at all reaches c (no barrier: an IQ answer to c itself is
    urgent and would flush what is held)."""
    c.absent(lambda el: True, duration, barrier=False)


def chat_state(to, state='composing'):
    return ("<message to='%s' type='chat'><%s xmlns='%s'/></message>"
            % (to, state, NS_CHATSTATES))


def test_feature_offered_after_authentication(server):
    (alice,) = fresh_users(server, 1)
    c = RawClient(server.c2s_port)
    try:
        c.open_stream()
        c.starttls()
        pre = c.open_stream()
        assert pre.find(q(NS_CSI, 'csi')) is None, tostr(pre)
        assert_sasl_success(c.sasl_plain(alice.split('@')[0],
                                         server.users[alice]))
        post = c.open_stream()
        assert post.find(q(NS_CSI, 'csi')) is not None, tostr(post)
    finally:
        c.close()


def test_presence_coalesced_until_a_message(im, server):
    alice, bob, carol = fresh_users(server, 3)
    a = im(alice, roster=True)
    b = im(bob, roster=True)
    c = im(carol, roster=True)
    subscribe_both(a, b)
    subscribe_both(a, c)
    a.send(INACTIVE)
    a.sync()                # the nonza is handled before what follows
    assert sessions_of(server, alice)[0]['csi'] == 'inactive'
    for i in range(5):
        b.presence(status='b%d' % i)
        c.presence(status='c%d' % i)
    b.sync()
    c.sync()
    nothing_arrives(a)
    b.message(alice, 'wake up')
    # Exactly the newest presence of each contact (two clients: in the
    # order the server got their last change), then the message.
    got = [a.wait(lambda el: True) for _ in range(3)]
    assert [el.tag for el in got] == [q(NS_CLIENT, 'presence')] * 2 + [
        q(NS_CLIENT, 'message')], [tostr(el) for el in got]
    assert {el.get('from'): el.findtext(q(NS_CLIENT, 'status'))
            for el in got[:2]} == {b.full: 'b4', c.full: 'c4'}
    a.absent(is_presence(), 0.2)


def test_chat_states_held_until_active(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    a.send(INACTIVE)
    a.sync()
    b.send(chat_state(alice, 'composing'))
    b.send(chat_state(alice, 'paused'))
    b.sync()
    nothing_arrives(a)
    a.send(ACTIVE)
    first = a.wait(is_message())
    second = a.wait(is_message())
    assert first.find(q(NS_CHATSTATES, 'composing')) is not None
    assert second.find(q(NS_CHATSTATES, 'paused')) is not None
    assert sessions_of(server, alice)[0]['csi'] == 'active'
    # Active again: a chat state comes at once.
    b.send(chat_state(alice, 'gone'))
    el = a.wait(is_message(), timeout=2)
    assert el.find(q(NS_CHATSTATES, 'gone')) is not None


@pytest.mark.parametrize('urgent', ['subscribe', 'iq', 'encrypted'])
def test_urgent_stanzas_flush(im, server, urgent):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    a.send(INACTIVE)
    a.sync()
    b.send(chat_state(alice))
    b.sync()
    nothing_arrives(a)
    if urgent == 'subscribe':
        b.presence(to=alice, ptype='subscribe')
        last = is_presence(ptype='subscribe')
    elif urgent == 'iq':
        b.send("<iq to='%s' type='get' id='v1'><query xmlns='jabber:iq:"
               "version'/></iq>" % a.full)
        last = is_iq('v1', 'get')
    else:
        b.send("<message to='%s' type='chat'><encrypted xmlns='eu.siacs."
               "conversations.axolotl'><header sid='1'/></encrypted>"
               "</message>" % alice)
        last = is_message()
    held = a.wait(is_message(), timeout=2)
    assert held.find(q(NS_CHATSTATES, 'composing')) is not None
    a.wait(last, timeout=2)


def test_full_hold_is_sent(im, server):
    """csi-queue 20: the twentieth held stanza sends them all."""
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    a.send(INACTIVE)
    a.sync()
    for i in range(19):
        b.send(chat_state(alice, 'composing' if i % 2 else 'paused'))
    b.sync()
    nothing_arrives(a)
    b.send(chat_state(alice, 'active'))
    got = [a.wait(is_message(), timeout=2) for _ in range(20)]
    assert got[-1].find(q(NS_CHATSTATES, 'active')) is not None


def test_counting_under_stream_management(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    enable(a)
    a.send(INACTIVE)
    assert request(a) == 0          # a nonza: not counted
    for _ in range(3):
        b.send(chat_state(alice))
    b.sync()
    nothing_arrives(a)
    # Held stanzas were not sent: nothing to acknowledge yet.
    assert sessions_of(server, alice)[0]['sm_unacked'] == 0
    b.message(alice, 'now')
    got = [a.wait(is_message(), timeout=2) for _ in range(4)]
    assert got[-1].findtext(q(NS_CLIENT, 'body')) == 'now'
    # The client acknowledges exactly the four it got: no stream error.
    ack(a, 4)
    a.send(ACTIVE)
    assert request(a) == 0
    assert sessions_of(server, alice)[0]['sm_unacked'] == 0


def test_held_receipt_reaches_other_resource_when_session_ends(im, server):
    """A receipt held for an inactive phone that closes its stream goes
    to the user's other resource (RFC 6121 §8.5.3.2.1 for a full JID
    that is gone), not into the void."""
    alice, bob = fresh_users(server, 2)
    phone = im(alice, resource='phone', priority=1)
    desk = im(alice, resource='desk', priority=0)
    b = im(bob)
    phone.settle()          # desk's presence
    phone.send(INACTIVE)
    phone.sync()
    b.send("<message to='%s' id='rcpt1'><received xmlns='urn:xmpp:"
           "receipts' id='m1'/></message>" % phone.full)
    b.sync()
    nothing_arrives(phone)
    phone.close_stream()
    el = desk.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                   e.get('id') == 'rcpt1', timeout=5)
    assert el.find(q('urn:xmpp:receipts', 'received')) is not None, \
        tostr(el)


def test_unknown_element_in_namespace(im, server):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    a.send("<sleepy xmlns='%s'/>" % NS_CSI)
    a.expect_stream_error('unsupported-stanza-type')


def test_inactive_inline_in_bind2(server, im):
    """XEP-0386 §3.2: <inactive/> inside the Bind 2 request starts the
    session inactive (a phone reconnecting in the background)."""
    from sasl2_helpers import login, new_agent
    alice, bob = fresh_users(server, 2)
    c, res = login(server, alice, agent=new_agent(), tag='phone',
                   bind_inline=INACTIVE)
    try:
        full = c.jid
        assert [s['csi'] for s in sessions_of(server, alice)
                if s['jid'] == full] == ['inactive']
        c.send('<presence/>')
        b = im(bob)
        b.send(chat_state(full))
        b.sync()
        assert c.poll_element(0.4) is None
        b.message(full, 'wake')
        el = c.expect_stanza('message')
        assert el.find(q(NS_CHATSTATES, 'composing')) is not None, tostr(el)
        el = c.expect_stanza('message')
        assert el.findtext(q(NS_CLIENT, 'body')) == 'wake', tostr(el)
    finally:
        c.close()


def test_resumed_stream_is_active(im, server):
    """XEP-0352 §5.2: the state is not restored when a stream is resumed.
    What was held while the session waited is sent after the resumption,
    and what comes next is not held."""
    from sm_helpers import resume
    alice, bob = fresh_users(server, 2)
    a = im(alice, resource='phone')
    b = im(bob)
    sid = enable(a).get('id')
    a.send(INACTIVE)
    assert request(a) == 0
    a.raw.close()
    b.send(chat_state(alice + '/phone', 'paused'))
    b.sync()
    raw, el = resume(server, alice, sid, 0)
    try:
        assert el.tag == q('urn:xmpp:sm:3', 'resumed'), tostr(el)
        row = [s for s in sessions_of(server, alice)][0]
        assert row['csi'] == 'active', row
        el = raw.expect_stanza('message')
        assert el.find(q(NS_CHATSTATES, 'paused')) is not None, tostr(el)
        b.send(chat_state(alice + '/phone', 'composing'))
        el = raw.expect_stanza('message', timeout=2)
        assert el.find(q(NS_CHATSTATES, 'composing')) is not None, tostr(el)
    finally:
        raw.close()
