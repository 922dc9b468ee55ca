"""PEP (XEP-0163) across servers: two xmppd daemons (a.test, b.test)
federated over loopback (test_s2s's fixtures), slixmpp clients whose
XEP-0115 caps carry NODE+notify for the nodes their plugins register.
A publication reaches the contacts on the other server who are
subscribed to the publisher's presence and whose caps (resolved by the
publisher's server with a disco#info over server-to-server, XEP-0115
§5.4) want the node; the last item goes to such a contact when it comes
online (XEP-0163 §4.3.1); nobody else gets anything."""

import asyncio
import time

from im_helpers import caps_ver, run_async, slixmpp_started, until
from test_s2s import (domain_login, pair, roster_of,  # noqa: F401
                      wait_presence)
from test_s2s_peers import with_prosody  # noqa: F401
from xmpp_raw import NS_CLIENT, q, tostr

NS_NICK = 'http://jabber.org/protocol/nick'
NS_EVENT = 'http://jabber.org/protocol/pubsub#event'
NS_CAPS = 'http://jabber.org/protocol/caps'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'

WITH_NICK = ['xep_0030', 'xep_0115', 'xep_0060', 'xep_0163', 'xep_0172']
# xep_0084 registers avatar metadata+notify, not the nickname's
WITHOUT_NICK = ['xep_0030', 'xep_0115', 'xep_0060', 'xep_0163', 'xep_0084']


def raw_caps(name, features):
    """A raw client's disco#info answer (identity client/pc called name,
    with features), its XEP-0115 ver, and the presence announcing it."""
    from xml.etree import ElementTree as ET

    query = ("<query xmlns='%s'><identity category='client' type='pc' "
             "name='%s'/>%s</query>" % (NS_DISCO_INFO, name, ''.join(
                 "<feature var='%s'/>" % f for f in features)))
    ver = caps_ver(ET.fromstring(query))
    return query, ver, ("<presence><c xmlns='%s' hash='sha-1' "
                        "node='urn:raw' ver='%s'/></presence>"
                        % (NS_CAPS, ver))


def add_user(srv, name):
    srv.adduser('%s@%s' % (name, srv.domain), name + '-secret')


def subscribe_both(x, xdomain, xname, y, ydomain, yname):
    """Mutual presence subscription of raw clients x (xname@xdomain) and
    y (yname@ydomain) on different servers."""
    xj, yj = '%s@%s' % (xname, xdomain), '%s@%s' % (yname, ydomain)
    roster_of(x)
    roster_of(y)
    for (s, sj), (r, rj) in (((x, xj), (y, yj)), ((y, yj), (x, xj))):
        s.send("<presence to='%s' type='subscribe'/>" % rj)
        wait_presence(r, sj, 'subscribe')
        r.send("<presence to='%s' type='subscribed'/>" % sj)
        wait_presence(s, rj, 'subscribed')
    assert roster_of(x).get(yj) == 'both'
    assert roster_of(y).get(xj) == 'both'


def subscribed_pair(a, aname, b, bname):
    x = domain_login(a.c2s_port, a.domain, aname)
    y = domain_login(b.c2s_port, b.domain, bname)
    try:
        subscribe_both(x, a.domain, aname, y, b.domain, bname)
    finally:
        x.close()
        y.close()


def nick_log(x, got):
    """Record (from, nick, delayed) of every nickname notification."""
    def on_nick(msg):
        got.append((str(msg['from']),
                    msg['pubsub_event']['items']['item']['nick']['nick'],
                    msg.xml.find('{urn:xmpp:delay}delay') is not None))
    x.add_event_handler('user_nick_publish', on_nick)


async def resolved(srv, full, user, timeout=20.0):
    """Until srv knows the verified caps of full (a remote resource
    available to user): asked over s2s, or found in its cache."""
    line = 'caps: %s, available to %s, has ver ' % (full, user)
    await until(lambda: line in srv.stderr_text(),
                'caps of %s known to %s' % (full, srv.domain), timeout)


def test_notifications_both_ways_and_only_to_who_wants_them(pair):
    a, b = pair
    for name in ('dave', 'carol'):
        add_user(b, name)
    subscribed_pair(a, 'alice', b, 'bob')
    subscribed_pair(a, 'alice', b, 'dave')
    bob_got, dave_got, carol_got, alice_got = [], [], [], []
    clients = []

    async def scenario(loop):
        xa, sa = slixmpp_started(a, 'alice@a.test', WITH_NICK, loop)
        xb, sb = slixmpp_started(b, 'bob@b.test', WITH_NICK, loop)
        xd, sd = slixmpp_started(b, 'dave@b.test', WITHOUT_NICK, loop)
        xc, sc = slixmpp_started(b, 'carol@b.test', WITH_NICK, loop)
        clients.extend([xa, xb, xd, xc])
        nick_log(xa, alice_got)
        nick_log(xb, bob_got)
        nick_log(xd, dave_got)
        nick_log(xc, carol_got)
        for f in (sa, sb, sd, sc):
            await f
        # carol is no contact: her presence reaches alice only directed
        xc.send_presence(pto='alice@a.test')
        # a learns bob's and dave's caps from them over s2s (carol's are
        # never asked: she has no subscription), b learns alice's
        await resolved(a, 'bob@b.test/slix', 'alice@a.test')
        await resolved(a, 'dave@b.test/slix', 'alice@a.test')
        await resolved(b, 'alice@a.test/slix', 'bob@b.test')
        assert 'carol@b.test/slix, available to' not in a.stderr_text()

        await xa.plugin['xep_0172'].publish_nick('Alice of A')
        await until(lambda: bob_got, "bob's notification")
        assert bob_got == [('alice@a.test', 'Alice of A', False)], bob_got
        # the copies for dave (no +notify) and carol (no subscription)
        # would have left with bob's, on the same stream
        await asyncio.sleep(1.0)
        assert dave_got == [] and carol_got == [], (dave_got, carol_got)
        # alice's own resource is notified too (XEP-0163 §4.3.2)
        assert ('alice@a.test', 'Alice of A', False) in alice_got

        # the other way: bob publishes on b, alice hears it on a
        await xb.plugin['xep_0172'].publish_nick('Bob of B')
        await until(lambda: ('bob@b.test', 'Bob of B', False) in
                    alice_got, "alice's notification from bob")
        await asyncio.sleep(0.5)
        assert [g for g in alice_got if g[0] == 'bob@b.test'] == [
            ('bob@b.test', 'Bob of B', False)], alice_got
        assert [g for g in dave_got + carol_got] == []
        for x in clients:
            x.disconnect()
        await asyncio.sleep(0.1)

    run_async(scenario, clients, timeout=90)


def test_last_item_when_the_contact_comes_online(pair):
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    bob_got, alice_got = [], []
    clients = []

    async def scenario(loop):
        xa, sa = slixmpp_started(a, 'alice@a.test', WITH_NICK, loop)
        clients.append(xa)
        nick_log(xa, alice_got)
        await sa
        await xa.plugin['xep_0172'].publish_nick('Published before')
        await until(lambda: alice_got, "alice's own notification")
        # bob comes online afterwards: his caps are resolved by a, which
        # then sends him the last item, with its date (XEP-0060 §6.1.7)
        xb, sb = slixmpp_started(b, 'bob@b.test', WITH_NICK, loop)
        clients.append(xb)
        nick_log(xb, bob_got)
        await sb
        await until(lambda: bob_got, 'the last item for bob')
        assert bob_got == [('alice@a.test', 'Published before', True)], \
            bob_got
        # a second available presence of bob (a status) sends nothing
        xb.send_presence(pstatus='here')
        await asyncio.sleep(1.0)
        assert len(bob_got) == 1, bob_got
        # bob goes and comes back: the last item again
        xb.send_presence(ptype='unavailable')
        await asyncio.sleep(0.5)
        xb.send_presence()
        await until(lambda: len(bob_got) == 2, 'the last item again')
        assert bob_got[1] == ('alice@a.test', 'Published before', True)
        for x in clients:
            x.disconnect()
        await asyncio.sleep(0.1)

    run_async(scenario, clients, timeout=90)


def query_from_a(c, true_query):
    """The next disco#info query a.test sends c; those of c's own server
    (which resolves its local sessions' caps too) answered truly."""
    while True:
        iq = c.expect_stanza('iq', timeout=20)
        assert iq.get('type') == 'get', tostr(iq)
        assert iq.find(q(NS_DISCO_INFO, 'query')) is not None, tostr(iq)
        if iq.get('from') == 'a.test':
            return iq
        assert iq.get('from') == 'b.test', tostr(iq)
        c.send("<iq type='result' to='b.test' id='%s'>%s</iq>"
               % (iq.get('id'), true_query))


def test_forged_caps_are_not_trusted(pair):
    """A remote resource whose disco#info does not hash to the ver it
    presents gets no notification, and the ver is not cached: a resource
    presenting it later is asked again (XEP-0115 §5.4)."""
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    alice = domain_login(a.c2s_port, a.domain, 'alice')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, good_ver, presence = raw_caps('raw', features)
    liar = domain_login(b.c2s_port, b.domain, 'bob', resource='liar')
    try:
        # the liar presents good_ver, then answers a's query with one
        # feature more (nick+notify kept), which hashes to another ver
        liar.send(presence)
        iq = query_from_a(liar, query)
        qel = iq.find(q(NS_DISCO_INFO, 'query'))
        assert qel.get('node') == 'urn:raw#' + good_ver, tostr(iq)
        forged = query.replace('</query>',
                               "<feature var='urn:forged'/></query>")
        liar.send("<iq type='result' to='a.test' id='%s'>%s</iq>"
                  % (iq.get('id'), forged))
        # not trusted, not cached: asked again (of the liar, the only
        # resource presenting the ver)
        iq = query_from_a(liar, query)
        assert 'does not hash to ver %s' % good_ver in a.stderr_text()
        # meanwhile alice publishes: nothing for the liar
        alice.send("<iq type='set' id='p1'><pubsub xmlns='http://jabber."
                   "org/protocol/pubsub'><publish node='%s'><item id='n'>"
                   "<nick xmlns='%s'>A</nick></item></publish></pubsub>"
                   "</iq>" % (NS_NICK, NS_NICK))
        r = alice.expect_stanza('iq', timeout=20)
        assert r.get('type') == 'result', tostr(r)
        end = time.time() + 1.0
        while time.time() < end:
            try:
                el = liar.next_element(timeout=0.2)
            except AssertionError:
                continue
            assert el.tag != q(NS_CLIENT, 'message'), tostr(el)
        # a true answer: verified, and the last item follows (caps
        # first known, XEP-0163 §4.3.1)
        liar.send("<iq type='result' to='a.test' id='%s'>%s</iq>"
                  % (iq.get('id'), query))
        m = liar.expect_stanza('message', timeout=20)
        assert m.get('from') == 'alice@a.test', tostr(m)
        assert m.get('to') == 'bob@b.test/liar', tostr(m)
        items = m.find('{%s}event/{%s}items' % (NS_EVENT, NS_EVENT))
        assert items is not None and items.get('node') == NS_NICK, \
            tostr(m)
        assert items.find('{%s}item' % NS_EVENT).get('id') == 'n', tostr(m)
    finally:
        liar.close()
        alice.close()


def test_headline_to_bare_jid_reaches_every_resource(pair):
    """RFC 6121 §8.5.2.1.1: a headline from another server to a local
    bare JID goes to every available resource (what a server that
    addresses PEP notifications to bare JIDs relies on)."""
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    one = domain_login(a.c2s_port, a.domain, 'alice', resource='one')
    two = domain_login(a.c2s_port, a.domain, 'alice', resource='two')
    bob = domain_login(b.c2s_port, b.domain, 'bob')
    try:
        bob.send("<message to='alice@a.test' type='headline' id='h1'>"
                 "<event xmlns='%s'><items node='%s'><item id='x'>"
                 "<nick xmlns='%s'>B</nick></item></items></event>"
                 "</message>" % (NS_EVENT, NS_NICK, NS_NICK))
        for c in (one, two):
            m = c.expect_stanza('message', timeout=20)
            assert m.get('from') == 'bob@b.test/r', tostr(m)
            assert m.get('type') == 'headline', tostr(m)
            nick = m.find('{%s}event/{%s}items/{%s}item/{%s}nick' % (
                NS_EVENT, NS_EVENT, NS_EVENT, NS_NICK))
            assert nick is not None and nick.text == 'B', tostr(m)
    finally:
        for c in (one, two, bob):
            c.close()


def answer_query(c, iq, true_query):
    c.send("<iq type='result' to='%s' id='%s'>%s</iq>"
           % (iq.get('from'), iq.get('id'), true_query))


def messages_within(c, true_query, duration, first=False):
    """The messages c receives within duration (the first only, as soon
    as it comes, if first), disco#info queries answered truly whoever
    asks, presence skipped."""
    got = []
    end = time.time() + duration
    while time.time() < end and not (first and got):
        try:
            el = c.next_element(timeout=max(end - time.time(), 0.05))
        except AssertionError:
            break
        if el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'get' and \
                el.find(q(NS_DISCO_INFO, 'query')) is not None:
            answer_query(c, el, true_query)
        elif el.tag == q(NS_CLIENT, 'message'):
            got.append(el)
    return got


def nick_of(m):
    n = m.find('{%s}event/{%s}items/{%s}item/{%s}nick' % (
        NS_EVENT, NS_EVENT, NS_EVENT, NS_NICK))
    return None if n is None else n.text


def publish_nick(c, nick, iq_id):
    c.send("<iq type='set' id='%s'><pubsub xmlns='http://jabber.org/"
           "protocol/pubsub'><publish node='%s'><item><nick xmlns='%s'>"
           "%s</nick></item></publish></pubsub></iq>"
           % (iq_id, NS_NICK, NS_NICK, nick))
    while True:
        r = c.expect_stanza('iq', timeout=20)
        if r.get('id') == iq_id:
            assert r.get('type') == 'result', tostr(r)
            return


def wait_log(srv, text, timeout=20):
    end = time.time() + timeout
    while text not in srv.stderr_text():
        assert time.time() < end, 'no %r in the log of %s' % (
            text, srv.domain)
        time.sleep(0.05)


def test_error_stops_notifications_and_blocking_holds(pair):
    """An error from a remote resource to the publisher's bare JID stops
    its notifications until its next available presence, which brings
    the last item; a remote contact the publisher blocks gets nothing
    (XEP-0191 §3.3)."""
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    alice = domain_login(a.c2s_port, a.domain, 'alice')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, ver, presence = raw_caps('raw2', features)
    bob = domain_login(b.c2s_port, b.domain, 'bob', resource='raw')
    try:
        bob.send(presence)
        known = 'caps: bob@b.test/raw, available to alice@a.test, has ver'
        end = time.time() + 20
        while known not in a.stderr_text():
            assert time.time() < end, a.stderr_tail()
            messages_within(bob, query, 0.1)
        publish_nick(alice, 'one', 'p1')
        got = messages_within(bob, query, 20, first=True)
        assert [nick_of(m) for m in got] == ['one'], [tostr(m) for m in got]
        m = got[0]
        assert m.get('to') == 'bob@b.test/raw' and \
            m.get('from') == 'alice@a.test', tostr(m)
        # bob's client refuses it: the error reaches alice's bare JID
        bob.send("<message type='error' to='alice@a.test' id='%s'><error "
                 "type='cancel'><service-unavailable xmlns='urn:ietf:"
                 "params:xml:ns:xmpp-stanzas'/></error></message>"
                 % m.get('id'))
        wait_log(a, 'caps: bob@b.test/raw no longer available to '
                 'alice@a.test')
        publish_nick(alice, 'two', 'p2')
        assert messages_within(bob, query, 1.5) == []
        # available again: the last item, with its date
        bob.send(presence)
        got = messages_within(bob, query, 20, first=True)
        assert [nick_of(m) for m in got] == ['two'], [tostr(m) for m in got]
        assert got[0].find('{urn:xmpp:delay}delay') is not None, \
            tostr(got[0])
        # alice blocks bob: neither notifications nor last items
        alice.send("<iq type='set' id='b1'><block xmlns='urn:xmpp:"
                   "blocking'><item jid='bob@b.test'/></block></iq>")
        while True:
            r = alice.expect_stanza('iq', timeout=20)
            if r.get('id') == 'b1':
                assert r.get('type') == 'result', tostr(r)
                break
        publish_nick(alice, 'three', 'p3')
        bob.send(presence)
        assert messages_within(bob, query, 1.5) == []
        # the control: unblocked, the next publication reaches bob
        alice.send("<iq type='set' id='b2'><unblock xmlns='urn:xmpp:"
                   "blocking'><item jid='bob@b.test'/></unblock></iq>")
        publish_nick(alice, 'four', 'p4')
        got = messages_within(bob, query, 20, first=True)
        assert [nick_of(m) for m in got] == ['four'], \
            [tostr(m) for m in got]
    finally:
        bob.close()
        alice.close()


def test_unreachable_contact_is_dropped(pair):
    """A notification the route to the contact's server refuses (here
    s2s-deny after a reload: remote-server-not-found) comes back as an
    error, and the contact's resource is forgotten."""
    import signal
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    alice = domain_login(a.c2s_port, a.domain, 'alice')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, ver, presence = raw_caps('raw3', features)
    bob = domain_login(b.c2s_port, b.domain, 'bob', resource='far')
    try:
        bob.send(presence)
        known = 'caps: bob@b.test/far, available to alice@a.test, has ver'
        end = time.time() + 20
        while known not in a.stderr_text():
            assert time.time() < end, a.stderr_tail()
            messages_within(bob, query, 0.1)
        gone = 'caps: bob@b.test/far no longer available to alice@a.test'
        assert gone not in a.stderr_text()
        a.fed_extra += '\ns2s-deny "b.test"'
        a.conf.write_text(a.config_text())
        a.proc.send_signal(signal.SIGHUP)
        wait_log(a, 'configuration and certificates reloaded')
        publish_nick(alice, 'unreachable', 'p1')
        wait_log(a, gone)
        assert messages_within(bob, query, 1.0) == []
    finally:
        bob.close()
        alice.close()


def test_large_last_item_read_from_storage(pair):
    """A newest item too large for the owner's cache (over 2 KiB: an
    OMEMO bundle, say) still goes to a remote contact coming online,
    read from storage with its access check."""
    a, b = pair
    subscribed_pair(a, 'alice', b, 'bob')
    alice = domain_login(a.c2s_port, a.domain, 'alice')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, ver, presence = raw_caps('raw4', features)
    big = 'N' * 3000
    publish_nick(alice, big, 'p1')
    bob = domain_login(b.c2s_port, b.domain, 'bob', resource='big')
    try:
        bob.send(presence)
        got = messages_within(bob, query, 20, first=True)
        assert [nick_of(m) for m in got] == [big], \
            [tostr(m)[:300] for m in got]
        assert got[0].get('from') == 'alice@a.test', tostr(got[0])[:300]
        assert got[0].find('{urn:xmpp:delay}delay') is not None
        assert messages_within(bob, query, 1.0) == []
    finally:
        bob.close()
        alice.close()


def test_last_item_when_subscription_approved(pair):
    """A remote contact whose presence the owner receives but who does
    not receive the owner's gets nothing; once the owner approves its
    subscription, the last item follows (XEP-0060 on_sub)."""
    a, b = pair
    alice = domain_login(a.c2s_port, a.domain, 'alice')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, ver, presence = raw_caps('raw5', features)
    bob = domain_login(b.c2s_port, b.domain, 'bob', resource='sub')
    try:
        roster_of(alice)
        roster_of(bob)
        # alice subscribes to bob only: she sees his presence
        alice.send("<presence to='bob@b.test' type='subscribe'/>")
        wait_presence(bob, 'alice@a.test', 'subscribe')
        bob.send("<presence to='alice@a.test' type='subscribed'/>")
        wait_presence(alice, 'bob@b.test', 'subscribed')
        publish_nick(alice, 'approved later', 'p1')
        bob.send(presence)
        known = 'caps: bob@b.test/sub, available to alice@a.test, has ver'
        end = time.time() + 20
        got = []
        while known not in a.stderr_text():
            assert time.time() < end, a.stderr_tail()
            got += messages_within(bob, query, 0.1)
        got += messages_within(bob, query, 1.0)
        assert got == [], [tostr(m) for m in got]
        # bob asks, alice approves: now he receives her presence
        bob.send("<presence to='alice@a.test' type='subscribe'/>")
        wait_presence(alice, 'bob@b.test', 'subscribe')
        alice.send("<presence to='bob@b.test' type='subscribed'/>")
        got = messages_within(bob, query, 20, first=True)
        assert [nick_of(m) for m in got] == ['approved later'], \
            [tostr(m) for m in got]
    finally:
        bob.close()
        alice.close()


def test_prosody_contact_gets_notifications(with_prosody):
    """Interoperation: a contact on a Prosody server (p.test), whose
    caps xmppd asks of it through Prosody, gets the publication of an
    xmppd user (a.test) and then its retraction."""
    srv, prosody = with_prosody
    alice = srv.user('alice')
    bob = prosody.user('bob', resource='raw')
    features = [NS_DISCO_INFO, NS_CAPS, NS_NICK, NS_NICK + '+notify']
    query, ver, presence = raw_caps('raw6', features)
    try:
        roster_of(alice)
        roster_of(bob)
        for (s, sj), (r, rj) in (((alice, 'alice@a.test'),
                                  (bob, 'bob@p.test')),
                                 ((bob, 'bob@p.test'),
                                  (alice, 'alice@a.test'))):
            s.send("<presence to='%s' type='subscribe'/>" % rj)
            wait_presence(r, sj, 'subscribe', timeout=30)
            r.send("<presence to='%s' type='subscribed'/>" % sj)
            wait_presence(s, rj, 'subscribed', timeout=30)
        bob.send(presence)
        known = 'caps: bob@p.test/raw, available to alice@a.test, has ver'
        end = time.time() + 30
        while known not in srv.stderr_text():
            assert time.time() < end, srv.stderr_tail()
            messages_within(bob, query, 0.1)
        publish_nick(alice, 'Alice via Prosody', 'p1')
        got = messages_within(bob, query, 30, first=True)
        assert [nick_of(m) for m in got] == ['Alice via Prosody'], \
            [tostr(m) for m in got]
        assert got[0].get('from') == 'alice@a.test', tostr(got[0])
        assert got[0].get('type') == 'headline', tostr(got[0])
        item_id = got[0].find('{%s}event/{%s}items/{%s}item' % (
            NS_EVENT, NS_EVENT, NS_EVENT)).get('id')
        alice.send("<iq type='set' id='r1'><pubsub xmlns='http://jabber."
                   "org/protocol/pubsub'><retract node='%s' notify='true'>"
                   "<item id='%s'/></retract></pubsub></iq>"
                   % (NS_NICK, item_id))
        got = messages_within(bob, query, 30, first=True)
        assert len(got) == 1, [tostr(m) for m in got]
        retract = got[0].find('{%s}event/{%s}items/{%s}retract' % (
            NS_EVENT, NS_EVENT, NS_EVENT))
        assert retract is not None and retract.get('id') == item_id, \
            tostr(got[0])
    finally:
        alice.close()
        bob.close()
