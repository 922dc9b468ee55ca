"""Service discovery and the small server queries beyond test_im_disco.py:
caps before authentication and on unknown or stale nodes, disco of other
users' bare JIDs (XEP-0030 §8), IQ types the modules do not serve, pings
to bare JIDs and the keepalive's notion of "alive", version and time of
bare JIDs, XEP-0157 forms with several addresses or none, and last
activity: what is stored (lastlog), when (the last session only), the
status text, persistence across a restart, and the error cases."""

import os
import sqlite3
import time

import pytest

from im_helpers import (DOMAIN, NS_CAPS, NS_DISCO_INFO, NS_DISCO_ITEMS,
                        NS_LAST, NS_PING, NS_TIME, NS_VERSION, NS_XDATA,
                        IMFactory, caps_ver, form_fields, fresh_users,
                        im, is_presence, text_of)  # noqa: F401
from xmpp_raw import (NS_CLIENT, NS_STREAM, assert_stanza_error, q, tostr)

CAPS_NODE = 'https://github.com/xmppd/xmppd'
SERVERINFO = 'http://jabber.org/network/serverinfo'


@pytest.fixture(autouse=True)
def still_serving(request):
    yield
    if 'server' in request.fixturenames:
        request.getfixturevalue('server').assert_serves()


def info_query(c, to=DOMAIN, node=None):
    attr = '' if node is None else " node='%s'" % node
    return c.iq('get', "<query xmlns='%s'%s/>" % (NS_DISCO_INFO, attr), to=to)


def result_query(el, ns=NS_DISCO_INFO):
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(ns, 'query'))
    assert query is not None, tostr(el)
    return query


def grant_presence(owner, contact):
    """contact gets a 'from' subscription in owner's roster (may see
    owner's presence): owner (available) pre-approves (RFC 6121 §3.4),
    contact asks and is approved at once, and then receives owner's
    presence (§3.1.5).  Neither has asked for the roster, so there are
    no pushes, and the 'subscribed' is not delivered (§3.1.6: only to
    interested resources)."""
    owner.presence(to=contact.bare, ptype='subscribed')
    owner.sync()
    contact.presence(to=owner.bare, ptype='subscribe')
    contact.wait(is_presence(frm=owner.full, ptype=None))
    contact.settle()
    owner.settle()


# --- caps --------------------------------------------------------------------

def test_caps_before_authentication_is_the_same(server, im):
    """The <c/> is offered after TLS too (harmless, XEP-0115 §6.3) with
    the same ver as after authentication."""
    c = server.client()
    try:
        c.open_stream()
        c.starttls()
        features = c.open_stream()
    finally:
        c.close()
    caps = features.find(q(NS_CAPS, 'c'))
    assert caps is not None, tostr(features)
    assert caps.get('node') == CAPS_NODE and caps.get('hash') == 'sha-1'
    [a] = fresh_users(server, 1)
    query = result_query(info_query(im(a, presence=False)))
    assert caps.get('ver') == caps_ver(query), tostr(query)


def test_unknown_nodes(server, im):
    """XEP-0030 §7: item-not-found for a node that does not exist: a
    stale caps ver, the bare caps node, anything else; the same for
    disco#items on the server."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    ver = caps_ver(result_query(info_query(c)))
    for node in (CAPS_NODE + '#AAAAAAAAAAAAAAAAAAAAAAAAAAA=', CAPS_NODE,
                 CAPS_NODE + '#' + ver + 'x', 'http://example.org/x'):
        el = info_query(c, node=node)
        assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel',
                            frm=DOMAIN)
        assert el.find(q(NS_DISCO_INFO, 'query')).get('node') == node
    query = result_query(info_query(c, node=CAPS_NODE + '#' + ver))
    assert query.get('node') == CAPS_NODE + '#' + ver
    el = c.iq('get', "<query xmlns='%s' node='x'/>" % NS_DISCO_ITEMS,
              to=DOMAIN)
    assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')


def test_disco_set_is_not_served(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    for ns in (NS_DISCO_INFO, NS_DISCO_ITEMS):
        c.iq_error('set', "<query xmlns='%s'/>" % ns, 'service-unavailable',
                   'cancel', to=DOMAIN)


# --- other users' bare JIDs (XEP-0030 §8) ------------------------------------

def test_bare_jid_info_needs_a_subscription(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    cb = im(b)
    # Not subscribed, and an account that does not exist: the same.
    for to in (b, 'nobody-%s@%s' % (os.urandom(3).hex(), DOMAIN)):
        el = info_query(ca, to=to)
        assert_stanza_error(el, 'iq', 'service-unavailable',
                            etype='cancel', frm=to)
    # Items: an empty set for anyone, existing or not (rule 2).
    for to in (b, 'nobody@' + DOMAIN):
        el = ca.iq('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=to)
        query = result_query(el, NS_DISCO_ITEMS)
        assert len(query) == 0 and el.get('from') == to, tostr(el)
    # b grants a 'from' subscription: a may now ask.
    ca.presence()
    ca.settle()
    grant_presence(cb, ca)
    el = info_query(ca, to=b)
    query = result_query(el)
    assert el.get('from') == b, tostr(el)
    ids = [(i.get('category'), i.get('type'))
           for i in query.findall(q(NS_DISCO_INFO, 'identity'))]
    assert ids == [('account', 'registered'), ('pubsub', 'pep')], tostr(
        query)
    # ... but the subscription is one-way: b may not ask about a.
    el = info_query(cb, to=a)
    assert_stanza_error(el, 'iq', 'service-unavailable', etype='cancel')
    # disco#info on a node of an account is not answered (XEP-0060
    # §5.3 node metadata is not implemented).
    el = info_query(ca, to=b, node='urn:x')
    assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')


def test_own_account_without_to(server, im):
    """RFC 6120 §10.3.3: no 'to' is the account itself."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq('get', "<query xmlns='%s'/>" % NS_DISCO_INFO)
    query = result_query(el)
    assert query.find(q(NS_DISCO_INFO, 'identity')).get(
        'category') == 'account', tostr(el)
    assert query.find(q(NS_XDATA, 'x')) is None, tostr(el)


# --- XEP-0199 ----------------------------------------------------------------

def test_ping_bare_jids(server, im):
    """§4.2: own bare JID or no 'to' is the server; §4.4/§6: another
    account's bare JID answers only for those who may see its presence,
    like a missing account otherwise."""
    a, b = fresh_users(server, 2)
    ca = im(a)
    cb = im(b)
    ping = "<ping xmlns='%s'/>" % NS_PING
    el = ca.iq_ok('get', ping, to=a)
    assert el.get('from') == a and len(el) == 0, tostr(el)
    el = ca.iq_ok('get', ping)
    assert len(el) == 0, tostr(el)
    for to in (b, 'nobody@' + DOMAIN):
        ca.iq_error('get', ping, 'service-unavailable', 'cancel', to=to,
                    frm=to)
    grant_presence(cb, ca)
    el = ca.iq_ok('get', ping, to=b)
    assert el.get('from') == b and len(el) == 0, tostr(el)
    ca.iq_error('set', ping, 'service-unavailable', 'cancel', to=DOMAIN)


def watch(client, seconds, answer=None, whitespace=None):
    """Read client's stream for seconds; answer pings (None: not at all,
    'result' or 'error'); send a space every whitespace seconds.  Returns
    (pings seen, stream error element or None)."""
    pings, error = [], None
    t0 = last_ws = time.monotonic()
    while time.monotonic() - t0 < seconds:
        if whitespace and time.monotonic() - last_ws >= whitespace:
            client.send(' ')
            last_ws = time.monotonic()
        el = client.poll_element(0.05)
        if el is not None and el.tag == q(NS_CLIENT, 'iq') and \
                el.find(q(NS_PING, 'ping')) is not None:
            pings.append(el)
            if answer == 'result':
                client.send("<iq type='result' id='%s' to='%s'/>"
                            % (el.get('id'), DOMAIN))
            elif answer == 'error':
                client.send(
                    "<iq type='error' id='%s' to='%s'><ping xmlns='%s'/>"
                    "<error type='cancel'><service-unavailable xmlns="
                    "'urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>"
                    % (el.get('id'), DOMAIN, NS_PING))
        elif el is not None and el.tag == q(NS_STREAM, 'error'):
            error = el
        elif el is not None and el.tag != q(NS_CLIENT, 'presence'):
            raise AssertionError('unexpected %s' % tostr(el))
        if client.stream_ended or client.eof:
            break
    return pings, error


def test_keepalive_what_counts_as_alive(server_factory):
    """An error answer is an answer (XEP-0199 §4.1: a client without ping
    returns <service-unavailable/>); whitespace keeps a connection from
    ever being pinged; ids are unique."""
    srv = server_factory(limits={'ping-interval': '2s', 'ping-timeout': '2s'})
    erring = srv.login('alice@localhost', resource='erring')
    spacey = None
    try:
        pings, error = watch(erring, 7.0, answer='error')
        assert error is None and not erring.stream_ended, tostr(error)
        assert len(pings) >= 2, len(pings)
        ids = [p.get('id') for p in pings]
        assert len(set(ids)) == len(ids), ids
        assert all(p.get('to') == erring.jid and p.get('from') == DOMAIN
                   for p in pings)
        spacey = srv.login('bob@localhost', resource='spacey')
        pings, error = watch(spacey, 3.5, whitespace=0.5)
        assert pings == [] and error is None, [tostr(p) for p in pings]
    finally:
        erring.close()
        if spacey:
            spacey.close()


def test_keepalive_off(server_factory):
    srv = server_factory(limits={'ping-interval': '0', 'ping-timeout': '1s'})
    c = srv.login('alice@localhost')
    try:
        pings, error = watch(c, 3.5)
        assert pings == [] and error is None
        assert not (c.stream_ended or c.eof)
    finally:
        c.close()


# --- XEP-0092 / XEP-0202 -----------------------------------------------------

def test_version_and_time_only_for_the_server(server, im):
    """The server answers for itself, not for accounts (a client's own
    version is its full JID's to give)."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    for payload in ("<query xmlns='%s'/>" % NS_VERSION,
                    "<time xmlns='%s'/>" % NS_TIME):
        c.iq_error('get', payload, 'service-unavailable', 'cancel', to=a)
        c.iq_error('set', payload, 'service-unavailable', 'cancel',
                   to=DOMAIN)


def test_time_zone_offset(server, im):
    """tzo is the daemon's local offset (it runs in our environment);
    utc carries milliseconds."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<time xmlns='%s'/>" % NS_TIME, to=DOMAIN)
    t = el.find(q(NS_TIME, 'time'))
    off = time.localtime().tm_gmtoff
    want = '%s%02d:%02d' % ('-' if off < 0 else '+', abs(off) // 3600,
                            abs(off) % 3600 // 60)
    assert text_of(t, NS_TIME, 'tzo') == want, tostr(el)
    utc = text_of(t, NS_TIME, 'utc')
    assert len(utc) == 24 and utc[19] == '.' and utc.endswith('Z'), utc


def test_version_full_os_is_uname(server_factory):
    srv = server_factory(extra='software-version full')
    f = IMFactory(srv)
    try:
        c = f('alice@localhost', presence=False)
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_VERSION, to=DOMAIN)
        query = el.find(q(NS_VERSION, 'query'))
        u = os.uname()
        assert text_of(query, NS_VERSION, 'os') == '%s %s' % (
            u.sysname, u.release), tostr(el)
        assert text_of(query, NS_VERSION, 'version') == '0.1.0', tostr(el)
    finally:
        f.close_all()


# --- XEP-0157 ----------------------------------------------------------------

def serverinfo(srv):
    f = IMFactory(srv)
    try:
        c = f('alice@localhost', presence=False)
        query = result_query(info_query(c))
        forms = query.findall(q(NS_XDATA, 'x'))
        return query, forms
    finally:
        f.close_all()


def test_contact_addresses_several_and_none(server_factory):
    srv = server_factory(extra='\n'.join([
        'contact support "https://localhost/help"',
        'contact abuse "mailto:abuse@localhost"',
        'contact abuse "xmpp:abuse@localhost"',
        'contact security "mailto:security@localhost"']))
    query, forms = serverinfo(srv)
    assert len(forms) == 1, tostr(query)
    fields = form_fields(forms[0])
    assert fields == {
        'FORM_TYPE': [SERVERINFO],
        'abuse-addresses': ['mailto:abuse@localhost',
                            'xmpp:abuse@localhost'],
        'security-addresses': ['mailto:security@localhost'],
        'support-addresses': ['https://localhost/help'],
    }, fields
    srv.stop()
    none = server_factory()
    query, forms = serverinfo(none)
    assert forms == [], tostr(query)


# --- XEP-0012 ----------------------------------------------------------------

def last_query(c, to=None):
    return c.iq('get', "<query xmlns='%s'/>" % NS_LAST, to=to)


def lastlog_row(srv, jid):
    user, host = jid.split('@')
    db = sqlite3.connect('file:%s?mode=ro' % srv.db, uri=True)
    try:
        return db.execute(
            'SELECT stamp, status FROM lastlog WHERE user_id = (SELECT id'
            ' FROM users WHERE host = ? AND user = ?)',
            (host, user)).fetchone()
    finally:
        db.close()


def wait_row(srv, jid, want=lambda row: row is not None, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        row = lastlog_row(srv, jid)
        if want(row) or time.monotonic() > deadline:
            return row
        time.sleep(0.05)


def test_last_of_self_and_of_missing_accounts(server, im):
    """The owner may ask about the account: never logged out is
    item-not-found; available is 0.  Anyone else without a subscription
    gets forbidden, even for an account that does not exist."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    for to in (a, None):
        el = last_query(c, to)
        assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')
    c.presence()
    c.settle()
    el = last_query(c, a)
    assert result_query(el, NS_LAST).get('seconds') == '0', tostr(el)
    el = last_query(c, 'nobody-%s@%s' % (os.urandom(3).hex(), DOMAIN))
    assert_stanza_error(el, 'iq', 'forbidden', etype='auth')
    c.iq_error('set', "<query xmlns='%s'/>" % NS_LAST, 'service-unavailable',
               'cancel', to=DOMAIN)


def test_last_only_when_the_last_session_ends(server, im):
    """A session that ends while another is bound is no logout; the
    status is that of the last presence, if unavailable."""
    [a] = fresh_users(server, 1)
    watcher = im(a, resource='watcher', presence=False)
    other = im(a, resource='other')
    other.presence(ptype='unavailable', status='not the last')
    other.raw.end_stream()
    other.raw.close()
    watcher.sync()
    time.sleep(0.3)
    assert lastlog_row(server, a) is None
    el = last_query(watcher, a)
    assert_stanza_error(el, 'iq', 'item-not-found', etype='cancel')
    before = int(time.time())
    watcher.raw.end_stream()
    watcher.raw.close()
    row = wait_row(server, a)
    assert row is not None and before - 1 <= row[0] <= time.time() + 1, row
    assert row[1] == '', row       # its last presence was none at all


def test_last_status_is_that_of_the_final_presence(server, im):
    [a] = fresh_users(server, 1)
    # Unavailable with a status, then available again: no status.
    c = im(a)
    c.presence(ptype='unavailable', status='away for now')
    c.presence(status='back')
    c.sync()
    c.raw.end_stream()
    c.raw.close()
    assert wait_row(server, a) == (pytest.approx(time.time(), abs=3), '')
    # Unavailable with a status as the last word.
    c = im(a)
    c.presence(ptype='unavailable', status='Heading <Home> & away')
    c.raw.end_stream()
    c.raw.close()
    row = wait_row(server, a, lambda r: r and r[1] != '')
    assert row[1] == 'Heading <Home> & away', row
    # Read back by the owner from a session without presence.
    q_ = im(a, presence=False)
    el = last_query(q_, a)
    query = result_query(el, NS_LAST)
    assert query.text == 'Heading <Home> & away', tostr(el)
    assert 0 <= int(query.get('seconds')) <= 3, tostr(el)
    # Directed unavailable presence is not the broadcast one.
    q_.presence(ptype='unavailable', status='directed', to='nobody@' + DOMAIN)
    q_.sync()
    q_.raw.end_stream()
    q_.raw.close()
    row = wait_row(server, a, lambda r: r and r[1] == '')
    assert row[1] == '', row


def test_last_persists_across_restart(server_factory):
    srv = server_factory()
    f = IMFactory(srv)
    c = f('alice@localhost')
    c.presence(ptype='unavailable', status='see you')
    c.raw.end_stream()
    c.raw.close()
    assert wait_row(srv, 'alice@localhost', lambda r: r and r[1])[1] == \
        'see you'
    srv.stop()
    time.sleep(1.1)
    srv.start(create_users=False)
    f = IMFactory(srv)
    try:
        c = f('alice@localhost', presence=False)
        el = last_query(c, 'alice@localhost')
        query = result_query(el, NS_LAST)
        assert query.text == 'see you', tostr(el)
        assert int(query.get('seconds')) >= 1, tostr(el)
        el = last_query(c, DOMAIN)       # the uptime restarted
        assert int(result_query(el, NS_LAST).get('seconds')) <= 2
    finally:
        f.close_all()


def test_last_of_subscribed_contact_offline(server, im):
    """A contact with a 'from' subscription may ask (XEP-0012 §3)."""
    a, b = fresh_users(server, 2)
    ca = im(a)
    cb = im(b)
    grant_presence(cb, ca)
    cb.presence(ptype='unavailable', status='gone fishing')
    cb.raw.end_stream()
    cb.raw.close()
    wait_row(server, b, lambda r: r and r[1])
    el = last_query(ca, b)
    query = result_query(el, NS_LAST)
    assert el.get('from') == b and query.text == 'gone fishing', tostr(el)
