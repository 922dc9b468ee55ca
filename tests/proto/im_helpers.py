"""Helpers for the instant-messaging acceptance tests (test_im_*.py).

Each test makes its own accounts (fresh_users) so that rosters,
subscriptions, offline queues and block lists never leak between tests
that share a module's daemon.  IMClient wraps a bound RawClient: it waits
for the stanza a test is about while keeping every other stanza queued (so
presence broadcasts and roster pushes can be checked in any order), does
IQ round trips with unique ids, and reads rosters.  caps_ver computes the
XEP-0115 §5 verification string of a disco#info answer.

The `im` fixture (import it into a test module) makes IMClients and closes
them at teardown.
"""

import base64
import hashlib
import itertools
import os
import time
from xml.sax.saxutils import escape, quoteattr

import pytest

from xmpp_raw import (NS_CLIENT, NS_STANZA_ERR, NS_STREAM, NS_STREAM_ERR,
                      TIMEOUT, assert_stanza_error, local, namespace, q,
                      tostr)

NS_ROSTER = 'jabber:iq:roster'
NS_DISCO_INFO = 'http://jabber.org/protocol/disco#info'
NS_DISCO_ITEMS = 'http://jabber.org/protocol/disco#items'
NS_CAPS = 'http://jabber.org/protocol/caps'
NS_PING = 'urn:xmpp:ping'
NS_VERSION = 'jabber:iq:version'
NS_TIME = 'urn:xmpp:time'
NS_LAST = 'jabber:iq:last'
NS_VCARD = 'vcard-temp'
NS_VCARD_UPDATE = 'vcard-temp:x:update'
NS_PRIVATE = 'jabber:iq:private'
NS_BLOCKING = 'urn:xmpp:blocking'
NS_BLOCKING_ERRORS = 'urn:xmpp:blocking:errors'
NS_REGISTER = 'jabber:iq:register'
NS_REGISTER_FEATURE = 'http://jabber.org/features/iq-register'
NS_DELAY = 'urn:xmpp:delay'
NS_XDATA = 'jabber:x:data'
NS_PREAPPROVAL = 'urn:xmpp:features:pre-approval'
NS_ROSTERVER = 'urn:xmpp:features:rosterver'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
XML_LANG = '{http://www.w3.org/XML/1998/namespace}lang'

DOMAIN = 'localhost'
ANY = object()          # matches any value (or absence) of an attribute

_ids = itertools.count(1)
_users = itertools.count(1)


def fresh_users(server, n, prefix='u'):
    """n new accounts on server (bare JIDs); passwords in server.users."""
    jids = []
    for _ in range(n):
        name = '%s%d%s' % (prefix, next(_users), os.urandom(3).hex())
        jid = '%s@%s' % (name, DOMAIN)
        server.adduser(jid, 'pw-' + name)
        jids.append(jid)
    return jids


def bare(jid):
    return jid.split('/', 1)[0]


def text_of(el, ns, name):
    c = el.find(q(ns, name))
    return None if c is None else (c.text or '')


# --- predicates --------------------------------------------------------------

def _attr_ok(value, want):
    return want is ANY or value == want


def is_presence(frm=ANY, ptype=None, to=ANY):
    """A presence stanza; ptype None means available (no 'type')."""
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'presence') and
                _attr_ok(el.get('from'), frm) and
                _attr_ok(el.get('type'), ptype) and
                _attr_ok(el.get('to'), to))
    pred.what = 'presence from=%s type=%s' % (
        'any' if frm is ANY else frm, 'any' if ptype is ANY else ptype)
    return pred


def is_message(frm=ANY, mtype=ANY, body=ANY):
    def pred(el):
        if el.tag != q(NS_CLIENT, 'message'):
            return False
        if not (_attr_ok(el.get('from'), frm) and
                _attr_ok(el.get('type'), mtype)):
            return False
        return body is ANY or text_of(el, NS_CLIENT, 'body') == body
    pred.what = 'message from=%s body=%s' % (
        'any' if frm is ANY else frm, 'any' if body is ANY else body)
    return pred


def is_iq(iq_id=ANY, itype=ANY, frm=ANY):
    def pred(el):
        return (el.tag == q(NS_CLIENT, 'iq') and
                _attr_ok(el.get('id'), iq_id) and
                _attr_ok(el.get('type'), itype) and
                _attr_ok(el.get('from'), frm))
    pred.what = 'iq id=%s type=%s' % (
        'any' if iq_id is ANY else iq_id, 'any' if itype is ANY else itype)
    return pred


def is_roster_push(jid=ANY):
    """An IQ set carrying a roster query with one item (for jid)."""
    def pred(el):
        if el.tag != q(NS_CLIENT, 'iq') or el.get('type') != 'set':
            return False
        query = el.find(q(NS_ROSTER, 'query'))
        if query is None:
            return False
        items = query.findall(q(NS_ROSTER, 'item'))
        return len(items) == 1 and _attr_ok(items[0].get('jid'), jid)
    pred.what = 'roster push for %s' % ('any' if jid is ANY else jid)
    return pred


def is_block_push(kind, jids=ANY):
    """An IQ set with <block/> or <unblock/> (urn:xmpp:blocking) whose
    item JIDs are exactly jids (a set; empty for unblock-all)."""
    def pred(el):
        if el.tag != q(NS_CLIENT, 'iq') or el.get('type') != 'set':
            return False
        payload = el.find(q(NS_BLOCKING, kind))
        if payload is None:
            return False
        got = {i.get('jid') for i in payload.findall(q(NS_BLOCKING, 'item'))}
        return jids is ANY or got == set(jids)
    pred.what = '%s push %s' % (kind, 'any' if jids is ANY else sorted(jids))
    return pred


# --- the client --------------------------------------------------------------

class IMClient:
    """A bound session of one account, with stanza matching that leaves
    unmatched stanzas queued for later checks."""

    def __init__(self, raw, jid):
        self.raw = raw
        self.bare = bare(jid)
        self.full = raw.jid
        self.interested = False     # requested the roster (RFC 6121 §2.2)
        self.peers = [self]         # the other sessions of the test
        self.closing = False        # sent </stream:stream>

    # -- sending --

    def send(self, data):
        self.raw.send(data)

    def presence(self, to=None, ptype=None, show=None, status=None,
                 priority=None, extra=''):
        attrs = ''
        if to is not None:
            attrs += ' to=%s' % quoteattr(to)
        if ptype is not None:
            attrs += ' type=%s' % quoteattr(ptype)
        inner = ''
        if show is not None:
            inner += '<show>%s</show>' % escape(show)
        if status is not None:
            inner += '<status>%s</status>' % escape(status)
        if priority is not None:
            inner += '<priority>%d</priority>' % priority
        inner += extra
        self.send('<presence%s>%s</presence>' % (attrs, inner) if inner
                  else '<presence%s/>' % attrs)

    def message(self, to, body, mtype='chat', mid=None, extra=''):
        attrs = 'to=%s' % quoteattr(to)
        if mtype is not None:
            attrs += ' type=%s' % quoteattr(mtype)
        if mid is not None:
            attrs += ' id=%s' % quoteattr(mid)
        inner = ('<body>%s</body>' % escape(body)) if body is not None else ''
        self.send('<message %s>%s%s</message>' % (attrs, inner, extra))

    # -- receiving --

    def wait(self, pred, timeout=None, what=None):
        """The first queued or arriving element for which pred is true;
        everything else stays queued in order."""
        raw = self.raw
        deadline = time.monotonic() + (timeout or TIMEOUT)
        idx = 0
        while True:
            while idx < len(raw.pending):
                el = raw.pending[idx]
                if pred(el):
                    del raw.pending[idx]
                    return el
                idx += 1
            if raw.stream_ended or raw.eof:
                raise AssertionError(
                    '%s: stream closed while waiting for %s\nqueued: %s\n%s'
                    % (self.full, what or getattr(pred, 'what', pred),
                       self.queued(), raw.history()))
            if not raw._read_some(deadline) and \
                    time.monotonic() >= deadline:
                raise AssertionError(
                    '%s: no %s within %.1fs\nqueued: %s\n%s'
                    % (self.full, what or getattr(pred, 'what', pred),
                       timeout or TIMEOUT, self.queued(), raw.history()))

    def absent(self, pred, duration=0.05, what=None, barrier=True):
        """Nothing matching pred is queued or arrives: first a barrier (an
        IQ round trip on every other open session of the test, then on
        this one, so what the server did for stanzas already sent has
        reached us), then duration more seconds for work the server
        finishes later (storage)."""
        raw = self.raw
        if barrier:
            self.barrier()
        deadline = time.monotonic() + duration
        while True:
            for el in raw.pending:
                if pred(el):
                    raise AssertionError('%s: unexpected %s: %s' % (
                        self.full, what or getattr(pred, 'what', 'stanza'),
                        tostr(el)))
            if raw.stream_ended or raw.eof:
                return
            if time.monotonic() >= deadline:
                return
            raw._read_some(deadline)

    def barrier(self):
        for peer in list(self.peers):
            if peer is self or not peer.open():
                continue
            try:
                peer.sync()
            except (AssertionError, OSError):
                if peer.open():     # not just a session the server ended
                    raise
        if self.open():
            self.sync()

    def open(self):
        raw = self.raw
        return not (raw.eof or raw.stream_ended or raw.sock.fileno() < 0 or
                    self.closing)

    def expect_stream_error(self, condition, timeout=None):
        """A <stream:error/> with exactly condition arrives (stanzas before
        it are skipped), then the stream ends."""
        el = self.wait(lambda e: e.tag == q(NS_STREAM, 'error'), timeout,
                       'stream error <%s/>' % condition)
        conds = [c.tag for c in el if c.tag != q(NS_STREAM_ERR, 'text')]
        assert conds == [q(NS_STREAM_ERR, condition)], (
            'expected stream error <%s/>, got %s' % (condition, tostr(el)))
        self.raw.pending.clear()
        self.raw.expect_stream_end(timeout)
        return el

    def discard(self, pred=None):
        """Drop queued elements matching pred (all when None); returns
        them."""
        raw = self.raw
        dropped = [el for el in raw.pending if pred is None or pred(el)]
        kept = [el for el in raw.pending if not (pred is None or pred(el))]
        raw.pending.clear()
        raw.pending.extend(kept)
        return dropped

    def settle(self, duration=0.0):
        """Let the server finish what it is doing for us (a barrier,
        then duration), then drop every queued presence (broadcasts and
        probe answers a test does not care about)."""
        self.absent(lambda el: False, duration)
        self.discard(lambda el: el.tag == q(NS_CLIENT, 'presence'))

    def close_stream(self):
        """Send </stream:stream> (the server ends the session)."""
        self.closing = True
        self.raw.end_stream()

    def sync(self):
        """An IQ round trip with the server (result or error both do):
        what the server sent us before answering is queued after it."""
        self.iq('get', "<ping xmlns='%s'/>" % NS_PING, to=DOMAIN)

    def queued(self):
        return [tostr(el)[:300] for el in self.raw.pending]

    # -- IQ --

    def iq(self, itype, payload='', to=None, timeout=None):
        """Send an IQ and return the server's result or error for it."""
        iq_id = 'im%d' % next(_ids)
        attrs = "type='%s' id='%s'" % (itype, iq_id)
        if to is not None:
            attrs += ' to=%s' % quoteattr(to)
        self.send('<iq %s>%s</iq>' % (attrs, payload))
        el = self.wait(lambda e: e.tag == q(NS_CLIENT, 'iq') and
                       e.get('id') == iq_id and
                       e.get('type') in ('result', 'error'),
                       timeout, 'answer to iq %s' % iq_id)
        return el

    def iq_ok(self, itype, payload='', to=None):
        el = self.iq(itype, payload, to)
        assert el.get('type') == 'result', (
            '%s: expected result, got %s' % (self.full, tostr(el)))
        return el

    def iq_error(self, itype, payload, condition, etype, to=None, frm=ANY):
        el = self.iq(itype, payload, to)
        assert_stanza_error(el, 'iq', condition, etype=etype)
        if frm is not ANY:
            assert el.get('from') == frm, (
                'error from %r, expected %r: %s' % (el.get('from'), frm,
                                                    tostr(el)))
        return el

    def answer(self, iq_el):
        """Reply with an empty result to a server-sent IQ (a push)."""
        self.send("<iq type='result' id=%s/>" % quoteattr(iq_el.get('id')))

    # -- roster --

    def roster_get(self, ver=None):
        """The roster result element (an IQ result)."""
        attr = '' if ver is None else ' ver=%s' % quoteattr(ver)
        el = self.iq_ok('get', "<query xmlns='%s'%s/>" % (NS_ROSTER, attr))
        self.interested = True
        return el

    def roster(self):
        """{jid: item element} from a roster get."""
        query = self.roster_get().find(q(NS_ROSTER, 'query'))
        assert query is not None, 'roster result without <query/>'
        return {i.get('jid'): i for i in query.findall(q(NS_ROSTER, 'item'))}

    def roster_set(self, jid, name=None, groups=(), subscription=None,
                   extra_attrs=''):
        attrs = 'jid=%s' % quoteattr(jid)
        if name is not None:
            attrs += ' name=%s' % quoteattr(name)
        if subscription is not None:
            attrs += ' subscription=%s' % quoteattr(subscription)
        inner = ''.join('<group>%s</group>' % escape(g) for g in groups)
        return self.iq('set', "<query xmlns='%s'><item %s%s>%s</item>"
                       "</query>" % (NS_ROSTER, attrs, extra_attrs, inner))

    def expect_push(self, jid, timeout=None):
        """The next roster push for jid: checks 'from' (absent or our bare
        JID, RFC 6121 §2.1.6) and 'to', answers it, returns the item."""
        el = self.wait(is_roster_push(jid), timeout)
        assert el.get('from') in (None, self.bare), (
            'roster push from %r: %s' % (el.get('from'), tostr(el)))
        assert el.get('to') in (None, self.full), (
            'roster push to %r, we are %s' % (el.get('to'), self.full))
        self.answer(el)
        return el.find(q(NS_ROSTER, 'query')).find(q(NS_ROSTER, 'item'))

    def no_push(self, jid=ANY, duration=0.05):
        self.absent(is_roster_push(jid), duration)


def subscribe(user, contact):
    """user subscribes to contact's presence and contact approves (RFC 6121
    §3.1), both online and available; waits for every step, then drops
    the presence that follows."""
    user.presence(to=contact.bare, ptype='subscribe')
    if user.interested:
        # RFC 6121 §3.1.2: the outbound request is pushed with ask.
        item = user.expect_push(contact.bare)
        assert item.get('ask') == 'subscribe', tostr(item)
    contact.wait(is_presence(frm=user.bare, ptype='subscribe'))
    contact.presence(to=user.bare, ptype='subscribed')
    user.wait(is_presence(frm=contact.bare, ptype='subscribed'))
    if user.interested:
        item = user.expect_push(contact.bare)
        assert item.get('subscription') in ('to', 'both'), tostr(item)
    if contact.interested:
        item = contact.expect_push(user.bare)
        assert item.get('subscription') in ('from', 'both'), tostr(item)
    user.settle()
    contact.settle()


def subscribe_both(a, b):
    """Mutual subscription ('both' on each side)."""
    subscribe(a, b)
    subscribe(b, a)


def item_state(item):
    """(subscription, ask, approved) of a roster item element, or the
    state of a contact that has no item."""
    if item is None:
        return ('none', None, False)
    return (item.get('subscription', 'none'), item.get('ask'),
            item.get('approved') in ('true', '1'))


def groups_of(item):
    return sorted(g.text or '' for g in item.findall(q(NS_ROSTER, 'group')))


def assert_addressed_to(el, client):
    """Delivered stanzas carry the user's bare JID or this resource's full
    JID in 'to'."""
    assert el.get('to') in (client.bare, client.full), (
        "'to' %r is neither %s nor %s: %s" % (el.get('to'), client.bare,
                                              client.full, tostr(el)))


def assert_error_extra(el, ns, name):
    """The <error/> of el carries an application-specific <name xmlns=ns/>."""
    err = el.find(q(NS_CLIENT, 'error'))
    assert err is not None and err.find(q(ns, name)) is not None, (
        'no <%s xmlns=%r/> in the error: %s' % (name, ns, tostr(el)))


def error_of(el):
    """(type, [defined conditions]) of an error stanza."""
    err = el.find(q(NS_CLIENT, 'error'))
    assert err is not None, 'no <error/> in %s' % tostr(el)
    return err.get('type'), [local(c.tag) for c in err
                             if namespace(c.tag) == NS_STANZA_ERR and
                             local(c.tag) != 'text']


def child(el, ns, name):
    return el.find(q(ns, name))


# --- the fixture -------------------------------------------------------------

class IMFactory:
    def __init__(self, server):
        self.server = server
        self.made = []

    def __call__(self, jid, resource=None, roster=False, presence=True,
                 priority=None, echo=False, settle=True, **login_kw):
        """A bound session of jid: with roster, an interested resource
        (RFC 6121 §2.2); with presence, an available one (initial
        presence sent; with echo, wait for it to come back to us, RFC 6121
        §4.2.2), then with settle the presence burst that follows is
        dropped."""
        raw = self.server.login(jid, resource=resource, **login_kw)
        c = IMClient(raw, jid)
        self.made.append(c)
        c.peers = self.made
        if roster:
            c.roster_get()
        if presence:
            c.presence(priority=priority)
            if echo:
                c.wait(is_presence(frm=c.full, ptype=None))
            if settle:
                c.settle()
        return c

    def close_all(self):
        for c in self.made:
            c.raw.close()


@pytest.fixture
def im(server):
    f = IMFactory(server)
    yield f
    f.close_all()


# --- slixmpp -----------------------------------------------------------------

def slixmpp_client(server, jid):
    """A slixmpp ClientXMPP for jid over STARTTLS, verifying the daemon's
    certificate, with SCRAM-SHA-256 without channel binding (slixmpp 1.8
    only knows tls-unique; see test_routing.py)."""
    import logging
    from pathlib import Path
    import slixmpp

    logging.getLogger('slixmpp').setLevel(logging.WARNING)
    x = slixmpp.ClientXMPP(jid + '/slix', server.users[jid],
                           sasl_mech='SCRAM-SHA-256')
    x.ca_certs = Path(server.cert)
    mechs = x['feature_mechanisms']
    default_credentials = mechs.sasl_callback

    def credentials(required, optional):
        creds = default_credentials(required, optional)
        if 'channel_binding' in creds:
            creds['channel_binding'] = None
        return creds

    mechs.sasl_callback = credentials
    return x


def slixmpp_started(server, jid, plugins, loop):
    """A slixmpp client of jid with plugins (names, or (name, config)
    pairs), connecting: (client, a future of loop done once its session
    has started and it has sent its presence)."""
    x = slixmpp_client(server, jid)
    for p in plugins:
        x.register_plugin(*((p,) if isinstance(p, str) else p))
    started = loop.create_future()

    def on_start(_e):
        x.send_presence()
        if not started.done():
            started.set_result(True)
    x.add_event_handler('session_start', on_start)
    x.connect(('127.0.0.1', server.c2s_port), force_starttls=True)
    return x, started


async def until(cond, what, timeout=20.0, detail=None):
    """Wait in a slixmpp scenario until cond() holds; AssertionError
    naming what (and detail(), if given) after timeout seconds."""
    import asyncio

    loop = asyncio.get_event_loop()
    end = loop.time() + timeout
    while not cond():
        if loop.time() > end:
            raise AssertionError('no %s%s' % (
                what, '' if detail is None else '; ' + detail()))
        await asyncio.sleep(0.02)


def run_async(coro_fn, clients, timeout=15):
    """Run coro_fn(loop) on a fresh event loop, then abort the clients and
    close the loop."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(asyncio.wait_for(coro_fn(loop),
                                                        timeout))
    finally:
        for x in clients:
            try:
                x.abort()
            except Exception:
                pass
        loop.run_until_complete(asyncio.sleep(0.05))
        pending = asyncio.all_tasks(loop)
        for task in pending:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*pending,
                                               return_exceptions=True))
        loop.close()
        # Leave a usable current loop for code that calls
        # asyncio.get_event_loop() later (slixmpp's constructors).
        asyncio.set_event_loop(asyncio.new_event_loop())


# --- XEP-0115 ----------------------------------------------------------------

def caps_ver(query, hash_name='sha-1'):
    """The XEP-0115 §5.1 verification string of a disco#info <query/>."""
    s = b''
    identities = []
    for i in query.findall(q(NS_DISCO_INFO, 'identity')):
        key = tuple(x.encode('utf-8') for x in (
            i.get('category', ''), i.get('type', ''), i.get(XML_LANG, ''),
            i.get('name', '')))
        identities.append(key)
    for key in sorted(identities):
        s += b'/'.join(key) + b'<'
    features = sorted(f.get('var', '').encode('utf-8')
                      for f in query.findall(q(NS_DISCO_INFO, 'feature')))
    for f in features:
        s += f + b'<'
    forms = []
    for x in query.findall(q(NS_XDATA, 'x')):
        fields = {}
        form_type = None
        for f in x.findall(q(NS_XDATA, 'field')):
            values = [(v.text or '').encode('utf-8')
                      for v in f.findall(q(NS_XDATA, 'value'))]
            if f.get('var') == 'FORM_TYPE':
                if f.get('type') == 'hidden' and values:
                    form_type = values[0]
                continue
            fields[f.get('var', '').encode('utf-8')] = sorted(values)
        if form_type is None:
            continue        # §5.4: a form without a hidden FORM_TYPE
        forms.append((form_type, fields))
    for form_type, fields in sorted(forms):
        s += form_type + b'<'
        for var in sorted(fields):
            s += var + b'<'
            for v in fields[var]:
                s += v + b'<'
    digest = {'sha-1': hashlib.sha1}[hash_name](s).digest()
    return base64.b64encode(digest).decode()


def form_fields(x):
    """{var: [values]} of a jabber:x:data form."""
    return {f.get('var'): [v.text or '' for v in
                           f.findall(q(NS_XDATA, 'value'))]
            for f in x.findall(q(NS_XDATA, 'field'))}


def login_features(server, jid, password=None):
    """Authenticate jid (STARTTLS, PLAIN) and return (RawClient, the
    <stream:features/> after SASL), unbound."""
    import xmpp_raw
    c = server.client()
    try:
        c.open_stream()
        c.starttls()
        c.open_stream()
        user = jid.split('@')[0]
        el = c.sasl_plain(user, password or server.users[jid])
        xmpp_raw.assert_sasl_success(el)
        features = c.open_stream()
        return c, features
    except BaseException:
        c.close()
        raise
