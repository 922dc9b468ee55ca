"""Multi-user chat (XEP-0045) with occupants from another server: rooms
at conference.a.test, users of b.test reaching them over server-to-server
(two daemons and a throwaway dnsmasq, as in test_s2s.py, with an SRV
record for the conference domain too).  Joining (occupants, history,
subject) and its refusals (nick conflict, members-only, bans, passwords,
full, locked, creation), groupchat both ways, presence changes, nick
changes, leaving (itself, or its server's goodbye), kicks and voice,
private messages, IQs to occupants, invitations and declines across
servers, disco of the service and the room, the room's archive, a
slixmpp client of the other server, and the removal of an occupant
whose server answers with an error or cannot be reached any more
(status 333)."""

import time

import pytest

from conftest import free_ports
from im_helpers import NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS, IMClient
from test_mam import mam_query
from test_muc import (NS_MUC_USER, admin_set, codes, create, is_msg,
                      is_pres, item, join_xml, slixmpp_joins_and_talks)
from test_muc_mam import LOGGING, room_archive
from test_s2s import Dns, FedServer, domain_login, make_cert, records
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

SERVICE = 'conference.a.test'
# s2s takes a few seconds to set up the first time (DNS, TLS, dialback)
WAIT = 30

_rooms = iter(range(1, 1 << 30))


def new_room():
    return 'fed%d-%d@%s' % (next(_rooms), int(time.time() * 1000) % 100000,
                            SERVICE)


class FedClient(IMClient):
    """An IMClient on either daemon: its barrier pings its own server
    (IMClient's pings "localhost")."""

    def __init__(self, raw, domain):
        super().__init__(raw, raw.jid)
        self.domain = domain

    def sync(self):
        self.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=self.domain)


@pytest.fixture
def muc_pair(tmp_path):
    """a.test (with the MUC service conference.a.test) and b.test, both
    found through SRV records, the conference domain's pointing at a.test's
    s2s listener."""
    pa, pb = free_ports(2)
    dns = Dns(records({'a.test': pa, 'b.test': pb, SERVICE: pa}))
    servers = []
    try:
        for domain, port in (('a.test', pa), ('b.test', pb)):
            cert = make_cert(tmp_path, domain)
            servers.append(FedServer((str(cert[0]), str(cert[1])), domain,
                                     port, dns.port).start())
        yield servers
    finally:
        for s in servers:
            if getattr(s, 'killed', False):
                s.kill()
            else:
                s.stop()
        dns.stop()


def user(srv, name, resource='r'):
    c = FedClient(domain_login(srv.c2s_port, srv.domain, name, resource),
                  srv.domain)
    c.settle()
    return c


def remote_join(c, room, nick, inner=''):
    """join() with time for the first s2s streams to come up."""
    join_xml(c, room, nick, inner)
    own = c.wait(lambda el: el.tag == q(NS_CLIENT, 'presence') and
                 el.get('from') == room + '/' + nick and 110 in codes(el),
                 timeout=WAIT, what='own presence in %s' % room)
    before = c.discard(lambda el: el.tag == q(NS_CLIENT, 'presence') and
                       el.get('from', '').startswith(room + '/'))
    return before, own


def with_remote_occupant(a, b):
    """alice of a in a new room of a's, with bob of b joined as 'bo'
    (alice has seen him come): (alice, bob, room)."""
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room = new_room()
    create(alice, room, 'al')
    remote_join(bob, room, 'bo')
    alice.wait(is_pres(room + '/bo'), timeout=WAIT)
    return alice, bob, room


def test_remote_join_talk_and_leave(muc_pair):
    a, b = muc_pair
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room = new_room()
    try:
        create(alice, room, 'al')
        alice.message(room, 'before you came', mtype='groupchat')
        alice.wait(is_msg(room + '/al'), timeout=WAIT)
        before, own = remote_join(bob, room, 'bo')
        # the occupants first, then itself; the room's subject after
        assert [p.get('from') for p in before] == [room + '/al'], before
        assert own.get('to') == 'bob@b.test/r', tostr(own)
        assert item(own).get('role') == 'participant', tostr(own)
        bob.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
                 el.find(q(NS_CLIENT, 'subject')) is not None,
                 timeout=WAIT, what='subject')
        # the history came before the subject, with its delay
        old = bob.wait(is_msg(room + '/al'), timeout=WAIT)
        assert old.findtext(q(NS_CLIENT, 'body')) == 'before you came'
        assert old.find(q(NS_DELAY, 'delay')) is not None, tostr(old)
        # the owner (a moderator) sees the remote real JID
        p = alice.wait(is_pres(room + '/bo'), timeout=WAIT)
        assert item(p).get('jid') == 'bob@b.test/r', tostr(p)
        # groupchat both ways, with the room's stanza-id
        bob.message(room, 'hi from b', mtype='groupchat', mid='g1')
        m = alice.wait(is_msg(room + '/bo'), timeout=WAIT)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hi from b'
        echo = bob.wait(is_msg(room + '/bo'), timeout=WAIT)
        assert echo.get('id') == 'g1', tostr(echo)
        alice.message(room, 'hi from a', mtype='groupchat')
        m = bob.wait(is_msg(room + '/al'), timeout=WAIT)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'hi from a'
        assert m.get('to') == 'bob@b.test/r', tostr(m)
        # a new status
        bob.send("<presence to='%s/bo'><show>away</show></presence>" % room)
        p = alice.wait(is_pres(room + '/bo'), timeout=WAIT)
        assert p.findtext(q(NS_CLIENT, 'show')) == 'away', tostr(p)
        # a new nick: 303 then the new presence
        bob.send("<presence to='%s/bobby'/>" % room)
        p = alice.wait(is_pres(room + '/bo', 'unavailable'), timeout=WAIT)
        assert 303 in codes(p) and item(p).get('nick') == 'bobby', tostr(p)
        alice.wait(is_pres(room + '/bobby'), timeout=WAIT)
        own = bob.wait(is_pres(room + '/bobby'), timeout=WAIT)
        assert 110 in codes(own), tostr(own)
        # leaving
        bob.send("<presence to='%s/bobby' type='unavailable'/>" % room)
        p = alice.wait(is_pres(room + '/bobby', 'unavailable'),
                       timeout=WAIT)
        assert item(p).get('role') == 'none', tostr(p)
        bob.wait(is_pres(room + '/bobby', 'unavailable'), timeout=WAIT)
        # out: what it says is refused (§7.4)
        bob.message(room, 'still here?', mtype='groupchat', mid='g2')
        el = bob.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                      e.get('type') == 'error', timeout=WAIT,
                      what='error')
        assert_stanza_error(el, 'message', 'not-acceptable')
        alice.absent(is_msg(room + '/bobby'))
        # and it may come back
        remote_join(bob, room, 'bo')
        alice.wait(is_pres(room + '/bo'), timeout=WAIT)
        # its client goes: its server's goodbye takes it out of the room
        bob.raw.close()
        p = alice.wait(is_pres(room + '/bo', 'unavailable'), timeout=WAIT)
        assert 333 not in codes(p), tostr(p)
        alice.message(room, 'bye', mtype='groupchat')
        alice.wait(is_msg(room + '/al'), timeout=WAIT)
        r = a.ctl('room', 'show', room)
        assert r.returncode == 0 and 'bob@b.test' not in r.stdout, r.stdout
    finally:
        alice.raw.close()
        bob.raw.close()


def test_remote_join_refusals(muc_pair):
    a, b = muc_pair
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room, closed, banned, full = (new_room(), new_room(), new_room(),
                                  new_room())
    try:
        create(alice, room, 'al', {'muc#roomconfig_passwordprotectedroom':
                                   '1', 'muc#roomconfig_roomsecret': 'pw'})
        create(alice, closed, 'al', {'muc#roomconfig_membersonly': '1'})
        create(alice, banned, 'al')
        r = admin_set(alice, banned, "<item affiliation='outcast' "
                      "jid='bob@b.test'/>")
        assert r.get('type') == 'result', tostr(r)
        # remote users do not create rooms (§10.1.1)
        el = remote_error(bob, new_room(), 'bo')
        assert_stanza_error(el, 'presence', 'not-allowed')
        # a nick in use by someone else: 409
        el = remote_error(bob, room, 'al')
        assert_stanza_error(el, 'presence', 'conflict', etype='cancel')
        # a password
        el = remote_error(bob, room, 'bo')
        assert_stanza_error(el, 'presence', 'not-authorized')
        el = remote_error(bob, room, 'bo', "<password>no</password>")
        assert_stanza_error(el, 'presence', 'not-authorized')
        remote_join(bob, room, 'bo', "<password>pw</password>")
        # members only, then a member
        el = remote_error(bob, closed, 'bo')
        assert_stanza_error(el, 'presence', 'registration-required')
        r = admin_set(alice, closed, "<item affiliation='member' "
                      "jid='bob@b.test'/>")
        assert r.get('type') == 'result', tostr(r)
        _, own = remote_join(bob, closed, 'bo')
        assert item(own).get('affiliation') == 'member', tostr(own)
        # banned
        el = remote_error(bob, banned, 'bo')
        assert_stanza_error(el, 'presence', 'forbidden')
        # full (§7.2.9)
        create(alice, full, 'al', {'muc#roomconfig_maxusers': '1'})
        el = remote_error(bob, full, 'bo')
        assert_stanza_error(el, 'presence', 'service-unavailable',
                            etype='wait')
        # locked: created, not yet configured (§10.1.2)
        locked = new_room()
        join_xml(alice, locked, 'al')
        alice.wait(is_pres(locked + '/al'), timeout=WAIT)
        el = remote_error(bob, locked, 'bo')
        assert_stanza_error(el, 'presence', 'item-not-found')
    finally:
        alice.raw.close()
        bob.raw.close()


def remote_error(c, room, nick, inner=''):
    join_xml(c, room, nick, inner)
    return c.wait(lambda e: e.tag == q(NS_CLIENT, 'presence') and
                  e.get('type') == 'error' and
                  e.get('from') == room + '/' + nick, timeout=WAIT,
                  what='presence error from %s/%s' % (room, nick))


def test_kick_and_voice_of_remote_occupant(muc_pair):
    a, b = muc_pair
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room = new_room()
    try:
        create(alice, room, 'al', {'muc#roomconfig_moderatedroom': '1'})
        _, own = remote_join(bob, room, 'bo')
        assert item(own).get('role') == 'visitor', tostr(own)
        alice.wait(is_pres(room + '/bo'), timeout=WAIT)
        # voice
        r = admin_set(alice, room, "<item nick='bo' role='participant'/>")
        assert r.get('type') == 'result', tostr(r)
        p = bob.wait(is_pres(room + '/bo'), timeout=WAIT)
        assert item(p).get('role') == 'participant', tostr(p)
        # kicked: 307 for it and the others
        r = admin_set(alice, room, "<item nick='bo' role='none'>"
                      "<reason>out</reason></item>")
        assert r.get('type') == 'result', tostr(r)
        p = bob.wait(is_pres(room + '/bo', 'unavailable'), timeout=WAIT)
        assert codes(p) >= {307, 110}, tostr(p)
        p = alice.wait(is_pres(room + '/bo', 'unavailable'), timeout=WAIT)
        assert 307 in codes(p), tostr(p)
        bob.message(room, 'back?', mtype='groupchat')
        el = bob.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                      e.get('type') == 'error', timeout=WAIT,
                      what='error')
        assert_stanza_error(el, 'message', 'not-acceptable')
    finally:
        alice.raw.close()
        bob.raw.close()


def test_private_messages_and_invitation(muc_pair):
    a, b = muc_pair
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room = new_room()
    try:
        create(alice, room, 'al')
        # a mediated invitation to a user of the other server (§7.8.2)
        alice.send("<message to='%s'><x xmlns='%s'><invite to='bob@b.test'>"
                   "<reason>come</reason></invite></x></message>"
                   % (room, NS_MUC_USER))
        m = bob.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                     e.get('from') == room, timeout=WAIT,
                     what='invitation')
        inv = m.find('%s/%s' % (q(NS_MUC_USER, 'x'), q(NS_MUC_USER,
                                                       'invite')))
        assert inv is not None, tostr(m)
        assert inv.get('from') == 'alice@a.test/r', tostr(m)
        assert inv.findtext(q(NS_MUC_USER, 'reason')) == 'come'
        # its decline goes back to the inviter (§7.8.3)
        bob.send("<message to='%s'><x xmlns='%s'><decline to='alice@a.test"
                 "/r'><reason>later</reason></decline></x></message>"
                 % (room, NS_MUC_USER))
        m = alice.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                       e.get('from') == room and e.find(
                           './/%s' % q(NS_MUC_USER, 'decline')) is not None,
                       timeout=WAIT, what='decline')
        assert m.find('.//%s' % q(NS_MUC_USER, 'decline')).get('from') == \
            'bob@b.test', tostr(m)
        remote_join(bob, room, 'bo')
        alice.wait(is_pres(room + '/bo'), timeout=WAIT)
        # private messages both ways (§7.5)
        alice.message(room + '/bo', 'psst', mtype='chat', mid='p1')
        m = bob.wait(is_msg(room + '/al', 'chat'), timeout=WAIT)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'psst', tostr(m)
        assert m.get('to') == 'bob@b.test/r', tostr(m)
        bob.message(room + '/al', 'what?', mtype='chat', mid='p2')
        m = alice.wait(is_msg(room + '/bo', 'chat'), timeout=WAIT)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'what?', tostr(m)
        # an IQ to an occupant is relayed, its answer comes back
        alice.send("<iq type='get' id='v1' to='%s/bo'><query xmlns="
                   "'jabber:iq:version'/></iq>" % room)
        req = bob.wait(lambda e: e.tag == q(NS_CLIENT, 'iq') and
                       e.get('type') == 'get', timeout=WAIT, what='iq')
        assert req.get('from') == room + '/al', tostr(req)
        bob.send("<iq type='result' id='%s' to='%s'><query xmlns='jabber:"
                 "iq:version'><name>b</name></query></iq>"
                 % (req.get('id'), req.get('from')))
        r = alice.wait(lambda e: e.tag == q(NS_CLIENT, 'iq') and
                       e.get('id') == 'v1', timeout=WAIT, what='answer')
        assert r.get('type') == 'result', tostr(r)
        assert r.get('from') == room + '/bo', tostr(r)
        assert r.findtext('.//{jabber:iq:version}name') == 'b', tostr(r)
        # to a nick not there
        bob.message(room + '/nobody', 'hm', mtype='chat', mid='p3')
        el = bob.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                      e.get('type') == 'error', timeout=WAIT, what='error')
        assert_stanza_error(el, 'message', 'item-not-found')
        # disco of the service and of the room, from the other server
        r = bob.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                   to=SERVICE, timeout=WAIT)
        assert r.get('type') == 'result', tostr(r)
        feats = {f.get('var') for f in r.iter(q(NS_DISCO_INFO, 'feature'))}
        assert 'http://jabber.org/protocol/muc' in feats, tostr(r)
        r = bob.iq('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                   to=SERVICE, timeout=WAIT)
        assert room in {i.get('jid') for i in r.iter(
            q(NS_DISCO_ITEMS, 'item'))}, tostr(r)
        r = bob.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room,
                   timeout=WAIT)
        assert r.get('type') == 'result', tostr(r)
        assert ('conference', 'text') in {
            (i.get('category'), i.get('type'))
            for i in r.iter(q(NS_DISCO_INFO, 'identity'))}, tostr(r)
    finally:
        alice.raw.close()
        bob.raw.close()


def test_ghost_removed_after_error_reply(muc_pair):
    a, b = muc_pair
    alice, bob, room = with_remote_occupant(a, b)
    try:
        # an error of type wait says nothing about being gone
        bob.send("<message to='%s' type='error'><error type='wait'>"
                 "<resource-constraint xmlns='urn:ietf:params:xml:ns:"
                 "xmpp-stanzas'/></error></message>" % room)
        bob.send("<presence to='%s/bo' type='error'><error type='wait'>"
                 "<resource-constraint xmlns='urn:ietf:params:xml:ns:"
                 "xmpp-stanzas'/></error></presence>" % room)
        alice.absent(is_pres(room + '/bo', 'unavailable'), 0.5)
        # its client answers a room message with a delivery error, as
        # its server does for a session that is gone: status 333
        bob.send("<message to='%s' type='error'><error type='cancel'>"
                 "<service-unavailable xmlns='urn:ietf:params:xml:ns:"
                 "xmpp-stanzas'/></error></message>" % room)
        p = alice.wait(is_pres(room + '/bo', 'unavailable'), timeout=WAIT)
        assert 333 in codes(p), tostr(p)
        assert item(p).get('role') == 'none', tostr(p)
        alice.message(room, 'alone?', mtype='groupchat')
        alice.wait(is_msg(room + '/al'), timeout=WAIT)
        # the room does not write to it any more
        bob.absent(is_msg(room + '/al'), 0.5)
    finally:
        alice.raw.close()
        bob.raw.close()


def test_ghost_removed_when_its_server_is_gone(muc_pair):
    a, b = muc_pair
    alice, bob, room = with_remote_occupant(a, b)
    try:
        # b.test dies without a word (its goodbye presence would say
        # unavailable): the stream to it ends, a new one is refused
        b.killed = True
        b.kill()
        # the next copy for it cannot leave: bounced, and it is out (a
        # copy written before the stream's end was seen is lost: the
        # test speaks until one bounces)
        for i in range(WAIT):
            alice.message(room, 'anyone? %d' % i, mtype='groupchat')
            try:
                p = alice.wait(is_pres(room + '/bo', 'unavailable'),
                               timeout=1)
                break
            except AssertionError:
                continue
        else:
            raise AssertionError('bo never removed\n%s' % alice.queued())
        assert 333 in codes(p), tostr(p)
        r = a.ctl('room', 'show', room)
        assert r.returncode == 0, r.stderr
        assert 'bob@b.test' not in r.stdout, r.stdout
        # the room goes on
        alice.message(room, 'alone', mtype='groupchat')
        alice.wait(is_msg(room + '/al'), timeout=WAIT)
    finally:
        alice.raw.close()
        bob.raw.close()


def test_room_archive_for_remote_occupant(muc_pair):
    a, b = muc_pair
    alice, bob = user(a, 'alice'), user(b, 'bob')
    room = new_room()
    try:
        create(alice, room, 'al', LOGGING)
        alice.message(room, 'kept', mtype='groupchat')
        alice.wait(is_msg(room + '/al'), timeout=WAIT)
        # not an occupant: refused
        _, iq = mam_query(bob, to=room, timeout=WAIT)
        assert_stanza_error(iq, 'iq', 'forbidden')
        _, own = remote_join(bob, room, 'bo')
        assert 170 in codes(own), tostr(own)     # §7.2.12: logged
        rows, fin = room_archive(bob, room, timeout=WAIT)
        assert [archived_body(m) for _, m in rows] == ['kept'], rows
        assert fin is not None
    finally:
        alice.raw.close()
        bob.raw.close()


def archived_body(m):
    return m.findtext(q(NS_CLIENT, 'body'))


def test_slixmpp_client_of_other_server_joins(muc_pair):
    """A real client (slixmpp's xep_0045) on b.test in a room of a.test."""
    a, b = muc_pair
    alice = user(a, 'alice')
    room = new_room()
    create(alice, room, 'al')
    try:
        slixmpp_joins_and_talks(
            b, 'bob@b.test', room, 'al',
            lambda: alice.send("<message to='%s' type='groupchat'><body>"
                               "hi slix</body></message>" % room), WAIT)
        m = alice.wait(is_msg(room + '/slix'), timeout=WAIT)
        assert m.findtext(q(NS_CLIENT, 'body')) == 'from slix', tostr(m)
        # its session gone, its server says so to the room
        p = alice.wait(is_pres(room + '/slix', 'unavailable'), timeout=WAIT)
        assert item(p).get('role') == 'none', tostr(p)
    finally:
        alice.raw.close()
