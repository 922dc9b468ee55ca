"""Service discovery of the server and of a user's bare JID (XEP-0030),
entity capabilities in stream features checked against the XEP-0115 §5
hash of disco#info, contact addresses (XEP-0157), and the small server
queries: ping both ways (XEP-0199), software version (XEP-0092), entity
time (XEP-0202), last activity of the server and of contacts
(XEP-0012)."""

import calendar
import re
import time
import xml.etree.ElementTree as ET

import pytest

from im_helpers import (NS_CAPS, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_LAST,
                        NS_PING, NS_TIME, NS_VERSION, NS_XDATA, IMFactory,
                        caps_ver, form_fields, fresh_users, login_features,
                        subscribe, text_of)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import (NS_CLIENT, NS_STREAM, NS_STREAM_ERR, assert_stanza_error,
                      q, tostr)

ABUSE = 'mailto:abuse@localhost'
ADMIN = 'xmpp:admin@localhost'
SERVER_OPTIONS = {'extra': 'contact abuse "%s"\ncontact admin "%s"'
                  % (ABUSE, ADMIN)}

# Implemented in the IM core, so advertised by the server (XEP-0030 §3.2).
REQUIRED_FEATURES = [
    NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING, NS_VERSION, NS_TIME, NS_LAST,
    'vcard-temp', 'jabber:iq:private', 'urn:xmpp:blocking', 'msgoffline',
    'urn:xmpp:carbons:2',
    # on the account (XEP-0313 §7) and, for clients that look only here
    # (profanity 0.13), on the server too (test_mam.py)
    'urn:xmpp:mam:2',
]
# Not implemented (yet), so never advertised here; jabber:iq:register
# only with 'registration on' (test_im_register.py).
ABSENT_FEATURES = [
    'urn:xmpp:sm:3',
    'http://jabber.org/protocol/pubsub', 'jabber:iq:register',
]
SERVERINFO = 'http://jabber.org/network/serverinfo'
# A client that does not answer the server's pings (XEP-0199 §4.2) is
# gone: RFC 6120 §4.9.3.4.
PING_TIMEOUT_CONDITION = 'connection-timeout'
UTC_RE = re.compile(r'^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$')
TZO_RE = re.compile(r'^(Z|[+-]\d\d:\d\d)$')


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def disco_info(client, to='localhost', node=None):
    attr = '' if node is None else " node='%s'" % node
    el = client.iq_ok('get', "<query xmlns='%s'%s/>" % (NS_DISCO_INFO, attr),
                      to=to)
    assert el.get('from') == to, tostr(el)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    assert query is not None, tostr(el)
    return query


def features_of(query):
    return [f.get('var') for f in query.findall(q(NS_DISCO_INFO, 'feature'))]


def identities_of(query):
    return [(i.get('category'), i.get('type'))
            for i in query.findall(q(NS_DISCO_INFO, 'identity'))]


# --- disco#info / #items of the server ---------------------------------------

def test_server_identity_and_features(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    query = disco_info(c)
    ids = identities_of(query)
    assert [i for i in ids if i[0] == 'server'] == [('server', 'im')], ids
    assert not [i for i in ids if i[0] == 'pubsub'], ids
    features = features_of(query)
    missing = [f for f in REQUIRED_FEATURES if f not in features]
    assert not missing, 'not advertised: %s (got %s)' % (missing, features)
    wrong = [f for f in features if f in ABSENT_FEATURES or
             f.startswith('http://jabber.org/protocol/pubsub')]
    assert not wrong, 'advertised but not implemented: %s' % wrong
    assert len(features) == len(set(features)), 'duplicates: %s' % features


def test_server_items(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to='localhost')
    query = el.find(q(NS_DISCO_ITEMS, 'query'))
    assert query is not None, tostr(el)
    # the services of the host: the XEP-0045 service by default
    assert [(i.get('jid'), i.get('node'), i.get('name')) for i in
            query.findall(q(NS_DISCO_ITEMS, 'item'))] == [
        ('conference.localhost', None, None)], tostr(el)


def test_contact_addresses_form(server, im):
    """XEP-0157: the serverinfo form (XEP-0128) in disco#info."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    query = disco_info(c)
    forms = [x for x in query.findall(q(NS_XDATA, 'x'))
             if form_fields(x).get('FORM_TYPE') == [SERVERINFO]]
    assert len(forms) == 1, tostr(query)
    x = forms[0]
    assert x.get('type') == 'result', tostr(x)
    ft = [f for f in x.findall(q(NS_XDATA, 'field'))
          if f.get('var') == 'FORM_TYPE'][0]
    assert ft.get('type') == 'hidden', tostr(x)
    fields = {k: v for k, v in form_fields(x).items()
              if v and k != 'FORM_TYPE'}
    assert fields == {'abuse-addresses': [ABUSE],
                      'admin-addresses': [ADMIN]}, fields


def test_bare_jid_info_for_its_owner(server, im):
    """XEP-0030 on the user's bare JID, answered by the server for the
    account: an account/registered identity and PEP's pubsub/pep
    (XEP-0163 §6.1) with its features; disco#items lists no node while
    the account has none."""
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    query = disco_info(c, to=a)
    ids = identities_of(query)
    assert ('account', 'registered') in ids, ids
    assert [i for i in ids if i[:2] == ('pubsub', 'pep')], ids
    assert 'http://jabber.org/protocol/pubsub#publish' in features_of(query)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_ITEMS, to=a)
    assert el.find(q(NS_DISCO_ITEMS, 'query')) is not None, tostr(el)
    assert el.find('.//' + q(NS_DISCO_ITEMS, 'item')) is None, tostr(el)


# --- XEP-0115 ----------------------------------------------------------------

def test_caps_hash_function_on_xep0115_examples():
    """The hash in im_helpers reproduces XEP-0115 §5.2 and §5.3."""
    simple = ET.fromstring(
        "<query xmlns='%s'><identity category='client' name='Exodus 0.9.1' "
        "type='pc'/><feature var='http://jabber.org/protocol/caps'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        "<feature var='http://jabber.org/protocol/muc'/></query>"
        % NS_DISCO_INFO)
    assert caps_ver(simple) == 'QgayPKawpkPSDYmwT/WM94uAlu0='
    complex_ = ET.fromstring(
        "<query xmlns='%s'>"
        "<identity xml:lang='en' category='client' name='Psi 0.11' "
        "type='pc'/>"
        "<identity xml:lang='el' category='client' name='\u03a8 0.11' "
        "type='pc'/>"
        "<feature var='http://jabber.org/protocol/caps'/>"
        "<feature var='http://jabber.org/protocol/disco#info'/>"
        "<feature var='http://jabber.org/protocol/disco#items'/>"
        "<feature var='http://jabber.org/protocol/muc'/>"
        "<x xmlns='jabber:x:data' type='result'>"
        "<field var='FORM_TYPE' type='hidden'>"
        "<value>urn:xmpp:dataforms:softwareinfo</value></field>"
        "<field var='ip_version' type='text-multi'><value>ipv4</value>"
        "<value>ipv6</value></field>"
        "<field var='os'><value>Mac</value></field>"
        "<field var='os_version'><value>10.5.1</value></field>"
        "<field var='software'><value>Psi</value></field>"
        "<field var='software_version'><value>0.11</value></field>"
        "</x></query>" % NS_DISCO_INFO)
    assert caps_ver(complex_) == 'q07IKJEyjvHSyhy//CH0CxmKi8w='


def caps_and_info(server, jid):
    """The <c/> of the post-authentication stream features and the
    server's disco#info asked on the same stream."""
    c, features = login_features(server, jid)
    try:
        caps = features.find(q(NS_CAPS, 'c'))
        assert caps is not None, 'no caps in stream features: %s' % tostr(
            features)
        c.bind('caps')
        c.send("<iq type='get' id='ci' to='localhost'><query xmlns='%s'/>"
               "</iq>" % NS_DISCO_INFO)
        el = c.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'result', tostr(el)
        return caps, el.find(q(NS_DISCO_INFO, 'query'))
    finally:
        c.close()


def test_caps_stream_feature_matches_disco_info(server):
    [a] = fresh_users(server, 1)
    caps, query = caps_and_info(server, a)
    assert caps.get('hash') == 'sha-1', tostr(caps)
    assert caps.get('node'), tostr(caps)
    assert caps.get('ver') == caps_ver(query), (
        'caps ver %s, hash of disco#info %s: %s'
        % (caps.get('ver'), caps_ver(query), tostr(query)))


def test_caps_node_query(server, im):
    """XEP-0115 §6.2: disco#info to node#ver answers the same."""
    [a] = fresh_users(server, 1)
    caps, query = caps_and_info(server, a)
    node = '%s#%s' % (caps.get('node'), caps.get('ver'))
    c = im(a, presence=False)
    nq = disco_info(c, node=node)
    assert nq.get('node') == node, tostr(nq)
    assert caps_ver(nq) == caps.get('ver')


# --- XEP-0199 ----------------------------------------------------------------

def test_ping_server(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<ping xmlns='%s'/>" % NS_PING, to='localhost')
    assert el.get('from') == 'localhost' and len(el) == 0, tostr(el)
    assert el.get('to') == c.full, tostr(el)


def is_ping(el):
    return (el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'get' and
            el.find(q(NS_PING, 'ping')) is not None)


def test_server_pings_silent_client(server_factory):
    """ping-interval 2s, ping-timeout 2s: a client that never answers is
    disconnected, one that answers stays."""
    srv = server_factory(limits={'ping-interval': '2s',
                                 'ping-timeout': '2s'})
    silent = srv.login('alice@localhost', resource='silent')
    answering = srv.login('bob@localhost', resource='answering')
    try:
        t0 = time.monotonic()
        answered = 0
        silent_ping = silent_error = closed_at = None
        while time.monotonic() - t0 < 8.5:
            if closed_at is not None and answered >= 2 and \
                    time.monotonic() - t0 > closed_at + 0.5:
                break
            el = answering.poll_element(0.05)
            if el is not None:
                assert is_ping(el), 'unexpected %s' % tostr(el)
                assert el.get('from') == 'localhost', tostr(el)
                assert el.get('to') == answering.jid, tostr(el)
                assert el.get('id'), tostr(el)
                answering.send("<iq type='result' id='%s' to='localhost'/>"
                               % el.get('id'))
                answered += 1
            if closed_at is None:
                el = silent.poll_element(0.05)
                if el is not None and is_ping(el):
                    silent_ping = el
                elif el is not None and el.tag == q(NS_STREAM, 'error'):
                    silent_error = el
                elif el is not None:
                    raise AssertionError('unexpected %s' % tostr(el))
                if silent.stream_ended or silent.eof:
                    closed_at = time.monotonic() - t0
        assert silent_ping is not None, 'the silent client was never pinged'
        assert closed_at is not None and 3.0 <= closed_at <= 8.5, closed_at
        assert silent_error is not None, 'closed without a stream error'
        conds = [c.tag for c in silent_error if c.tag != q(NS_STREAM_ERR,
                                                           'text')]
        assert conds == [q(NS_STREAM_ERR, PING_TIMEOUT_CONDITION)], tostr(
            silent_error)
        assert answered >= 2, answered
        assert not (answering.stream_ended or answering.eof)
        answering.message(answering.jid, 'still here')
        el = answering.expect_stanza('message', skip=('presence', 'iq'))
        assert el.find(q(NS_CLIENT, 'body')).text == 'still here'
    finally:
        silent.close()
        answering.close()


# --- XEP-0092 ----------------------------------------------------------------

def version_query(c):
    return c.iq('get', "<query xmlns='%s'/>" % NS_VERSION, to='localhost')


def test_version_default_without_os(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = version_query(c)
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_VERSION, 'query'))
    assert text_of(query, NS_VERSION, 'name') == 'xmppd', tostr(el)
    assert text_of(query, NS_VERSION, 'version'), tostr(el)
    assert query.find(q(NS_VERSION, 'os')) is None, tostr(el)


def test_version_full_and_off(server_factory):
    full = server_factory(extra='software-version full')
    f = IMFactory(full)
    try:
        c = f('alice@localhost', presence=False)
        el = version_query(c)
        query = el.find(q(NS_VERSION, 'query'))
        assert query is not None, tostr(el)
        assert text_of(query, NS_VERSION, 'name') == 'xmppd', tostr(el)
        assert text_of(query, NS_VERSION, 'version'), tostr(el)
        assert text_of(query, NS_VERSION, 'os'), tostr(el)
    finally:
        f.close_all()
    full.stop()

    off = server_factory(extra='software-version off')
    f = IMFactory(off)
    try:
        c = f('alice@localhost', presence=False)
        c.iq_error('get', "<query xmlns='%s'/>" % NS_VERSION,
                   'service-unavailable', 'cancel', to='localhost')
        assert NS_VERSION not in features_of(disco_info(c))
    finally:
        f.close_all()
    caps, query = caps_and_info(off, 'alice@localhost')
    assert caps.get('ver') == caps_ver(query)


# --- XEP-0202 ----------------------------------------------------------------

def test_entity_time(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<time xmlns='%s'/>" % NS_TIME, to='localhost')
    t = el.find(q(NS_TIME, 'time'))
    assert t is not None, tostr(el)
    tzo = text_of(t, NS_TIME, 'tzo')
    utc = text_of(t, NS_TIME, 'utc')
    assert tzo and TZO_RE.match(tzo), tostr(el)
    m = UTC_RE.match(utc or '')
    assert m, 'utc %r is not XEP-0082 UTC' % utc
    then = calendar.timegm(tuple(int(x) for x in m.groups()[:6]))
    assert abs(then - time.time()) < 5, utc


# --- XEP-0012 ----------------------------------------------------------------

def last_query(c, to):
    return c.iq('get', "<query xmlns='%s'/>" % NS_LAST, to=to)


def test_last_activity_of_server_is_uptime(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = last_query(c, 'localhost')
    assert el.get('type') == 'result', tostr(el)
    first = int(el.find(q(NS_LAST, 'query')).get('seconds'))
    time.sleep(1.1)
    el = last_query(c, 'localhost')
    second = int(el.find(q(NS_LAST, 'query')).get('seconds'))
    assert first >= 0 and first + 1 <= second <= first + 3, (first, second)


def test_last_activity_of_offline_contact(server, im):
    """XEP-0012 §4: seconds since the contact's last logout, and the
    status of its last unavailable presence."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    subscribe(ca, cb)                     # a may see b's presence
    cb.presence(ptype='unavailable', status='Heading Home')
    cb.close_stream()
    cb.raw.close()
    time.sleep(1.2)
    el = last_query(ca, b)
    assert el.get('type') == 'result' and el.get('from') == b, tostr(el)
    query = el.find(q(NS_LAST, 'query'))
    assert 1 <= int(query.get('seconds')) <= 5, tostr(el)
    assert (query.text or '') == 'Heading Home', tostr(el)


def test_last_activity_of_online_contact_is_zero(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    subscribe(ca, cb)
    el = last_query(ca, b)
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_LAST, 'query'))
    assert query.get('seconds') == '0', tostr(el)
    assert not (query.text or '').strip(), tostr(el)


@pytest.mark.parametrize('relation', ['none', 'contact-subscribed-to-me'])
def test_last_activity_forbidden_without_subscription(server, im, relation):
    """XEP-0012 §4: only someone allowed to see the contact's presence
    (the contact has 'from' or 'both' toward them) may ask."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    if relation == 'contact-subscribed-to-me':
        subscribe(cb, ca)         # b sees a's presence, not the other way
    cb.close_stream()
    cb.raw.close()
    el = last_query(ca, b)
    assert_stanza_error(el, 'iq', 'forbidden', etype='auth', frm=b)
