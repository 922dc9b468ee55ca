"""Persistent rooms in and out of memory (limits { muc-room-idle }): a
room without occupants leaves memory and is read back by the next
stanza to it, with its configuration, subject, affiliations, vCard and
(from its archive) its history; stanzas that arrive while it is read
wait in order.  The service's room list (disco#items) includes rooms
that are not in memory and pages by XEP-0059; xmppctl sees them too."""

import json
import time
from xml.sax.saxutils import quoteattr

import pytest

from im_helpers import (NS_DELAY, NS_DISCO_INFO, NS_DISCO_ITEMS,
                        fresh_users)
from test_muc import (SERVICE, admin_set, body, codes, create, disco_info,
                      is_msg, is_subject, item, join_xml, new_room, say)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_RSM = 'http://jabber.org/protocol/rsm'


@pytest.fixture
def idle(server_factory):
    return server_factory(limits={'muc-room-idle': '1s'})


@pytest.fixture
def f(idle):
    from im_helpers import IMFactory
    fac = IMFactory(idle)
    yield fac
    fac.close_all()


def wait_unloaded(srv, room, timeout=10):
    """Until the daemon logs that room left memory."""
    end = time.time() + timeout
    line = 'muc: %s leaves memory' % room
    while time.time() < end:
        if line in srv.stderr_text():
            return
        time.sleep(0.1)
    raise AssertionError('%s did not leave memory:\n%s'
                         % (room, srv.stderr_tail()))


def leave(c, room, nick):
    c.send("<presence to=%s type='unavailable'/>" % quoteattr(room + '/' +
                                                               nick))
    c.wait(lambda el: el.get('from') == room + '/' + nick and
           el.get('type') == 'unavailable', what='own unavailable')


def test_room_leaves_memory_and_comes_back(idle, f):
    a, b, d = fresh_users(idle, 3)
    ca, cb, cd = f(a), f(b), f(d)
    room = new_room()
    create(ca, room, 'alice', {
        'muc#roomconfig_persistentroom': '1',
        'muc#roomconfig_roomname': 'Back again',
        'muc#roomconfig_enablelogging': '1',
        'muc#roomconfig_moderatedroom': '1',
        'muc#roomconfig_historylength': '3'})
    r = admin_set(ca, room, "<item affiliation='member' jid=%s/>"
                  "<item affiliation='outcast' jid=%s/>"
                  % (quoteattr(b), quoteattr(d)))
    assert r.get('type') == 'result', tostr(r)
    ca.send("<message to=%s type='groupchat'><subject>the topic</subject>"
            "</message>" % quoteattr(room))
    ca.wait(is_subject(room))
    for i in range(5):
        say(ca, room, 'line %d' % i)
        ca.wait(is_msg(room + '/alice'))
    leave(ca, room, 'alice')
    wait_unloaded(idle, room)

    # listed while out of memory, with its name
    el = cb.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE)
    items = {i.get('jid'): i.get('name') for i in el.find(
        q(NS_DISCO_ITEMS, 'query')).findall(q(NS_DISCO_ITEMS, 'item'))}
    assert items.get(room) == 'Back again'
    rows = json.loads(idle.ctl('--json', 'rooms').stdout)
    row = [x for x in rows if x['jid'] == room]
    assert row and row[0]['persistent'] and row[0]['occupants'] == 0, rows

    # an outcast is still refused; the join waits for the read
    join_xml(cd, room, 'dave')
    el = cd.wait(lambda e: e.get('type') == 'error' and
                 e.get('from') == room + '/dave', what='join error')
    assert_stanza_error(el, 'presence', 'forbidden')
    wait_unloaded(idle, room)   # (read back by that join, then idle again)

    # a member joins: no 201, member, moderated still (participant),
    # the last three lines from the archive, oldest first, then the
    # subject; several stanzas sent at once keep their order
    join_xml(cb, room, 'bob', "<history maxstanzas='10'/>")
    say(cb, room, 'bob is back')
    own = cb.wait(lambda el: 110 in codes(el), what='own presence')
    assert codes(own) == {110, 170}, tostr(own)   # 170: logged
    assert item(own).get('affiliation') == 'member'
    assert item(own).get('role') == 'participant'
    hist = []
    while True:
        m = cb.wait(lambda el: el.tag == q(NS_CLIENT, 'message') and
                    el.get('type') == 'groupchat',
                    what='history or subject')
        if m.find(q(NS_CLIENT, 'subject')) is not None:
            break
        assert m.find(q(NS_DELAY, 'delay')) is not None, tostr(m)
        hist.append(body(m))
    assert hist == ['line 2', 'line 3', 'line 4']
    assert m.find(q(NS_CLIENT, 'subject')).text == 'the topic'
    m = cb.wait(is_msg(room + '/bob'))
    assert body(m) == 'bob is back'
    _, _, qq = disco_info(cb, room)
    assert qq.find(q(NS_DISCO_INFO, 'identity')).get('name') == 'Back again'

    # xmppctl room show reads an unloaded room back (and answers)
    leave(cb, room, 'bob')
    wait_unloaded(idle, room)
    r = idle.ctl('--json', 'room', 'show', room)
    assert r.returncode == 0, r.stderr
    assert '"member"' in r.stdout and b in r.stdout, r.stdout


def test_temporary_rooms_go_at_once_persistent_stay_listed(idle, f):
    a, = fresh_users(idle, 1)
    ca = f(a)
    tmp, kept = new_room(), new_room()
    create(ca, tmp, 'alice')
    create(ca, kept, 'alice', {'muc#roomconfig_persistentroom': '1'})
    leave(ca, tmp, 'alice')
    leave(ca, kept, 'alice')
    wait_unloaded(idle, kept)
    items = [i.get('jid') for i in ca.iq_ok(
        'get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=SERVICE).find(
        q(NS_DISCO_ITEMS, 'query')).findall(q(NS_DISCO_ITEMS, 'item'))]
    assert kept in items and tmp not in items
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=tmp)
    assert_stanza_error(el, 'iq', 'item-not-found')
    # destroyed while out of memory: read back, then gone for good
    el = ca.iq('set', "<query xmlns='http://jabber.org/protocol/muc#owner'>"
               "<destroy/></query>", to=kept)
    assert el.get('type') == 'result', tostr(el)
    el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=kept)
    assert_stanza_error(el, 'iq', 'item-not-found')


def page(c, rsm):
    el = c.iq('get', "<query xmlns='%s'><set xmlns='%s'>%s</set></query>"
              % (NS_DISCO_ITEMS, NS_RSM, rsm), to=SERVICE)
    if el.get('type') == 'error':
        return el, None, None
    qq = el.find(q(NS_DISCO_ITEMS, 'query'))
    s = qq.find(q(NS_RSM, 'set'))
    return ([i.get('jid') for i in qq.findall(q(NS_DISCO_ITEMS, 'item'))],
            s, int(s.find(q(NS_RSM, 'count')).text))


def test_room_list_paging(idle, f):
    a, = fresh_users(idle, 1)
    ca = f(a)
    rooms = sorted(new_room() for _ in range(5))
    for i, room in enumerate(rooms):
        create(ca, room, 'alice', {'muc#roomconfig_persistentroom':
                                   '1' if i % 2 else '0'})
    hidden = new_room()
    create(ca, hidden, 'alice', {'muc#roomconfig_publicroom': '0'})
    for room in rooms[1::2]:
        leave(ca, room, 'alice')
    wait_unloaded(idle, rooms[3])
    # every public room, in order, two at a time (in memory or not)
    got, after = [], None
    while True:
        items, s, count = page(ca, "<max>2</max>" + (
            "<after>%s</after>" % after if after else ''))
        assert count == 5
        if not items:
            break
        assert s.find(q(NS_RSM, 'first')).text == items[0]
        assert s.find(q(NS_RSM, 'last')).text == items[-1]
        got += items
        after = items[-1]
    assert got == rooms and hidden not in got
    items, s, _ = page(ca, "<max>2</max><before/>")
    assert items == rooms[3:]
    items, s, _ = page(ca, "<max>2</max><before>%s</before>" % rooms[3])
    assert items == rooms[1:3]
    items, s, _ = page(ca, "<max>2</max><index>2</index>")
    assert items == rooms[2:4]
    assert s.find(q(NS_RSM, 'first')).get('index') == '2'
    items, s, count = page(ca, "<max>0</max>")
    assert items == [] and count == 5
    el, _, _ = page(ca, "<max>x</max>")
    assert_stanza_error(el, 'iq', 'bad-request')
    el, _, _ = page(ca, "<index>99</index>")
    assert_stanza_error(el, 'iq', 'item-not-found')
