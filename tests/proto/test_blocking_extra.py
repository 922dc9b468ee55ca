"""Blocking command (XEP-0191), beyond test_im_blocking.py: request
errors, JID preparation, domain and full-JID items in both directions, the
size limit, persistence across a restart, unblock-all with presence,
offline messages from a blocked sender, presence and subscriptions toward
a blocked JID, account deletion, and what blocking never touches (the
user's own resources and server)."""

import re

import pytest

from im_helpers import (DOMAIN, NS_BLOCKING, NS_BLOCKING_ERRORS,
                        NS_DISCO_INFO, IMFactory, assert_error_extra,
                        fresh_users, is_block_push, is_iq, is_message,
                        is_presence, is_roster_push, subscribe,
                        subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr


@pytest.fixture(autouse=True)
def still_serving(request):
    yield
    if 'server' in request.fixturenames:
        request.getfixturevalue('server').assert_serves()


def blocklist(c):
    el = c.iq_ok('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING)
    bl = el.find(q(NS_BLOCKING, 'blocklist'))
    assert bl is not None, tostr(el)
    return sorted(i.get('jid') for i in bl.findall(q(NS_BLOCKING, 'item')))


def items(jids):
    return ''.join("<item jid='%s'/>" % j for j in jids)


def block(c, *jids, to=None):
    return c.iq('set', "<block xmlns='%s'>%s</block>"
                % (NS_BLOCKING, items(jids)), to=to)


def unblock(c, *jids):
    return c.iq('set', "<unblock xmlns='%s'>%s</unblock>"
                % (NS_BLOCKING, items(jids)))


def block_ok(c, *jids):
    el = block(c, *jids)
    assert el.get('type') == 'result' and len(el) == 0, tostr(el)


def unblock_ok(c, *jids):
    el = unblock(c, *jids)
    assert el.get('type') == 'result' and len(el) == 0, tostr(el)


def expect_refused(c, mid):
    """The message c sent with id mid came back as a blocked inbound
    message does (XEP-0191 §3.3: <service-unavailable/>)."""
    el = c.wait(is_iq(iq_id=mid) if mid.startswith('iq') else
                lambda e: e.tag == q(NS_CLIENT, 'message') and
                e.get('id') == mid)
    assert_stanza_error(el, el.tag.split('}')[1], 'service-unavailable',
                        etype='cancel', sid=mid)
    return el


def expect_blocked(c, mid, name='message'):
    """The stanza c sent to a JID it blocked: <not-acceptable/> with
    <blocked/> (XEP-0191 §3.3)."""
    el = c.wait(lambda e: e.tag == q(NS_CLIENT, name) and
                e.get('id') == mid)
    assert_stanza_error(el, name, 'not-acceptable', etype='cancel', sid=mid)
    assert_error_extra(el, NS_BLOCKING_ERRORS, 'blocked')
    return el


def is_error():
    return lambda e: e.get('type') == 'error'


# --- discovery and requests ---------------------------------------------------

def test_disco_advertises_blocking(server, im):
    """XEP-0191 §3.1: the server's disco#info lists urn:xmpp:blocking."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
    feats = {f.get('var') for f in
             el.find(q(NS_DISCO_INFO, 'query')).findall(
                 q(NS_DISCO_INFO, 'feature'))}
    assert NS_BLOCKING in feats, tostr(el)


def test_malformed_requests_change_nothing(server, im):
    a, other = fresh_users(server, 2)
    c = im(a, presence=False)
    assert blocklist(c) == []
    # an item without 'jid' (the schema requires it)
    c.iq_error('set', "<block xmlns='%s'><item/></block>" % NS_BLOCKING,
               'bad-request', 'modify')
    # a JID that cannot be prepared (RFC 6120 §8.3.3.8), even after good
    # ones: nothing of the request is applied
    c.iq_error('set', "<block xmlns='%s'><item jid='%s'/><item jid='@%s'/>"
               "</block>" % (NS_BLOCKING, other, DOMAIN),
               'jid-malformed', 'modify')
    c.iq_error('set', "<unblock xmlns='%s'><item jid='%s@'/></unblock>"
               % (NS_BLOCKING, 'x'), 'jid-malformed', 'modify')
    # the list is read with get, changed with set
    c.iq_error('set', "<blocklist xmlns='%s'/>" % NS_BLOCKING,
               'bad-request', 'modify')
    c.iq_error('get', "<block xmlns='%s'>%s</block>"
               % (NS_BLOCKING, items([other])), 'bad-request', 'modify')
    # only one's own account has a block list here
    c.iq_error('set', "<block xmlns='%s'>%s</block>"
               % (NS_BLOCKING, items([other])), 'forbidden', 'auth',
               to=other)
    c.iq_error('get', "<blocklist xmlns='%s'/>" % NS_BLOCKING,
               'forbidden', 'auth', to=DOMAIN)
    assert blocklist(c) == []
    c.absent(is_block_push('block'), 0.1)


def test_addressed_to_own_bare_jid(server, im):
    """'to' set to the account's own bare JID is the same as no 'to'
    (RFC 6120 §10.3.3)."""
    a, x = fresh_users(server, 2)
    c = im(a, presence=False)
    el = block(c, x, to=a.upper())
    assert el.get('type') == 'result', tostr(el)
    assert blocklist(c) == [x]


def test_items_are_prepared_and_deduplicated(server, im):
    """Items are stored and pushed prepared (RFC 6122), once each."""
    a, x = fresh_users(server, 2)
    c = im(a, presence=False)
    blocklist(c)
    node, domain = x.split('@')
    block_ok(c, x.upper(), '%s@%s.' % (node, domain.upper()), x)
    push = c.wait(is_block_push('block', [x]))
    assert len(push.find(q(NS_BLOCKING, 'block'))) == 1, tostr(push)
    c.answer(push)
    assert blocklist(c) == [x]
    # unblocking an item that is not there is no error
    unblock_ok(c, 'nobody@' + DOMAIN)
    c.answer(c.wait(is_block_push('unblock', ['nobody@' + DOMAIN])))
    assert blocklist(c) == [x]
    # an <unblock/> with something else than items is not "unblock all"
    c.iq_error('set', "<unblock xmlns='%s'><jid>%s</jid></unblock>"
               % (NS_BLOCKING, x), 'bad-request', 'modify')
    assert blocklist(c) == [x]
    c.absent(is_block_push('unblock'), 0.1)


# --- what items match ---------------------------------------------------------

def test_domain_item_blocks_the_whole_domain(server, im):
    """XEP-0191 §6: a domain item matches every JID at that domain, in
    both directions; the user's own resources and server are never
    blocked (XEP-0191 §5: not "from one of a user's resources to
    another")."""
    a, x = fresh_users(server, 2)
    ca = im(a, 'one')
    ca2 = im(a, 'two')
    cx = im(x)
    block_ok(ca, DOMAIN)
    cx.message(a, 'domain-wide', mid='d1')
    expect_refused(cx, 'd1')
    cx.send("<iq type='get' id='iq-d2' to='%s'><query xmlns='jabber:iq:"
            "version'/></iq>" % ca.full)
    expect_refused(cx, 'iq-d2')
    ca.message(x, 'out', mid='d3')
    expect_blocked(ca, 'd3')
    # own resources and the server itself still answer
    ca2.message(ca.full, 'to myself')
    el = ca.wait(is_message(body='to myself'))
    assert el.get('from') == ca2.full
    ca.iq_ok('get', "<ping xmlns='urn:xmpp:ping'/>", to=DOMAIN)
    # a remote domain is refused before routing is even tried
    block_ok(ca, 'remote.example')
    ca.message('someone@remote.example', 'far away', mid='d4')
    expect_blocked(ca, 'd4')
    unblock_ok(ca, DOMAIN)
    cx.message(a, 'again', mid='d5')
    el = ca.wait(is_message(body='again'))
    assert el.get('from') == cx.full
    cx.absent(is_error(), 0.1)


def test_full_jid_item_outbound(server, im):
    """A full JID item stops what the user sends to that resource only:
    a message to the bare JID still reaches the other resources, not the
    blocked one."""
    a, x = fresh_users(server, 2)
    ca = im(a)
    bad = im(x, 'bad')
    good = im(x, 'good')
    block_ok(ca, bad.full)
    ca.message(bad.full, 'to bad', mid='f1')
    expect_blocked(ca, 'f1')
    ca.message(good.full, 'to good', mid='f2')
    good.wait(is_message(body='to good'))
    ca.message(x, 'to both', mid='f3')
    good.wait(is_message(body='to both'))
    bad.absent(is_message(frm=ca.full), 0.2)
    ca.absent(is_error(), 0.05)


def test_one_error_for_a_message_to_many_resources(server, im):
    """A message to the bare JID of a user with two available resources
    that blocked the sender is answered once."""
    a, x = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cx = im(x)
    block_ok(r1, x)
    cx.message(a, 'anyone?', mid='m1')
    expect_refused(cx, 'm1')
    cx.absent(is_error(), 0.2)
    for r in (r1, r2):
        r.absent(is_message(frm=cx.full), 0.05)


def test_blocking_own_account_changes_nothing(server, im):
    a = fresh_users(server, 1)[0]
    c1 = im(a, 'one')
    c2 = im(a, 'two')
    block_ok(c1, a)
    c2.message(c1.full, 'still me')
    c1.wait(is_message(body='still me'))
    c1.message(a, 'to my bare JID', mid='own')
    c2.wait(is_message(body='to my bare JID'))
    c1.absent(is_error(), 0.1)


def test_bare_jid_iq_is_answered_for_the_account(server, im):
    """IQs to the user's bare JID are answered by the server on the
    account's behalf (RFC 6121 §8.5.1) and are not filtered: the list is
    cached only while the user is online, and an answer that differed
    with that would tell a blocked JID whether the user is online.  The
    blocked JID gets what anyone else gets."""
    a, x, y = fresh_users(server, 3)
    ca = im(a)
    cx = im(x)
    cy = im(y)
    block_ok(ca, x)
    answers = []
    for c in (cx, cy):
        el = c.iq('get', "<vCard xmlns='vcard-temp'/>", to=a)
        err = el.find(q(NS_CLIENT, 'error'))
        answers.append((el.get('type'), None if err is None else
                        sorted(ch.tag for ch in err)))
    assert answers[0] == answers[1], answers


# --- presence ----------------------------------------------------------------

def test_full_jid_item_presence(server, im):
    """Blocking a subscriber's full JID sends unavailable to that
    resource only (§3.3), and unblocking it the current presence (§3.4)."""
    a, x = fresh_users(server, 2)
    ca = im(a, roster=True)
    r1 = im(x, 'r1', roster=True)
    r2 = im(x, 'r2')
    subscribe_both(ca, r1)
    r2.settle()
    block_ok(ca, r1.full)
    r1.wait(is_presence(frm=ca.full, ptype='unavailable'))
    r2.absent(is_presence(frm=ca.full), 0.1)
    ca.presence(show='xa')
    el = r2.wait(is_presence(frm=ca.full, ptype=None))
    assert el.findtext(q(NS_CLIENT, 'show')) == 'xa'
    r1.absent(is_presence(frm=ca.full), 0.1)
    unblock_ok(ca, r1.full)
    el = r1.wait(is_presence(frm=ca.full, ptype=None))
    assert el.findtext(q(NS_CLIENT, 'show')) == 'xa'
    r2.absent(is_presence(frm=ca.full), 0.1)


def test_unblock_all_pushes_and_presence(server, im):
    """§3.5: an empty <unblock/> empties the list, pushes an empty
    <unblock/>, and each subscriber that was blocked gets the current
    presence (§3.4)."""
    a, x, y = fresh_users(server, 3)
    ca = im(a, roster=True)
    cx = im(x, roster=True)
    cy = im(y, roster=True)
    subscribe_both(ca, cx)
    subscribe_both(ca, cy)
    blocklist(ca)
    block_ok(ca, x, y)
    ca.answer(ca.wait(is_block_push('block', [x, y])))
    for c in (cx, cy):
        c.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ca.presence(show='dnd')
    unblock_ok(ca)
    push = ca.wait(is_block_push('unblock', []))
    assert len(push.find(q(NS_BLOCKING, 'unblock'))) == 0, tostr(push)
    ca.answer(push)
    for c in (cx, cy):
        el = c.wait(is_presence(frm=ca.full, ptype=None))
        assert el.findtext(q(NS_CLIENT, 'show')) == 'dnd', tostr(el)
    assert blocklist(ca) == []


class Seen:
    """What a client holds of others' presence: the last presence from
    each full JID, fed by every presence stanza the client receives."""

    def __init__(self, client):
        self.c = client
        self.last = {}

    def update(self):
        self.c.barrier()
        for el in self.c.discard(lambda e: e.tag == q(NS_CLIENT,
                                                       'presence')):
            frm = el.get('from') or ''
            if el.get('type') in (None, 'unavailable'):
                self.last[frm] = el
        return self

    def online(self, bare):
        """{full JID: show} of bare's resources shown as online."""
        return {f: (el.findtext(q(NS_CLIENT, 'show')) or 'available')
                for f, el in self.last.items()
                if f.split('/')[0] == bare and el.get('type') is None}


def test_block_then_contact_leaves_then_unblock(server, im):
    """The stale contact: alice blocks bob, bob logs off, alice unblocks.
    Blocking took bob offline in alice's client (§3.3: his presence is
    not delivered while blocked, his going offline included), so after
    the unblock her client does not show a ghost resource; and alice's
    presence reaches bob's next session only once she unblocks him."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    subscribe_both(ca, cb)
    sa, sb = Seen(ca), Seen(cb)
    cb.presence(show='chat')
    assert sa.update().online(b) == {cb.full: 'chat'}, sa.last
    sb.update()
    block_ok(ca, b)
    assert sa.update().online(b) == {}, sa.last
    assert sb.update().online(a) == {}, sb.last
    cb.close_stream()
    cb.raw.expect_stream_end()
    unblock_ok(ca, b)
    assert sa.update().online(b) == {}, sa.last
    # bob comes back: each sees the other again
    cb2 = im(b, roster=True, presence=False)
    sb2 = Seen(cb2)
    cb2.presence()
    assert set(sa.update().online(b)) == {cb2.full}
    assert set(sb2.update().online(a)) == {ca.full}


def test_unblock_shows_current_presence_both_ways(server, im):
    """§3.4 on both sides: bob changed his status while alice blocked
    him; unblocking brings his current status to alice's clients (as a
    probe's answer would) and hers to him."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    ca2 = im(a, 'second', roster=True)
    cb = im(b, roster=True)
    subscribe_both(ca, cb)
    sa, sa2, sb = Seen(ca), Seen(ca2), Seen(cb)
    ca2.presence(show='xa')
    for s in (sa, sa2, sb):
        s.update()
    block_ok(ca, b)
    for s in (sa, sa2):
        assert s.update().online(b) == {}, s.last
    assert sb.update().online(a) == {}, sb.last
    cb.presence(show='dnd')
    ca.presence(show='away')
    for s in (sa, sa2):
        assert s.update().online(b) == {}, s.last
    assert sb.update().online(a) == {}, sb.last
    unblock_ok(ca, b)
    for s in (sa, sa2):
        assert s.update().online(b) == {cb.full: 'dnd'}, s.last
    assert sb.update().online(a) == {ca.full: 'away', ca2.full: 'xa'}, \
        sb.last


def test_blocking_a_contacts_resource(server, im):
    """A full-JID item: only that resource of the contact goes offline
    for the user, and comes back on unblock."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    r1 = im(b, 'r1', roster=True)
    r2 = im(b, 'r2')
    subscribe_both(ca, r1)
    sa = Seen(ca)
    r1.presence()
    r2.presence()
    assert set(sa.update().online(b)) == {r1.full, r2.full}
    block_ok(ca, r1.full)
    assert set(sa.update().online(b)) == {r2.full}
    unblock_ok(ca, r1.full)
    assert set(sa.update().online(b)) == {r1.full, r2.full}


def test_presence_to_blocked_jid(server, im):
    """Directed presence and subscription requests to a blocked JID are
    dropped without an error.  Unsubscribed still goes through: the user
    can always cancel the blocked JID's subscription (XEP-0191 §4 even
    allows the server to do so itself), and both rosters follow."""
    a, x = fresh_users(server, 2)
    ca = im(a, roster=True)
    cx = im(x, roster=True)
    subscribe(cx, ca)               # x sees a's presence
    block_ok(ca, x)
    cx.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ca.presence(to=cx.full)
    ca.presence(to=x, ptype='subscribe')
    ca.absent(is_error(), 0.2)
    ca.no_push(x)
    cx.absent(is_presence(frm=ANY_OF(ca)), 0.05)
    ca.presence(to=x, ptype='unsubscribed')
    item = ca.expect_push(x)
    assert item.get('subscription') == 'none', tostr(item)
    item = cx.expect_push(a)
    assert item.get('subscription') == 'none', tostr(item)
    cx.wait(is_presence(frm=a, ptype='unsubscribed'))
    # what the user's presence does stays hidden
    ca.presence(show='away')
    cx.absent(is_presence(frm=ANY_OF(ca)), 0.1)


def ANY_OF(c):
    """A value for is_presence's frm that equals the bare or any full JID
    of c's account."""
    class _Any:
        def __eq__(self, other):
            return other is not None and other.split('/')[0] == c.bare

        def __repr__(self):
            return '%s/*' % c.bare
    return _Any()


def test_subscription_request_waits_for_unblock(server, im):
    """A blocked JID's subscription request is not delivered (§3.3) but
    is kept like one that arrives while the user is offline (RFC 6121
    §3.1.3), so the user sees it after unblocking, at the next login."""
    a, x = fresh_users(server, 2)
    ca = im(a, 'first', roster=True)
    cx = im(x, roster=True)
    block_ok(ca, x)
    cx.presence(to=a, ptype='subscribe')
    cx.expect_push(a)
    ca.absent(is_presence(frm=x), 0.2)
    unblock_ok(ca, x)
    ca.close_stream()
    ca.raw.close()
    ca2 = im(a, 'second', settle=False)
    ca2.wait(is_presence(frm=x, ptype='subscribe'))


# --- storage -----------------------------------------------------------------

def test_offline_message_from_blocked_sender_not_stored(server, im):
    """While the user is offline, mod_offline refuses a blocked sender's
    message with <service-unavailable/> (the same answer as online), and
    only the other messages are delivered at the next login."""
    a, x, y = fresh_users(server, 3)
    ca = im(a, presence=False)
    block_ok(ca, x)
    ca.close_stream()
    ca.raw.close()
    cx = im(x)
    cy = im(y)
    cx.message(a, 'from the blocked one', mid='o1')
    expect_refused(cx, 'o1')
    cy.message(a, 'from a friend', mid='o2')
    cy.absent(is_error(), 0.3)
    ca2 = im(a, 'back', settle=False)
    ca2.wait(is_message(body='from a friend'))
    ca2.absent(is_message(body='from the blocked one'), 0.3)


def test_account_deletion_drops_the_list(server, im):
    """The block list goes with the account (ON DELETE CASCADE) and its
    cache with it: an account of the same name starts empty."""
    a, x = fresh_users(server, 2)
    ca = im(a, presence=False)
    block_ok(ca, x)
    r = server.ctl('deluser', a)
    assert r.returncode == 0, r.stderr
    ca.closing = True
    server.adduser(a, 'again')
    ca2 = im(a, password='again')
    assert blocklist(ca2) == []
    cx = im(x)
    cx.message(a, 'hello new account', mid='n1')
    ca2.wait(is_message(body='hello new account'))


def test_limit(server_factory):
    """blocklist-size bounds the list: a block that would pass it gets
    <not-acceptable/> (type modify) and changes nothing; re-blocking what
    is there, and blocking after an unblock, work."""
    srv = server_factory(limits={'blocklist-size': 3})
    f = IMFactory(srv)
    try:
        a, x1, x2, x3, x4 = fresh_users(srv, 5)
        c = f(a, presence=False)
        blocklist(c)
        block_ok(c, x1, x2)
        c.answer(c.wait(is_block_push('block', [x1, x2])))
        c.iq_error('set', "<block xmlns='%s'>%s</block>"
                   % (NS_BLOCKING, items([x3, x4])), 'not-acceptable',
                   'modify')
        assert blocklist(c) == sorted([x1, x2])
        block_ok(c, x3, x1)
        c.answer(c.wait(is_block_push('block', [x3, x1])))
        block_ok(c, x2)                     # already there: no growth
        c.answer(c.wait(is_block_push('block', [x2])))
        c.iq_error('set', "<block xmlns='%s'>%s</block>"
                   % (NS_BLOCKING, items([x4])), 'not-acceptable', 'modify')
        c.absent(is_block_push('block', [x4]), 0.1)
        unblock_ok(c, x1)
        block_ok(c, x4)
        assert blocklist(c) == sorted([x2, x3, x4])
        assert re.search(r'c2s \d+ [0-9.]+: %s/\S+: limits \{ '
                         r'blocklist-size 3 \} reached' % re.escape(a),
                         srv.stderr_text()), srv.stderr_tail()
    finally:
        f.close_all()
    srv.stop()


def test_persists_across_restart(server_factory):
    srv = server_factory()
    f = IMFactory(srv)
    a, x, y = fresh_users(srv, 3)
    try:
        c = f(a, presence=False)
        block_ok(c, x, '%s/res' % y, 'remote.example')
    finally:
        f.close_all()
    srv.stop()
    srv.start(create_users=False)
    f = IMFactory(srv)
    try:
        c = f(a)
        assert blocklist(c) == sorted([x, '%s/res' % y, 'remote.example'])
        cx = f(x)
        cx.message(a, 'after the restart', mid='r1')
        expect_refused(cx, 'r1')
        cy = f(y, 'other')
        cy.message(a, 'not that resource')
        c.wait(is_message(body='not that resource'))
    finally:
        f.close_all()
    srv.stop()


def test_roster_push_is_not_a_blocked_stanza(server, im):
    """Roster pushes carry no 'from' of the contact: removing a blocked
    contact from the roster works and is pushed as usual."""
    a, x = fresh_users(server, 2)
    ca = im(a, roster=True)
    el = ca.roster_set(x, name='X')
    assert el.get('type') == 'result', tostr(el)
    ca.expect_push(x)
    block_ok(ca, x)
    el = ca.roster_set(x, subscription='remove')
    assert el.get('type') == 'result', tostr(el)
    item = ca.wait(is_roster_push(x))
    ca.answer(item)
