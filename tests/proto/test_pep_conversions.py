"""The conversions between old and new storage while PEP (XEP-0163) is on:
XEP-0398, a vCard's PHOTO (XEP-0054/0153) and the XEP-0084 avatar in PEP,
both ways (mod_vcard.c); XEP-0411, the legacy bookmarks of private XML
storage (XEP-0048/0049) and the XEP-0402 bookmarks in PEP, both ways
(mod_private.c); and the account features that announce them, which go
with "module pep off".

The conversions run after the change that causes them is stored, in
storage jobs of their own, so the tests wait for their effect (a
presence with the new hash, or a read that shows it) instead of
expecting it in the answer to the change."""

import base64
import hashlib
import time
from xml.sax.saxutils import quoteattr

from im_helpers import (NS_DISCO_INFO, NS_PRIVATE, NS_VCARD, NS_VCARD_UPDATE,
                        IMClient, IMFactory, fresh_users, im, is_iq,
                        is_presence)
from xmpp_raw import q, tostr

__all__ = ['im']        # the fixture, imported for pytest

NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_AVATAR_DATA = 'urn:xmpp:avatar:data'
NS_AVATAR_METADATA = 'urn:xmpp:avatar:metadata'
NS_CONVERSION = 'urn:xmpp:pep-vcard-conversion:0'
NS_LEGACY = 'storage:bookmarks'
NS_BOOKMARKS = 'urn:xmpp:bookmarks:1'
NS_BOOKMARKS_COMPAT = 'urn:xmpp:bookmarks:1#compat'

# A 1x1 PNG and a 1x1 GIF.
PNG = bytes.fromhex('89504e470d0a1a0a0000000d49484452000000010000000108'
                    '060000001f15c4890000000d49444154789c6360000000000500'
                    '01a5f645400000000049454e44ae426082')
GIF = bytes.fromhex('47494638396101000100800000000000ffffff21f90401000000'
                    '002c00000000010001000002024401003b')

WAIT = 5.0


def sha1(data):
    return hashlib.sha1(data).hexdigest()


def eventually(fn, what, timeout=WAIT):
    """fn() until it returns something true; that value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v:
            return v
        assert time.monotonic() < deadline, 'not within %.0fs: %s' % (
            timeout, what)
        time.sleep(0.05)


def subscribe_both(x, y):
    """Mutual presence subscription between two available IMClients
    (RFC 6121 §3.1), then drain."""
    for s, t in ((x, y), (y, x)):
        s.presence(to=t.bare, ptype='subscribe')
        t.wait(is_presence(frm=s.bare, ptype='subscribe'))
        t.presence(to=s.bare, ptype='subscribed')
        s.wait(is_presence(frm=t.full, ptype=None))
    for c in (x, y):
        c.settle(0.3)
        c.discard(is_iq(itype='set'))


def account_features(c, account=None):
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO,
                 to=account or c.bare)
    query = el.find(q(NS_DISCO_INFO, 'query'))
    return {f.get('var') for f in query.findall(q(NS_DISCO_INFO, 'feature'))}


# --- PEP ------------------------------------------------------------------

def publish(c, node, item_id, payload):
    attr = '' if item_id is None else ' id=%s' % quoteattr(item_id)
    return c.iq_ok('set', "<pubsub xmlns='%s'><publish node=%s><item%s>%s"
                   "</item></publish></pubsub>"
                   % (NS_PUBSUB, quoteattr(node), attr, payload))


def retract(c, node, item_id):
    return c.iq_ok('set', "<pubsub xmlns='%s'><retract node=%s notify='true'>"
                   "<item id=%s/></retract></pubsub>"
                   % (NS_PUBSUB, quoteattr(node), quoteattr(item_id)))


def items_get(c, owner, node):
    """{id: payload element} of owner's node, or None for an error."""
    el = c.iq('get', "<pubsub xmlns='%s'><items node=%s/></pubsub>"
              % (NS_PUBSUB, quoteattr(node)), to=owner)
    if el.get('type') != 'result':
        return None
    items = el.find(q(NS_PUBSUB, 'pubsub')).find(q(NS_PUBSUB, 'items'))
    return {i.get('id'): (list(i)[0] if len(i) else None)
            for i in items.findall(q(NS_PUBSUB, 'item'))}


def publish_avatar(c, data, mime='image/png'):
    h = sha1(data)
    publish(c, NS_AVATAR_DATA, h, "<data xmlns='%s'>%s</data>"
            % (NS_AVATAR_DATA, base64.b64encode(data).decode()))
    publish(c, NS_AVATAR_METADATA, h,
            "<metadata xmlns='%s'><info bytes='%d' id='%s' type='%s' "
            "height='1' width='1'/></metadata>"
            % (NS_AVATAR_METADATA, len(data), h, mime))
    return h


# --- vCards ----------------------------------------------------------------

def vcard(c, to=None):
    el = c.iq('get', "<vCard xmlns='vcard-temp'/>", to=to)
    if el.get('type') != 'result':
        return None
    return el.find(q(NS_VCARD, 'vCard'))


def photo(v):
    """(TYPE, decoded BINVAL) of a vCard's PHOTO, or None."""
    p = v.find(q(NS_VCARD, 'PHOTO')) if v is not None else None
    if p is None:
        return None
    t = p.find(q(NS_VCARD, 'TYPE'))
    b = p.find(q(NS_VCARD, 'BINVAL'))
    return (t.text if t is not None else None,
            base64.b64decode(''.join((b.text or '').split())))


def photo_vcard(data, fn='Juliet', mime='image/png'):
    return ("<vCard xmlns='vcard-temp'><FN>%s</FN><PHOTO><TYPE>%s</TYPE>"
            "<BINVAL>%s</BINVAL></PHOTO></vCard>"
            % (fn, mime, base64.b64encode(data).decode()))


def photo_of(pres):
    x = pres.find(q(NS_VCARD_UPDATE, 'x'))
    p = x.find(q(NS_VCARD_UPDATE, 'photo')) if x is not None else None
    return None if p is None else (p.text or '')


def presence_with_photo(frm, h):
    base = is_presence(frm=frm, ptype=None)

    def pred(el):
        return base(el) and photo_of(el) == h
    pred.what = 'presence from %s with photo %r' % (frm, h)
    return pred


# --- bookmarks --------------------------------------------------------------

def legacy_set(c, rooms, urls=()):
    """Store legacy bookmarks: rooms are (jid, name, autojoin, nick)."""
    inner = ''
    for jid, name, autojoin, nick in rooms:
        inner += ("<conference jid=%s name=%s autojoin=%s>%s</conference>"
                  % (quoteattr(jid), quoteattr(name),
                     quoteattr('true' if autojoin else 'false'),
                     '<nick>%s</nick>' % nick if nick else ''))
    for url, name in urls:
        inner += '<url url=%s name=%s/>' % (quoteattr(url), quoteattr(name))
    c.iq_ok('set', "<query xmlns='%s'><storage xmlns='%s'>%s</storage>"
            "</query>" % (NS_PRIVATE, NS_LEGACY, inner))


def legacy_get(c):
    el = c.iq_ok('get', "<query xmlns='%s'><storage xmlns='%s'/></query>"
                 % (NS_PRIVATE, NS_LEGACY))
    return el.find(q(NS_PRIVATE, 'query')).find(q(NS_LEGACY, 'storage'))


def legacy_rooms(c):
    """{jid: conference element} of the legacy bookmarks."""
    return {x.get('jid'): x for x in
            legacy_get(c).findall(q(NS_LEGACY, 'conference'))}


def bookmark(name, autojoin, nick=None, extensions=''):
    return ("<conference xmlns='%s' name=%s autojoin='%s'>%s%s</conference>"
            % (NS_BOOKMARKS, quoteattr(name), 'true' if autojoin else 'false',
               '<nick>%s</nick>' % nick if nick else '',
               '<extensions>%s</extensions>' % extensions if extensions
               else ''))


def text(el, ns, name):
    c = el.find(q(ns, name))
    return None if c is None else (c.text or '')


# --- features --------------------------------------------------------------

def test_account_advertises_both_conversions(server, im):
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    features = account_features(ca)
    assert NS_CONVERSION in features and NS_BOOKMARKS_COMPAT in features, \
        features
    # the server's own JID does not: they are about accounts
    features = account_features(ca, 'localhost')
    assert NS_CONVERSION not in features, features
    assert NS_BOOKMARKS_COMPAT not in features, features
    subscribe_both(ca, cb)
    assert NS_CONVERSION in account_features(cb, a)


def test_without_pep_nothing_is_advertised_or_converted(server_factory):
    srv = server_factory(extra='module pep off')
    im_ = IMFactory(srv)
    try:
        c = im_('alice@localhost')
        features = account_features(c)
        assert NS_CONVERSION not in features, features
        assert NS_BOOKMARKS_COMPAT not in features, features
        assert NS_VCARD in account_features(c)
        # vCards and private storage still work, without conversion
        c.iq_ok('set', photo_vcard(PNG))
        assert photo(vcard(c)) == ('image/png', PNG)
        legacy_set(c, [('r1@conference.example', 'One', True, 'al')])
        assert set(legacy_rooms(c)) == {'r1@conference.example'}
        assert 'converted' not in srv.stderr_text()
    finally:
        im_.close_all()


def test_features_follow_pep_across_reloads(server_factory):
    """"module pep off" by a reload withdraws both features from the
    accounts (vcard and private stay on), and "on" brings them back."""
    from test_modules import reload
    srv = server_factory()
    im_ = IMFactory(srv)
    try:
        c = im_('alice@localhost')
        assert {NS_CONVERSION, NS_BOOKMARKS_COMPAT} <= account_features(c)
        reload(srv, 'module pep off')
        features = account_features(c)
        assert NS_CONVERSION not in features, features
        assert NS_BOOKMARKS_COMPAT not in features, features
        assert NS_VCARD in features
        reload(srv, 'module pep on')
        assert {NS_CONVERSION, NS_BOOKMARKS_COMPAT} <= account_features(c)
    finally:
        im_.close_all()


# --- XEP-0398 ---------------------------------------------------------------

def test_pep_avatar_becomes_the_vcard_photo(server, im):
    """A publishes data and metadata: the vCard's PHOTO is the image (the
    rest of the vCard kept), and B, a contact, sees the hash."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    subscribe_both(ca, cb)
    ca.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Alice</FN>"
             "<NICKNAME>al</NICKNAME></vCard>")
    h = publish_avatar(ca, PNG)
    p = cb.wait(presence_with_photo(ca.full, h))
    assert photo_of(p) == sha1(PNG)
    v = vcard(ca)
    assert photo(v) == ('image/png', PNG), tostr(v)
    assert text(v, NS_VCARD, 'FN') == 'Alice'
    assert text(v, NS_VCARD, 'NICKNAME') == 'al'
    # B reads the same vCard at A's bare JID (XEP-0054 §3.3)
    assert photo(vcard(cb, to=a)) == ('image/png', PNG)


def test_pep_avatar_without_a_vcard_creates_one(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    h = publish_avatar(c, GIF, 'image/gif')
    v = eventually(lambda: photo(vcard(c)), 'PHOTO in the new vCard')
    assert v == ('image/gif', GIF)
    c.wait(presence_with_photo(c.full, h))


def test_empty_metadata_removes_the_photo(server, im):
    """XEP-0084 §4.2: an empty <metadata/> disables the avatar."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    subscribe_both(ca, cb)
    h = publish_avatar(ca, PNG)
    cb.wait(presence_with_photo(ca.full, h))
    publish(ca, NS_AVATAR_METADATA, 'current',
            "<metadata xmlns='%s'/>" % NS_AVATAR_METADATA)
    cb.wait(presence_with_photo(ca.full, ''))
    el = ca.iq_ok('get', "<vCard xmlns='vcard-temp'/>")
    v = el.find(q(NS_VCARD, 'vCard'))
    assert v is not None and photo(v) is None, tostr(el)


def test_metadata_of_an_url_only_avatar_changes_nothing(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', photo_vcard(PNG))
    c.wait(presence_with_photo(c.full, sha1(PNG)))
    publish(c, NS_AVATAR_METADATA, sha1(GIF),
            "<metadata xmlns='%s'><info bytes='%d' id='%s' type='image/gif' "
            "url='https://example.org/a.gif'/></metadata>"
            % (NS_AVATAR_METADATA, len(GIF), sha1(GIF)))
    c.absent(is_presence(frm=c.full), 0.3)
    assert photo(vcard(c)) == ('image/png', PNG)


def test_vcard_photo_is_published_in_pep(server, im):
    """A vCard set with a PHOTO publishes data and metadata with the
    SHA-1 as item id; the nodes are open, so a contact reads them too."""
    a, b = fresh_users(server, 2)
    ca, cb = im(a), im(b)
    subscribe_both(ca, cb)
    ca.iq_ok('set', photo_vcard(PNG))
    h = sha1(PNG)
    meta = eventually(lambda: items_get(ca, a, NS_AVATAR_METADATA),
                      'metadata item')
    assert list(meta) == [h], meta
    info = meta[h].find(q(NS_AVATAR_METADATA, 'info'))
    assert info is not None, tostr(meta[h])
    assert (info.get('id'), info.get('bytes'), info.get('type')) == (
        h, str(len(PNG)), 'image/png'), tostr(info)
    data = items_get(ca, a, NS_AVATAR_DATA)
    assert list(data) == [h], data
    assert data[h].tag == q(NS_AVATAR_DATA, 'data')
    assert base64.b64decode(data[h].text) == PNG
    # a contact, and anyone: open nodes
    for reader in (cb,):
        got = items_get(reader, a, NS_AVATAR_DATA)
        assert got is not None and list(got) == [h], got
    # no loop: the vCard is the one set, once
    v = vcard(ca)
    assert text(v, NS_VCARD, 'FN') == 'Juliet'
    assert photo(v) == ('image/png', PNG)


def test_vcard_without_photo_publishes_empty_metadata(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', photo_vcard(PNG))
    eventually(lambda: items_get(c, a, NS_AVATAR_METADATA),
               'metadata item')
    c.iq_ok('set', "<vCard xmlns='vcard-temp'><FN>Juliet</FN></vCard>")

    def empty_metadata():
        meta = items_get(c, a, NS_AVATAR_METADATA) or {}
        return [m for m in meta.values() if m is not None and
                m.tag == q(NS_AVATAR_METADATA, 'metadata') and len(m) == 0]
    eventually(empty_metadata, 'an empty <metadata/>')
    # the vCard stays as set (no photo, FN kept)
    v = vcard(c)
    assert photo(v) is None and text(v, NS_VCARD, 'FN') == 'Juliet'


def test_same_photo_is_not_published_again(server, im):
    """A vCard set that keeps the photo (a new FN) publishes nothing."""
    a, = fresh_users(server, 1)
    c = im(a)
    c.iq_ok('set', photo_vcard(PNG))
    eventually(lambda: items_get(c, a, NS_AVATAR_METADATA),
               'metadata item')
    before = server.stderr_text().count('converted to PEP')
    c.iq_ok('set', photo_vcard(PNG, fn='Julia'))
    c.absent(lambda el: False, 0.3)
    assert server.stderr_text().count('converted to PEP') == before


# --- XEP-0411 ---------------------------------------------------------------

ROOM1 = 'room1@conference.example'
ROOM2 = 'room2@conference.example'
ROOM3 = 'room3@conference.example'


def pep_bookmarks(c):
    return items_get(c, c.bare, NS_BOOKMARKS) or {}


def test_bookmarks_both_ways(server, im):
    a, = fresh_users(server, 1)
    c = im(a)
    # a XEP-0049 client stores two rooms (and a URL)
    legacy_set(c, [(ROOM1, 'One', True, 'al'), (ROOM2, 'Two', False, None)],
               urls=[('https://example.org/', 'Example')])
    items = eventually(lambda: len(pep_bookmarks(c)) == 2 and pep_bookmarks(c),
                       'two XEP-0402 items')
    assert set(items) == {ROOM1, ROOM2}
    one = items[ROOM1]
    assert one.tag == q(NS_BOOKMARKS, 'conference'), tostr(one)
    assert one.get('name') == 'One' and one.get('autojoin') in ('true', '1')
    assert text(one, NS_BOOKMARKS, 'nick') == 'al'
    two = items[ROOM2]
    assert two.get('autojoin') in (None, 'false', '0'), tostr(two)
    assert two.find(q(NS_BOOKMARKS, 'nick')) is None

    # a XEP-0402 client adds a third: the legacy storage lists three,
    # the URL kept
    publish(c, NS_BOOKMARKS, ROOM3, bookmark('Three', True, 'al3'))
    rooms = eventually(lambda: len(legacy_rooms(c)) == 3 and legacy_rooms(c),
                       'three legacy rooms')
    assert set(rooms) == {ROOM1, ROOM2, ROOM3}
    three = rooms[ROOM3]
    assert three.get('name') == 'Three'
    assert three.get('autojoin') in ('true', '1')
    assert text(three, NS_LEGACY, 'nick') == 'al3'
    assert rooms[ROOM1].get('autojoin') in ('true', '1')
    urls = legacy_get(c).findall(q(NS_LEGACY, 'url'))
    assert [u.get('url') for u in urls] == ['https://example.org/']

    # it retracts one: two in the legacy storage
    retract(c, NS_BOOKMARKS, ROOM1)
    rooms = eventually(lambda: len(legacy_rooms(c)) == 2 and legacy_rooms(c),
                       'two legacy rooms')
    assert set(rooms) == {ROOM2, ROOM3}

    # the old client deletes one: it is retracted in PEP
    legacy_set(c, [(ROOM3, 'Three', True, 'al3')],
               urls=[('https://example.org/', 'Example')])
    items = eventually(lambda: set(pep_bookmarks(c)) == {ROOM3} and
                       pep_bookmarks(c), 'ROOM2 retracted')
    assert items[ROOM3].get('name') == 'Three'


def test_legacy_change_keeps_extensions(server, im):
    """XEP-0411: a bookmark changed by an old client keeps the
    <extensions/> a XEP-0402 client stored."""
    a, = fresh_users(server, 1)
    c = im(a)
    publish(c, NS_BOOKMARKS, ROOM1, bookmark(
        'One', False, 'al', "<pin xmlns='urn:example:pin'/>"))
    eventually(lambda: ROOM1 in legacy_rooms(c), 'the legacy room')
    legacy_set(c, [(ROOM1, 'One renamed', True, 'al')])

    def renamed():
        it = pep_bookmarks(c).get(ROOM1)
        return it if it is not None and it.get('name') == 'One renamed' \
            else None
    it = eventually(renamed, 'the renamed XEP-0402 item')
    assert it.get('autojoin') in ('true', '1')
    ext = it.find(q(NS_BOOKMARKS, 'extensions'))
    assert ext is not None and ext.find(q('urn:example:pin', 'pin')) \
        is not None, tostr(it)


def test_unchanged_legacy_set_publishes_nothing(server, im):
    """Storing the same legacy bookmarks again changes no item (nothing
    is republished, so XEP-0402 clients see no notification); the
    daemon's debug log says what each conversion published."""
    a, = fresh_users(server, 1)
    c = im(a)
    legacy_set(c, [(ROOM1, 'One', True, 'al')])
    eventually(lambda: ROOM1 in pep_bookmarks(c), 'the item')
    line = '%s: legacy bookmarks to PEP: ' % a
    assert line + '1 published, 0 retracted' in server.stderr_text()
    legacy_set(c, [(ROOM1, 'One', True, 'al')])
    eventually(lambda: line + '0 published, 0 retracted' in
               server.stderr_text(), 'the second conversion')


def test_legacy_bookmarks_imported_at_login(server_factory):
    """XEP-0411 §3: legacy bookmarks stored before PEP existed (here
    with PEP off) reach XEP-0402 when the user next logs in with it on."""
    srv = server_factory(extra='module pep off')
    a, = fresh_users(srv, 1)
    raw = srv.login(a)
    c = IMClient(raw, a)
    legacy_set(c, [(ROOM1, 'One', True, 'al')])
    raw.close()
    srv.stop()
    srv.extra = None
    srv.start(create_users=False)
    raw = srv.login(a)
    c = IMClient(raw, a)
    items = eventually(lambda: pep_bookmarks(c), 'imported bookmarks')
    assert set(items) == {ROOM1}
    assert items[ROOM1].get('name') == 'One'
    raw.close()
