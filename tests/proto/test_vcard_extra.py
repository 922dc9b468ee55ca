"""vcard-temp (XEP-0054), vCard-based avatars (XEP-0153) and private XML
storage (XEP-0049), beyond test_im_vcard_private.py: exact round trips,
the error conditions the XEPs name, the size limits at their boundary,
the avatar hash in presence (own resources, subscribed contacts, after a
restart), the item cap of private storage, and deletion of a user's rows.

Size limits are checked on the serialized element the server stores:
a vCard is written with vcard-temp in scope (no xmlns on <vCard/>), a
private item with its own xmlns; the boundary tests rely on that."""

import base64
import hashlib
import sqlite3

import pytest

from im_helpers import (NS_DISCO_INFO, NS_PRIVATE, NS_VCARD, NS_VCARD_UPDATE,
                        ANY, error_of, fresh_users, im, is_iq, is_presence)
from xmpp_raw import NS_CLIENT, q, tostr

__all__ = ['im']        # the fixture, imported for pytest

VCARD_SIZE = 4096
PRIVATE_SIZE = 2048
PRIVATE_ITEMS_MAX = 256       # mod_private.c

SERVER_OPTIONS = {'limits': {'vcard-size': VCARD_SIZE,
                             'private-size': PRIVATE_SIZE}}

PNG = bytes.fromhex('89504e470d0a1a0a0000000d49484452000000010000000108'
                    '060000001f15c4890000000d49444154789c6360000000000500'
                    '01a5f645400000000049454e44ae426082')


def vcard_get(c, to=None):
    return c.iq('get', "<vCard xmlns='vcard-temp'/>", to=to)


def vcard_of(el):
    """The <vCard/> of a result, asserting it is one."""
    assert el.get('type') == 'result', tostr(el)
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v is not None, 'no vCard in %s' % tostr(el)
    return v


def photo_vcard(data, fn='Juliet', wrap=None):
    b64 = base64.b64encode(data).decode()
    if wrap:
        b64 = '\n'.join(b64[i:i + wrap] for i in range(0, len(b64), wrap))
        b64 = '\n  ' + b64 + '\n'
    return ("<vCard xmlns='vcard-temp'><FN>%s</FN><PHOTO>"
            "<TYPE>image/png</TYPE><BINVAL>%s</BINVAL></PHOTO></vCard>"
            % (fn, b64))


def update_x(pres):
    """The vcard-temp:x:update elements of a presence."""
    return pres.findall(q(NS_VCARD_UPDATE, 'x'))


def photo_of(pres):
    """The advertised hash: None without an update element or a photo
    child, '' for an empty <photo/>."""
    xs = update_x(pres)
    assert len(xs) <= 1, 'several update elements: %s' % tostr(pres)
    if not xs:
        return None
    photo = xs[0].find(q(NS_VCARD_UPDATE, 'photo'))
    return None if photo is None else (photo.text or '')


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def private_get(c, inner, to=None):
    return c.iq('get', "<query xmlns='jabber:iq:private'>%s</query>" % inner,
                to=to)


def private_set(c, inner, to=None):
    return c.iq('set', "<query xmlns='jabber:iq:private'>%s</query>" % inner,
                to=to)


def private_item(el, ns, name):
    assert el.get('type') == 'result', tostr(el)
    query = el.find(q(NS_PRIVATE, 'query'))
    assert query is not None, tostr(el)
    items = list(query)
    assert len(items) == 1 and items[0].tag == q(ns, name), tostr(el)
    return items[0]


def assert_error(el, condition, etype):
    assert el.get('type') == 'error', tostr(el)
    assert error_of(el) == (etype, [condition]), tostr(el)


# --- vcard-temp ---------------------------------------------------------------

def test_own_vcard_round_trip_exact(server, im):
    """What is stored comes back element for element: nesting, empty
    elements, attributes, xml:lang, an element in another namespace,
    escaped text."""
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<vCard xmlns='vcard-temp' version='3.0'>"
            "<FN xml:lang='it'>Giulietta &amp; Romeo &lt;3</FN>"
            "<N><FAMILY>Capulet</FAMILY><GIVEN>Juliet</GIVEN><MIDDLE/></N>"
            "<TEL><HOME/><VOICE/><NUMBER>+39 045 1234</NUMBER></TEL>"
            "<X-EXT xmlns='urn:example:ext' a='1'><y>z</y></X-EXT>"
            "</vCard>")
    v = vcard_of(vcard_get(c))
    assert v.get('version') == '3.0'
    fn = v.find(q(NS_VCARD, 'FN'))
    assert fn.text == 'Giulietta & Romeo <3'
    assert fn.get('{http://www.w3.org/XML/1998/namespace}lang') == 'it'
    n = v.find(q(NS_VCARD, 'N'))
    assert [x.tag for x in n] == [q(NS_VCARD, t) for t in
                                  ('FAMILY', 'GIVEN', 'MIDDLE')]
    assert n.find(q(NS_VCARD, 'MIDDLE')).text is None
    assert v.find('%s/%s' % (q(NS_VCARD, 'TEL'), q(NS_VCARD, 'NUMBER'))) \
        .text == '+39 045 1234'
    ext = v.find(q('urn:example:ext', 'X-EXT'))
    assert ext is not None and ext.get('a') == '1', tostr(v)
    assert ext.find(q('urn:example:ext', 'y')).text == 'z'
    # A set replaces the whole vCard (§3.2: no partial updates).
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><NICKNAME>jc</NICKNAME>"
            "</vCard>")
    v = vcard_of(vcard_get(c))
    assert [x.tag for x in v] == [q(NS_VCARD, 'NICKNAME')], tostr(v)


def test_own_bare_jid_is_the_same_as_no_to(server, im):
    """§3.1: no vCard of one's own is <item-not-found/>, with or without
    'to'."""
    a, = fresh_users(server, 1)
    c = im(a)
    assert_error(vcard_get(c), 'item-not-found', 'cancel')
    el = vcard_get(c, to=a)
    assert_error(el, 'item-not-found', 'cancel')
    assert el.get('from') == a, tostr(el)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Self</FN></vCard>", to=a)
    el = vcard_get(c)
    assert vcard_of(el).find(q(NS_VCARD, 'FN')).text == 'Self'
    assert el.get('from') in (None, a), tostr(el)
    el = vcard_get(c, to=a)
    assert el.get('from') == a, tostr(el)
    assert vcard_of(el).find(q(NS_VCARD, 'FN')).text == 'Self'


def test_other_users_vcard_answered_by_server(server, im):
    """§3.3: the server answers for the account, the owner's resource
    never sees the request; the result comes from the bare JID."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    ca.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Owner</FN></vCard>")
    el = vcard_get(cb, to=a)
    assert el.get('from') == a and el.get('to') == cb.full, tostr(el)
    assert vcard_of(el).find(q(NS_VCARD, 'FN')).text == 'Owner'
    ca.absent(lambda e: e.tag == q(NS_CLIENT, 'iq'), 0.3,
              'IQ forwarded to the owner')


def test_missing_vcard_and_missing_user_give_the_same_error(server, im):
    """§3.3: no vCard and no such user are indistinguishable, and RFC 6121
    §8.5.1 fixes the latter to <service-unavailable/>."""
    a, b = fresh_users(server, 2)
    cb = im(b)
    no_vcard = vcard_get(cb, to=a)
    no_user = vcard_get(cb, to='nobody-%s@localhost' % b.split('@')[0])
    assert_error(no_vcard, 'service-unavailable', 'cancel')
    assert_error(no_user, 'service-unavailable', 'cancel')
    assert no_vcard.find(q(NS_VCARD, 'vCard')) is not None, tostr(no_vcard)


def test_setting_another_vcard_is_forbidden(server, im):
    """§3.2: <forbidden/> for a set to any JID but one's own bare JID;
    the other user's vCard is unchanged."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    ca.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Mine</FN></vCard>")
    el = cb.iq('set', "<vCard xmlns='vcard-temp'><FN>Yours</FN></vCard>",
               to=a)
    assert_error(el, 'forbidden', 'auth')
    el = cb.iq('set', "<vCard xmlns='vcard-temp'><FN>Srv</FN></vCard>",
               to='localhost')
    assert_error(el, 'forbidden', 'auth')
    assert vcard_of(vcard_get(ca)).find(q(NS_VCARD, 'FN')).text == 'Mine'


def test_server_has_no_vcard(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    assert_error(vcard_get(c, to='localhost'), 'service-unavailable',
                 'cancel')


def test_vcard_size_limit_boundary(server, im):
    """vcard-size bounds the serialized vCard: <vCard><DESC>…</DESC>
    </vCard> is 28 bytes plus the text."""
    a, = fresh_users(server, 1)
    c = im(a)
    fits = 'x' * (VCARD_SIZE - 28)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><DESC>%s</DESC></vCard>"
            % fits)
    el = c.iq('set', "<vCard xmlns='vcard-temp'><DESC>%sy</DESC></vCard>"
              % fits)
    assert_error(el, 'not-acceptable', 'modify')
    desc = vcard_of(vcard_get(c)).find(q(NS_VCARD, 'DESC'))
    assert desc.text == fits, 'the refused vCard replaced the stored one'


def test_photo_that_is_not_base64_is_refused(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Before</FN></vCard>")
    el = c.iq('set', "<vCard xmlns='vcard-temp'><PHOTO><BINVAL>!!not "
              "base64!!</BINVAL></PHOTO></vCard>")
    assert_error(el, 'bad-request', 'modify')
    assert vcard_of(vcard_get(c)).find(q(NS_VCARD, 'FN')).text == 'Before'


def test_vcard_disco_features(server, im):
    """§4: 'vcard-temp' on the server and on accounts (whose bare JID the
    server answers for); jabber:iq:private on the server."""
    a, = fresh_users(server, 1)
    c = im(a)
    for to, want in (('localhost', {NS_VCARD, NS_PRIVATE}), (a, {NS_VCARD})):
        el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=to)
        feats = {f.get('var') for f in el.find(q(NS_DISCO_INFO, 'query'))
                 .findall(q(NS_DISCO_INFO, 'feature'))}
        assert want <= feats, '%s: %s' % (to, sorted(feats))


# --- XEP-0153 ----------------------------------------------------------------

def test_photo_hash_reaches_own_other_resource(server, im):
    """A new photo: the user's other available resource gets the
    presence again with the SHA-1 of the image (not of the base64, which
    is wrapped over lines here: whitespace is ignored, §4.5)."""
    a, = fresh_users(server, 1)
    c1 = im(a, resource='one')
    c2 = im(a, resource='two')
    c1.settle(0.2)
    c1.iq_ok('set', photo_vcard(PNG, wrap=20))
    for c in (c1, c2):
        p = c.wait(is_presence(frm=c1.full, ptype=None))
        assert photo_of(p) == sha1(PNG), tostr(p)
    # The resource that did not change anything is broadcast again only
    # if its hash changed too: it did.
    p = c1.wait(is_presence(frm=c2.full, ptype=None))
    assert photo_of(p) == sha1(PNG), tostr(p)


def test_same_photo_again_is_not_rebroadcast(server, im):
    a, = fresh_users(server, 1)
    c1 = im(a, resource='one')
    c2 = im(a, resource='two')
    c1.iq_ok('set', photo_vcard(PNG))
    c2.wait(is_presence(frm=c1.full, ptype=None))
    c1.settle(0.2)
    c2.settle(0.2)
    c1.iq_ok('set', photo_vcard(PNG, fn='Other name, same photo'))
    c2.absent(is_presence(frm=ANY), 0.5)


def test_presence_without_photo_has_empty_photo(server, im):
    """§4.1 rule 3: no image to advertise is an empty <photo/>, both for
    a user without a vCard and for a vCard without PHOTO."""
    a, = fresh_users(server, 1)
    c = im(a, presence=False)
    c.presence()
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == '', tostr(p)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>No photo</FN></vCard>")
    c.absent(is_presence(frm=c.full), 0.3)      # unchanged: ''
    c.iq_ok('set', photo_vcard(PNG))
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == sha1(PNG), tostr(p)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><PHOTO><TYPE>image/png"
            "</TYPE><BINVAL/></PHOTO></vCard>")
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == '', tostr(p)


def test_client_update_element_is_replaced(server, im):
    """The server's hash replaces whatever the client advertised; other
    presence content is kept."""
    a, = fresh_users(server, 1)
    c = im(a, presence=False)
    c.iq_ok('set', photo_vcard(PNG))
    c.presence(status='here', extra="<x xmlns='vcard-temp:x:update'>"
               "<photo>0000000000000000000000000000000000000000</photo></x>"
               "<x xmlns='vcard-temp:x:update'/>")
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == sha1(PNG), tostr(p)
    assert p.find(q(NS_CLIENT, 'status')).text == 'here', tostr(p)


def test_stored_hash_advertised_after_restart(server_factory, im_factory):
    """The cache is loaded from the database at bind."""
    srv = server_factory()
    im = im_factory(srv)
    c = im('alice@localhost')
    c.iq_ok('set', photo_vcard(PNG))
    im.close_all()
    srv.stop()
    srv.start(create_users=False)
    im = im_factory(srv)
    c = im('alice@localhost', presence=False)
    c.presence()
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == sha1(PNG), tostr(p)
    im.close_all()


def subscribe_both(x, y):
    """Mutual presence subscription between two IMClients (RFC 6121
    §3.1), then drain."""
    for s, t in ((x, y), (y, x)):
        s.presence(to=t.bare, ptype='subscribe')
        t.wait(is_presence(frm=s.bare, ptype='subscribe'))
        t.presence(to=s.bare, ptype='subscribed')
        s.wait(is_presence(frm=t.full, ptype=None))
    for c in (x, y):
        c.settle(0.3)
        c.discard(is_iq(itype='set'))


def test_photo_hash_reaches_subscribed_contact(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    subscribe_both(ca, cb)
    ca.iq_ok('set', photo_vcard(PNG))
    p = cb.wait(is_presence(frm=ca.full, ptype=None))
    assert photo_of(p) == sha1(PNG), tostr(p)
    # and the contact can fetch the image by the bare JID (§3.2)
    v = vcard_of(vcard_get(cb, to=a))
    binval = v.find('%s/%s' % (q(NS_VCARD, 'PHOTO'), q(NS_VCARD, 'BINVAL')))
    assert base64.b64decode(binval.text) == PNG


# --- XEP-0049 ----------------------------------------------------------------

def test_private_round_trip_exact(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<exodus xmlns='exodus:prefs' v='2'><defaultnick>Hamlet"
            "</defaultnick><inner xmlns='urn:example:inner'>&lt;x&gt;"
            "</inner><empty/></exodus></query>")
    el = private_get(c, "<exodus xmlns='exodus:prefs'/>")
    ex = private_item(el, 'exodus:prefs', 'exodus')
    assert ex.get('v') == '2'
    assert [x.tag for x in ex] == [q('exodus:prefs', 'defaultnick'),
                                   q('urn:example:inner', 'inner'),
                                   q('exodus:prefs', 'empty')], tostr(el)
    assert ex.find(q('exodus:prefs', 'defaultnick')).text == 'Hamlet'
    assert ex.find(q('urn:example:inner', 'inner')).text == '<x>'


def test_private_unknown_element_comes_back_empty(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    el = private_get(c, "<storage xmlns='storage:bookmarks'/>")
    st = private_item(el, 'storage:bookmarks', 'storage')
    assert len(st) == 0 and not st.text, tostr(el)


def test_private_keyed_by_name_and_namespace(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<a xmlns='urn:example:one'>1</a></query>")
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<b xmlns='urn:example:one'>2</b></query>")
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<a xmlns='urn:example:two'>3</a></query>")
    for ns, name, text in (('urn:example:one', 'a', '1'),
                           ('urn:example:one', 'b', '2'),
                           ('urn:example:two', 'a', '3')):
        el = private_get(c, "<%s xmlns='%s'/>" % (name, ns))
        assert private_item(el, ns, name).text == text, tostr(el)


def test_private_set_of_several_elements(server, im):
    """Each element of one set is stored; the same element twice: the
    last one wins."""
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<p xmlns='urn:example:m'>first</p>"
            "<r xmlns='urn:example:m'>other</r>"
            "<p xmlns='urn:example:m'>second</p></query>")
    assert private_item(private_get(c, "<p xmlns='urn:example:m'/>"),
                        'urn:example:m', 'p').text == 'second'
    assert private_item(private_get(c, "<r xmlns='urn:example:m'/>"),
                        'urn:example:m', 'r').text == 'other'


def test_private_query_shape_errors(server, im):
    """§2.3 and §3: a get without an element is Bad Format, a get of two
    elements (which a client MUST NOT send) is a bad request, a set without
    an element is Not Acceptable."""
    a, = fresh_users(server, 1)
    c = im(a)
    assert_error(private_get(c, ''), 'bad-request', 'modify')
    assert_error(private_get(c, "<a xmlns='urn:x:a'/><b xmlns='urn:x:b'/>"),
                 'bad-request', 'modify')
    assert_error(private_set(c, ''), 'not-acceptable', 'modify')


@pytest.mark.parametrize('ns', [
    'jabber:iq:private', 'jabber:client', 'jabber:server', 'jabber:iq:roster',
    'http://jabber.org/protocol/disco#info', 'vcard-temp',
    'urn:ietf:params:xml:ns:xmpp-stanzas', 'http://etherx.jabber.org/streams',
])
def test_private_reserved_namespaces(server, im, ns):
    """§2.3: reserved namespaces get Not Acceptable, for get and set; a
    set that also holds an acceptable element stores nothing."""
    a, = fresh_users(server, 1)
    c = im(a)
    assert_error(private_get(c, "<x xmlns='%s'/>" % ns), 'not-acceptable',
                 'modify')
    el = private_set(c, "<ok xmlns='urn:example:fine'>v</ok>"
                     "<x xmlns='%s'>data</x>" % ns)
    assert_error(el, 'not-acceptable', 'modify')
    st = private_item(private_get(c, "<ok xmlns='urn:example:fine'/>"),
                      'urn:example:fine', 'ok')
    assert not st.text, 'part of a refused set was stored: %s' % tostr(st)


def test_private_element_without_namespace(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    el = private_set(c, "<x xmlns=''>data</x>")
    assert_error(el, 'not-acceptable', 'modify')


def test_private_of_others_is_forbidden(server, im):
    """§2.3, §3: Forbidden for another user's bare JID or the server;
    the other user's data is untouched."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    ca.iq_ok('set', "<query xmlns='jabber:iq:private'>"
             "<s xmlns='urn:example:s'>mine</s></query>")
    for to in (a, 'localhost'):
        assert_error(private_get(cb, "<s xmlns='urn:example:s'/>", to=to),
                     'forbidden', 'auth')
        assert_error(private_set(cb, "<s xmlns='urn:example:s'>yours</s>",
                                 to=to), 'forbidden', 'auth')
    assert private_item(private_get(ca, "<s xmlns='urn:example:s'/>", to=a),
                        'urn:example:s', 's').text == 'mine'
    ca.absent(lambda e: e.tag == q(NS_CLIENT, 'iq'), 0.3,
              'IQ forwarded to the owner')


def test_private_size_limit_boundary(server, im):
    """private-size bounds each serialized element: <x xmlns='p:q'>…</x>
    is 19 bytes plus the text.  One item too large refuses the set."""
    a, = fresh_users(server, 1)
    c = im(a)
    fits = 'x' * (PRIVATE_SIZE - 19)
    c.iq_ok('set', "<query xmlns='jabber:iq:private'><x xmlns='p:q'>%s</x>"
            "</query>" % fits)
    el = private_set(c, "<small xmlns='p:q'>s</small>"
                     "<x xmlns='p:q'>%sy</x>" % fits)
    assert_error(el, 'not-acceptable', 'modify')
    assert private_item(private_get(c, "<x xmlns='p:q'/>"), 'p:q',
                        'x').text == fits
    assert not private_item(private_get(c, "<small xmlns='p:q'/>"), 'p:q',
                            'small').text


def test_private_item_cap(server, im):
    """At most PRIVATE_ITEMS_MAX elements per account; replacing one that
    exists is still fine at the cap."""
    a, = fresh_users(server, 1)
    c = im(a)
    items = ''.join("<i%d xmlns='urn:example:cap'/>" % i
                    for i in range(PRIVATE_ITEMS_MAX + 1))
    assert_error(private_set(c, items), 'not-acceptable', 'modify')
    half = PRIVATE_ITEMS_MAX // 2
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>%s</query>" % ''.join(
        "<i%d xmlns='urn:example:cap'/>" % i for i in range(half)))
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>%s</query>" % ''.join(
        "<i%d xmlns='urn:example:cap'/>" % i
        for i in range(half, PRIVATE_ITEMS_MAX)))
    el = private_set(c, "<one-more xmlns='urn:example:cap'/>")
    assert_error(el, 'not-acceptable', 'modify')
    c.iq_ok('set', "<query xmlns='jabber:iq:private'><i0 "
            "xmlns='urn:example:cap'>replaced</i0></query>")
    assert private_item(private_get(c, "<i0 xmlns='urn:example:cap'/>"),
                        'urn:example:cap', 'i0').text == 'replaced'


# --- data integrity ----------------------------------------------------------

def test_user_deletion_deletes_vcard_and_private_rows(server_factory,
                                                      im_factory):
    srv = server_factory()
    im = im_factory(srv)
    c = im('bob@localhost')
    c.iq_ok('set', photo_vcard(PNG))
    c.iq_ok('set', "<query xmlns='jabber:iq:private'>"
            "<gone xmlns='urn:example:gone'>soon</gone></query>")
    # Deleted while online: the session is closed, the cache dropped.
    r = srv.ctl('deluser', 'bob@localhost')
    assert r.returncode == 0, r.stderr
    im.close_all()
    # The same name again is a new account with nothing stored.
    srv.adduser('bob@localhost', 'bob-again')
    im = im_factory(srv)
    c = im('bob@localhost', presence=False)
    assert_error(vcard_get(c), 'item-not-found', 'cancel')
    assert not private_item(private_get(c, "<gone xmlns='urn:example:gone'/>"),
                            'urn:example:gone', 'gone').text
    c.presence()
    p = c.wait(is_presence(frm=c.full, ptype=None))
    assert photo_of(p) == '', 'stale avatar hash: %s' % tostr(p)
    im.close_all()
    srv.stop()
    db = sqlite3.connect(str(srv.db))
    try:
        for table in ('vcard', 'private'):
            n = db.execute('SELECT count(*) FROM %s' % table).fetchone()[0]
            assert n == 0, '%d rows left in %s' % (n, table)
    finally:
        db.close()


@pytest.fixture
def im_factory():
    """IMFactory per server, for tests with their own daemons."""
    from im_helpers import IMFactory
    made = []

    def make(srv):
        f = IMFactory(srv)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close_all()


def test_empty_vcard_round_trip(server, im):
    """An empty vCard is stored as <vCard/>, shorter than the closing tag
    xml_parse_element adds: it still reads back (a stanza limit of its
    own size plus one)."""
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', "<vCard xmlns='vcard-temp'/>")
    v = vcard_of(vcard_get(c))
    assert len(v) == 0 and not v.text, tostr(v)
