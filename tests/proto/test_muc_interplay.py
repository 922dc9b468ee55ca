"""Group chat with the rest of the IM features (XEP-0045 with XEP-0191,
XEP-0280 and XEP-0402), with raw XML: private messages from a blocked
occupant are not delivered (and the refusal comes from the room JID,
naming nobody's real JID); carbons copy neither groupchat nor received
private messages; bookmarks with autojoin published by one resource are
what another resource joins from."""

from xml.sax.saxutils import quoteattr

from im_helpers import NS_BLOCKING, fresh_users, im  # noqa: F401
from pep_helpers import NS_PUBSUB, announce, is_event, items, notify, publish
from test_carbons import ENABLE, is_carbon
from test_muc import body, create, is_msg, join, new_room, say
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_BOOKMARKS = 'urn:xmpp:bookmarks:1'


def pm(c, room, nick, text):
    c.send("<message to=%s type='chat'><body>%s</body></message>"
           % (quoteattr(room + '/' + nick), text))


def is_pm(frm, text):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'message') and
                el.get('from') == frm and el.get('type') == 'chat' and
                body(el) == text)
    pred.what = 'private message %r from %s' % (text, frm)
    return pred


def test_private_messages_from_a_blocked_occupant(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    room = new_room()
    create(ca, room, 'alice')
    join(cb, room, 'bob')
    pm(ca, room, 'bob', 'before')
    cb.wait(is_pm(room + '/alice', 'before'))
    el = cb.iq('set', "<block xmlns='%s'><item jid=%s/></block>"
               % (NS_BLOCKING, quoteattr(a)))
    assert el.get('type') == 'result', tostr(el)
    pm(ca, room, 'bob', 'blocked one')
    err = ca.wait(lambda el: el.get('type') == 'error' and
                  el.tag == q(NS_CLIENT, 'message'), what='error')
    assert err.get('from') == room + '/bob', tostr(err)
    assert b not in tostr(err)
    assert_stanza_error(err, 'message', 'service-unavailable')
    # bob blocking alice does not stop his own PM from being refused:
    # the block works both ways (XEP-0191 §3.3)
    pm(cb, room, 'alice', 'from bob')
    assert_stanza_error(cb.wait(lambda el: el.get('type') == 'error' and
                                el.tag == q(NS_CLIENT, 'message'),
                                what='error'), 'message',
                        'service-unavailable')
    # groupchat still reaches everyone
    say(ca, room, 'to all')
    cb.wait(is_msg(room + '/alice'))
    el = cb.iq('set', "<unblock xmlns='%s'><item jid=%s/></unblock>"
               % (NS_BLOCKING, quoteattr(a)))
    assert el.get('type') == 'result'
    pm(ca, room, 'bob', 'after')
    cb.wait(is_pm(room + '/alice', 'after'))
    assert cb.discard(is_pm(room + '/alice', 'blocked one')) == []


def test_carbons_copy_no_groupchat_and_no_received_pm(server, im):
    a, b = fresh_users(server, 2)
    ca, cb1, cb2 = im(a), im(b, resource='one'), im(b, resource='two')
    for c in (cb1, cb2):
        c.iq_ok('set', ENABLE)
    room = new_room()
    create(ca, room, 'alice')
    join(cb1, room, 'bob')
    say(ca, room, 'group line')
    cb1.wait(is_msg(room + '/alice'))
    pm(ca, room, 'bob', 'private line')
    cb1.wait(is_pm(room + '/alice', 'private line'))
    # a chat message between the two accounts is copied (the control)
    ca.message(b + '/one', 'direct line')
    cb2.wait(is_carbon('received', 'direct line'))
    assert cb2.discard(is_carbon()) == []


def test_bookmarks_autojoin_from_another_resource(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a)
    room = new_room()
    create(ca, room, 'alice', {'muc#roomconfig_persistentroom': '1'})
    # bob's first resource bookmarks the room (XEP-0402: whitelist,
    # one item per room JID)
    cb1 = im(b, resource='phone')
    announce(cb1, notify(NS_BOOKMARKS))
    el = publish(cb1, NS_BOOKMARKS,
                 "<conference xmlns='%s' autojoin='true' name='Team'>"
                 "<nick>bob</nick></conference>" % NS_BOOKMARKS,
                 item_id=room, options={
                     'pubsub#persist_items': 'true',
                     'pubsub#access_model': 'whitelist',
                     'pubsub#max_items': 'max'})
    assert el == room
    # his second resource, interested, gets the bookmark pushed and the
    # list on login, and joins what has autojoin
    cb2 = im(b, resource='laptop')
    announce(cb2, notify(NS_BOOKMARKS))
    ev = cb2.wait(is_event(NS_BOOKMARKS, frm=b, item_id=room))
    confs = items(cb2, b, NS_BOOKMARKS)
    assert [(j, c.get('autojoin')) for j, c in confs] == [(room, 'true')]
    nick = confs[0][1].findtext(q(NS_BOOKMARKS, 'nick'))
    _, own = join(cb2, room, nick)
    assert own.get('from') == room + '/bob'
    say(ca, room, 'welcome back')
    cb2.wait(is_msg(room + '/alice'))
    # an outsider cannot read bob's bookmarks
    el = ca.iq('get', "<pubsub xmlns='%s'><items node='%s'/></pubsub>"
               % (NS_PUBSUB, NS_BOOKMARKS), to=b)
    assert el.get('type') == 'error', tostr(el)
    assert ev is not None
