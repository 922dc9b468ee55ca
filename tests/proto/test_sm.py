"""XEP-0198 stream management (urn:xmpp:sm:3) with raw XML: the feature,
enabling (before and after bind, twice), counting and acks both ways
(<r/> and <a/>, the server's own requests, a count that is too high or
not a number), resumption (after the old connection was closed, while
it is silently dead, with another user's id, an unknown or expired id,
a count that is too high), the unacknowledged stanzas sent again with a
XEP-0203 delay, what becomes of them when the session ends without
being resumed (other resources, offline storage, errors to the senders
of requests), the contacts' view of presence during the wait, and the
bound on what may wait unacknowledged."""

import time

import pytest

from im_helpers import (DOMAIN, NS_PING, fresh_users, is_iq, is_message,
                        is_presence, subscribe_both)
from im_helpers import im  # noqa: F401 (the fixture)
from sm_helpers import (NS_DELAY, NS_SM, ack, counting, enable,
                        failed_condition, is_sm, received, request, resume)
from xmpp_raw import (NS_BIND, NS_CLIENT, NS_STREAM, NS_STREAM_ERR,
                      RawClient, assert_sasl_success, q, tostr)
from im_helpers import IMClient

SERVER_OPTIONS = {'limits': {'resume-timeout': '60s',
                             'sm-ack-seconds': '0'}}
NS_SID = 'urn:xmpp:sid:0'


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def features_after_sasl(server, jid):
    c = RawClient(server.c2s_port)
    try:
        c.open_stream()
        c.starttls()
        pre = c.open_stream()
        assert_sasl_success(c.sasl_plain(jid.split('@')[0],
                                         server.users[jid]))
        return pre, c.open_stream()
    finally:
        c.close()


def sm_stream_error(c):
    """<undefined-condition/> with XEP-0198's <handled-count-too-high/>,
    then the end of the stream."""
    el = c.wait(lambda e: e.tag == q(NS_STREAM, 'error'))
    conds = [x.tag for x in el if x.tag != q(NS_STREAM_ERR, 'text')]
    assert conds == [q(NS_STREAM_ERR, 'undefined-condition'),
                     q(NS_SM, 'handled-count-too-high')], tostr(el)
    c.raw.pending.clear()
    c.raw.expect_stream_end()
    return el


def bodies(els):
    return [el.findtext(q(NS_CLIENT, 'body')) for el in els]


def messages(c, n, timeout=None):
    return [c.wait(is_message(), timeout) for _ in range(n)]


# --- the feature and enabling ------------------------------------------------

def test_feature_offered_after_authentication_only(server):
    (alice,) = fresh_users(server, 1)
    pre, post = features_after_sasl(server, alice)
    assert pre.find(q(NS_SM, 'sm')) is None, tostr(pre)
    assert post.find(q(NS_SM, 'sm')) is not None, tostr(post)
    assert post.find(q(NS_BIND, 'bind')) is not None


def test_enable_before_bind_fails(server):
    (alice,) = fresh_users(server, 1)
    from sm_helpers import authenticate
    raw = authenticate(server, alice)
    try:
        raw.send("<enable xmlns='%s'/>" % NS_SM)
        el = raw.next_element()
        assert el.tag == q(NS_SM, 'failed'), tostr(el)
        assert failed_condition(el) == 'unexpected-request'
        # The stream goes on: binding still works.
        raw.bind('after-failed')
    finally:
        raw.close()


def test_enable_with_resumption(im, server):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    el = enable(a)
    sid = el.get('id')
    assert el.get('resume') in ('true', '1'), tostr(el)
    assert el.get('max') == '60', tostr(el)
    # XEP-0198 §5: an id that cannot be guessed (128 bits, base64url).
    assert sid is not None and len(sid) >= 22, tostr(el)
    assert set(sid) <= set('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst'
                           'uvwxyz0123456789-_'), sid
    b = im(fresh_users(server, 1)[0])
    other = enable(b).get('id')
    assert other != sid


def test_enable_without_resumption(im, server):
    (alice,) = fresh_users(server, 1)
    a = im(alice)
    el = enable(a, resume=False)
    assert el.get('id') is None and el.get('resume') is None, tostr(el)
    assert request(a) == 0


def test_enable_twice_is_a_stream_error(im, server):
    a = im(fresh_users(server, 1)[0])
    enable(a)
    a.send("<enable xmlns='%s'/>" % NS_SM)
    a.expect_stream_error('policy-violation')


def test_ack_request_without_enable(im, server):
    a = im(fresh_users(server, 1)[0])
    a.send("<r xmlns='%s'/>" % NS_SM)
    el = a.expect_stream_error('unsupported-stanza-type')
    assert 'not enabled' in tostr(el)


def test_resume_on_a_bound_stream_fails(im, server):
    a = im(fresh_users(server, 1)[0])
    enable(a)
    a.send("<resume xmlns='%s' previd='x' h='0'/>" % NS_SM)
    el = a.wait(is_sm('failed'))
    assert failed_condition(el) == 'unexpected-request'
    assert request(a) == 0          # a nonza: not counted


# --- counting ----------------------------------------------------------------

def test_server_counts_handled_stanzas(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    enable(a)
    assert request(a) == 0
    a.message(bob, 'one')
    a.message(bob, 'two')
    a.iq_ok('get', "<ping xmlns='%s'/>" % NS_PING, to=DOMAIN)
    a.presence(status='here')
    assert request(a) == 4
    # Nonzas are not stanzas: <r/> and <a/> did not count.
    assert request(a) == 4
    messages(b, 2)


def test_server_requests_acks_and_drops_what_is_acked(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    enable(a)
    for i in range(5):
        b.message(alice, 'm%d' % i)
    messages(a, 5)
    # sm-ack-stanzas 5: the fifth stanza is followed by <r/>.
    a.wait(is_sm('r'))
    ack(a)
    assert received(a) == 5
    rows = sessions_of(server, alice)
    assert rows[0]['sm'] == 'resumable' and rows[0]['sm_unacked'] == 0, rows


def test_ack_too_high_is_a_stream_error(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    enable(a)
    b.message(alice, 'x')
    b.message(alice, 'y')
    messages(a, 2)
    ack(a, 100)
    el = sm_stream_error(a)
    app = el.find(q(NS_SM, 'handled-count-too-high'))
    assert app is not None, tostr(el)
    assert app.get('h') == '100' and app.get('max') == '2', tostr(el)


@pytest.mark.parametrize('h', ['-1', '4294967296', 'x', ''])
def test_ack_count_not_a_number(im, server, h):
    a = im(fresh_users(server, 1)[0])
    enable(a)
    a.send("<a xmlns='%s' h='%s'/>" % (NS_SM, h))
    a.expect_stream_error('bad-format')


def test_ack_older_count_is_accepted(im, server):
    """An <a/> with an h at or below one already acknowledged changes
    nothing (the client repeats itself); only more than was sent is an
    error."""
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    enable(a)
    b.message(alice, 'x')
    messages(a, 1)
    ack(a)
    ack(a)
    assert request(a) == 0
    assert sessions_of(server, alice)[0]['sm_unacked'] == 0
    # Below what was acknowledged (late or reordered): no error either.
    b.message(alice, 'y')
    messages(a, 1)
    ack(a, 2)
    ack(a, 1)
    ack(a, 0)
    assert request(a) == 0
    assert sessions_of(server, alice)[0]['sm_unacked'] == 0


# --- resumption --------------------------------------------------------------

def sessions_of(server, jid):
    import json
    r = server.ctl('sessions', '--json')
    assert r.returncode == 0, r.stderr
    return [s for s in json.loads(r.stdout) if s['jid'].startswith(jid + '/')]


def wait_for(cond, timeout=10.0, what='condition'):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError('timed out waiting for %s' % what)


def wait_state(server, jid, state, timeout=10.0):
    return wait_for(lambda: [s for s in sessions_of(server, jid)
                             if s['sm'] == state],
                    timeout, '%s session of %s' % (state, jid))


def test_resume_after_connection_closed(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice, resource='phone', roster=True)
    b = im(bob, roster=True)
    subscribe_both(a, b)
    a.settle()
    b.settle()
    sid = enable(a).get('id')
    b.message(alice, 'before-1')
    b.message(alice, 'before-2')
    messages(a, 2)
    ack(a, 1)                      # the client saw only the first
    a.sync()
    h = 1
    a.raw.close()                  # the connection dies
    wait_state(server, alice, 'waiting')
    # Meanwhile: the session is routable and its presence stands.
    b.message(alice + '/phone', 'during')
    b.absent(is_presence(frm=alice + '/phone', ptype='unavailable'), 0.3)
    raw, el = resume(server, alice, sid, h)
    try:
        assert el.tag == q(NS_SM, 'resumed'), tostr(el)
        assert el.get('previd') == sid
        # h: what the server handled of ours (enable came after bind and
        # presence; one ping).
        assert int(el.get('h')) == 1, tostr(el)
        c = IMClient(raw, alice + '/phone')
        got = messages(c, 2)
        assert bodies(got) == ['before-2', 'during'], [tostr(m) for m in got]
        # Sent again: a XEP-0203 delay, stamped by the server.
        d = got[0].find(q(NS_DELAY, 'delay'))
        assert d is not None and d.get('from') == DOMAIN, tostr(got[0])
        assert got[0].find(q(NS_SID, 'stanza-id')) is not None
        # Counting goes on from the client's h: 'before-2', the ping's
        # result and 'during' came again.
        assert received(c) == 4
        c.sync()
        ack(c)
        request(c)              # the ack has been read
        assert sessions_of(server, alice)[0]['sm_unacked'] == 0
        b.message(alice + '/phone', 'after')
        assert bodies(messages(c, 1)) == ['after']
    finally:
        raw.close()


def test_resume_while_old_connection_is_silently_dead(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    sid = enable(a).get('id')
    b.message(alice, 'unseen')
    b.sync()
    # The old TCP connection is left open and unread: the server has not
    # noticed anything when the client comes back on a new one.
    raw, el = resume(server, alice, sid, 0)
    try:
        assert el.tag == q(NS_SM, 'resumed'), tostr(el)
        c = IMClient(raw, a.full)
        assert bodies(messages(c, 1)) == ['unseen']
        # The old connection is closed with <conflict/>.
        a.expect_stream_error('conflict')
        c.sync()
    finally:
        raw.close()


def test_resume_with_another_users_id(im, server):
    alice, mallory = fresh_users(server, 2)
    a = im(alice)
    sid = enable(a).get('id')
    raw, el = resume(server, mallory, sid, 0)
    try:
        assert el.tag == q(NS_SM, 'failed'), tostr(el)
        assert failed_condition(el) == 'item-not-found'
        # Not resumed, not ended: the stream can still bind.
        raw.bind('own')
    finally:
        raw.close()
    a.sync()


def test_resume_unknown_id(server):
    (alice,) = fresh_users(server, 1)
    raw, el = resume(server, alice, 'AAAAAAAAAAAAAAAAAAAAAA', 0)
    try:
        assert el.tag == q(NS_SM, 'failed'), tostr(el)
        assert failed_condition(el) == 'item-not-found'
    finally:
        raw.close()


def test_resume_without_resumption_enabled(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    enable(a, resume=False)
    a.raw.close()
    # Without resume='true' the session ends with its connection.
    wait_for(lambda: not sessions_of(server, alice), what='session end')


def test_resume_count_too_high(im, server):
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    sid = enable(a).get('id')
    b.message(alice, 'one')
    messages(a, 1)
    a.raw.close()
    wait_state(server, alice, 'waiting')
    raw, el = resume(server, alice, sid, 5)
    try:
        assert el.tag == q(NS_STREAM, 'error'), tostr(el)
        app = el.find(q(NS_SM, 'handled-count-too-high'))
        assert app is not None and app.get('h') == '5' and \
            app.get('max') == '1', tostr(el)
        assert el.find(q(NS_STREAM_ERR, 'undefined-condition')) is not None
    finally:
        raw.close()
    # The waiting session was not touched: it can still be resumed.
    raw, el = resume(server, alice, sid, 1)
    try:
        assert el.tag == q(NS_SM, 'resumed'), tostr(el)
    finally:
        raw.close()


def test_closed_stream_is_not_resumable(im, server):
    """</stream:stream> ends the session (XEP-0198 §5): nothing waits and
    what was not acknowledged goes to offline storage at once."""
    alice, bob = fresh_users(server, 2)
    a = im(alice)
    b = im(bob)
    sid = enable(a).get('id')
    b.message(alice, 'unacked')
    messages(a, 1)
    a.close_stream()
    wait_for(lambda: not sessions_of(server, alice), what='session end')
    raw, el = resume(server, alice, sid, 0)
    try:
        assert el.tag == q(NS_SM, 'failed'), tostr(el)
        assert failed_condition(el) == 'item-not-found'
    finally:
        raw.close()
    again = im(alice, presence=False)
    again.presence()
    m = again.wait(is_message(body='unacked'))
    assert m.find(q(NS_SID, 'stanza-id')) is not None


# --- sessions that are not resumed -------------------------------------------

@pytest.fixture
def short(server_factory):
    return server_factory(limits={'resume-timeout': '2s',
                                  'sm-ack-seconds': '0'})


def test_timeout_sends_unacked_messages_to_offline_storage(short):
    from im_helpers import IMFactory
    f = IMFactory(short)
    try:
        alice, bob = fresh_users(short, 2)
        a = f(alice, resource='phone', roster=True)
        b = f(bob, roster=True)
        subscribe_both(a, b)
        a.settle()
        b.settle()
        sid = enable(a).get('id')
        b.message(alice, 'lost-1', mid='m1')
        b.message(alice + '/phone', 'lost-2', mid='m2')
        messages(a, 2)
        a.raw.close()
        wait_state(short, alice, 'waiting')
        b.absent(is_presence(frm=alice + '/phone'), 1.0)
        # The contact sees it go when the wait ends, not before.
        b.wait(is_presence(frm=alice + '/phone', ptype='unavailable'),
               timeout=6)
        raw, el = resume(short, alice, sid, 0)
        raw.close()
        assert el.tag == q(NS_SM, 'failed') and \
            failed_condition(el) == 'item-not-found', tostr(el)
        again = f(alice, presence=False)
        again.presence()
        got = [again.wait(is_message(body=x)) for x in ('lost-1', 'lost-2')]
        for m in got:
            # Stored offline with the archive id it had (no new one):
            # a client that also pages the archive sees one message.
            sids = m.findall(q(NS_SID, 'stanza-id'))
            assert len(sids) == 1, tostr(m)
            assert m.find(q(NS_DELAY, 'delay')) is not None
        again.absent(is_message(body='lost-1'), 0.3)
    finally:
        f.close_all()


def test_timeout_sends_unacked_messages_to_other_resource(short):
    from im_helpers import IMFactory
    f = IMFactory(short)
    try:
        alice, bob = fresh_users(short, 2)
        a = f(alice, resource='phone', priority=5)
        desk = f(alice, resource='desk', priority=1)
        b = f(bob)
        enable(a)
        b.message(alice, 'to-best')          # only the phone (priority)
        messages(a, 1)
        desk.absent(is_message(body='to-best'), 0.2)
        a.raw.close()
        m = desk.wait(is_message(body='to-best'), timeout=8)
        assert m.find(q(NS_SID, 'stanza-id')) is not None
    finally:
        f.close_all()


def test_timeout_answers_unacked_requests_with_errors(short):
    from im_helpers import IMFactory
    f = IMFactory(short)
    try:
        alice, bob = fresh_users(short, 2)
        a = f(alice, resource='phone', roster=True)
        b = f(bob, roster=True)
        subscribe_both(a, b)
        a.settle()
        b.settle()
        enable(a)
        a.raw.close()
        wait_state(short, alice, 'waiting')
        b.send("<iq type='get' id='v1' to='%s/phone'>"
               "<query xmlns='jabber:iq:version'/></iq>" % alice)
        el = b.wait(is_iq('v1'), timeout=8)
        assert el.get('type') == 'error', tostr(el)
        assert el.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}'
                       'service-unavailable') is not None, tostr(el)
    finally:
        f.close_all()


def test_silent_client_is_pinged_then_waits(server_factory):
    """A connection that stops answering (no FIN) is found dead by the
    server's ping; the session waits for its client rather than ending."""
    srv = server_factory(limits={'resume-timeout': '60s',
                                 'ping-interval': '1s',
                                 'ping-timeout': '1s'})
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        (alice,) = fresh_users(srv, 1)
        a = f(alice)
        sid = enable(a).get('id')
        wait_state(srv, alice, 'waiting', timeout=15)
        log = srv.stderr_text()
        assert 'did not answer a ping' in log, log[-2000:]
        assert 'waiting 60 s for the client to resume' in log
        # The old connection was closed with <connection-timeout/>.
        ping = a.wait(is_iq(itype='get'))
        a.expect_stream_error('connection-timeout')
        # The client had not acknowledged the ping: it comes again.
        raw, el = resume(srv, alice, sid, received(a) - 1)
        try:
            assert el.tag == q(NS_SM, 'resumed'), tostr(el)
            c = IMClient(raw, a.full)
            again = c.wait(is_iq(itype='get'))
            assert again.get('id') == ping.get('id'), tostr(again)
            c.answer(again)
            c.sync()
        finally:
            raw.close()
    finally:
        f.close_all()


def test_unacked_queue_is_bounded(server_factory):
    srv = server_factory(limits={'sm-queue': '16K', 'sm-ack-stanzas': '0',
                                 'sm-ack-seconds': '0'})
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        alice, bob = fresh_users(srv, 2)
        a = f(alice)
        b = f(bob)
        enable(a)
        sent = ['x' * 1000 + str(i) for i in range(40)]
        for body in sent:
            b.message(alice, body)
        a.expect_stream_error('policy-violation')
        assert 'limits { sm-queue }' in srv.stderr_text()
        # Nothing is lost: what was unacked went to offline storage, and
        # so did what came after the session ended.
        again = f(alice, presence=False)
        again.presence()
        got = [again.wait(is_message()) for _ in range(40)]
        assert sorted(bodies(got)) == sorted(sent)
    finally:
        f.close_all()


def test_waiting_session_counts_toward_sessions_per_user(server_factory):
    """A session waiting to be resumed is still one of the user's
    sessions (limits { sessions-per-user }): a new resource is refused
    with <resource-constraint/> until the wait ends; resuming it or
    binding its own resource again is not a new session."""
    srv = server_factory(limits={'sessions-per-user': 1,
                                 'resume-timeout': '60s'})
    from im_helpers import IMFactory
    f = IMFactory(srv)
    try:
        (alice,) = fresh_users(srv, 1)
        a = f(alice, resource='phone')
        sid = enable(a).get('id')
        a.raw.close()
        wait_state(srv, alice, 'waiting')
        c = srv.login(alice, bind=False)
        try:
            c.send("<iq type='set' id='second'><bind xmlns='%s'><resource>"
                   "laptop</resource></bind></iq>" % NS_BIND)
            el = c.expect(q(NS_CLIENT, 'iq'))
            assert el.get('type') == 'error', tostr(el)
            assert el.find('.//{urn:ietf:params:xml:ns:xmpp-stanzas}'
                           'resource-constraint') is not None, tostr(el)
        finally:
            c.close()
        raw, el = resume(srv, alice, sid, 0)
        try:
            assert el.tag == q(NS_SM, 'resumed'), tostr(el)
        finally:
            raw.close()
    finally:
        f.close_all()
