"""Offline messages (XEP-0160, RFC 6121 §8.5.2.2): chat and normal
messages for a user with no available resource of non-negative priority
are stored and delivered after the next non-negative initial presence,
once, in order, marked with XEP-0203 <delay/>; the per-user cap
(limits { offline-messages N }); groupchat, headline, error and
chat-state-only messages are not stored; storage survives a restart; the
'msgoffline' disco feature."""

import calendar
import re
import time

import pytest

from im_helpers import (NS_CHATSTATES, NS_DELAY, NS_DISCO_INFO, IMFactory,
                        fresh_users, is_message, text_of)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

OFFLINE_LIMIT = 3
# XEP-0160 §3: a full offline queue is answered with <service-unavailable/>
OFFLINE_FULL = ('service-unavailable', 'cancel')
SERVER_OPTIONS = {'limits': {'offline-messages': OFFLINE_LIMIT}}

STAMP_RE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$')


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def stamp_seconds(stamp):
    """XEP-0082 DateTime in UTC ('Z') to a Unix time."""
    m = STAMP_RE.match(stamp or '')
    assert m, 'delay stamp %r is not a UTC XEP-0082 DateTime' % stamp
    y, mo, d, h, mi, s = (int(x) for x in m.groups()[:6])
    frac = float(m.group(7)) if m.group(7) else 0.0
    return calendar.timegm((y, mo, d, h, mi, s)) + frac


def check_delay(el, sent_after, sent_before):
    """Exactly one XEP-0203 <delay/> from the server, stamped when the
    message was stored."""
    delays = el.findall(q(NS_DELAY, 'delay'))
    assert len(delays) == 1, 'expected one <delay/>: %s' % tostr(el)
    assert delays[0].get('from') == 'localhost', tostr(el)
    t = stamp_seconds(delays[0].get('stamp'))
    assert sent_after - 2 <= t <= sent_before + 2, (
        'stamp %s not within the time the message was sent'
        % delays[0].get('stamp'))


def body(el):
    return text_of(el, NS_CLIENT, 'body')


def test_stored_and_delivered_after_initial_presence(server, im):
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    t0 = time.time()
    cb.message(alice, 'one', mtype='chat', mid='m1',
               extra='<thread>th-1</thread>')
    cb.message(alice, 'two', mtype='normal', mid='m2',
               extra='<subject>Re: two</subject>')
    cb.message(alice, 'three', mtype=None, mid='m3')
    cb.sync()
    t1 = time.time()
    cb.absent(is_message(), 0.3)      # stored: no error to the sender

    ca = im(alice, presence=False)
    ca.absent(is_message(), 0.4)      # not before initial presence
    ca.presence()
    got = [ca.wait(is_message(body=b)) for b in ('one', 'two', 'three')]
    for el, mid in zip(got, ('m1', 'm2', 'm3')):
        assert el.get('from') == cb.full, tostr(el)
        assert el.get('to') in (alice, ca.full), tostr(el)
        assert el.get('id') == mid, tostr(el)
        check_delay(el, t0, t1)
    assert got[0].get('type') == 'chat'
    assert text_of(got[0], NS_CLIENT, 'thread') == 'th-1'
    assert got[1].get('type') == 'normal'
    assert text_of(got[1], NS_CLIENT, 'subject') == 'Re: two'
    assert got[2].get('type') in (None, 'normal')
    ca.absent(is_message(), 0.3)

    # delivered once: the next session gets nothing
    ca.close_stream()
    ca.raw.close()
    ca2 = im(alice)
    ca2.absent(is_message(), 0.4)


def test_order_kept(server, im):
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    for i in range(OFFLINE_LIMIT):
        cb.message(alice, 'n%d' % i)
    cb.sync()
    ca = im(alice, settle=False)
    bodies = [body(ca.wait(is_message())) for _ in range(OFFLINE_LIMIT)]
    assert bodies == ['n%d' % i for i in range(OFFLINE_LIMIT)]


def test_full_jid_of_offline_user_stored(server, im):
    """RFC 6121 §8.5.3.2.1: to a resource that is not online, as if to the
    bare JID."""
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    cb.message(alice + '/gone', 'to a ghost', mid='full')
    cb.absent(is_message(), 0.3)
    ca = im(alice, settle=False)
    el = ca.wait(is_message(body='to a ghost'))
    assert el.get('from') == cb.full and el.get('id') == 'full'
    assert el.find(q(NS_DELAY, 'delay')) is not None, tostr(el)


def test_connected_but_unavailable_user_gets_them_later(server, im):
    alice, bob = fresh_users(server, 2)
    ca = im(alice, presence=False)
    cb = im(bob)
    cb.message(alice, 'while you were away')
    cb.absent(is_message(), 0.3)
    ca.absent(is_message(), 0.1)
    ca.presence()
    el = ca.wait(is_message(body='while you were away'))
    assert el.find(q(NS_DELAY, 'delay')) is not None, tostr(el)


def test_negative_priority_resources_do_not_count(server, im):
    """RFC 6121 §8.5.2.1.1 and XEP-0160: a resource of negative priority
    neither gets a bare-JID message nor the offline messages; the next
    non-negative initial presence does."""
    alice, bob = fresh_users(server, 2)
    neg = im(alice, 'neg', priority=-1)
    cb = im(bob)
    cb.message(alice, 'for the first real resource')
    cb.absent(is_message(), 0.3)
    neg.absent(is_message(), 0.1)
    pos = im(alice, 'pos', priority=0, settle=False)
    el = pos.wait(is_message(body='for the first real resource'))
    assert el.find(q(NS_DELAY, 'delay')) is not None, tostr(el)
    neg.absent(is_message(), 0.3)


def test_queue_limit(server, im):
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    for i in range(OFFLINE_LIMIT):
        cb.message(alice, 'kept %d' % i, mid='k%d' % i)
    cb.absent(is_message(), 0.3)
    cb.message(alice, 'one too many', mid='over')
    el = cb.wait(is_message())
    assert_stanza_error(el, 'message', OFFLINE_FULL[0], etype=OFFLINE_FULL[1],
                        frm=alice, sid='over')
    ca = im(alice, settle=False)
    got = [body(ca.wait(is_message())) for _ in range(OFFLINE_LIMIT)]
    assert got == ['kept %d' % i for i in range(OFFLINE_LIMIT)]
    ca.absent(is_message(), 0.3)
    # delivered messages leave the queue: there is room again
    ca.close_stream()
    ca.raw.close()
    cb.sync()
    time.sleep(0.2)
    cb.message(alice, 'room again', mid='again')
    cb.absent(is_message(), 0.3)
    ca2 = im(alice, settle=False)
    assert body(ca2.wait(is_message())) == 'room again'


def test_groupchat_bounced_not_stored(server, im):
    """RFC 6121 §8.5.2.2.1, XEP-0160 §4."""
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    cb.message(alice, 'room talk', mtype='groupchat', mid='gc')
    el = cb.wait(is_message())
    assert_stanza_error(el, 'message', 'service-unavailable', etype='cancel',
                        sid='gc')
    ca = im(alice, settle=False)
    ca.absent(is_message(), 0.4)


def test_headline_error_and_chat_state_not_stored(server, im):
    alice, bob = fresh_users(server, 2)
    cb = im(bob)
    cb.message(alice, 'breaking news', mtype='headline', mid='hl')
    cb.send("<message type='error' to='%s' id='err'><body>oops</body>"
            "<error type='cancel'><service-unavailable xmlns='urn:ietf:"
            "params:xml:ns:xmpp-stanzas'/></error></message>" % alice)
    # headline and error: silently dropped (RFC 6121 §8.5.2.2.1)
    cb.absent(is_message(), 0.3)
    cb.send("<message type='chat' to='%s' id='cs'><composing xmlns='%s'/>"
            "</message>" % (alice, NS_CHATSTATES))
    cb.sync()
    ca = im(alice, settle=False)
    ca.absent(is_message(), 0.5)


def test_msgoffline_feature(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to='localhost')
    features = [f.get('var') for f in el.find(q(NS_DISCO_INFO, 'query'))
                .findall(q(NS_DISCO_INFO, 'feature'))]
    assert 'msgoffline' in features, features


def test_offline_messages_survive_restart(server_factory):
    srv = server_factory()
    alice, bob = fresh_users(srv, 2)
    f = IMFactory(srv)
    try:
        cb = f(bob)
        cb.message(alice, 'across a restart', mid='r1')
        cb.absent(is_message(), 0.3)
    finally:
        f.close_all()
    srv.stop()
    srv.start(create_users=False)        # same directory and database
    f = IMFactory(srv)
    try:
        ca = f(alice, settle=False)
        el = ca.wait(is_message(body='across a restart'))
        assert el.get('id') == 'r1'
        assert el.find(q(NS_DELAY, 'delay')) is not None, tostr(el)
    finally:
        f.close_all()
