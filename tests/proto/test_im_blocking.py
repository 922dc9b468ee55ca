"""Blocking command (XEP-0191): the block list, block / unblock /
unblock-all with pushes to the resources that asked for the list, what a
blocked contact gets back for messages, IQs and presence, what the user
gets for stanzas to a blocked contact, presence hidden both ways once
blocked, full-JID items, and persistence across sessions."""

import pytest

from im_helpers import (NS_BLOCKING, NS_BLOCKING_ERRORS, assert_error_extra,
                        fresh_users, is_block_push, is_iq, is_message,
                        is_presence, item_state, subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

# XEP-0191 §3.3: inbound messages and IQ get/set from a blocked JID.
BLOCKED_INBOUND = ('service-unavailable', 'cancel')


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def blocklist(c):
    el = c.iq_ok('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING)
    bl = el.find(q(NS_BLOCKING, 'blocklist'))
    assert bl is not None, tostr(el)
    return sorted(i.get('jid') for i in bl.findall(q(NS_BLOCKING, 'item')))


def items(jids):
    return ''.join("<item jid='%s'/>" % j for j in jids)


def block(c, *jids):
    return c.iq('set', "<block xmlns='%s'>%s</block>" % (NS_BLOCKING,
                                                         items(jids)))


def unblock(c, *jids):
    return c.iq('set', "<unblock xmlns='%s'>%s</unblock>" % (NS_BLOCKING,
                                                             items(jids)))


def expect_block_push(c, kind, jids):
    el = c.wait(is_block_push(kind, jids))
    assert el.get('from') in (None, c.bare), tostr(el)
    c.answer(el)
    return el


# --- the list and its pushes -------------------------------------------------

def test_empty_blocklist(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    assert blocklist(c) == []


def test_block_unblock_with_pushes(server, im):
    """Pushes go to every resource that requested the block list
    (XEP-0191 §3.3), and to no other."""
    a, x, y = fresh_users(server, 3)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2', presence=False)
    r3 = im(a, 'r3')
    blocklist(r1)
    blocklist(r2)
    el = block(r1, x, y)
    assert el.get('type') == 'result' and len(el) == 0, tostr(el)
    for c in (r1, r2):
        expect_block_push(c, 'block', [x, y])
    r3.absent(is_block_push('block'), 0.3)
    assert blocklist(r2) == sorted([x, y])

    el = unblock(r2, x)
    assert el.get('type') == 'result', tostr(el)
    for c in (r1, r2):
        expect_block_push(c, 'unblock', [x])
    assert blocklist(r1) == [y]

    block(r1, x)
    for c in (r1, r2):
        expect_block_push(c, 'block', [x])
    el = unblock(r1)                           # unblock all
    assert el.get('type') == 'result', tostr(el)
    for c in (r1, r2):
        expect_block_push(c, 'unblock', [])
    assert blocklist(r1) == []
    r3.absent(is_block_push('unblock'), 0.1)


def test_block_without_items_is_bad_request(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    blocklist(c)
    el = block(c)
    assert_stanza_error(el, 'iq', 'bad-request', etype='modify')
    c.absent(is_block_push('block'), 0.2)


def test_blocklist_persists(server, im):
    a, x = fresh_users(server, 2)
    c = im(a, 'first', presence=False)
    assert block(c, x).get('type') == 'result'
    c.close_stream()
    c.raw.close()
    c2 = im(a, 'second', presence=False)
    assert blocklist(c2) == [x]
    cx = im(x)
    cx.message(a, 'still blocked?', mid='p1')
    assert_stanza_error(cx.wait(is_message()), 'message', BLOCKED_INBOUND[0],
                        etype=BLOCKED_INBOUND[1])


# --- what blocking does ------------------------------------------------------

def test_inbound_from_blocked_contact(server, im):
    a, x = fresh_users(server, 2)
    ca = im(a, 'res')
    cx = im(x, 'res')
    assert block(ca, x).get('type') == 'result'
    cx.message(a, 'hello?', mid='m1')
    el = cx.wait(is_message())
    assert_stanza_error(el, 'message', BLOCKED_INBOUND[0],
                        etype=BLOCKED_INBOUND[1], sid='m1')
    cx.message(ca.full, 'hello, resource?', mid='m2')
    el = cx.wait(is_message())
    assert_stanza_error(el, 'message', BLOCKED_INBOUND[0],
                        etype=BLOCKED_INBOUND[1], sid='m2')
    cx.send("<iq type='get' id='q1' to='%s'><query xmlns='jabber:iq:version'"
            "/></iq>" % ca.full)
    el = cx.wait(is_iq(iq_id='q1'))
    assert_stanza_error(el, 'iq', BLOCKED_INBOUND[0],
                        etype=BLOCKED_INBOUND[1])
    # IQ results and errors, and all presence, vanish without an answer
    cx.send("<iq type='result' id='r1' to='%s'/>" % ca.full)
    cx.presence(to=a)
    cx.presence(to=a, ptype='subscribe')
    cx.presence(to=a, ptype='probe')
    cx.absent(lambda e: e.get('type') == 'error', 0.4)
    cx.absent(is_presence(frm=ca.full), 0.1)
    ca.absent(lambda e: (e.get('from') or '').startswith(x), 0.2)
    assert item_state(ca.roster().get(x)) == ('none', None, False)


def test_outbound_to_blocked_contact(server, im):
    """XEP-0191 §3.3: <not-acceptable/> with <blocked/>, not routed."""
    a, x = fresh_users(server, 2)
    ca = im(a)
    cx = im(x)
    block(ca, x)
    ca.message(x, 'can you hear me now?', mid='out1')
    el = ca.wait(is_message())
    assert_stanza_error(el, 'message', 'not-acceptable', etype='cancel',
                        sid='out1')
    assert_error_extra(el, NS_BLOCKING_ERRORS, 'blocked')
    ca.send("<iq type='get' id='out2' to='%s'><query xmlns='jabber:iq:"
            "version'/></iq>" % cx.full)
    el = ca.wait(is_iq(iq_id='out2'))
    assert_stanza_error(el, 'iq', 'not-acceptable', etype='cancel')
    assert_error_extra(el, NS_BLOCKING_ERRORS, 'blocked')
    cx.absent(lambda e: (e.get('from') or '').startswith(a), 0.3)


def test_blocking_hides_presence_both_ways(server, im):
    a, x = fresh_users(server, 2)
    ca = im(a, roster=True)
    cx = im(x, roster=True)
    subscribe_both(ca, cx)
    block(ca, x)
    # §3.3: the contact sees the user go offline, and the user the
    # contact (its presence is dropped from now on)
    cx.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ca.wait(is_presence(frm=cx.full, ptype='unavailable'))
    ca.presence(show='away')
    cx.presence(show='dnd')
    cx.absent(is_presence(frm=ca.full), 0.3)
    ca.absent(is_presence(frm=cx.full), 0.1)
    # unblocking sends the user's current presence (§3.4)
    unblock(ca, x)
    el = cx.wait(is_presence(frm=ca.full, ptype=None))
    assert el.findtext(q(NS_CLIENT, 'show')) == 'away', tostr(el)
    cx.presence(show='chat')
    ca.wait(is_presence(frm=cx.full, ptype=None))


def test_full_jid_item_blocks_that_resource_only(server, im):
    """XEP-0191 §3.2: user@domain/resource matches only that resource."""
    a, x = fresh_users(server, 2)
    ca = im(a)
    bad = im(x, 'bad')
    good = im(x, 'good')
    block(ca, bad.full)
    bad.message(a, 'from the bad one', mid='b1')
    assert_stanza_error(bad.wait(is_message()), 'message', BLOCKED_INBOUND[0],
                        etype=BLOCKED_INBOUND[1], sid='b1')
    good.message(a, 'from the good one')
    el = ca.wait(is_message(body='from the good one'))
    assert el.get('from') == good.full
    ca.absent(is_message(frm=bad.full), 0.2)
