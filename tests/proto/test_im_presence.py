"""Presence subscriptions and presence (RFC 6121 §3, §4, Appendix A):
requests, approvals, denials, cancellations and their roster pushes;
requests kept for an offline contact; pre-approval; unsolicited
'subscribed' dropped; every transition of Appendix A driven from both
sides; initial presence broadcast and probes; updates; unavailable on
logout, explicit or abrupt; directed presence; the user's own resources;
probes from subscribers and non-subscribers."""

import time

import pytest

from im_helpers import (NS_CLIENT, NS_PREAPPROVAL, fresh_users, is_presence,
                        item_state, login_features, run_async,
                        slixmpp_client, subscribe, subscribe_both, text_of)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import q, tostr


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


@pytest.fixture
def online(im):
    """online(jid, resource=None, **kw): an interested and available
    resource whose own initial presence has come back to it."""
    def make(jid, resource=None, **kw):
        kw.setdefault('roster', True)
        kw.setdefault('echo', True)
        return im(jid, resource, **kw)
    return make


def from_user(client):
    """Any presence whose 'from' is client's bare JID or one of its full
    JIDs."""
    def pred(el):
        frm = el.get('from') or ''
        return (el.tag == q(NS_CLIENT, 'presence') and
                (frm == client.bare or frm.startswith(client.bare + '/')))
    pred.what = 'presence from %s' % client.bare
    return pred


def check_subscription_stanza(el, sender, receiver, ptype):
    """RFC 6121 §3.1.2: stamped with the sender's bare JID; addressed to
    the receiver's bare JID (or the receiving resource)."""
    assert el.get('type') == ptype, tostr(el)
    assert el.get('from') == sender.bare, tostr(el)
    assert el.get('to') in (receiver.bare, receiver.full), tostr(el)


# --- §3.1 requesting and approving -------------------------------------------

def test_preapproval_stream_feature(server):
    [a] = fresh_users(server, 1)
    c, features = login_features(server, a)
    try:
        assert features.find(q(NS_PREAPPROVAL, 'sub')) is not None, (
            'no <sub xmlns=%r/> after authentication: %s'
            % (NS_PREAPPROVAL, tostr(features)))
    finally:
        c.close()


def test_subscribe_and_approve(server, online):
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    # a client-supplied 'from' is overwritten with the bare JID
    ca.send("<presence type='subscribe' to='%s' from='%s'/>" % (b, ca.full))
    item = ca.expect_push(b)
    assert item_state(item) == ('none', 'subscribe', False), tostr(item)
    el = cb.wait(is_presence(frm=a, ptype='subscribe'))
    check_subscription_stanza(el, ca, cb, 'subscribe')
    cb.no_push(a)   # §3.1.3: the contact's roster is unchanged

    cb.presence(to=a, ptype='subscribed')
    item = cb.expect_push(a)
    assert item_state(item) == ('from', None, False), tostr(item)
    el = ca.wait(is_presence(frm=b, ptype='subscribed'))
    check_subscription_stanza(el, cb, ca, 'subscribed')
    item = ca.expect_push(b)
    assert item_state(item) == ('to', None, False), tostr(item)
    # §3.1.5: the contact's current presence follows the approval
    ca.wait(is_presence(frm=cb.full, ptype=None))
    # and the contact does not get the user's presence (only 'to')
    cb.absent(is_presence(frm=ca.full, ptype=None))
    assert item_state(ca.roster()[b]) == ('to', None, False)
    assert item_state(cb.roster()[a]) == ('from', None, False)


def test_subscribe_to_full_jid_is_to_bare_jid(server, online):
    """RFC 6121 §3.1.2: a request to a full JID is treated as to the bare
    JID."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b, 'res')
    ca.presence(to=b + '/res', ptype='subscribe')
    assert ca.expect_push(b).get('jid') == b
    el = cb.wait(is_presence(frm=a, ptype='subscribe'))
    assert el.get('to') in (b, cb.full), tostr(el)
    assert list(ca.roster()) == [b]


def test_request_for_offline_contact_delivered_after_initial_presence(
        server, online, im):
    """RFC 6121 §3.1.3: a request for a contact with no available resource
    is kept and delivered when the contact next sends initial presence
    (not to a connected resource that has not)."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    ca.presence(to=b, ptype='subscribe', status='Let me in')
    ca.expect_push(b)
    cb = im(b, roster=True, presence=False)
    cb.absent(is_presence(frm=a, ptype='subscribe'), 0.4)
    cb.presence()
    el = cb.wait(is_presence(frm=a, ptype='subscribe'))
    check_subscription_stanza(el, ca, cb, 'subscribe')
    assert text_of(el, NS_CLIENT, 'status') == 'Let me in', tostr(el)
    # and it still works as a request
    cb.presence(to=a, ptype='subscribed')
    ca.wait(is_presence(frm=b, ptype='subscribed'))
    assert item_state(ca.expect_push(b)) == ('to', None, False)


def test_deny_request(server, online):
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    ca.presence(to=b, ptype='subscribe')
    ca.expect_push(b)
    cb.wait(is_presence(frm=a, ptype='subscribe'))
    cb.presence(to=a, ptype='unsubscribed')
    el = ca.wait(is_presence(frm=b, ptype='unsubscribed'))
    check_subscription_stanza(el, cb, ca, 'unsubscribed')
    item = ca.expect_push(b)
    assert item_state(item) == ('none', None, False), tostr(item)
    ca.absent(is_presence(frm=cb.full, ptype=None))
    # the request is gone: a later 'subscribed' from b is a pre-approval,
    # not an answer, and does not reach a
    cb.presence(to=a, ptype='subscribed')
    ca.absent(is_presence(frm=b, ptype='subscribed'))
    assert item_state(ca.roster().get(b)) == ('none', None, False)


def test_preapproval(server, online):
    """RFC 6121 §3.4: 'subscribed' before any request is remembered
    (approved='true'), not routed; the later request is approved by the
    server without asking the contact."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    cb.presence(to=a, ptype='subscribed')
    item = cb.expect_push(a)
    assert item_state(item) == ('none', None, True), tostr(item)
    ca.absent(is_presence(frm=b, ptype='subscribed'))
    ca.no_push(b)

    ca.presence(to=b, ptype='subscribe')
    ca.wait(is_presence(frm=b, ptype='subscribed'))
    cb.absent(is_presence(frm=a, ptype='subscribe'))
    assert item_state(cb.roster()[a]) == ('from', None, False)
    ca_item = ca.roster()[b]
    assert item_state(ca_item) == ('to', None, False), tostr(ca_item)
    ca.wait(is_presence(frm=cb.full, ptype=None))


def test_preapproval_cancelled_by_unsubscribed(server, online):
    """RFC 6121 §3.4: 'unsubscribed' withdraws a pre-approval."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    cb.presence(to=a, ptype='subscribed')
    cb.expect_push(a)
    cb.presence(to=a, ptype='unsubscribed')
    item = cb.expect_push(a)
    assert item_state(item) == ('none', None, False), tostr(item)
    ca.presence(to=b, ptype='subscribe')
    cb.wait(is_presence(frm=a, ptype='subscribe'))
    ca.absent(is_presence(frm=b, ptype='subscribed'))


def test_unsolicited_subscribed_not_delivered(server, online):
    """A 'subscribed' that answers no request never reaches the user and
    changes nothing in the user's roster (RFC 6121 §3.1.6, §3.4)."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    cb.presence(to=a, ptype='subscribed')
    ca.absent(from_user(cb))
    ca.no_push()
    assert ca.roster() == {}


# --- §3.2, §3.3 cancelling and unsubscribing ---------------------------------

def test_unsubscribe(server, online):
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    subscribe_both(ca, cb)
    ca.presence(to=b, ptype='unsubscribe')
    assert item_state(ca.expect_push(b)) == ('from', None, False)
    el = cb.wait(is_presence(frm=a, ptype='unsubscribe'))
    check_subscription_stanza(el, ca, cb, 'unsubscribe')
    assert item_state(cb.expect_push(a)) == ('to', None, False)
    # §3.3.3: the contact's server tells a that b is gone for it
    ca.wait(is_presence(frm=cb.full, ptype='unavailable'))
    # b still gets a's presence, a no longer gets b's
    ca.presence(show='away')
    cb.wait(is_presence(frm=ca.full, ptype=None))
    cb.presence(show='dnd')
    ca.absent(is_presence(frm=cb.full, ptype=None))


def test_cancel_subscription(server, online):
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    subscribe_both(ca, cb)
    cb.presence(to=a, ptype='unsubscribed')
    assert item_state(cb.expect_push(a)) == ('to', None, False)
    el = ca.wait(is_presence(frm=b, ptype='unsubscribed'))
    check_subscription_stanza(el, cb, ca, 'unsubscribed')
    assert item_state(ca.expect_push(b)) == ('from', None, False)
    # §3.2.2: unavailable from b's resources before the cancellation
    ca.wait(is_presence(frm=cb.full, ptype='unavailable'))
    cb.presence(show='dnd')
    ca.absent(is_presence(frm=cb.full, ptype=None))


def test_roster_remove_cancels_both_ways(server, online):
    """RFC 6121 §2.5.2: removing a contact with 'both' sends it
    'unsubscribe' and 'unsubscribed'."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    subscribe_both(ca, cb)
    ca.roster_set(b, subscription='remove')
    assert ca.expect_push(b).get('subscription') == 'remove'
    cb.wait(is_presence(frm=a, ptype='unsubscribe'))
    cb.wait(is_presence(frm=a, ptype='unsubscribed'))
    cb.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ca.wait(is_presence(frm=cb.full, ptype='unavailable'))
    assert b not in ca.roster()
    deadline = time.monotonic() + 2
    while item_state(cb.roster().get(a)) != ('none', None, False):
        assert time.monotonic() < deadline, tostr(cb.roster().get(a))
        time.sleep(0.05)


# --- Appendix A: every transition, both sides --------------------------------

# A pair state: (u2c, c2u), whether the user U is subscribed to the contact
# C's presence, and C to U's: 'N' no, 'P' pending (asked, no answer), 'S'
# subscribed.  From U's side that is one of the nine A.1 states.
STATES = [(u, c) for u in 'NPS' for c in 'NPS']
STATE_NAMES = {
    ('N', 'N'): 'None', ('P', 'N'): 'None+PendingOut',
    ('N', 'P'): 'None+PendingIn', ('P', 'P'): 'None+PendingOut+In',
    ('S', 'N'): 'To', ('S', 'P'): 'To+PendingIn', ('N', 'S'): 'From',
    ('P', 'S'): 'From+PendingOut', ('S', 'S'): 'Both',
}


def view(mine, theirs, approved=False):
    """(subscription, ask, approved) a roster shows for this pair."""
    sub = {(True, True): 'both', (True, False): 'to',
           (False, True): 'from', (False, False): 'none'}[
        (mine == 'S', theirs == 'S')]
    return (sub, 'subscribe' if mine == 'P' else None, approved)


def transition(action, u2c, c2u):
    """U sends action to C (A.2 at U's server, A.3 at C's).  Returns the
    new pair, whether C receives the stanza (None: not specified), and
    whether U now holds a pre-approval for C."""
    preapproved = False
    if action == 'subscribe':
        delivered = {'N': True, 'P': None, 'S': False}[u2c]
        u2c = 'P' if u2c == 'N' else u2c
    elif action == 'unsubscribe':
        delivered = {'N': False, 'P': None, 'S': True}[u2c]
        u2c = 'N'
    elif action == 'subscribed':
        delivered = c2u == 'P'
        preapproved = c2u == 'N'
        c2u = 'S' if c2u == 'P' else c2u
    else:
        delivered = c2u != 'N'
        c2u = 'N'
    return (u2c, c2u), delivered, preapproved


def drive(u, c, u2c, c2u):
    """Bring the pair to (u2c, c2u) through the protocol."""
    if u2c in 'PS':
        u.presence(to=c.bare, ptype='subscribe')
        c.wait(is_presence(frm=u.bare, ptype='subscribe'))
    if u2c == 'S':
        c.presence(to=u.bare, ptype='subscribed')
        u.wait(is_presence(frm=c.bare, ptype='subscribed'))
    if c2u in 'PS':
        c.presence(to=u.bare, ptype='subscribe')
        u.wait(is_presence(frm=c.bare, ptype='subscribe'))
    if c2u == 'S':
        u.presence(to=c.bare, ptype='subscribed')
        c.wait(is_presence(frm=u.bare, ptype='subscribed'))


def wait_views(u, c, want_u, want_c, what):
    deadline = time.monotonic() + 2.0
    while True:
        got_u = item_state(u.roster().get(c.bare))
        got_c = item_state(c.roster().get(u.bare))
        if (got_u, got_c) == (want_u, want_c):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                '%s: U sees %s (want %s), C sees %s (want %s)'
                % (what, got_u, want_u, got_c, want_c))
        time.sleep(0.05)


@pytest.mark.parametrize('action', ['subscribe', 'unsubscribe',
                                    'subscribed', 'unsubscribed'])
@pytest.mark.parametrize('state', STATES,
                         ids=[STATE_NAMES[s] for s in STATES])
def test_appendix_a_transition(server, online, state, action):
    u2c, c2u = state
    uj, cj = fresh_users(server, 2)
    u = online(uj)
    c = online(cj)
    drive(u, c, u2c, c2u)
    wait_views(u, c, view(u2c, c2u), view(c2u, u2c),
               'set-up of %s' % STATE_NAMES[state])
    u.settle()
    c.settle()

    (nu, nc), delivered, preapproved = transition(action, u2c, c2u)
    u.presence(to=c.bare, ptype=action)
    sent = is_presence(frm=u.bare, ptype=action)
    if delivered:
        el = c.wait(sent)
        check_subscription_stanza(el, u, c, action)
    wait_views(u, c, view(nu, nc, preapproved), view(nc, nu),
               '%s in %s' % (action, STATE_NAMES[state]))
    if delivered is False:
        c.absent(sent)
    # what follows for presence (RFC 6121 §3.1.5, §3.2.2, §3.3.3)
    if action == 'subscribed' and delivered:
        c.wait(is_presence(frm=u.full, ptype=None))
    if action == 'unsubscribed' and c2u == 'S':
        c.wait(is_presence(frm=u.full, ptype='unavailable'))
    if action == 'unsubscribe' and u2c == 'S':
        u.wait(is_presence(frm=c.full, ptype='unavailable'))
    if action == 'subscribe' and u2c == 'S':
        # C's server answers 'subscribed' for C; U's server drops it
        # since U has no pending request (§3.1.3, §3.1.6)
        u.absent(is_presence(frm=c.bare, ptype='subscribed'))


# --- §4 presence ---------------------------------------------------------------

def test_initial_presence_broadcast_to_subscribers_only(server, online):
    a, b, d = fresh_users(server, 3)
    ca = online(a, 'first')
    cb = online(b)
    cd = online(d)
    subscribe(cb, ca)                 # b receives a's presence
    ca2 = online(a, 'second', echo=False, presence=False)
    ca2.presence(show='chat', status='hello', priority=7)
    el = cb.wait(is_presence(frm=ca2.full, ptype=None))
    assert text_of(el, NS_CLIENT, 'show') == 'chat', tostr(el)
    assert text_of(el, NS_CLIENT, 'status') == 'hello', tostr(el)
    assert text_of(el, NS_CLIENT, 'priority') == '7', tostr(el)
    assert (el.get('to') or '').split('/')[0] == b, tostr(el)
    cd.absent(from_user(ca))


def test_initial_presence_probes_contacts(server, online):
    """RFC 6121 §4.2.2, §4.3: a new available resource receives the last
    presence of each available resource of the contacts it is subscribed
    to, and of no one else."""
    a, b, d = fresh_users(server, 3)
    ca = online(a)
    cb1 = online(b, 'b1')
    cb2 = online(b, 'b2')
    cd = online(d)
    subscribe(ca, cb1)
    cb1.presence(show='dnd', status='busy', priority=3)
    cb2.presence(show='away', status='lunch', priority=1)
    cd.presence(show='xa')
    ca.settle()
    ca2 = online(a, 'new', echo=False, presence=False, settle=False)
    ca2.presence()
    p1 = ca2.wait(is_presence(frm=cb1.full, ptype=None))
    p2 = ca2.wait(is_presence(frm=cb2.full, ptype=None))
    assert (text_of(p1, NS_CLIENT, 'show'), text_of(p1, NS_CLIENT, 'status'),
            text_of(p1, NS_CLIENT, 'priority')) == ('dnd', 'busy', '3'), \
        tostr(p1)
    assert (text_of(p2, NS_CLIENT, 'show'),
            text_of(p2, NS_CLIENT, 'status')) == ('away', 'lunch'), tostr(p2)
    ca2.absent(from_user(cd))


def test_one_way_subscription(server, online):
    """a has 'to' toward b: a gets b's presence, b does not get a's."""
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b)
    subscribe(ca, cb)
    ca2 = online(a, 'second')
    cb.absent(is_presence(frm=ca2.full))
    cb.presence(show='away')
    for c in (ca, ca2):
        el = c.wait(is_presence(frm=cb.full, ptype=None))
        assert text_of(el, NS_CLIENT, 'show') == 'away'
    ca.presence(show='dnd')
    cb.absent(from_user(ca))


def test_presence_update_broadcast(server, online):
    """RFC 6121 §4.4: to subscribers and to the user's other resources."""
    a, b = fresh_users(server, 2)
    ca = online(a, 'one')
    ca2 = online(a, 'two')
    cb = online(b)
    subscribe_both(ca, cb)
    ca2.settle()
    ca.presence(show='away', status='lunch')
    for c in (cb, ca2, ca):
        el = c.wait(is_presence(frm=ca.full, ptype=None))
        assert text_of(el, NS_CLIENT, 'show') == 'away', tostr(el)
        assert text_of(el, NS_CLIENT, 'status') == 'lunch', tostr(el)


def test_own_resources_see_each_other(server, online):
    [a] = fresh_users(server, 1)
    c1 = online(a, 'one')
    c1.presence(status='first here')
    c2 = online(a, 'two', echo=False, presence=False, settle=False)
    c2.presence(status='second')
    el = c1.wait(is_presence(frm=c2.full, ptype=None))
    assert text_of(el, NS_CLIENT, 'status') == 'second'
    c2.wait(is_presence(frm=c2.full, ptype=None))
    el = c2.wait(is_presence(frm=c1.full, ptype=None))
    assert text_of(el, NS_CLIENT, 'status') == 'first here'
    c2.close_stream()
    c1.wait(is_presence(frm=c2.full, ptype='unavailable'))


@pytest.mark.parametrize('how', ['close-stream', 'unavailable-then-close',
                                 'abrupt-close'])
def test_unavailable_broadcast_on_logout(server, online, how):
    a, b = fresh_users(server, 2)
    ca = online(a, 'leaving')
    ca2 = online(a, 'staying')
    cb = online(b)
    subscribe_both(ca, cb)
    ca2.settle()
    if how == 'close-stream':
        ca.close_stream()
    elif how == 'unavailable-then-close':
        ca.presence(ptype='unavailable', status='gone fishing')
    else:
        ca.raw.close()            # no </stream:stream>, no unavailable
    for c in (cb, ca2):
        el = c.wait(is_presence(frm=ca.full, ptype='unavailable'))
        if how == 'unavailable-then-close':
            assert text_of(el, NS_CLIENT, 'status') == 'gone fishing', \
                tostr(el)
    if how == 'unavailable-then-close':
        ca.close_stream()
        ca.raw.close()
    # exactly one unavailable
    cb.absent(is_presence(frm=ca.full, ptype='unavailable'), 0.3)


def test_directed_presence_gets_unavailable_at_logout(server, online):
    """RFC 6121 §4.6: an entity that got directed presence (and is not a
    subscriber) gets unavailable presence when the user goes offline."""
    a, d, e = fresh_users(server, 3)
    ca = online(a)
    cd = online(d)
    ce = online(e)
    ca.presence(to=d, status='psst')
    el = cd.wait(is_presence(frm=ca.full, ptype=None))
    assert text_of(el, NS_CLIENT, 'status') == 'psst'
    ca.close_stream()
    cd.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ce.absent(from_user(ca), 0.3)


def test_directed_unavailable_not_repeated(server, online):
    a, d = fresh_users(server, 2)
    ca = online(a)
    cd = online(d)
    ca.presence(to=d)
    cd.wait(is_presence(frm=ca.full, ptype=None))
    ca.presence(to=d, ptype='unavailable')
    cd.wait(is_presence(frm=ca.full, ptype='unavailable'))
    ca.close_stream()
    cd.absent(from_user(ca), 0.4)


def test_probe_from_subscriber_answered(server, online):
    a, b = fresh_users(server, 2)
    ca = online(a)
    cb = online(b, 'res')
    subscribe(ca, cb)
    cb.presence(show='xa', status='far away')
    ca.settle()
    ca.presence(to=b, ptype='probe')
    el = ca.wait(is_presence(frm=cb.full, ptype=None))
    assert text_of(el, NS_CLIENT, 'show') == 'xa', tostr(el)
    assert text_of(el, NS_CLIENT, 'status') == 'far away', tostr(el)
    # probes are the server's business, never the contact's
    cb.absent(is_presence(ptype='probe'))


def test_probe_from_non_subscriber_gets_nothing(server, online):
    """RFC 6121 §4.3.2: no presence for someone not subscribed (the
    'unsubscribed' the contact's server may answer is dropped by the
    prober's server, §3.2.3, as there is no subscription to cancel)."""
    b, d = fresh_users(server, 2)
    cb = online(b)
    cd = online(d)
    cd.presence(to=b, ptype='probe')
    cd.absent(from_user(cb))
    cb.absent(is_presence(ptype='probe'))


# --- a real client library ---------------------------------------------------

def test_slixmpp_mutual_subscription_and_presence(server):
    """slixmpp on both sides (auto-authorize and auto-subscribe, its
    defaults): one subscription request ends in 'both' on both rosters,
    and presence with show and status flows."""
    import asyncio
    alice, bob = fresh_users(server, 2)
    xa = slixmpp_client(server, alice)
    xb = slixmpp_client(server, bob)
    seen = {}

    def on_presence(p):
        if p['from'].bare == bob and p['type'] in ('chat', 'available'):
            seen['status'] = (p['show'], p['status'])

    xa.add_event_handler('presence_available', on_presence)
    xa.add_event_handler('changed_status', on_presence)

    def subscription(x, jid):
        return x.client_roster[jid]['subscription'] \
            if jid in x.client_roster else None

    async def scenario(loop):
        started = []
        for x in (xa, xb):
            fut = loop.create_future()
            x.add_event_handler('session_start',
                                lambda _e, f=fut: f.done() or
                                f.set_result(True))
            x.connect(('127.0.0.1', server.c2s_port), force_starttls=True)
            started.append(fut)
        await asyncio.gather(*started)
        for x in (xa, xb):
            await x.get_roster()
            x.send_presence()
        xa.send_presence(pto=bob, ptype='subscribe')
        while (subscription(xa, bob), subscription(xb, alice)) != (
                'both', 'both'):
            await asyncio.sleep(0.05)
        xb.send_presence(pshow='chat', pstatus='ready')
        while seen.get('status') != ('chat', 'ready'):
            await asyncio.sleep(0.05)
        for x in (xa, xb):
            x.disconnect()
        await asyncio.sleep(0.1)

    try:
        run_async(scenario, (xa, xb))
    except asyncio.TimeoutError:
        raise AssertionError(
            'timed out: alice sees %s, bob sees %s, presence %s'
            % (subscription(xa, bob), subscription(xb, alice),
               seen.get('status')))
