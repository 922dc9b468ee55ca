"""The muc#roomconfig fields beyond the basic ones (XEP-0045 §10.2):
roomowners and roomadmins (the full lists, applied as the owner's
affiliation changes), presencebroadcast (whose presence others see),
getmemberlist (who may get the member list) and lang, with raw XML."""

import sqlite3
from xml.sax.saxutils import escape, quoteattr

from im_helpers import NS_XDATA, fresh_users, im  # noqa: F401
from test_muc import (NS_MUC_ADMIN, NS_MUC_OWNER, admin_set, codes, create,
                      disco_info, form_fields, is_pres, item, join, new_room)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr


def submit_multi(c, room, fields):
    """Submit the owner's form; values may be lists (multi fields)."""
    xml = ''
    for k, v in fields.items():
        vals = v if isinstance(v, list) else [v]
        xml += "<field var=%s>%s</field>" % (quoteattr(k), ''.join(
            '<value>%s</value>' % escape(x) for x in vals))
    return c.iq('set', "<query xmlns='%s'><x xmlns='%s' type='submit'>%s"
                "</x></query>" % (NS_MUC_OWNER, NS_XDATA, xml), to=room)


def get_form(c, room):
    return form_fields(c.iq_ok('get', "<query xmlns='%s'/>" % NS_MUC_OWNER,
                               to=room))


def aff_list(c, room, aff):
    el = c.iq('get', "<query xmlns='%s'><item affiliation='%s'/></query>"
              % (NS_MUC_ADMIN, aff), to=room)
    if el.get('type') == 'error':
        return el
    return sorted(i.get('jid') for i in el.find(
        q(NS_MUC_ADMIN, 'query')).findall(q(NS_MUC_ADMIN, 'item')))


def test_roomowners_and_roomadmins(server, im):
    a, b, c = fresh_users(server, 3)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    fl = get_form(ca, room)
    assert fl['muc#roomconfig_roomowners'] == [a]
    assert fl['muc#roomconfig_roomadmins'] == []
    join(cb, room, 'bob')
    r = submit_multi(ca, room, {'muc#roomconfig_roomowners': [a, b],
                                'muc#roomconfig_roomadmins': [c]})
    assert r.get('type') == 'result', tostr(r)
    # bob, in the room, is told of his new affiliation
    p = cb.wait(lambda el: el.get('from') == room + '/bob' and
                el.find(q('http://jabber.org/protocol/muc#user', 'x'))
                is not None and item(el).get('affiliation') == 'owner',
                what='bob owner')
    assert item(p).get('role') == 'moderator'
    assert aff_list(ca, room, 'owner') == sorted([a, b])
    assert aff_list(ca, room, 'admin') == [c]
    fl = get_form(cb, room)
    assert sorted(fl['muc#roomconfig_roomowners']) == sorted([a, b])
    # alice leaves the owners (bob remains), carol the admins
    r = submit_multi(cb, room, {'muc#roomconfig_roomowners': [b],
                                'muc#roomconfig_roomadmins': []})
    assert r.get('type') == 'result', tostr(r)
    assert aff_list(cb, room, 'owner') == [b]
    assert aff_list(cb, room, 'admin') == []
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_MUC_OWNER, to=room)
    assert_stanza_error(el, 'iq', 'forbidden')
    # no owner at all, or a full JID: refused, nothing changed
    for bad in ([], [b + '/res'], ['@bad@']):
        r = submit_multi(cb, room, {'muc#roomconfig_roomowners': bad})
        assert_stanza_error(r, 'iq', 'not-acceptable')
    assert aff_list(cb, room, 'owner') == [b]


def test_presence_broadcast_roles(server, im):
    a, b, c = fresh_users(server, 3)
    ca, cb, cc = im(a), im(b), im(c)
    room = new_room()
    create(ca, room, 'alice', )
    r = submit_multi(ca, room, {
        'muc#roomconfig_moderatedroom': '1',
        'muc#roomconfig_presencebroadcast': ['moderator', 'participant']})
    assert r.get('type') == 'result', tostr(r)
    assert get_form(ca, room)['muc#roomconfig_presencebroadcast'] == [
        'moderator', 'participant']
    # bob joins as a visitor: he sees alice, alice does not see him
    before, own = join(cb, room, 'bob')
    assert item(own).get('role') == 'visitor'
    assert [p.get('from') for p in before] == [room + '/alice']
    join(cc, room, 'carol')
    assert ca.discard(lambda el: el.get('from') == room + '/bob') == []
    assert cc.discard(lambda el: el.get('from') == room + '/bob') == []
    # voice: now a participant, everyone sees him
    r = admin_set(ca, room, "<item nick='bob' role='participant'/>")
    assert r.get('type') == 'result'
    p = cc.wait(is_pres(room + '/bob'))
    assert item(p).get('role') == 'participant'
    # voice taken again: the others see him go
    r = admin_set(ca, room, "<item nick='bob' role='visitor'/>")
    assert r.get('type') == 'result'
    p = cc.wait(is_pres(room + '/bob', 'unavailable'))
    p = cb.wait(lambda el: el.get('from') == room + '/bob' and
                110 in codes(el) and item(el).get('role') == 'visitor',
                what='own presence as visitor')
    assert p.get('type') is None
    # a bad role value
    r = submit_multi(ca, room, {'muc#roomconfig_presencebroadcast':
                                ['nobody']})
    assert_stanza_error(r, 'iq', 'not-acceptable')


def test_getmemberlist(server, im):
    a, b, c = fresh_users(server, 3)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    admin_set(ca, room, "<item affiliation='member' jid=%s/>" % quoteattr(c))
    join(cb, room, 'bob')
    # by default participants may get the member list, not the others
    assert get_form(ca, room)['muc#roomconfig_getmemberlist'] == [
        'moderator', 'participant']
    assert aff_list(cb, room, 'member') == [c]
    assert_stanza_error(aff_list(cb, room, 'outcast'), 'iq', 'forbidden')
    r = submit_multi(ca, room, {'muc#roomconfig_getmemberlist':
                                ['moderator']})
    assert r.get('type') == 'result', tostr(r)
    assert_stanza_error(aff_list(cb, room, 'member'), 'iq', 'forbidden')


def test_lang_in_roominfo_and_stored(server, im):
    a, = fresh_users(server, 1)
    ca = im(a)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_persistentroom': '1',
                               'muc#roomconfig_lang': 'pt-BR'})
    _, _, qq = disco_info(ca, room)
    x = qq.find(q(NS_XDATA, 'x'))
    langs = [f.find(q(NS_XDATA, 'value')).text
             for f in x.findall(q(NS_XDATA, 'field'))
             if f.get('var') == 'muc#roominfo_lang']
    assert langs == ['pt-BR']
    assert get_form(ca, room)['muc#roomconfig_lang'] == ['pt-BR']
    node = room.split('@')[0]
    assert sqlite3.connect(str(server.db)).execute(
        "SELECT lang FROM muc_room WHERE node = ?", (node,)).fetchone() == (
        'pt-BR',)
    r = submit_multi(ca, room, {'muc#roomconfig_lang': 'en us'})
    assert_stanza_error(r, 'iq', 'not-acceptable')
    assert ca.discard(lambda el: el.tag == q(NS_CLIENT, 'presence') and
                      el.get('type') == 'error') == []
