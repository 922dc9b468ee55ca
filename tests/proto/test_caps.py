"""XEP-0115 entity capabilities of clients, resolved once for the whole
server (mod_caps.c): a ver announced in presence is asked of one session
with a disco#info on node#ver, verified against its hash and cached; other
sessions presenting it are not asked; a forged answer, an error or no
answer (caps-timeout, 3 s here) moves on to the next session presenting
it, at most three times; two sessions presenting a new ver at once cause
one query; a session is asked one query at a time; IQ results with our id
prefix that are not the answer awaited pass; and the module switched off
and on by a reload.

What a session's verified caps are is not visible on the wire yet (PEP
will filter with them): the daemon's log says when a ver is verified
("caps: ver V verified from JID, N features") or refused, and the
queries themselves are checked exactly."""

import os
import time
import xml.etree.ElementTree as ET

import pytest

from im_helpers import (DOMAIN, NS_CAPS, NS_DISCO_INFO, IMFactory, caps_ver,
                        fresh_users, im)  # noqa: F401
from xmpp_raw import NS_CLIENT, q, tostr

CAPS_TIMEOUT = 3
SERVER_OPTIONS = {'limits': {'caps-timeout': '%ds' % CAPS_TIMEOUT}}
NODE = 'https://client.example'


@pytest.fixture(autouse=True)
def still_serving(request):
    yield
    if 'server' in request.fixturenames:
        request.getfixturevalue('server').assert_serves()


class Features:
    """A disco#info answer of a made-up client: the query's inner XML
    and its XEP-0115 ver."""

    def __init__(self, *extra):
        tag = os.urandom(4).hex()
        self.features = ['http://jabber.org/protocol/caps',
                         NS_DISCO_INFO,
                         'urn:xmpp:avatar:metadata+notify',
                         'urn:example:%s' % tag] + list(extra)
        self.inner = ("<identity category='client' type='pc' "
                      "name='Example %s'/>" % tag +
                      ''.join("<feature var='%s'/>" % f
                              for f in self.features))
        el = ET.fromstring("<query xmlns='%s'>%s</query>"
                           % (NS_DISCO_INFO, self.inner))
        self.ver = caps_ver(el)


def present(c, ver, node=NODE, hash_name='sha-1'):
    c.presence(extra="<c xmlns='%s' hash='%s' node='%s' ver='%s'/>"
               % (NS_CAPS, hash_name, node, ver))


def is_caps_query(ver=None):
    def pred(el):
        if el.tag != q(NS_CLIENT, 'iq') or el.get('type') != 'get':
            return False
        query = el.find(q(NS_DISCO_INFO, 'query'))
        if query is None:
            return False
        return ver is None or query.get('node', '').endswith('#' + ver)
    pred.what = 'disco#info query for %s' % (ver or 'any ver')
    return pred


def expect_query(c, ver, node=NODE, timeout=None):
    """The server's disco#info for node#ver, checked exactly."""
    el = c.wait(is_caps_query(ver), timeout)
    assert el.get('from') == DOMAIN, tostr(el)
    assert el.get('to') == c.full, tostr(el)
    assert el.get('id', '').startswith('caps-'), tostr(el)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    assert query.get('node') == '%s#%s' % (node, ver), tostr(el)
    assert len(list(query)) == 0, tostr(el)
    return el


def expect_query_one_of(clients, ver, timeout=5):
    """(client, query) of the one of clients that is asked for ver (the
    server reads their streams in no particular order)."""
    deadline = time.monotonic() + timeout
    while True:
        for c in clients:
            try:
                return c, expect_query(c, ver, timeout=0.05)
            except AssertionError:
                if time.monotonic() >= deadline:
                    raise


def answer(c, query_el, f, node=NODE):
    c.send("<iq type='result' id='%s' to='%s'><query xmlns='%s' "
           "node='%s#%s'>%s</query></iq>"
           % (query_el.get('id'), DOMAIN, NS_DISCO_INFO, node,
              query_el.find(q(NS_DISCO_INFO, 'query')).get('node')
              .split('#', 1)[1], f.inner))


def answer_error(c, query_el):
    c.send("<iq type='error' id='%s' to='%s'><error type='cancel'>"
           "<service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'"
           "/></error></iq>" % (query_el.get('id'), DOMAIN))


def no_query(c, duration=0.1):
    c.absent(is_caps_query(), duration)


def log_count(server, text):
    return server.stderr_text().count(text)


def wait_log(server, text, count=1, timeout=5):
    deadline = time.monotonic() + timeout
    while log_count(server, text) < count:
        assert time.monotonic() < deadline, (
            'no %r in the log\n%s' % (text, server.stderr_tail()))
        time.sleep(0.02)


def verified_line(ver, c):
    return 'caps: ver %s verified from %s, ' % (ver, c.full)


def mismatch_line(ver, c):
    return '%s: caps: disco#info does not hash to ver %s' % (c.full, ver)


def sessions(server, im, n):
    return [im(j) for j in fresh_users(server, n)]


# --- (1), (2) ----------------------------------------------------------------

def test_resolved_once_then_cached(server, im):
    """A presents V: exactly one disco#info to A with node#V; its answer
    verifies (logged with the number of distinct features); B presenting
    V later, and A again, are not asked."""
    a, b = sessions(server, im, 2)
    f = Features()
    present(a, f.ver)
    answer(a, expect_query(a, f.ver), f)
    wait_log(server, verified_line(f.ver, a) + '%d features'
             % len(f.features))
    no_query(a)
    present(b, f.ver)
    present(a, f.ver)
    no_query(b)
    no_query(a)
    assert log_count(server, 'caps: ver %s verified' % f.ver) == 1


def test_ill_formed_answer_not_trusted(server, im):
    """A query listing a feature twice is
    ill-formed (§5.4) and not trusted."""
    [a] = sessions(server, im, 1)
    f = Features()
    f.inner += "<feature var='%s'/>" % f.features[0]
    present(a, f.ver)
    answer(a, expect_query(a, f.ver), f)
    wait_log(server, mismatch_line(f.ver, a))
    assert 'caps: ver %s verified' % f.ver not in server.stderr_text()


# --- (3) ---------------------------------------------------------------------

def test_forged_answer_not_trusted_next_session_asked(server, im):
    """A answers with features that do not hash to V: logged with A's
    JID, not cached; B, which presents V too, is asked next and its
    correct answer verifies; C is then not asked."""
    a, b, c = sessions(server, im, 3)
    f, forged = Features(), Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    present(b, f.ver)
    no_query(b)
    answer(a, qa, forged)
    wait_log(server, mismatch_line(f.ver, a))
    answer(b, expect_query(b, f.ver), f)
    wait_log(server, verified_line(f.ver, b))
    assert 'caps: ver %s verified from %s' % (f.ver, a.full) not in \
        server.stderr_text()
    present(c, f.ver)
    no_query(c)
    no_query(a)


def test_given_up_after_three_failures_until_presented_again(server, im):
    """Three wrong answers for V (forged, error, forged): the fourth
    session waiting is not asked; a session presenting V later starts
    again and is asked."""
    a, b, c, d, e = sessions(server, im, 5)
    f, forged = Features(), Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    for s in (b, c, d):
        present(s, f.ver)
    for s in (b, c, d):
        s.sync()            # their presence is in before A answers
    answer(a, qa, forged)
    waiting = [b, c, d]
    x, qx = expect_query_one_of(waiting, f.ver)
    answer_error(x, qx)
    waiting.remove(x)
    y, qy = expect_query_one_of(waiting, f.ver)
    answer(y, qy, forged)
    waiting.remove(y)
    wait_log(server, 'caps: ver %s given up after 3 failed queries' % f.ver)
    [d] = waiting
    no_query(d, 0.3)
    present(e, f.ver)
    answer(e, expect_query(e, f.ver), f)
    wait_log(server, verified_line(f.ver, e))
    no_query(d)


# --- (4) ---------------------------------------------------------------------

def test_same_new_ver_at_once_one_query(server, im):
    """Two sessions presenting the same new ver at once: one query, to
    one of them; the answer serves both (a third is not asked)."""
    a, b, c = sessions(server, im, 3)
    f = Features()
    present(a, f.ver)
    present(b, f.ver)
    a.barrier()
    asked = [s for s in (a, b)
             if any(is_caps_query(f.ver)(el) for el in s.raw.pending)]
    assert len(asked) == 1, [s.queued() for s in (a, b)]
    [x] = asked
    other = b if x is a else a
    answer(x, expect_query(x, f.ver), f)
    wait_log(server, verified_line(f.ver, x))
    no_query(other)
    present(c, f.ver)
    no_query(c)


# --- (5) ---------------------------------------------------------------------

def test_error_reply_next_session_asked(server, im):
    [a, b] = sessions(server, im, 2)
    f = Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    present(b, f.ver)
    no_query(b)
    answer_error(a, qa)
    answer(b, expect_query(b, f.ver), f)
    wait_log(server, verified_line(f.ver, b))


def test_no_answer_next_session_asked_after_timeout(server, im):
    """A never answers: after caps-timeout B is asked (not before)."""
    [a, b] = sessions(server, im, 2)
    f = Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    t0 = time.monotonic()
    present(b, f.ver)
    no_query(b, 0.5)
    qb = expect_query(b, f.ver, timeout=CAPS_TIMEOUT + 5)
    assert time.monotonic() - t0 >= CAPS_TIMEOUT - 0.6
    answer(b, qb, f)
    wait_log(server, verified_line(f.ver, b))
    # A's late answer is no longer awaited: it passes (to the router,
    # which drops results to the server) and changes nothing
    answer(a, qa, f)
    no_query(a)
    assert log_count(server, 'caps: ver %s verified' % f.ver) == 1


# --- bounds and details ------------------------------------------------------

def test_one_query_per_session_at_a_time(server, im):
    """A presents V1 then V2: V2 is asked only once V1's query is
    answered."""
    [a] = sessions(server, im, 1)
    f1, f2 = Features(), Features()
    present(a, f1.ver)
    q1 = expect_query(a, f1.ver)
    present(a, f2.ver)
    a.absent(is_caps_query(f2.ver), 0.2)
    answer(a, q1, f1)
    wait_log(server, verified_line(f1.ver, a))
    answer(a, expect_query(a, f2.ver), f2)
    wait_log(server, verified_line(f2.ver, a))


def test_other_results_pass(server, im):
    """A result with the caps- prefix but another id is not taken for
    the answer: the query is still awaited and its real answer counts."""
    [a] = sessions(server, im, 1)
    f = Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    a.send("<iq type='result' id='caps-0' to='%s'><query xmlns='%s'/></iq>"
           % (DOMAIN, NS_DISCO_INFO))
    a.sync()
    assert mismatch_line(f.ver, a) not in server.stderr_text()
    answer(a, qa, f)
    wait_log(server, verified_line(f.ver, a))


@pytest.mark.parametrize('attrs', [
    "hash='md5' node='%s' ver='%s'",
    "node='%s' ver='%s'",               # legacy caps, no hash
    "hash='sha-1' ver='%s%s'",          # no node ('%s' swallowed: '')
    "hash='sha-1' node='%s' ver='short%s'",
])
def test_unusable_caps_not_queried(server, im, attrs):
    [a] = sessions(server, im, 1)
    f = Features()
    if attrs.startswith("hash='sha-1' ver="):
        c = "<c xmlns='%s' %s/>" % (NS_CAPS, attrs % ('', f.ver))
    elif 'short' in attrs:
        c = "<c xmlns='%s' %s/>" % (NS_CAPS, attrs % (NODE, ''))
    else:
        c = "<c xmlns='%s' %s/>" % (NS_CAPS, attrs % (NODE, f.ver))
    a.presence(extra=c)
    no_query(a, 0.2)


def test_unavailable_before_answer(server, im):
    """A goes unavailable with the query out: its answer still verifies
    the ver for everyone (B later is not asked)."""
    [a, b] = sessions(server, im, 2)
    f = Features()
    present(a, f.ver)
    qa = expect_query(a, f.ver)
    a.presence(ptype='unavailable')
    answer(a, qa, f)
    wait_log(server, verified_line(f.ver, a))
    present(b, f.ver)
    no_query(b)


def test_session_end_asks_next(server, im):
    """The session asked goes away without answering: the next one is
    asked at once, not after the timeout."""
    [a, b] = sessions(server, im, 2)
    f = Features()
    present(a, f.ver)
    expect_query(a, f.ver)
    present(b, f.ver)
    no_query(b)
    a.close_stream()
    answer(b, expect_query(b, f.ver, timeout=CAPS_TIMEOUT - 0.5), f)
    wait_log(server, verified_line(f.ver, b))


# --- reload ------------------------------------------------------------------

def reload(srv, extra):
    before = log_count(srv, 'configuration and certificates reloaded')
    srv.extra = extra
    srv.conf.write_text(srv.config_text())
    r = srv.ctl('reload')
    assert r.returncode == 0, r.stderr
    wait_log(srv, 'configuration and certificates reloaded', before + 1)


def test_switched_off_and_on(server_factory):
    """module caps off: no queries; on again: the sessions online that
    present caps are resolved; off with caps held leaves the daemon
    clean (the fixture checks its exit)."""
    srv = server_factory()
    im = IMFactory(srv)
    try:
        [a, b] = [im(j) for j in fresh_users(srv, 2)]
        f, g = Features(), Features()
        present(a, f.ver)
        answer(a, expect_query(a, f.ver), f)
        wait_log(srv, verified_line(f.ver, a))
        present(b, g.ver)
        expect_query(b, g.ver)      # left unanswered
        reload(srv, 'module caps off')
        assert 'module caps switched off' in srv.stderr_text()
        present(a, g.ver)
        no_query(a, 0.2)
        reload(srv, '')
        # both are asked again: the cache went with the module
        answer(a, expect_query(a, g.ver), g)
        wait_log(srv, verified_line(g.ver, a))
        no_query(b)
        present(b, f.ver)
        answer(b, expect_query(b, f.ver), f)
        wait_log(srv, verified_line(f.ver, b))
    finally:
        im.close_all()
