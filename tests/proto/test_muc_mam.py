"""Room archives (XEP-0313 on the room JID, muc#roomconfig_enablelogging),
message moderation (XEP-0425) and the room's vCard and avatar
(vcard-temp, XEP-0153 hash in the room's presence and in
muc#roominfo_avatarhash), with raw XML."""

import base64
import hashlib
from xml.sax.saxutils import quoteattr

from im_helpers import NS_DELAY, NS_XDATA, fresh_users, im  # noqa: F401
from test_mam import NS_FORWARD, NS_MAM, NS_RSM, fin_of, mam_query
from test_muc import (NS_OID, NS_SID, codes, create, disco_info, is_msg,
                      join, new_room, say, stanza_id, submit)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_MODERATE = 'urn:xmpp:message-moderate:1'
NS_RETRACT = 'urn:xmpp:message-retract:1'
NS_VCARD = 'vcard-temp'
NS_VCARD_UPDATE = 'vcard-temp:x:update'
LOGGING = {'muc#roomconfig_enablelogging': '1'}


def room_archive(c, room, **kw):
    """[(id, inner message)] of a query to the room, and its fin."""
    results, iq = mam_query(c, to=room, **kw)
    rows = []
    for el in results:
        assert el.get('from') == room and el.get('to') == c.full, tostr(el)
        r = el.find(q(NS_MAM, 'result'))
        fwd = r.find(q(NS_FORWARD, 'forwarded'))
        assert fwd.find(q(NS_DELAY, 'delay')).get('stamp')
        rows.append((r.get('id'), fwd.find(q(NS_CLIENT, 'message'))))
    return rows, fin_of(iq)


def body(m):
    b = m.find(q(NS_CLIENT, 'body'))
    return None if b is None else b.text


def test_logging_off_by_default(server, im):
    a, = fresh_users(server, 1)
    ca = im(a)
    room = new_room()
    own = create(ca, room, 'alice')
    assert 170 not in codes(own)
    _, feats, qq = disco_info(ca, room)
    assert NS_MAM not in feats and NS_MODERATE not in feats
    say(ca, room, 'not kept')
    ca.wait(is_msg(room + '/alice'))
    _, iq = mam_query(ca, to=room)
    assert_stanza_error(iq, 'iq', 'service-unavailable')


def test_archive_paging_filters_and_ids(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice', LOGGING)
    _, own = join(cb, room, 'bob')
    assert 170 in codes(own)            # §7.2.12: the room is logged
    _, feats, _ = disco_info(cb, room)
    assert NS_MAM in feats and NS_MODERATE in feats
    sids = []
    for i in range(5):
        c, nick = (ca, 'alice') if i % 2 == 0 else (cb, 'bob')
        say(c, room, 'm%d' % i)
        m = cb.wait(lambda e, i=i: body(e) == 'm%d' % i and
                    e.get('type') == 'groupchat')
        by, sid = stanza_id(m)
        assert by == room
        sids.append(sid)
    ca.settle()
    rows, fin = room_archive(cb, room)
    assert [body(m) for _, m in rows] == ['m%d' % i for i in range(5)]
    # the archive id is the stanza-id the room gave the message
    assert [i for i, _ in rows] == sids
    m = rows[1][1]
    assert m.get('from') == room + '/bob' and m.get('type') == 'groupchat'
    assert m.get('to') is None
    assert m.find(q(NS_OID, 'occupant-id')) is not None
    assert fin['complete'] == 'true' and fin['count'] == '5'
    # RSM: two at a time forwards, then the last page backwards
    rows, fin = room_archive(cb, room, rsm={'max': 2})
    assert [body(m) for _, m in rows] == ['m0', 'm1']
    assert fin['complete'] == 'false' and fin['last'] == sids[1]
    rows, fin = room_archive(cb, room, rsm={'max': 2, 'after': sids[1]})
    assert [body(m) for _, m in rows] == ['m2', 'm3']
    rows, fin = room_archive(cb, room, rsm={'max': 2, 'before': ''})
    assert [body(m) for _, m in rows] == ['m3', 'm4']
    rows, fin = room_archive(cb, room, rsm={'max': 2, 'before': sids[3]})
    assert [body(m) for _, m in rows] == ['m1', 'm2']
    # 'with' a nick's room JID: that occupant's messages
    rows, _ = room_archive(cb, room, fields={'with': room + '/bob'})
    assert [body(m) for _, m in rows] == ['m1', 'm3']
    rows, _ = room_archive(cb, room, fields={'with': room})
    assert len(rows) == 5
    # start/end
    rows, _ = room_archive(cb, room, fields={'start': '2000-01-01T00:00:00Z',
                                             'end': '2001-01-01T00:00:00Z'})
    assert rows == []
    rows, _ = room_archive(cb, room, fields={'after-id': sids[3]})
    assert [body(m) for _, m in rows] == ['m4']
    # an unknown id
    _, iq = mam_query(cb, to=room, rsm={'after': 'ffffffffffffffff'})
    assert_stanza_error(iq, 'iq', 'item-not-found')
    # the form
    el = cb.iq_ok('get', "<query xmlns='%s'/>" % NS_MAM, to=room)
    assert el.find(q(NS_MAM, 'query')).find(q(NS_XDATA, 'x')) is not None


def test_archive_access(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice', LOGGING)
    say(ca, room, 'secret')
    ca.wait(is_msg(room + '/alice'))
    # not an occupant of an open room
    _, iq = mam_query(cb, to=room)
    assert_stanza_error(iq, 'iq', 'forbidden')
    # members of a members-only room may read without being in it
    r = submit(ca, room, dict(LOGGING, **{'muc#roomconfig_membersonly': '1'}))
    assert r.get('type') == 'result', tostr(r)
    el = ca.iq('set', "<query xmlns='http://jabber.org/protocol/muc#admin'>"
               "<item affiliation='member' jid=%s/></query>"
               % quoteattr(cb.bare), to=room)
    assert el.get('type') == 'result', tostr(el)
    rows, _ = room_archive(cb, room)
    assert [body(m) for _, m in rows] == ['secret']
    _, iq = mam_query(cd, to=room)
    assert_stanza_error(iq, 'iq', 'forbidden')
    # logging turned off: 171 to the occupants, no archive any more
    r = submit(ca, room, {'muc#roomconfig_enablelogging': '0',
                          'muc#roomconfig_membersonly': '1'})
    m = ca.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                171 in codes(e))
    assert 104 in codes(m)
    _, iq = mam_query(ca, to=room)
    assert_stanza_error(iq, 'iq', 'service-unavailable')


def moderate(c, room, sid, reason='spam'):
    return c.iq('set', "<moderate xmlns='%s' id=%s><retract xmlns='%s'/>"
                "<reason>%s</reason></moderate>"
                % (NS_MODERATE, quoteattr(sid), NS_RETRACT, reason), to=room)


def test_moderation_tombstone(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice', LOGGING)
    join(cb, room, 'bob')
    say(cb, room, 'bad words')
    m = ca.wait(lambda e: body(e) == 'bad words')
    sid = stanza_id(m)[1]
    cb.wait(lambda e: body(e) == 'bad words')
    # bob is a participant, not a moderator
    assert_stanza_error(moderate(cb, room, sid), 'iq', 'forbidden')
    # an id the archive does not have
    assert_stanza_error(moderate(ca, room, 'ffffffffffffffff'), 'iq',
                        'item-not-found')
    el = moderate(ca, room, sid)
    assert el.get('type') == 'result', tostr(el)
    for c in (ca, cb):
        ann = c.wait(lambda e: e.find(q(NS_RETRACT, 'retract')) is not None)
        assert ann.get('from') == room and ann.get('type') == 'groupchat'
        r = ann.find(q(NS_RETRACT, 'retract'))
        assert r.get('id') == sid
        mod = r.find(q(NS_MODERATE, 'moderated'))
        assert mod.get('by') == room + '/alice'
        assert mod.find(q(NS_OID, 'occupant-id')) is not None
        assert r.find(q(NS_RETRACT, 'reason')).text == 'spam'
    rows, _ = room_archive(ca, room)
    assert rows[0][0] == sid
    stone = rows[0][1]
    assert body(stone) is None and stone.get('from') == room + '/bob'
    ret = stone.find(q(NS_RETRACT, 'retracted'))
    assert ret is not None and ret.get('stamp'), tostr(stone)
    assert ret.find(q(NS_MODERATE, 'moderated')).get('by') == \
        room + '/alice'
    assert stone.find(q(NS_OID, 'occupant-id')) is not None
    assert stone.find(q(NS_SID, 'stanza-id')) is not None
    # the announcement is archived too
    assert rows[1][1].find(q(NS_RETRACT, 'retract')) is not None


PNG = base64.b64decode(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk'
    '+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==')


def vcard_xml(photo=PNG):
    return ("<vCard xmlns='%s'><FN>The room</FN><PHOTO><TYPE>image/png"
            "</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>"
            % (NS_VCARD, base64.b64encode(photo).decode()))


def avatar_hash_of(qq):
    for x in qq.findall(q(NS_XDATA, 'x')):
        for f in x.findall(q(NS_XDATA, 'field')):
            if f.get('var') == 'muc#roominfo_avatarhash':
                v = f.find(q(NS_XDATA, 'value'))
                return '' if v is None else v.text
    return None


def test_room_vcard_and_avatar(server, im):
    a, b, d = fresh_users(server, 3)
    ca, cb, cd = im(a), im(b), im(d)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    # none yet: an empty vCard
    el = cd.iq_ok('get', "<vCard xmlns='%s'/>" % NS_VCARD, to=room)
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v is not None and len(v) == 0
    _, feats, qq = disco_info(cd, room)
    assert NS_VCARD in feats and avatar_hash_of(qq) == ''
    # only owners set it
    el = cb.iq('set', vcard_xml(), to=room)
    assert_stanza_error(el, 'iq', 'forbidden')
    ca.settle()
    cb.settle()
    ca.iq_ok('set', vcard_xml(), to=room)
    h = hashlib.sha1(PNG).hexdigest()
    for c in (ca, cb):
        p = c.wait(lambda e: e.tag == q(NS_CLIENT, 'presence') and
                   e.get('from') == room)
        x = p.find(q(NS_VCARD_UPDATE, 'x'))
        assert x.find(q(NS_VCARD_UPDATE, 'photo')).text == h
    el = cd.iq_ok('get', "<vCard xmlns='%s'/>" % NS_VCARD, to=room)
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v.find(q(NS_VCARD, 'FN')).text == 'The room'
    _, _, qq = disco_info(cd, room)
    assert avatar_hash_of(qq) == h
    # a joiner gets the room's presence with the hash
    join(cd, room, 'dave', subject=False)
    p = cd.wait(lambda e: e.tag == q(NS_CLIENT, 'presence') and
                e.get('from') == room)
    assert p.find(q(NS_VCARD_UPDATE, 'x')).find(
        q(NS_VCARD_UPDATE, 'photo')).text == h


def test_room_vcard_persists(server_factory, im):
    srv = server_factory()
    a, = fresh_users(srv, 1)
    f = im.__class__(srv)
    ca = f(a)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_persistentroom': '1'})
    ca.iq_ok('set', vcard_xml(), to=room)
    f.close_all()
    srv.stop()
    srv.start(create_users=False)
    ca = im.__class__(srv)(a)
    el = ca.iq_ok('get', "<vCard xmlns='%s'/>" % NS_VCARD, to=room)
    assert el.find(q(NS_VCARD, 'vCard')).find(q(NS_VCARD, 'FN')).text == \
        'The room'
    _, _, qq = disco_info(ca, room)
    assert avatar_hash_of(qq) == hashlib.sha1(PNG).hexdigest()


def test_archive_metadata(server, im):
    """XEP-0313 §5 on the room JID: the first and last message of the
    room's archive (empty before any), for those who may read it."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice', LOGGING)
    meta = "<metadata xmlns='%s'/>" % NS_MAM
    md = ca.iq_ok('get', meta, to=room).find(q(NS_MAM, 'metadata'))
    assert md is not None and len(md) == 0
    ids = []
    for i in range(3):
        say(ca, room, 'm%d' % i)
        ids.append(stanza_id(ca.wait(is_msg(room + '/alice')))[1])
    el = ca.iq_ok('get', meta, to=room)
    assert el.get('from') == room
    md = el.find(q(NS_MAM, 'metadata'))
    assert md.find(q(NS_MAM, 'start')).get('id') == ids[0]
    assert md.find(q(NS_MAM, 'end')).get('id') == ids[-1]
    assert md.find(q(NS_MAM, 'end')).get('timestamp')
    el = cb.iq('get', meta, to=room)        # not an occupant
    assert_stanza_error(el, 'iq', 'forbidden')
    el = ca.iq('set', meta, to=room)
    assert_stanza_error(el, 'iq', 'bad-request')
