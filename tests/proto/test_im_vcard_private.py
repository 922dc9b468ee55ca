"""vcard-temp (XEP-0054): set and get one's own, get anyone's, the errors
for someone else's and for a missing vCard, the vcard-size limit, and the
XEP-0153 avatar hash the server adds to presence; private XML storage
(XEP-0049): round trips keyed by element and namespace, isolation between
users, someone else's storage, reserved namespaces."""

import base64
import hashlib
import xml.etree.ElementTree as ET

import pytest

from im_helpers import (NS_PRIVATE, NS_VCARD, NS_VCARD_UPDATE, fresh_users,
                        is_presence, subscribe_both, text_of)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

# XEP-0054 §3.1 lets a server answer "no vCard" with an error (SHOULD be
# <item-not-found/>) or an empty vCard; we answer the error for one's own.
VCARD_MISSING = ('item-not-found', 'cancel')
# XEP-0054 §3.3: another user's missing vCard MUST get the same condition
# as a user that does not exist (no directory harvesting), and for the
# latter RFC 6121 §8.5.1 requires <service-unavailable/>.
VCARD_OTHERS_MISSING = ('service-unavailable', 'cancel')
# XEP-0054 §3.2: setting another user's vCard, <forbidden/> (its example).
VCARD_OTHERS = ('forbidden', 'auth')
# Larger than limits { vcard-size }: no condition in the XEP; RFC 6120
# §8.3.3.12, the request does not meet the server's criteria.
VCARD_TOO_BIG = ('not-acceptable', 'modify')
# XEP-0049 §3: another user's storage, <forbidden/> ("preferable").
PRIVATE_OTHERS = ('forbidden', 'auth')
# XEP-0049 §3: reserved namespaces, <not-acceptable/>.
PRIVATE_RESERVED = ('not-acceptable', 'modify')
# XEP-0049 §3: a set without a child element is "Not Acceptable"; a get
# without one is "Bad Format" (its error table), i.e. <bad-request/>.
PRIVATE_EMPTY_SET = ('not-acceptable', 'modify')
PRIVATE_EMPTY_GET = ('bad-request', 'modify')

VCARD_SIZE = 4096
SERVER_OPTIONS = {'limits': {'vcard-size': '4K'}}

VCARD = ("<vCard xmlns='vcard-temp'><FN>Peter Saint-Andre</FN>"
         "<N><FAMILY>Saint-Andre</FAMILY><GIVEN>Peter</GIVEN><MIDDLE/></N>"
         "<NICKNAME>stpeter</NICKNAME>"
         "<EMAIL><INTERNET/><PREF/><USERID>stpeter@jabber.org</USERID>"
         "</EMAIL><DESC>caf\u00e9 &amp; &lt;tea&gt; \u2615</DESC></vCard>")
VCARD2 = ("<vCard xmlns='vcard-temp'><FN>Second Version</FN>"
          "<TITLE>Executive Director</TITLE></vCard>")
# a 1x1 transparent PNG
PNG = base64.b64decode(
    'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAC'
    'hwGA60e6kgAAAABJRU5ErkJggg==')


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def canon(el):
    """A comparable form of an element tree (names, attributes, trimmed
    text, children in order)."""
    return (el.tag, sorted(el.attrib.items()), (el.text or '').strip(),
            [canon(c) for c in el])


def parse(xml):
    return ET.fromstring(xml)


def vcard_of(el):
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v is not None, 'no <vCard/> in %s' % tostr(el)
    return v


def set_vcard(c, xml, to=None):
    return c.iq('set', xml, to=to)


def get_vcard(c, to=None):
    return c.iq('get', "<vCard xmlns='%s'/>" % NS_VCARD, to=to)


# --- vcard-temp --------------------------------------------------------------

def test_set_and_get_own_vcard(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = set_vcard(c, VCARD)
    assert el.get('type') == 'result' and len(el) == 0, tostr(el)
    el = get_vcard(c)
    assert el.get('type') == 'result', tostr(el)
    assert canon(vcard_of(el)) == canon(parse(VCARD)), tostr(el)
    el = get_vcard(c, to=a)
    assert el.get('type') == 'result' and el.get('from') == a, tostr(el)
    assert canon(vcard_of(el)) == canon(parse(VCARD)), tostr(el)


def test_set_own_vcard_addressed_to_own_bare_jid(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    assert set_vcard(c, VCARD2, to=a).get('type') == 'result'
    assert canon(vcard_of(get_vcard(c))) == canon(parse(VCARD2))


def test_get_another_users_vcard(server, im):
    """XEP-0054 §3.3: answered by the server, never forwarded."""
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    cb = im(b)
    set_vcard(cb, VCARD)
    el = get_vcard(ca, to=b)
    assert el.get('type') == 'result', tostr(el)
    assert el.get('from') == b and el.get('to') == ca.full, tostr(el)
    assert canon(vcard_of(el)) == canon(parse(VCARD))
    cb.absent(lambda e: e.tag == q(NS_CLIENT, 'iq'), 0.2)


def test_vcard_set_replaces_whole_vcard(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    set_vcard(c, VCARD)
    set_vcard(c, VCARD2)
    v = vcard_of(get_vcard(c))
    assert canon(v) == canon(parse(VCARD2)), tostr(v)
    assert v.find(q(NS_VCARD, 'NICKNAME')) is None


def test_missing_vcard(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    el = get_vcard(ca)
    assert_stanza_error(el, 'iq', VCARD_MISSING[0], etype=VCARD_MISSING[1])
    el = get_vcard(ca, to=b)
    assert_stanza_error(el, 'iq', VCARD_OTHERS_MISSING[0],
                        etype=VCARD_OTHERS_MISSING[1], frm=b)


def test_vcard_of_nonexistent_user(server, im):
    [a] = fresh_users(server, 1)
    ca = im(a, presence=False)
    el = get_vcard(ca, to='nobody@localhost')
    assert_stanza_error(el, 'iq', VCARD_OTHERS_MISSING[0],
                        etype=VCARD_OTHERS_MISSING[1],
                        frm='nobody@localhost')


def test_set_another_users_vcard_refused(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    cb = im(b, presence=False)
    set_vcard(cb, VCARD2)
    el = set_vcard(ca, VCARD, to=b)
    assert_stanza_error(el, 'iq', VCARD_OTHERS[0], etype=VCARD_OTHERS[1])
    assert canon(vcard_of(get_vcard(cb))) == canon(parse(VCARD2))


def test_vcard_size_limit(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    set_vcard(c, VCARD2)
    big = "<vCard xmlns='vcard-temp'><DESC>%s</DESC></vCard>" % (
        'x' * (VCARD_SIZE + 1000))
    el = set_vcard(c, big)
    assert_stanza_error(el, 'iq', VCARD_TOO_BIG[0], etype=VCARD_TOO_BIG[1])
    assert canon(vcard_of(get_vcard(c))) == canon(parse(VCARD2))
    # just under the limit is fine
    ok = "<vCard xmlns='vcard-temp'><DESC>%s</DESC></vCard>" % (
        'y' * (VCARD_SIZE - 200))
    assert set_vcard(c, ok).get('type') == 'result'


def test_avatar_hash_in_presence(server, im):
    """XEP-0153 §3.1: once the vCard has a PHOTO, the user's presence
    carries <x xmlns='vcard-temp:x:update'><photo>SHA-1 of the image,
    lowercase hex</photo></x>."""
    a, b = fresh_users(server, 2)
    ca = im(a, roster=True)
    cb = im(b, roster=True)
    subscribe_both(ca, cb)
    b64 = base64.b64encode(PNG).decode()
    folded = '\n'.join(b64[i:i + 20] for i in range(0, len(b64), 20))
    el = set_vcard(ca, "<vCard xmlns='vcard-temp'><FN>Avatar</FN><PHOTO>"
                   "<TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO>"
                   "</vCard>" % folded)
    assert el.get('type') == 'result', tostr(el)
    ca.presence(show='away')
    p = cb.wait(lambda e: is_presence(frm=ca.full)(e) and
                text_of(e, NS_CLIENT, 'show') == 'away',
                what='presence from %s with show away' % ca.full)
    x = p.find(q(NS_VCARD_UPDATE, 'x'))
    assert x is not None, 'no vcard-temp:x:update: %s' % tostr(p)
    assert text_of(x, NS_VCARD_UPDATE, 'photo') == hashlib.sha1(
        PNG).hexdigest(), tostr(p)


# --- jabber:iq:private -------------------------------------------------------

def private(c, itype, payload, to=None):
    return c.iq(itype, "<query xmlns='%s'>%s</query>" % (NS_PRIVATE, payload),
                to=to)


def private_get(c, name, ns):
    el = private(c, 'get', "<%s xmlns='%s'/>" % (name, ns))
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_PRIVATE, 'query'))
    assert query is not None, tostr(el)
    assert len(query) == 1 and query[0].tag == q(ns, name), tostr(el)
    return query[0]


def test_private_round_trip(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    data = ("<exodus xmlns='exodus:prefs'><defaultnick>Hamlet</defaultnick>"
            "<note lang='x'>caf\u00e9</note></exodus>")
    el = private(c, 'set', data)
    assert el.get('type') == 'result' and len(el) == 0, tostr(el)
    got = private_get(c, 'exodus', 'exodus:prefs')
    assert canon(got) == canon(parse(data)), tostr(got)


def test_private_missing_is_empty_element(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    got = private_get(c, 'storage', 'storage:bookmarks')
    assert len(got) == 0 and not (got.text or '').strip(), tostr(got)


def test_private_keyed_by_element_and_namespace(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    for xml in ("<a xmlns='urn:example:one'>A1</a>",
                "<b xmlns='urn:example:one'>B1</b>",
                "<a xmlns='urn:example:two'>A2</a>"):
        assert private(c, 'set', xml).get('type') == 'result'
    assert private_get(c, 'a', 'urn:example:one').text == 'A1'
    assert private_get(c, 'b', 'urn:example:one').text == 'B1'
    assert private_get(c, 'a', 'urn:example:two').text == 'A2'
    # overwrite one, the others stay
    private(c, 'set', "<a xmlns='urn:example:one'>A1 again</a>")
    assert private_get(c, 'a', 'urn:example:one').text == 'A1 again'
    assert private_get(c, 'b', 'urn:example:one').text == 'B1'


def test_private_isolated_between_users(server, im):
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    cb = im(b, presence=False)
    private(ca, 'set', "<secret xmlns='urn:example:secret'>alice's</secret>")
    got = private_get(cb, 'secret', 'urn:example:secret')
    assert len(got) == 0 and not (got.text or '').strip(), tostr(got)


@pytest.mark.parametrize('itype', ['get', 'set'])
def test_private_of_another_user_refused(server, im, itype):
    a, b = fresh_users(server, 2)
    ca = im(a, presence=False)
    cb = im(b, presence=False)
    private(cb, 'set', "<secret xmlns='urn:example:secret'>bob's</secret>")
    payload = ("<secret xmlns='urn:example:secret'/>" if itype == 'get'
               else "<secret xmlns='urn:example:secret'>alice was here"
               "</secret>")
    el = private(ca, itype, payload, to=b)
    assert_stanza_error(el, 'iq', PRIVATE_OTHERS[0], etype=PRIVATE_OTHERS[1])
    assert private_get(cb, 'secret', 'urn:example:secret').text == "bob's"


def test_private_addressed_to_own_bare_jid(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = private(c, 'set', "<n xmlns='urn:example:n'>1</n>", to=a)
    assert el.get('type') == 'result', tostr(el)
    assert private_get(c, 'n', 'urn:example:n').text == '1'


@pytest.mark.parametrize('ns', ['jabber:client', 'jabber:server',
                                'jabber:iq:private', 'jabber:iq:roster',
                                'vcard-temp',
                                'http://jabber.org/protocol/disco#info'])
@pytest.mark.parametrize('itype', ['get', 'set'])
def test_private_reserved_namespace(server, im, ns, itype):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = private(c, itype, "<data xmlns='%s'>%s</data>"
                 % (ns, '' if itype == 'get' else 'x'))
    assert_stanza_error(el, 'iq', PRIVATE_RESERVED[0],
                        etype=PRIVATE_RESERVED[1])


def test_private_query_without_child(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = private(c, 'get', '')
    assert_stanza_error(el, 'iq', PRIVATE_EMPTY_GET[0],
                        etype=PRIVATE_EMPTY_GET[1])
    el = private(c, 'set', '')
    assert_stanza_error(el, 'iq', PRIVATE_EMPTY_SET[0],
                        etype=PRIVATE_EMPTY_SET[1])
