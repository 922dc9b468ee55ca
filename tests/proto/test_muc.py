"""Multi-user chat (XEP-0045) at conference.localhost, with raw XML: the
service in the server's disco#items and its own disco, room creation
(201, locked until configured, instant rooms), joining (presences of
those in first, then one's own with 110), nick conflicts and changes,
leaving, sessions that end, multi-session occupants, groupchat
messages fanned out with the room's stanza-id, subject, history limits,
the owner's configuration form and what each field does (members-only,
password, max users, whois, moderated, allowpm), affiliations and roles
(ban, kick, voice), private messages, destruction, the "muc" setting of
the host block, and one slixmpp client through its xep_0045 plugin."""

import sqlite3
import time
from xml.sax.saxutils import escape, quoteattr

import pytest

from im_helpers import (DOMAIN, NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS,
                        NS_XDATA, fresh_users, im)  # noqa: F401
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

SERVICE = 'conference.' + DOMAIN
NS_MUC = 'http://jabber.org/protocol/muc'
NS_MUC_USER = NS_MUC + '#user'
NS_MUC_ADMIN = NS_MUC + '#admin'
NS_MUC_OWNER = NS_MUC + '#owner'
NS_SID = 'urn:xmpp:sid:0'
NS_OID = 'urn:xmpp:occupant-id:0'

_rooms = iter(range(1, 1 << 30))


def new_room():
    return 'room%d-%d@%s' % (next(_rooms), int(time.time() * 1000) % 100000,
                             SERVICE)


# --- matching ----------------------------------------------------------------

def mucx(el):
    return el.find(q(NS_MUC_USER, 'x'))


def codes(el):
    x = mucx(el)
    return set() if x is None else {int(s.get('code'))
                                   for s in x.findall(q(NS_MUC_USER,
                                                        'status'))}


def item(el):
    return mucx(el).find(q(NS_MUC_USER, 'item'))


def is_pres(frm, ptype=None):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'presence') and el.get('from') == frm
                and el.get('type') == ptype)
    pred.what = 'presence from %s type %s' % (frm, ptype)
    return pred


def is_msg(frm, mtype='groupchat'):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'message') and el.get('from') == frm
                and el.get('type') == mtype)
    pred.what = 'message from %s' % frm
    return pred


def is_subject(room):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'message') and
                el.get('from', '').split('/')[0] == room and
                el.find(q(NS_CLIENT, 'subject')) is not None and
                el.find(q(NS_CLIENT, 'body')) is None)
    pred.what = 'subject of %s' % room
    return pred


def body(el):
    b = el.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


def stanza_id(el):
    s = el.find(q(NS_SID, 'stanza-id'))
    return None if s is None else (s.get('by'), s.get('id'))


# --- actions -----------------------------------------------------------------

def join_xml(c, room, nick, inner=''):
    c.send("<presence to=%s><x xmlns='%s'>%s</x></presence>"
           % (quoteattr(room + '/' + nick), NS_MUC, inner))


def join(c, room, nick, inner='', subject=True):
    """Join and return (presences before one's own, one's own)."""
    join_xml(c, room, nick, inner)
    own = c.wait(lambda el: el.tag == q(NS_CLIENT, 'presence') and
                 el.get('from') == room + '/' + nick and 110 in codes(el),
                 what='own presence in %s' % room)
    before = c.discard(lambda el: el.tag == q(NS_CLIENT, 'presence') and
                       el.get('from', '').startswith(room + '/'))
    if subject:
        c.wait(is_subject(room))
    return before, own


def join_error(c, room, nick, condition, inner='', etype=None):
    join_xml(c, room, nick, inner)
    el = c.wait(lambda e: e.tag == q(NS_CLIENT, 'presence') and
                e.get('type') == 'error' and e.get('from') ==
                room + '/' + nick, what='presence error')
    assert_stanza_error(el, 'presence', condition, etype=etype)
    return el


def submit(c, room, fields=None):
    """Submit the owner's form with fields (var -> value)."""
    xml = ''.join("<field var=%s><value>%s</value></field>"
                  % (quoteattr(k), escape(v))
                  for k, v in (fields or {}).items())
    form = ("<x xmlns='%s' type='submit'>%s</x>" % (NS_XDATA, xml))
    return c.iq('set', "<query xmlns='%s'>%s</query>" % (NS_MUC_OWNER, form),
                to=room)


def create(c, room, nick='owner', fields=None):
    """A new room owned by c, configured (instant when fields is None)."""
    _, own = join(c, room, nick)
    assert codes(own) >= {110, 201}, tostr(own)
    r = submit(c, room, fields)
    assert r.get('type') == 'result', tostr(r)
    return own


def say(c, room, text, mid=None):
    c.message(room, text, mtype='groupchat', mid=mid)


def admin_set(c, room, items):
    return c.iq('set', "<query xmlns='%s'>%s</query>" % (NS_MUC_ADMIN, items),
                to=room)


def disco_info(c, jid):
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=jid)
    qq = el.find(q(NS_DISCO_INFO, 'query'))
    feats = {f.get('var') for f in qq.findall(q(NS_DISCO_INFO, 'feature'))}
    ids = [(i.get('category'), i.get('type'))
           for i in qq.findall(q(NS_DISCO_INFO, 'identity'))]
    return ids, feats, qq


def disco_items(c, jid):
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=jid)
    return [i.get('jid') for i in
            el.find(q(NS_DISCO_ITEMS, 'query')).findall(
                q(NS_DISCO_ITEMS, 'item'))]


# --- the service -------------------------------------------------------------

def test_service_in_server_items_and_disco(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    assert SERVICE in disco_items(c, DOMAIN)
    ids, feats, _ = disco_info(c, SERVICE)
    assert ids == [('conference', 'text')]
    assert NS_MUC in feats
    assert disco_items(c, SERVICE) == [] or all(
        j.endswith('@' + SERVICE) for j in disco_items(c, SERVICE))
    # other domains are still unknown
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
              to='elsewhere.example')
    assert_stanza_error(el, 'iq', 'remote-server-not-found')
    # an unknown IQ to the service
    el = c.iq('get', "<query xmlns='jabber:iq:version'/>", to=SERVICE)
    assert_stanza_error(el, 'iq', 'service-unavailable')


def test_muc_off_and_other_domains(server_factory, im):
    srv = server_factory(host_extra='\tmuc off')
    c = im.__class__(srv)(next(iter(srv.users)))
    assert disco_items(c, DOMAIN) == []
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    assert_stanza_error(el, 'iq', 'remote-server-not-found')
    c.raw.close()
    srv2 = server_factory(host_extra='\tmuc "rooms.example.org"\n'
                          '\tmuc "chat.localhost"')
    c = im.__class__(srv2)(next(iter(srv2.users)))
    assert disco_items(c, DOMAIN) == ['rooms.example.org', 'chat.localhost']
    ids, feats, _ = disco_info(c, 'chat.localhost')
    assert ids == [('conference', 'text')] and NS_MUC in feats
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    assert_stanza_error(el, 'iq', 'remote-server-not-found')
    c.raw.close()


def test_muc_setting_errors(server_factory):
    import subprocess
    from conftest import XMPPD_BIN
    srv = server_factory(start=False, host_extra='\tmuc off\n\tmuc on')
    srv.c2s_port, srv.tls_port = 1, 2
    srv.conf.write_text(srv.config_text())
    r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "muc domain after 'muc off'" in r.stderr + r.stdout
    srv.host_extra = '\tmuc "localhost"'
    srv.conf.write_text(srv.config_text())
    r = subprocess.run([XMPPD_BIN, '-n', '-f', str(srv.conf)],
                       capture_output=True, text=True)
    assert r.returncode != 0
    assert "muc domain 'localhost' is a host" in r.stderr + r.stdout
    srv.checked_exit = True


# --- creation and joining ----------------------------------------------------

def test_create_locked_then_instant(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    before, own = join(ca, room, 'alice')
    assert before == []
    assert codes(own) == {110, 201}
    assert item(own).get('affiliation') == 'owner'
    assert item(own).get('role') == 'moderator'
    assert item(own).get('jid') == ca.full
    # §10.1.2: locked until configured
    join_error(cb, room, 'bob', 'item-not-found', etype='cancel')
    assert room not in disco_items(cb, SERVICE)
    el = cb.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    assert_stanza_error(el, 'iq', 'item-not-found')
    # an instant room: the empty form
    r = submit(ca, room)
    assert r.get('type') == 'result', tostr(r)
    before, own = join(cb, room, 'bob')
    assert [p.get('from') for p in before] == [room + '/alice']
    assert item(before[0]).get('affiliation') == 'owner'
    # semi-anonymous by default: no real JID for a participant
    assert item(before[0]).get('jid') is None
    assert codes(own) == {110}
    assert item(own).get('role') == 'participant'
    assert item(own).get('affiliation') == 'none'
    # the owner (a moderator) sees bob's real JID
    p = ca.wait(is_pres(room + '/bob'))
    assert item(p).get('jid') == cb.full
    assert codes(p) == set()
    assert room in disco_items(cb, SERVICE)


def test_join_needs_nick(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    room = new_room()
    c.send("<presence to=%s><x xmlns='%s'/></presence>"
           % (quoteattr(room), NS_MUC))
    el = c.wait(lambda e: e.get('type') == 'error' and
                e.tag == q(NS_CLIENT, 'presence'))
    assert_stanza_error(el, 'presence', 'jid-malformed')


def test_nick_conflict_and_change(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    join_error(cd, room, 'bob', 'conflict', etype='cancel')
    join(cd, room, 'dave')
    cb.settle()
    ca.settle()
    # bob becomes robert: 303 with the new nick, then the new presence
    cb.send("<presence to=%s/>" % quoteattr(room + '/robert'))
    for c in (ca, cb, cd):
        gone = c.wait(is_pres(room + '/bob', 'unavailable'))
        assert 303 in codes(gone)
        assert item(gone).get('nick') == 'robert'
        assert (110 in codes(gone)) == (c is cb)
        back = c.wait(is_pres(room + '/robert'))
        assert (110 in codes(back)) == (c is cb)
    # to a nick in use: 409
    cb.send("<presence to=%s/>" % quoteattr(room + '/dave'))
    el = cb.wait(lambda e: e.get('type') == 'error')
    assert_stanza_error(el, 'presence', 'conflict')
    # messages now come from the new nick
    say(cb, room, 'renamed')
    assert body(ca.wait(is_msg(room + '/robert'))) == 'renamed'


def test_leave_and_session_end(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    join(cd, room, 'dave')
    ca.settle()
    cb.settle()
    # leaving: 110 for oneself, a plain unavailable for the others
    cb.send("<presence to=%s type='unavailable'/>" % quoteattr(room + '/bob'))
    el = cb.wait(is_pres(room + '/bob', 'unavailable'))
    assert codes(el) == {110}
    assert item(el).get('role') == 'none'
    el = ca.wait(is_pres(room + '/bob', 'unavailable'))
    assert codes(el) == set()
    # not an occupant any more
    say(cb, room, 'still here?')
    el = cb.wait(lambda e: e.get('type') == 'error')
    assert_stanza_error(el, 'message', 'not-acceptable')
    # a session that ends leaves
    cd.close_stream()
    ca.wait(is_pres(room + '/dave', 'unavailable'))
    # a temporary room goes with its last occupant
    ca.send("<presence to=%s type='unavailable'/>"
            % quoteattr(room + '/alice'))
    ca.wait(is_pres(room + '/alice', 'unavailable'))
    el = cb.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    assert_stanza_error(el, 'iq', 'item-not-found')
    # and can be created anew by anyone
    own = create(cb, room, 'bob')
    assert item(own).get('affiliation') == 'owner'


def test_unavailable_broadcast_leaves(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    # RFC 6121 §4.6.3: unavailable broadcast goes to directed presence
    cb.presence(ptype='unavailable')
    ca.wait(is_pres(room + '/bob', 'unavailable'))
    say(cb, room, 'x')
    assert_stanza_error(cb.wait(lambda e: e.get('type') == 'error'),
                        'message', 'not-acceptable')


def test_multi_session_shares_nick(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a)
    cb1, cb2 = im(b, resource='one'), im(b, resource='two')
    room = new_room()
    create(ca, room, 'alice')
    join(cb1, room, 'bob')
    ca.wait(is_pres(room + '/bob'))
    before, own = join(cb2, room, 'bob')
    assert [p.get('from') for p in before] == [room + '/alice']
    assert item(own).get('jid') == cb2.full
    # the others see one occupant: no second presence
    ca.absent(is_pres(room + '/bob'))
    say(ca, room, 'both')
    for c in (cb1, cb2):
        assert body(c.wait(is_msg(room + '/alice'))) == 'both'
    # one session leaves: it alone hears it, the occupant stays
    cb1.send("<presence to=%s type='unavailable'/>"
             % quoteattr(room + '/bob'))
    assert 110 in codes(cb1.wait(is_pres(room + '/bob', 'unavailable')))
    ca.absent(is_pres(room + '/bob', 'unavailable'))
    say(cb2, room, 'still')
    assert body(ca.wait(is_msg(room + '/bob'))) == 'still'
    cb1.absent(is_msg(room + '/bob'))


# --- messages ----------------------------------------------------------------

def test_groupchat_fanout_with_stanza_id(server, im):
    a, b, d, e = fresh_users(server, 4)
    ca, cb, cd, ce = im(a), im(b), im(d), im(e)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    join(cd, room, 'dave')
    say(cb, room, 'hello <all> & co', mid='m1')
    got = [c.wait(is_msg(room + '/bob')) for c in (ca, cb, cd)]
    ids = {stanza_id(m) for m in got}
    assert len(ids) == 1
    by, sid = ids.pop()
    assert by == room and sid
    for c, m in zip((ca, cb, cd), got):
        assert m.get('to') == c.full
        assert m.get('id') == 'm1'
        assert body(m) == 'hello <all> & co'
    # a forged stanza-id by the room is dropped
    cb.send("<message to=%s type='groupchat'><body>x</body>"
            "<stanza-id xmlns='%s' by=%s id='forged'/></message>"
            % (quoteattr(room), NS_SID, quoteattr(room)))
    m = ca.wait(is_msg(room + '/bob'))
    assert [s.get('id') for s in m.findall(q(NS_SID, 'stanza-id'))] != [
        'forged']
    assert len(m.findall(q(NS_SID, 'stanza-id'))) == 1
    # a non-occupant may not
    say(ce, room, 'intruder')
    el = ce.wait(lambda x: x.get('type') == 'error')
    assert_stanza_error(el, 'message', 'not-acceptable', etype='modify')
    ca.absent(is_msg(room + '/intruder'))
    # groupchat to an occupant's JID is a bad request (§7.5)
    cb.message(room + '/alice', 'x', mtype='groupchat')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'bad-request')
    # to a room that does not exist
    say(cb, new_room(), 'nobody')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'item-not-found')


def test_subject(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    # a participant may not by default (§8.1)
    cb.send("<message to=%s type='groupchat'><subject>mine</subject>"
            "</message>" % quoteattr(room))
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')
    ca.send("<message to=%s type='groupchat'><subject>Topic &amp; more"
            "</subject></message>" % quoteattr(room))
    for c in (ca, cb):
        m = c.wait(is_msg(room + '/alice'))
        assert m.find(q(NS_CLIENT, 'subject')).text == 'Topic & more'
    # a joiner gets it after the presences
    join_xml(cd, room, 'dave')
    cd.wait(lambda el: 110 in codes(el))
    m = cd.wait(is_subject(room))
    assert m.get('from') == room + '/alice'
    assert m.find(q(NS_CLIENT, 'subject')).text == 'Topic & more'
    assert m.find(q(NS_DELAY, 'delay')) is None
    # changesubject lets participants
    submit(ca, room, {'FORM_TYPE': NS_MUC + '#roomconfig',
                      'muc#roomconfig_changesubject': '1'})
    cb.send("<message to=%s type='groupchat'><subject>ours</subject>"
            "</message>" % quoteattr(room))
    m = ca.wait(lambda el: is_msg(room + '/bob')(el) and
                el.find(q(NS_CLIENT, 'subject')) is not None)
    assert m.find(q(NS_CLIENT, 'subject')).text == 'ours'


def test_history_limits(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    for i in range(5):
        say(ca, room, 'm%d' % i)
        ca.wait(is_msg(room + '/alice'))

    def history(inner):
        join_xml(cb, room, 'bob', inner)
        cb.wait(lambda el: 110 in codes(el))
        subj = cb.wait(is_subject(room))
        msgs = [el for el in cb.discard(
            lambda el: el.tag == q(NS_CLIENT, 'message') and
            body(el) is not None)]
        cb.send("<presence to=%s type='unavailable'/>"
                % quoteattr(room + '/bob'))
        cb.wait(is_pres(room + '/bob', 'unavailable'))
        assert subj is not None
        return msgs

    got = history('')
    assert [body(m) for m in got] == ['m0', 'm1', 'm2', 'm3', 'm4']
    d = got[0].find(q(NS_DELAY, 'delay'))
    assert d.get('from') == room and d.get('stamp').endswith('Z')
    assert got[0].get('from') == room + '/alice'
    assert got[0].get('to') == cb.full
    assert stanza_id(got[0])[0] == room
    assert [body(m) for m in history("<history maxstanzas='2'/>")] == [
        'm3', 'm4']
    assert history("<history maxstanzas='0'/>") == []
    assert history("<history maxchars='0'/>") == []
    # maxchars counts whole stanzas: room for exactly one
    one = len(tostr(got[-1]).encode()) + 100
    assert [body(m) for m in
            history("<history maxchars='%d'/>" % one)] == ['m4']
    assert history("<history since='2999-01-01T00:00:00Z'/>") == []
    assert len(history("<history since='2000-01-01T00:00:00Z'/>")) == 5
    assert len(history("<history seconds='3600'/>")) == 5
    time.sleep(1.1)
    assert history("<history seconds='1'/>") == []
    # historylength bounds what is kept
    submit(ca, room, {'muc#roomconfig_historylength': '2'})
    ca.settle()
    assert [body(m) for m in history('')] == ['m3', 'm4']
    el = submit(ca, room, {'muc#roomconfig_historylength': '201'})
    assert_stanza_error(el, 'iq', 'not-acceptable')


# --- configuration -----------------------------------------------------------

def form_fields(el):
    x = el.find(q(NS_MUC_OWNER, 'query')).find(q(NS_XDATA, 'x'))
    return {f.get('var'): [v.text or '' for v in f.findall(q(NS_XDATA,
                                                               'value'))]
            for f in x.findall(q(NS_XDATA, 'field'))}


def test_config_form_and_room_features(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    el = ca.iq_ok('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)
    f = form_fields(el)
    assert f['FORM_TYPE'] == [NS_MUC + '#roomconfig']
    for var in ('roomname', 'roomdesc', 'publicroom', 'membersonly',
                'moderatedroom', 'passwordprotectedroom', 'roomsecret',
                'maxusers', 'whois', 'changesubject', 'allowpm',
                'allowinvites', 'allowvoicerequests', 'historylength'):
        assert 'muc#roomconfig_' + var in f, var
    assert f['muc#roomconfig_whois'] == ['moderators']
    ids, feats, qq = disco_info(cb, room)
    assert ids == [('conference', 'text')]
    assert {'muc_public', 'muc_temporary', 'muc_open', 'muc_unmoderated',
            'muc_semianonymous', 'muc_unsecured', NS_MUC, NS_SID} <= feats
    # a participant may not configure
    join(cb, room, 'bob')
    cb.iq_error('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, 'forbidden',
                'auth', to=room)
    el = submit(ca, room, {'muc#roomconfig_roomname': 'The Room',
                           'muc#roomconfig_roomdesc': 'About things',
                           'muc#roomconfig_publicroom': '0',
                           'muc#roomconfig_moderatedroom': '1',
                           'muc#roomconfig_whois': 'anyone'})
    assert el.get('type') == 'result'
    # 104 and 172 (now non-anonymous) to the occupants
    for c in (ca, cb):
        m = c.wait(is_msg(room))
        assert codes(m) == {104, 172}
    ids, feats, qq = disco_info(cb, room)
    assert {'muc_hidden', 'muc_moderated', 'muc_nonanonymous'} <= feats
    assert not feats & {'muc_public', 'muc_unmoderated', 'muc_semianonymous'}
    assert qq.find(q(NS_DISCO_INFO, 'identity')).get('name') == 'The Room'
    info = {fl.get('var'): fl.findtext(q(NS_XDATA, 'value'))
            for fl in qq.find(q(NS_XDATA, 'x')).findall(q(NS_XDATA,
                                                          'field'))}
    assert info['FORM_TYPE'] == NS_MUC + '#roominfo'
    assert info['muc#roominfo_description'] == 'About things'
    assert info['muc#roominfo_occupants'] == '2'
    # hidden: not listed
    assert room not in disco_items(cb, SERVICE)
    # back to semi-anonymous: 173
    submit(ca, room, {'muc#roomconfig_whois': 'moderators'})
    assert codes(cb.wait(is_msg(room))) == {104, 173}
    el = submit(ca, room, {'muc#roomconfig_whois': 'everybody'})
    assert_stanza_error(el, 'iq', 'not-acceptable')
    el = submit(ca, room, {'muc#roomconfig_passwordprotectedroom': '1'})
    assert_stanza_error(el, 'iq', 'not-acceptable')


def test_nonanonymous_room(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_whois': 'anyone'})
    before, own = join(cb, room, 'bob')
    # §7.2.3: 100 in one's own presence; everyone sees real JIDs
    assert codes(own) == {100, 110}
    assert item(before[0]).get('jid') == ca.full


def test_membersonly_ban_and_affiliations(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_membersonly': '1'})
    join_error(cb, room, 'bob', 'registration-required', etype='auth')
    r = admin_set(ca, room, "<item affiliation='member' jid=%s/>"
                  % quoteattr(b))
    assert r.get('type') == 'result', tostr(r)
    _, own = join(cb, room, 'bob')
    assert item(own).get('affiliation') == 'member'
    el = ca.iq_ok('get', "<query xmlns='%s'><item affiliation='member'/>"
                  "</query>" % NS_MUC_ADMIN, to=room)
    assert [i.get('jid') for i in el.iter(q(NS_MUC_ADMIN, 'item'))] == [b]
    # a member may not change affiliations, nor list them other than
    # the members (muc#roomconfig_getmemberlist: test_muc_form.py)
    el = admin_set(cb, room, "<item affiliation='member' jid=%s/>"
                   % quoteattr(d))
    assert_stanza_error(el, 'iq', 'not-allowed')
    cb.iq_error('get', "<query xmlns='%s'><item affiliation='outcast'/>"
                "</query>" % NS_MUC_ADMIN, 'forbidden', 'auth', to=room)
    # banning an occupant: 301, and it cannot come back
    r = admin_set(ca, room, "<item affiliation='outcast' jid=%s>"
                  "<reason>spam</reason></item>" % quoteattr(b))
    assert r.get('type') == 'result'
    el = cb.wait(is_pres(room + '/bob', 'unavailable'))
    assert codes(el) == {110, 301}
    assert item(el).find(q(NS_MUC_USER, 'reason')).text == 'spam'
    assert item(el).get('affiliation') == 'outcast'
    el = ca.wait(is_pres(room + '/bob', 'unavailable'))
    assert codes(el) == {301}
    join_error(cb, room, 'bob', 'forbidden', etype='auth')
    # the only owner cannot step down (§10.6)
    el = admin_set(ca, room, "<item affiliation='member' jid=%s/>"
                   % quoteattr(a))
    assert_stanza_error(el, 'iq', 'conflict')


def test_members_only_later_removes_others(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    admin_set(ca, room, "<item affiliation='member' jid=%s/>" % quoteattr(b))
    join(cb, room, 'bob')
    join(cd, room, 'dave')
    ca.settle()
    submit(ca, room, {'muc#roomconfig_membersonly': '1'})
    el = cd.wait(is_pres(room + '/dave', 'unavailable'))
    assert codes(el) == {110, 322}
    assert codes(ca.wait(is_pres(room + '/dave', 'unavailable'))) == {322}
    ca.absent(is_pres(room + '/bob', 'unavailable'))
    say(cb, room, 'still in')
    assert body(ca.wait(is_msg(room + '/bob'))) == 'still in'


def test_password_and_maxusers(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice', {
        'muc#roomconfig_passwordprotectedroom': '1',
        'muc#roomconfig_roomsecret': 's3cret',
        'muc#roomconfig_maxusers': '2'})
    _, feats, _ = disco_info(cb, room)
    assert 'muc_passwordprotected' in feats
    join_error(cb, room, 'bob', 'not-authorized', etype='auth')
    join_error(cb, room, 'bob', 'not-authorized',
               inner='<password>wrong</password>')
    join(cb, room, 'bob', inner='<password>s3cret</password>')
    # full at two
    join_error(cd, room, 'dave', 'service-unavailable', etype='wait',
               inner='<password>s3cret</password>')


def test_moderated_voice_and_kick(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_moderatedroom': '1'})
    _, own = join(cb, room, 'bob')
    assert item(own).get('role') == 'visitor'
    join(cd, room, 'dave')
    say(cb, room, 'may I?')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')
    ca.settle()
    # voice
    r = admin_set(ca, room, "<item nick='bob' role='participant'/>")
    assert r.get('type') == 'result', tostr(r)
    assert item(cd.wait(is_pres(room + '/bob'))).get('role') == 'participant'
    say(cb, room, 'thanks')
    assert body(cd.wait(is_msg(room + '/bob'))) == 'thanks'
    # a participant cannot kick
    el = admin_set(cd, room, "<item nick='bob' role='none'/>")
    assert_stanza_error(el, 'iq', 'not-allowed')
    # kick: 307 with actor and reason
    r = admin_set(ca, room, "<item nick='bob' role='none'><reason>bye"
                  "</reason></item>")
    assert r.get('type') == 'result'
    el = cb.wait(is_pres(room + '/bob', 'unavailable'))
    assert codes(el) == {110, 307}
    assert item(el).find(q(NS_MUC_USER, 'actor')).get('nick') == 'alice'
    assert codes(cd.wait(is_pres(room + '/bob', 'unavailable'))) == {307}
    el = admin_set(ca, room, "<item nick='nobody' role='none'/>")
    assert_stanza_error(el, 'iq', 'item-not-found')
    # role lists for moderators (dave joined the moderated room as a
    # visitor)
    el = ca.iq_ok('get', "<query xmlns='%s'><item role='visitor'/>"
                  "</query>" % NS_MUC_ADMIN, to=room)
    assert [i.get('nick') for i in el.iter(q(NS_MUC_ADMIN, 'item'))] == [
        'dave']


def test_private_messages(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    cb.message(room + '/alice', 'psst', mid='pm1')
    m = ca.wait(is_msg(room + '/bob', 'chat'))
    assert body(m) == 'psst' and m.get('to') == ca.full
    assert mucx(m) is not None
    # only alice
    cb.absent(is_msg(room + '/bob', 'chat'))
    cb.message(room + '/nobody', 'x')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'item-not-found')
    cd.message(room + '/alice', 'x')
    assert_stanza_error(cd.wait(lambda x: x.get('type') == 'error'),
                        'message', 'not-acceptable')
    submit(ca, room, {'muc#roomconfig_allowpm': 'none'})
    cb.message(room + '/alice', 'x')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')


def invite_xml(c, room, to, reason=None):
    r = '<reason>%s</reason>' % escape(reason) if reason else ''
    c.send("<message to=%s id='inv1'><x xmlns='%s'><invite to=%s>%s</invite>"
           "</x></message>" % (quoteattr(room), NS_MUC_USER, quoteattr(to),
                               r))


def is_invite(room):
    def pred(el):
        x = mucx(el)
        return (el.tag == q(NS_CLIENT, 'message') and el.get('from') == room
                and x is not None and
                x.find(q(NS_MUC_USER, 'invite')) is not None)
    pred.what = 'invitation to %s' % room
    return pred


def members(c, room):
    el = c.iq_ok('get', "<query xmlns='%s'><item affiliation='member'/>"
                 "</query>" % NS_MUC_ADMIN, to=room)
    return {i.get('jid') for i in el.iter(q(NS_MUC_ADMIN, 'item'))}


def test_mediated_invitation_and_decline(server, im):
    a, b, d, e = fresh_users(server, 4)
    ca, cb, cd, ce = im(a), im(b), im(d), im(e)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    # §7.8.2: the room invites dave on bob's behalf
    invite_xml(cb, room, d, 'come & see')
    m = cd.wait(is_invite(room))
    assert m.get('to') == d and m.get('id') == 'inv1'
    inv = mucx(m).find(q(NS_MUC_USER, 'invite'))
    assert inv.get('from') == cb.full
    assert inv.find(q(NS_MUC_USER, 'reason')).text == 'come & see'
    assert mucx(m).find(q(NS_MUC_USER, 'password')) is None
    # an open room: no member made
    assert members(ca, room) == set()
    # §7.8.3: dave declines, bob hears it from the room
    cd.send("<message to=%s><x xmlns='%s'><decline to=%s><reason>busy"
            "</reason></decline></x></message>"
            % (quoteattr(room), NS_MUC_USER, quoteattr(b)))
    m = cb.wait(lambda el: is_msg(room, None)(el) and mucx(el) is not None
                and mucx(el).find(q(NS_MUC_USER, 'decline')) is not None)
    dec = mucx(m).find(q(NS_MUC_USER, 'decline'))
    assert m.get('to') == cb.full
    assert dec.get('from') == d
    assert dec.find(q(NS_MUC_USER, 'reason')).text == 'busy'
    # once: the room relays declines of its own invitations only
    cd.send("<message to=%s><x xmlns='%s'><decline to=%s/></x></message>"
            % (quoteattr(room), NS_MUC_USER, quoteattr(b)))
    assert_stanza_error(cd.wait(lambda x: x.get('type') == 'error'),
                        'message', 'item-not-found')
    ce.send("<message to=%s><x xmlns='%s'><decline to=%s/></x></message>"
            % (quoteattr(room), NS_MUC_USER, quoteattr(a)))
    assert_stanza_error(ce.wait(lambda x: x.get('type') == 'error'),
                        'message', 'item-not-found')
    ca.absent(lambda el: mucx(el) is not None and
              mucx(el).find(q(NS_MUC_USER, 'decline')) is not None)
    # only occupants invite
    invite_xml(ce, room, d)
    assert_stanza_error(ce.wait(lambda x: x.get('type') == 'error'),
                        'message', 'not-acceptable')
    invite_xml(cb, room, 'not a jid@@')
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'jid-malformed')
    cd.absent(is_invite(room))


def test_invitation_to_members_only_room(server, im):
    a, b, d, e = fresh_users(server, 4)
    ca, cb, cd, ce = im(a), im(b), im(d), im(e)
    room = new_room()
    create(ca, room, 'alice', {
        'muc#roomconfig_membersonly': '1',
        'muc#roomconfig_passwordprotectedroom': '1',
        'muc#roomconfig_roomsecret': 'pw'})
    el = ca.iq_ok('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)
    assert form_fields(el)['muc#roomconfig_allowinvites'] == ['0']
    admin_set(ca, room, "<item affiliation='member' jid=%s/>" % quoteattr(b))
    join(cb, room, 'bob', inner='<password>pw</password>')
    # allowinvites off: a member may not invite
    invite_xml(cb, room, d)
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')
    cd.absent(is_invite(room))
    # the owner may, and the invitee becomes a member, with the password
    invite_xml(ca, room, d)
    m = cd.wait(is_invite(room))
    assert mucx(m).find(q(NS_MUC_USER, 'password')).text == 'pw'
    assert members(ca, room) == {b, d}
    _, own = join(cd, room, 'dave', inner='<password>pw</password>')
    assert item(own).get('affiliation') == 'member'
    # allowinvites on: members invite, and make members
    submit(ca, room, {'muc#roomconfig_allowinvites': '1'})
    invite_xml(cb, room, e + '/somewhere')
    m = ce.wait(is_invite(room))
    assert m.get('to') == e + '/somewhere' or m.get('to') == ce.full
    assert members(ca, room) == {b, d, e}
    join(ce, room, 'erin', inner='<password>pw</password>')


def test_direct_invitation(server, im):
    """XEP-0249: a plain message between users, which nothing blocks
    (the server has nothing to add, and advertises nothing for it)."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    ca.send("<message to=%s id='di1'><x xmlns='jabber:x:conference' jid=%s "
            "password='pw' reason='join us'/></message>"
            % (quoteattr(b), quoteattr(room)))
    m = cb.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
                el.get('id') == 'di1')
    x = m.find(q('jabber:x:conference', 'x'))
    assert m.get('from') == ca.full
    assert (x.get('jid'), x.get('password'), x.get('reason')) == (
        room, 'pw', 'join us')
    _, feats, _ = disco_info(ca, SERVICE)
    assert 'jabber:x:conference' not in feats


def is_iq_req(frm):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'iq') and el.get('from') == frm and
                el.get('type') in ('get', 'set'))
    pred.what = 'iq request from %s' % frm
    return pred


def test_iq_relay_to_occupants(server, im):
    """§7.5 as Prosody: relayed to the occupant's real JID from the
    sender's room JID, the answer relayed back with the original id."""
    a, b, d = fresh_users(server, 3)
    ca, cd = im(a), im(d)
    cb1, cb2 = im(b, resource='one'), im(b, resource='two')
    room = new_room()
    create(ca, room, 'alice')
    join(cb1, room, 'bob')
    join(cb2, room, 'bob')
    cb2.send("<iq type='get' id='v1' to=%s><query xmlns='jabber:iq:version'/>"
             "</iq>" % quoteattr(room + '/alice'))
    req = ca.wait(is_iq_req(room + '/bob'))
    assert req.get('to') == ca.full
    assert req.get('id') != 'v1' and req.get('id').endswith(':v1')
    assert req.find(q('jabber:iq:version', 'query')) is not None
    ca.send("<iq type='result' id=%s to=%s><query xmlns='jabber:iq:version'>"
            "<name>test</name></query></iq>"
            % (quoteattr(req.get('id')), quoteattr(room + '/bob')))
    res = cb2.wait(lambda el: el.tag == q(NS_CLIENT, 'iq') and
                   el.get('id') == 'v1')
    assert res.get('type') == 'result'
    assert res.get('from') == room + '/alice' and res.get('to') == cb2.full
    assert res.find(q('jabber:iq:version', 'query')).findtext(
        q('jabber:iq:version', 'name')) == 'test'
    # the other session of the same occupant hears nothing of it
    cb1.absent(lambda el: el.get('id') == 'v1')
    # errors come back too
    cb1.send("<iq type='get' id='v2' to=%s><query xmlns='jabber:iq:version'/>"
             "</iq>" % quoteattr(room + '/alice'))
    req = ca.wait(is_iq_req(room + '/bob'))
    ca.send("<iq type='error' id=%s to=%s><error type='cancel'>"
            "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/>"
            "</error></iq>" % (quoteattr(req.get('id')),
                               quoteattr(room + '/bob')))
    el = cb1.wait(lambda el: el.get('id') == 'v2')
    assert_stanza_error(el, 'iq', 'service-unavailable')
    assert el.get('from') == room + '/alice'
    # an answer nobody asked for is dropped
    ca.send("<iq type='result' id='00000000:v9' to=%s/>"
            % quoteattr(room + '/bob'))
    ca.send("<iq type='result' id='v9' to=%s/>" % quoteattr(room + '/bob'))
    cb1.absent(lambda el: el.get('id', '').endswith('v9'))
    cb2.absent(lambda el: el.get('id', '').endswith('v9'))
    # to a nick nobody has; from someone not in the room
    el = cb1.iq('get', "<query xmlns='jabber:iq:version'/>",
                to=room + '/nobody')
    assert_stanza_error(el, 'iq', 'item-not-found')
    el = cd.iq('get', "<query xmlns='jabber:iq:version'/>",
               to=room + '/alice')
    assert_stanza_error(el, 'iq', 'not-acceptable')
    ca.absent(is_iq_req(room + '/dave'))


def test_self_ping(server, im):
    """XEP-0410: the room answers a ping to one's own nick; anyone not
    joined gets not-acceptable; a ping to another occupant is relayed."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    _, feats, _ = disco_info(cb, room)
    assert NS_MUC + '#self-ping-optimization' in feats
    join(cb, room, 'bob')
    el = cb.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=room + '/bob')
    assert el.get('type') == 'result' and el.get('from') == room + '/bob'
    ca.absent(is_iq_req(room + '/bob'))
    cb.send("<presence to=%s type='unavailable'/>" % quoteattr(room + '/bob'))
    cb.wait(is_pres(room + '/bob', 'unavailable'))
    el = cb.iq('get', "<ping xmlns='urn:xmpp:ping'/>", to=room + '/bob')
    assert_stanza_error(el, 'iq', 'not-acceptable')
    el = cb.iq('get', "<ping xmlns='urn:xmpp:ping'/>",
               to=new_room() + '/bob')
    assert_stanza_error(el, 'iq', 'not-acceptable')
    # to someone else: relayed like any IQ
    join(cb, room, 'bob')
    cb.send("<iq type='get' id='p1' to=%s><ping xmlns='urn:xmpp:ping'/></iq>"
            % quoteattr(room + '/alice'))
    req = ca.wait(is_iq_req(room + '/bob'))
    ca.send("<iq type='result' id=%s to=%s/>"
            % (quoteattr(req.get('id')), quoteattr(room + '/bob')))
    el = cb.wait(lambda el: el.get('id') == 'p1')
    assert el.get('type') == 'result' and el.get('from') == room + '/alice'


def occupant_ids(el):
    return [o.get('id') for o in el.findall(q(NS_OID, 'occupant-id'))]


def test_occupant_ids(server, im):
    """XEP-0421: one id per room and real bare JID, on every presence
    and message of the occupant, the same across sessions, nicks and
    rejoins, different in another room, never the client's own."""
    a, b = fresh_users(server, 2)
    ca = im(a)
    cb1, cb2 = im(b, resource='one'), im(b, resource='two')
    room, other = new_room(), new_room()
    _, feats, _ = disco_info(ca, SERVICE)
    own = create(ca, room, 'alice')
    _, feats, _ = disco_info(ca, room)
    assert NS_OID in feats
    [aid] = occupant_ids(own)
    _, own_b = join(cb1, room, 'bob', subject=False)
    [bid] = occupant_ids(own_b)
    assert bid != aid and len(bid) == 24
    assert b not in bid and cb1.full not in bid
    assert occupant_ids(ca.wait(is_pres(room + '/bob'))) == [bid]
    # the same from another session of the same account
    before, own2 = join(cb2, room, 'bob')
    assert occupant_ids(own2) == [bid]
    assert [occupant_ids(p) for p in before] == [[aid]]
    # on groupchat messages, forged ones dropped
    cb1.send("<message to=%s type='groupchat'><body>hi</body>"
             "<occupant-id xmlns='%s' id='forged'/></message>"
             % (quoteattr(room), NS_OID))
    m = ca.wait(is_msg(room + '/bob'))
    assert occupant_ids(m) == [bid]
    # on private messages
    cb1.send("<message to=%s type='chat'><body>pm</body>"
             "<occupant-id xmlns='%s' id='forged'/></message>"
             % (quoteattr(room + '/alice'), NS_OID))
    assert occupant_ids(ca.wait(is_msg(room + '/bob', 'chat'))) == [bid]
    # on presence, a client's own dropped
    cb1.send("<presence to=%s><show>away</show><occupant-id xmlns='%s' "
             "id='forged'/></presence>" % (quoteattr(room + '/bob'), NS_OID))
    assert occupant_ids(ca.wait(is_pres(room + '/bob'))) == [bid]
    # a new nick, and leaving: the same
    cb1.send("<presence to=%s/>" % quoteattr(room + '/robert'))
    assert occupant_ids(ca.wait(is_pres(room + '/bob', 'unavailable'))) == [
        bid]
    assert occupant_ids(ca.wait(is_pres(room + '/robert'))) == [bid]
    # in history
    ca.settle()
    for c in (cb1, cb2):
        c.send("<presence to=%s type='unavailable'/>"
               % quoteattr(room + '/robert'))
    ca.wait(is_pres(room + '/robert', 'unavailable'))
    join_xml(cb1, room, 'bobby')
    cb1.wait(lambda el: 110 in codes(el) and
             occupant_ids(el) == [bid])
    h = cb1.wait(lambda el: is_msg(room + '/bob')(el) and
                 el.find(q(NS_DELAY, 'delay')) is not None)
    assert occupant_ids(h) == [bid]
    # another room: another id
    _, o2 = join(cb1, other, 'bob')
    assert occupant_ids(o2) != [bid] and len(occupant_ids(o2)) == 1


def test_nick_prepared_210(server, im):
    """Status 210: the room changed the nick asked for (Resourceprep
    folds compatibility forms: U+FB01 is "fi")."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join_xml(cb, room, '\ufb01sh')
    own = cb.wait(lambda el: 110 in codes(el), what='own presence')
    assert own.get('from') == room + '/fish'
    assert codes(own) == {110, 210}
    assert codes(ca.wait(is_pres(room + '/fish'))) == set()
    cb.wait(is_subject(room))
    # a plain join: no 210
    _, own = join(ca, new_room(), 'alice')
    assert 210 not in codes(own)
    # a nick change the room prepares
    cb.send("<presence to=%s/>" % quoteattr(room + '/\ufb01n'))
    gone = cb.wait(is_pres(room + '/fish', 'unavailable'))
    assert item(gone).get('nick') == 'fin' and 303 in codes(gone)
    assert codes(cb.wait(is_pres(room + '/fin'))) == {110, 210}
    assert codes(ca.wait(is_pres(room + '/fin'))) == set()


def test_affiliation_change_while_away_101(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    r = admin_set(ca, room, "<item affiliation='member' jid=%s/>"
                  "<item affiliation='member' jid=%s/>"
                  % (quoteattr(b), quoteattr(d)))
    assert r.get('type') == 'result', tostr(r)
    m = cd.wait(lambda el: is_msg(room, None)(el) and 101 in codes(el))
    assert item(m).get('affiliation') == 'member'
    assert item(m).get('jid') == d
    # bob, in the room, hears it as presence, not as a 101 message
    p = cb.wait(is_pres(room + '/bob'))
    assert item(p).get('affiliation') == 'member'
    cb.absent(lambda el: 101 in codes(el))
    # an unchanged affiliation: nothing
    admin_set(ca, room, "<item affiliation='member' jid=%s/>" % quoteattr(d))
    cd.absent(lambda el: 101 in codes(el))


def voice_request_xml(c, room):
    c.send("<message to=%s><x xmlns='%s' type='submit'><field var='FORM_TYPE'>"
           "<value>%s#request</value></field><field var='muc#role' "
           "type='list-single'><value>participant</value></field></x>"
           "</message>" % (quoteattr(room), NS_XDATA, NS_MUC))


def test_voice_requests(server, im):
    """§7.13: a visitor's request goes to the moderators as a form;
    submitting it with muc#request_allow grants voice."""
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_moderatedroom': '1'})
    el = ca.iq_ok('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)
    assert form_fields(el)['muc#roomconfig_allowvoicerequests'] == ['1']
    join(cb, room, 'bob')
    join(cd, room, 'dave')
    ca.settle()
    voice_request_xml(cb, room)
    m = ca.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
                el.get('from') == room and
                el.find(q(NS_XDATA, 'x')) is not None)
    x = m.find(q(NS_XDATA, 'x'))
    assert x.get('type') == 'form'
    f = {fl.get('var'): fl.findtext(q(NS_XDATA, 'value'))
         for fl in x.findall(q(NS_XDATA, 'field'))}
    assert f['FORM_TYPE'] == NS_MUC + '#request'
    assert f['muc#roomnick'] == 'bob' and f['muc#jid'] == cb.full
    assert f['muc#role'] == 'participant'
    assert f['muc#request_allow'] == 'false'
    # not to the other visitor
    cd.absent(lambda el: el.find(q(NS_XDATA, 'x')) is not None)
    # once a minute
    voice_request_xml(cb, room)
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'resource-constraint', etype='wait')

    def answer(c, nick, allow):
        c.send("<message to=%s><x xmlns='%s' type='submit'><field "
               "var='FORM_TYPE'><value>%s#request</value></field><field "
               "var='muc#role'><value>participant</value></field><field "
               "var='muc#roomnick'><value>%s</value></field><field "
               "var='muc#request_allow'><value>%s</value></field></x>"
               "</message>" % (quoteattr(room), NS_XDATA, NS_MUC, nick,
                               allow))
    # a visitor cannot approve
    answer(cd, 'bob', 'true')
    assert_stanza_error(cd.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')
    # denied: nothing happens
    answer(ca, 'bob', 'false')
    cb.absent(is_pres(room + '/bob'))
    answer(ca, 'bob', 'true')
    p = cb.wait(is_pres(room + '/bob'))
    assert item(p).get('role') == 'participant' and 110 in codes(p)
    assert item(cd.wait(is_pres(room + '/bob'))).get('role') == 'participant'
    say(cb, room, 'heard')
    assert body(cd.wait(is_msg(room + '/bob'))) == 'heard'
    # a participant has voice already
    voice_request_xml(cb, room)
    assert_stanza_error(cb.wait(lambda x: x.get('type') == 'error'),
                        'message', 'not-acceptable')
    # switched off
    submit(ca, room, {'muc#roomconfig_allowvoicerequests': '0'})
    voice_request_xml(cd, room)
    assert_stanza_error(cd.wait(lambda x: x.get('type') == 'error'),
                        'message', 'forbidden')


def test_destroy(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    # only the owner
    el = cb.iq('set', "<query xmlns='%s'><destroy/></query>" % NS_MUC_OWNER,
               to=room)
    assert_stanza_error(el, 'iq', 'forbidden')
    el = ca.iq('set', "<query xmlns='%s'><destroy jid='new@%s'><reason>"
               "moved</reason></destroy></query>" % (NS_MUC_OWNER, SERVICE),
               to=room)
    assert el.get('type') == 'result'
    for c, nick in ((ca, 'alice'), (cb, 'bob')):
        el = c.wait(is_pres(room + '/' + nick, 'unavailable'))
        d = mucx(el).find(q(NS_MUC_USER, 'destroy'))
        assert d.get('jid') == 'new@' + SERVICE
        assert d.find(q(NS_MUC_USER, 'reason')).text == 'moved'
        assert item(el).get('role') == 'none'
    el = cb.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    assert_stanza_error(el, 'iq', 'item-not-found')


def test_cancel_initial_configuration(server, im):
    a, = fresh_users(server, 1)
    ca = im(a)
    room = new_room()
    join(ca, room, 'alice')
    r = ca.iq('set', "<query xmlns='%s'><x xmlns='%s' type='cancel'/>"
              "</query>" % (NS_MUC_OWNER, NS_XDATA), to=room)
    assert r.get('type') == 'result'
    ca.wait(is_pres(room + '/alice', 'unavailable'))
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    assert_stanza_error(el, 'iq', 'item-not-found')


# --- a real client ------------------------------------------------------------

def slixmpp_joins_and_talks(server, jid, room, other, say_other,
                            timeout=10):
    """A real client (slixmpp's xep_0045) of jid on server joins room as
    'slix', sees itself and the occupant other in it, says 'from slix'
    and hears 'hi slix' from other (said by say_other())."""
    import asyncio
    from im_helpers import run_async, slixmpp_client

    x = slixmpp_client(server, jid)
    x.register_plugin('xep_0045')
    got = []

    async def scenario(loop):
        ready = asyncio.Event()
        x.add_event_handler('session_start', lambda _: ready.set())
        x.add_event_handler('groupchat_message',
                            lambda m: got.append((m['from'].resource,
                                                  m['body'])))
        x.connect(('127.0.0.1', server.c2s_port))
        await asyncio.wait_for(ready.wait(), 10)
        x.send_presence()
        await x['xep_0045'].join_muc_wait(room, 'slix', maxstanzas=0,
                                          timeout=timeout)
        roster = x['xep_0045'].get_roster(room)
        assert set(roster) == {other, 'slix'}, roster
        x.send_message(mto=room, mbody='from slix', mtype='groupchat')
        say_other()
        for _ in range(int(timeout / 0.02)):
            if ('slix', 'from slix') in got and (other, 'hi slix') in got:
                break
            await asyncio.sleep(0.02)

    run_async(scenario, [x], timeout=timeout + 15)
    assert ('slix', 'from slix') in got and (other, 'hi slix') in got, got


def test_slixmpp_join_and_talk(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a)
    room = new_room()
    create(ca, room, 'alice')
    slixmpp_joins_and_talks(
        server, b, room, 'alice',
        lambda: ca.send("<message to=%s type='groupchat'><body>hi slix"
                        "</body></message>" % quoteattr(room)))
    m = ca.wait(is_msg(room + '/slix'))
    assert body(m) == 'from slix'


# --- persistence and the module's life ---------------------------------------

def test_persistent_room_survives_restart(server_factory, im):
    srv = server_factory()
    a, b, d = fresh_users(srv, 3)
    f = im.__class__(srv)
    ca, cb = f(a), f(b)
    room = new_room()
    create(ca, room, 'alice', {
        'muc#roomconfig_persistentroom': '1',
        'muc#roomconfig_roomname': 'Kept',
        'muc#roomconfig_membersonly': '1',
        'muc#roomconfig_allowpm': 'moderators',
        'muc#roomconfig_allowinvites': '1',
        'muc#roomconfig_allowvoicerequests': '0',
        'muc#roomconfig_historylength': '7'})
    _, feats, _ = disco_info(ca, room)
    assert 'muc_persistent' in feats and 'muc_temporary' not in feats
    r = admin_set(ca, room, "<item affiliation='member' jid=%s/>"
                  "<item affiliation='outcast' jid=%s/>"
                  % (quoteattr(b), quoteattr(d)))
    assert r.get('type') == 'result', tostr(r)
    ca.send("<message to=%s type='groupchat'><subject>kept subject"
            "</subject></message>" % quoteattr(room))
    ca.wait(is_msg(room + '/alice'))
    # empty, it stays
    ca.send("<presence to=%s type='unavailable'/>"
            % quoteattr(room + '/alice'))
    ca.wait(is_pres(room + '/alice', 'unavailable'))
    ids, feats, _ = disco_info(cb, room)
    assert room in disco_items(cb, SERVICE)
    f.close_all()
    srv.stop()
    rows = sqlite3.connect(str(srv.db)).execute(
        "SELECT r.node, a.jid, a.affiliation FROM muc_room r JOIN "
        "muc_affiliation a ON a.room_id = r.id ORDER BY a.affiliation"
    ).fetchall()
    node = room.split('@')[0]
    assert rows == [(node, d, 0), (node, b, 2), (node, a, 4)]
    srv.start(create_users=False)
    f = im.__class__(srv)
    ca, cb, cd = f(a), f(b), f(d)
    ids, feats, qq = disco_info(cb, room)
    assert qq.find(q(NS_DISCO_INFO, 'identity')).get('name') == 'Kept'
    assert {'muc_persistent', 'muc_membersonly'} <= feats
    join_error(cd, room, 'dave', 'forbidden')
    join_xml(cb, room, 'bob')
    own = cb.wait(lambda el: 110 in codes(el))
    assert codes(own) == {110}          # not created anew: no 201
    assert item(own).get('affiliation') == 'member'
    m = cb.wait(is_subject(room))
    assert m.find(q(NS_CLIENT, 'subject')).text == 'kept subject'
    el = ca.iq_ok('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)
    fl = form_fields(el)
    assert fl['muc#roomconfig_allowpm'] == ['moderators']
    assert fl['muc#roomconfig_allowinvites'] == ['1']
    assert fl['muc#roomconfig_allowvoicerequests'] == ['0']
    assert fl['muc#roomconfig_historylength'] == ['7']
    assert fl['muc#roomconfig_persistentroom'] == ['1']
    # no longer persistent: deleted, and gone with its last occupant
    r = submit(ca, room, {'muc#roomconfig_persistentroom': '0'})
    assert r.get('type') == 'result'
    assert sqlite3.connect(str(srv.db)).execute(
        "SELECT count(*) FROM muc_room").fetchone() == (0,)
    cb.send("<presence to=%s type='unavailable'/>" % quoteattr(room + '/bob'))
    cb.wait(is_pres(room + '/bob', 'unavailable'))
    el = cb.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=room)
    assert_stanza_error(el, 'iq', 'item-not-found')
    f.close_all()


def test_destroy_persistent_room(server_factory, im):
    srv = server_factory()
    a, = fresh_users(srv, 1)
    f = im.__class__(srv)
    ca = f(a)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_persistentroom': '1'})
    db = sqlite3.connect(str(srv.db))
    assert db.execute("SELECT count(*) FROM muc_room").fetchone() == (1,)
    el = ca.iq('set', "<query xmlns='%s'><destroy/></query>" % NS_MUC_OWNER,
               to=room)
    assert el.get('type') == 'result'
    assert db.execute("SELECT count(*) FROM muc_room").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM muc_affiliation").fetchone() == (
        0,)
    f.close_all()


def test_module_switched_off_332(server_factory, im):
    import signal
    srv = server_factory()
    a, = fresh_users(srv, 1)
    f = im.__class__(srv)
    ca = f(a)
    room = new_room()
    create(ca, room, 'alice')
    persistent = new_room()
    create(ca, persistent, 'alice', {'muc#roomconfig_persistentroom': '1'})
    ca.send("<presence to=%s type='unavailable'/>"
            % quoteattr(persistent + '/alice'))
    ca.wait(is_pres(persistent + '/alice', 'unavailable'))
    srv.extra = 'module muc off'
    srv.conf.write_text(srv.config_text())
    srv.signal(signal.SIGHUP)
    el = ca.wait(is_pres(room + '/alice', 'unavailable'))
    assert codes(el) == {332}
    assert disco_items(ca, DOMAIN) == []
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=SERVICE)
    assert_stanza_error(el, 'iq', 'remote-server-not-found')
    # on again: the service, and its persistent room read back
    srv.extra = ''
    srv.conf.write_text(srv.config_text())
    srv.signal(signal.SIGHUP)
    for _ in range(100):
        if disco_items(ca, DOMAIN) == [SERVICE]:
            break
        time.sleep(0.05)
    assert disco_items(ca, DOMAIN) == [SERVICE]
    for _ in range(100):
        # <resource-constraint/> while the service reads its rooms back
        el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS,
                   to=SERVICE)
        if el.get('type') == 'result' and persistent in [
                i.get('jid') for i in el.iter(q(NS_DISCO_ITEMS, 'item'))]:
            break
        time.sleep(0.05)
    assert disco_items(ca, SERVICE) == [persistent]
    f.close_all()


def test_occupant_waiting_for_resumption_stays(server, im):
    """XEP-0198: a session whose connection died waits, still bound: it
    stays in the room and gets what was said meanwhile on resumption."""
    from sm_helpers import enable, resume
    from test_sm import wait_state
    from im_helpers import IMClient

    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b, resource='phone')
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    ca.settle()
    sid = enable(cb).get('id')
    cb.sync()
    h = cb.raw.pending.stanzas
    cb.raw.close()
    wait_state(server, b, 'waiting')
    say(ca, room, 'while you were away')
    ca.wait(is_msg(room + '/alice'))
    ca.absent(is_pres(room + '/bob', 'unavailable'), 0.2)
    raw, el = resume(server, b, sid, h)
    try:
        assert el.get('h') is not None, tostr(el)
        c = IMClient(raw, b + '/phone')
        m = c.wait(is_msg(room + '/alice'))
        assert body(m) == 'while you were away'
        say(c, room, 'back')
        assert body(ca.wait(is_msg(room + '/bob'))) == 'back'
        # once it ends for good (a closed stream), it leaves
        c.close_stream()
        ca.wait(is_pres(room + '/bob', 'unavailable'))
    finally:
        raw.close()


def test_daemon_stop_332(server_factory, im):
    srv = server_factory()
    a, b = fresh_users(srv, 2)
    f = im.__class__(srv)
    ca, cb = f(a), f(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    ca.settle()
    cb.settle()
    srv.ctl('stop')
    # each occupant hears it is removed because the service stops,
    # before the stream ends
    for c, nick in ((ca, 'alice'), (cb, 'bob')):
        el = c.wait(is_pres(room + '/' + nick, 'unavailable'))
        assert codes(el) == {332}
        c.expect_stream_error('system-shutdown')
    srv.wait_exit()
    f.close_all()


# --- limits (xmppd.conf(5) muc-*) ---------------------------------------------

MUC_LIMITS = {'muc-rooms-per-hour': 2, 'muc-occupants': 3,
              'muc-messages-per-second': 2, 'muc-nick-length': 8,
              'muc-subject-length': 16, 'muc-history-size': 2500}


@pytest.fixture(scope='module')
def limited(certificate):
    """A daemon with small muc-* limits, for the tests below."""
    import shutil
    from conftest import Server
    srv = Server(certificate, limits=MUC_LIMITS).start()
    yield srv
    srv.stop()
    shutil.rmtree(srv.dir, ignore_errors=True)


@pytest.fixture
def lim(limited):
    from im_helpers import IMFactory
    f = IMFactory(limited)
    yield f
    f.close_all()


def error_from(c, frm, kind='message'):
    return c.wait(lambda el: el.tag == q(NS_CLIENT, kind) and
                  el.get('type') == 'error' and el.get('from') == frm,
                  what='%s error from %s' % (kind, frm))


def test_limit_rooms_per_hour(limited, lim):
    a, b = fresh_users(limited, 2)
    ca, cb = lim(a), lim(b)
    rooms = [new_room() for _ in range(3)]
    create(ca, rooms[0], 'alice')
    create(ca, rooms[1], 'alice')
    join_error(ca, rooms[2], 'alice', 'policy-violation', etype='wait')
    assert ('%s: limits { muc-rooms-per-hour 2 } reached' % ca.full
            in limited.stderr_text())
    # the room was not created: someone else may create it
    create(cb, rooms[2], 'bob')
    # joining rooms that exist is not counted
    join(ca, rooms[2], 'alice')
    join(cb, rooms[0], 'bob')


def test_limit_occupants(limited, lim):
    a, b, d, e = fresh_users(limited, 4)
    ca, cb, cd, ce = lim(a), lim(b), lim(d), lim(e)
    room = new_room()
    create(ca, room, 'alice')
    # maxusers above the server's ceiling is refused
    el = submit(ca, room, {'muc#roomconfig_maxusers': '4'})
    assert_stanza_error(el, 'iq', 'not-acceptable')
    assert submit(ca, room, {'muc#roomconfig_maxusers': '3'}).get(
        'type') == 'result'
    form = form_fields(ca.iq_ok('get', "<query xmlns='%s'/>"
                                % NS_MUC_OWNER, to=room))
    assert form['muc#roomconfig_maxusers'] == ['3']
    # no maxusers: the ceiling applies, to admins and owners too
    assert submit(ca, room, {'muc#roomconfig_maxusers': '0'}).get(
        'type') == 'result'
    admin_set(ca, room, "<item affiliation='admin' jid='%s'/>" % e)
    join(cb, room, 'bob')
    join(cd, room, 'dave')
    join_error(ce, room, 'erin', 'service-unavailable', etype='wait')
    assert ('muc: %s: full at 3 occupants (limits { muc-occupants }), '
            '%s refused' % (room, ce.full)) in limited.stderr_text()
    cd.send("<presence to=%s type='unavailable'/>" % quoteattr(
        room + '/dave'))
    cd.wait(is_pres(room + '/dave', 'unavailable'))
    join(ce, room, 'erin')


def test_limit_messages_per_second(limited, lim):
    """2 a second with a burst of 4: of 8 sent at once, 4 or a little
    more go to the room, the others come back <policy-violation/>."""
    a, b = fresh_users(limited, 2)
    ca, cb = lim(a), lim(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    ca.settle()
    for i in range(8):
        say(ca, room, 'm%d' % i, mid='r%d' % i)
    ca.sync()
    got = ca.discard(is_msg(room + '/alice'))
    errors = ca.discard(lambda el: el.tag == q(NS_CLIENT, 'message') and
                        el.get('type') == 'error')
    assert 4 <= len(got) < 8 and len(got) + len(errors) == 8, (
        [tostr(el) for el in got + errors])
    for el in errors:
        assert_stanza_error(el, 'message', 'policy-violation', etype='wait')
    assert [body(el) for el in got] == ['m%d' % i for i in range(len(got))]
    # the others heard exactly what went to the room
    heard = [body(cb.wait(is_msg(room + '/alice'))) for _ in got]
    assert heard == [body(el) for el in got]
    cb.absent(is_msg(room + '/alice'))
    # one log line for the flood
    line = '%s: limits { muc-messages-per-second 2 } reached' % ca.full
    assert limited.stderr_text().count(line) == 1
    time.sleep(0.6)
    say(ca, room, 'later')
    assert body(ca.wait(is_msg(room + '/alice'))) == 'later'


def test_limit_nick_length(limited, lim):
    a, b = fresh_users(limited, 2)
    ca, cb = lim(a), lim(b)
    room = new_room()
    create(ca, room, 'alice')
    join_error(cb, room, 'ninechars', 'not-acceptable', etype='modify')
    # bytes, not characters: five two-byte characters are ten
    join_error(cb, room, '\u00e9' * 5, 'not-acceptable', etype='modify')
    assert ('%s: limits { muc-nick-length 8 } reached' % cb.full
            in limited.stderr_text())
    join(cb, room, 'eightchr')
    ca.settle()
    # a nick change too
    join_xml(cb, room, 'bob-longer')
    el = error_from(cb, room + '/bob-longer', 'presence')
    assert_stanza_error(el, 'presence', 'not-acceptable')
    ca.absent(is_pres(room + '/eightchr', 'unavailable'))
    join_xml(cb, room, 'bob')
    ca.wait(is_pres(room + '/bob'))


def test_limit_subject_length(limited, lim):
    (a,) = fresh_users(limited, 1)
    ca = lim(a)
    room = new_room()
    create(ca, room, 'alice')
    ca.send("<message to='%s' type='groupchat'><subject>%s</subject>"
            "</message>" % (room, 'x' * 17))
    el = error_from(ca, room)
    assert_stanza_error(el, 'message', 'not-acceptable', etype='modify')
    assert ('%s: limits { muc-subject-length 16 } reached' % ca.full
            in limited.stderr_text())
    ca.send("<message to='%s' type='groupchat'><subject>%s</subject>"
            "</message>" % (room, 'y' * 16))
    m = ca.wait(is_subject(room))
    assert m.find(q(NS_CLIENT, 'subject')).text == 'y' * 16
    _, _, info = disco_info(ca, room)
    assert 'y' * 16 in tostr(info) and 'x' * 17 not in tostr(info)


def test_limit_history_size(limited, lim):
    """muc-history-size 2500: two messages of about 1000 bytes as kept
    fit, not three."""
    a, b = fresh_users(limited, 2)
    ca, cb = lim(a), lim(b)
    room = new_room()
    create(ca, room, 'alice')
    for i in range(4):
        say(ca, room, '%d%s' % (i, 'z' * 700))
        ca.wait(is_msg(room + '/alice'))
        time.sleep(0.5)         # muc-messages-per-second
    join_xml(cb, room, 'bob')
    cb.wait(is_subject(room))
    got = [body(el)[0] for el in cb.discard(
        lambda el: el.tag == q(NS_CLIENT, 'message') and
        body(el) is not None)]
    assert got == ['2', '3']


# --- XEP-0352 client state indication ------------------------------------------

CSI_INACTIVE = "<inactive xmlns='urn:xmpp:csi:0'/>"
CSI_ACTIVE = "<active xmlns='urn:xmpp:csi:0'/>"


def test_csi_groupchat_held_unless_mentioned(server, im):
    """An inactive client is not woken by a room's chatter, only when it
    is mentioned (its nick in the body, any case, or a XEP-0372 mention
    of its room JID): then what was held comes first, in order."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    ca.settle()
    cb.settle()
    cb.send(CSI_INACTIVE)
    cb.sync()

    def nothing_arrives():
        # no IQ barrier: its answer to cb would be urgent
        cb.absent(lambda el: True, 0.4, barrier=False)

    def talk(text, extra=''):
        ca.message(room, text, mtype='groupchat', extra=extra)
        assert body(ca.wait(is_msg(room + '/alice'))) == text

    def arrives(*texts):
        return [body(cb.wait(is_msg(room + '/alice'), timeout=2))
                for _ in texts] == list(texts)

    talk('plain chatter')
    talk('alice talks to herself')
    nothing_arrives()
    talk('hey BOB, look')
    assert arrives('plain chatter', 'alice talks to herself',
                   'hey BOB, look')
    talk('more chatter')
    nothing_arrives()
    talk('you there?', "<reference xmlns='urn:xmpp:reference:0' "
         "type='mention' uri='xmpp:%s/bob'/>" % room)
    assert arrives('more chatter', 'you there?')
    # a reference to someone else is no mention of bob
    talk('ping', "<reference xmlns='urn:xmpp:reference:0' "
         "type='mention' uri='xmpp:%s/alice'/>" % room)
    nothing_arrives()
    cb.send(CSI_ACTIVE)
    assert arrives('ping')
    # active: chatter comes at once
    talk('now')
    assert arrives('now')
