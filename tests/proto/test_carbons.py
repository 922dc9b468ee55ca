"""Message Carbons (XEP-0280 1.0, urn:xmpp:carbons:2): enabling and
disabling per resource, <received/> and <sent/> copies to the user's
other carbons-enabled resources, which messages are copied (§6.1),
<private/> and <no-copy/> (§9, XEP-0334), delivery to the bare JID
without duplicates, carbons that a third party or a client forges
(§11), and slixmpp's xep_0280 plugin as a second client."""

import asyncio

import pytest

from im_helpers import (ANY, DOMAIN, NS_DISCO_INFO, fresh_users, is_message,
                        slixmpp_client, run_async)
from im_helpers import im  # noqa: F401 (the fixture)
from xmpp_raw import NS_CLIENT, assert_stanza_error, q, tostr

NS_CARBONS = 'urn:xmpp:carbons:2'
NS_FORWARD = 'urn:xmpp:forward:0'
NS_HINTS = 'urn:xmpp:hints'
NS_MUC_USER = 'http://jabber.org/protocol/muc#user'
NS_CONFERENCE = 'jabber:x:conference'
NS_RECEIPTS = 'urn:xmpp:receipts'
NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'
NS_SID = 'urn:xmpp:sid:0'

ENABLE = "<enable xmlns='%s'/>" % NS_CARBONS
DISABLE = "<disable xmlns='%s'/>" % NS_CARBONS
PRIVATE = "<private xmlns='%s'/>" % NS_CARBONS
NO_COPY = "<no-copy xmlns='%s'/>" % NS_HINTS


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def enable(c, to=None):
    el = c.iq_ok('set', ENABLE, to=to)
    assert len(el) == 0, tostr(el)


def disable(c, to=None):
    el = c.iq_ok('set', DISABLE, to=to)
    assert len(el) == 0, tostr(el)


def is_carbon(kind=ANY, body=ANY):
    """A message with a carbons <received/> or <sent/> (kind) child whose
    forwarded message has body (ANY: any)."""
    def pred(el):
        if el.tag != q(NS_CLIENT, 'message'):
            return False
        for k in ('received', 'sent'):
            w = el.find(q(NS_CARBONS, k))
            if w is None or (kind is not ANY and k != kind):
                continue
            if body is ANY:
                return True
            inner = w.find('%s/%s' % (q(NS_FORWARD, 'forwarded'),
                                      q(NS_CLIENT, 'message')))
            return inner is not None and \
                inner.findtext(q(NS_CLIENT, 'body')) == body
        return False
    pred.what = 'carbon %s body=%s' % ('any' if kind is ANY else kind,
                                       'any' if body is ANY else body)
    return pred


def is_wrapped(el):
    """Any carbons wrapper, of any protocol version, anywhere in el."""
    return any(c.tag.startswith('{urn:xmpp:carbons:') and
               c.tag.split('}')[1] in ('received', 'sent')
               for c in el.iter())


def check_carbon(el, client, kind, mtype, body=None, frm=None, to=None):
    """XEP-0280 §7/§8: from the user's bare JID, to the receiving
    resource's full JID, the original's type, <kind/> holding
    <forwarded/> holding the original message.  Returns that message."""
    assert el.get('from') == client.bare, tostr(el)
    assert el.get('to') == client.full, tostr(el)
    assert el.get('type') == mtype, tostr(el)
    wrappers = [c for c in el if c.tag in (q(NS_CARBONS, 'received'),
                                           q(NS_CARBONS, 'sent'))]
    assert [c.tag for c in wrappers] == [q(NS_CARBONS, kind)], tostr(el)
    fwd = wrappers[0].findall(q(NS_FORWARD, 'forwarded'))
    assert len(fwd) == 1, tostr(el)
    inner = fwd[0].findall(q(NS_CLIENT, 'message'))
    assert len(inner) == 1, tostr(el)
    inner = inner[0]
    if body is not None:
        assert inner.findtext(q(NS_CLIENT, 'body')) == body, tostr(el)
    if frm is not None:
        assert inner.get('from') == frm, tostr(el)
    if to is not None:
        assert inner.get('to') == to, tostr(el)
    assert inner.get('type') == mtype, tostr(el)
    return inner


# --- discovery, enable and disable ---------------------------------------------

def test_disco_feature(server, im):
    [a] = fresh_users(server, 1)
    c = im(a, presence=False)
    el = c.iq_ok('get', "<query xmlns='%s'/>" % NS_DISCO_INFO, to=DOMAIN)
    features = {f.get('var') for f in
                el.find(q(NS_DISCO_INFO, 'query')).findall(
                    q(NS_DISCO_INFO, 'feature'))}
    assert NS_CARBONS in features, tostr(el)


def test_enable_disable_addressing_and_repeats(server, im):
    """§4/§5: to the server, to the own bare JID or without 'to'; §10.1:
    repeating either is no error."""
    a, other = fresh_users(server, 2)
    c = im(a, 'r1', presence=False)
    enable(c)
    enable(c)
    enable(c, to=DOMAIN)
    enable(c, to=a)
    disable(c)
    disable(c)
    disable(c, to=DOMAIN)
    disable(c, to=a)


def test_enable_errors(server, im):
    a, other = fresh_users(server, 2)
    c = im(a, presence=False)
    # another account's carbons: <not-allowed/> (§5)
    c.iq_error('set', ENABLE, 'not-allowed', 'cancel', to=other)
    c.iq_error('set', DISABLE, 'not-allowed', 'cancel', to=other)
    # the protocol has no get
    c.iq_error('get', ENABLE, 'bad-request', 'modify')
    # a resource is not the account: the IQ goes to that client
    c.iq_error('set', ENABLE, 'service-unavailable', 'cancel',
               to=a + '/nonexistent')


# --- received and sent copies --------------------------------------------------

def test_received_and_sent_copies(server, im):
    """§7: a message to r1 reaches r2 and r3 as <received/>; §8: what r1
    sends reaches r2 and r3 as <sent/>; r1 gets no copy of either, and
    r1 need not have carbons enabled itself."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    r3 = im(a, 'r3')
    cb = im(b, 'x')
    enable(r2)
    enable(r3)

    cb.message(r1.full, 'to r1', mid='in1',
               extra='<thread>th1</thread>')
    el = r1.wait(is_message(body='to r1'))
    assert el.get('from') == cb.full and not is_wrapped(el), tostr(el)
    for c in (r2, r3):
        inner = check_carbon(c.wait(is_carbon('received')), c, 'received',
                             'chat', 'to r1', frm=cb.full, to=r1.full)
        assert inner.get('id') == 'in1', tostr(inner)
        assert inner.findtext(q(NS_CLIENT, 'thread')) == 'th1', tostr(inner)

    r1.message(b, 'from r1', mid='out1')
    el = cb.wait(is_message(body='from r1'))
    assert el.get('from') == r1.full and not is_wrapped(el), tostr(el)
    for c in (r2, r3):
        inner = check_carbon(c.wait(is_carbon('sent')), c, 'sent', 'chat',
                             'from r1', frm=r1.full, to=b)
        assert inner.get('id') == 'out1', tostr(inner)

    # a sender with carbons enabled gets no copy of its own message
    r2.message(cb.full, 'from r2', mid='out2')
    cb.wait(is_message(body='from r2'))
    check_carbon(r3.wait(is_carbon('sent')), r3, 'sent', 'chat', 'from r2',
                 frm=r2.full)
    r1.absent(is_carbon(), 0.2)
    r2.absent(is_carbon(), 0.05)
    r3.absent(is_carbon(), 0.05)
    cb.absent(is_carbon(), 0.05)


def test_disabled_resources_get_nothing(server, im):
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')            # never enables
    r3 = im(a, 'r3')            # enables, then disables
    cb = im(b, 'x')
    enable(r3)
    disable(r3)
    cb.message(r1.full, 'hello')
    r1.wait(is_message(body='hello'))
    r1.message(b, 'hello back')
    cb.wait(is_message(body='hello back'))
    for c in (r1, r2, r3):
        c.absent(is_carbon(), 0.2)
    # enabled again, copies resume
    enable(r3)
    cb.message(r1.full, 'again')
    check_carbon(r3.wait(is_carbon('received')), r3, 'received', 'chat',
                 'again')
    r2.absent(is_carbon(), 0.1)


def test_carbons_end_with_the_session(server, im):
    """The state belongs to the session: a new session with the same
    resource starts without carbons."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cb = im(b, 'x')
    enable(r2)
    r2.close_stream()
    r2.raw.close()
    r2b = im(a, 'r2')
    cb.message(r1.full, 'after reconnect')
    r1.wait(is_message(body='after reconnect'))
    r2b.absent(is_carbon(), 0.2)


# --- eligibility (§6.1) ---------------------------------------------------------

ELIGIBILITY = [
    # (name, type, body, extra payload, copied)
    ('chat', 'chat', 'b', '', True),
    ('chat-state-only', 'chat', None,
     "<composing xmlns='%s'/>" % NS_CHATSTATES, True),
    ('normal-with-body', 'normal', 'b', '', True),
    ('no-type-with-body', None, 'b', '', True),
    ('normal-without-body', 'normal', None,
     "<x xmlns='urn:example:data'/>", False),
    ('normal-receipt', 'normal', None,
     "<received xmlns='%s' id='r1'/>" % NS_RECEIPTS, True),
    ('headline', 'headline', 'b', '', False),
    ('groupchat', 'groupchat', 'b', '', False),
    ('direct-invitation', 'normal', None,
     "<x xmlns='%s' jid='room@conference.example'/>" % NS_CONFERENCE, True),
    ('mediated-invitation', 'normal', None,
     "<x xmlns='%s'><invite from='c@example'/></x>" % NS_MUC_USER, True),
]


@pytest.mark.parametrize('name,mtype,body,extra,copied', ELIGIBILITY,
                         ids=[e[0] for e in ELIGIBILITY])
def test_eligibility(server, im, name, mtype, body, extra, copied):
    """Each kind of message sent to a full JID, in both directions:
    received by r1 (copied to r2) and sent by r1 (copied to r2)."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cb = im(b, 'x')
    enable(r2)

    def arrived(c, mid):
        return c.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                      e.get('id') == mid and not is_wrapped(e),
                      what='message %s' % mid)

    for direction, sender, receiver in (('received', cb, r1),
                                        ('sent', r1, cb)):
        mid = '%s-%s' % (name, direction)
        sender.message(receiver.full, body, mtype=mtype, mid=mid,
                       extra=extra)
        arrived(receiver, mid)
        if copied:
            el = r2.wait(is_carbon(direction))
            inner = check_carbon(el, r2, direction, mtype, body)
            assert inner.get('id') == mid, tostr(el)
        else:
            r2.absent(is_carbon(), 0.1)


def test_muc_private_messages(server, im):
    """§6.1: a private message from a MUC occupant (marked with the
    muc#user <x/>, XEP-0045 §7.5) is not copied, one to an occupant
    is."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cb = im(b, 'nick')
    enable(r2)
    x = "<x xmlns='%s'/>" % NS_MUC_USER
    cb.message(r1.full, 'pm in', extra=x)
    r1.wait(is_message(body='pm in'))
    r2.absent(is_carbon(), 0.2)
    r1.message(cb.full, 'pm out', extra=x)
    cb.wait(is_message(body='pm out'))
    check_carbon(r2.wait(is_carbon('sent')), r2, 'sent', 'chat', 'pm out')


def test_errors_answering_eligible_messages(server, im):
    """§6.1: an error is copied when it answers an eligible message (the
    same peer and id), in both directions; other errors are not."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cb = im(b, 'x')
    enable(r2)
    err = ("<error type='cancel'><service-unavailable "
           "xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>")

    # r1 sends an eligible message, b answers with an error
    r1.message(cb.full, 'are you there?', mid='q1')
    cb.wait(is_message(body='are you there?'))
    r2.wait(is_carbon('sent'))
    cb.send("<message type='error' id='q1' to='%s'>%s</message>"
            % (r1.full, err))
    el = r1.wait(is_message(mtype='error'))
    assert el.get('id') == 'q1', tostr(el)
    inner = check_carbon(r2.wait(is_carbon('received')), r2, 'received',
                         'error', frm=cb.full)
    assert inner.get('id') == 'q1', tostr(inner)

    # b sends an eligible message to r1, r1 answers with an error
    cb.message(r1.full, 'take this', mid='q2')
    r1.wait(is_message(body='take this'))
    r2.wait(is_carbon('received'))
    r1.send("<message type='error' id='q2' to='%s'>%s</message>"
            % (cb.full, err))
    cb.wait(lambda e: e.get('type') == 'error' and e.get('id') == 'q2')
    inner = check_carbon(r2.wait(is_carbon('sent')), r2, 'sent', 'error',
                         to=cb.full)
    assert inner.get('id') == 'q2', tostr(inner)

    # errors that answer nothing copied: an unknown id, or a message
    # that was not eligible (a headline)
    cb.send("<message type='error' id='nope' to='%s'>%s</message>"
            % (r1.full, err))
    r1.wait(lambda e: e.get('type') == 'error' and e.get('id') == 'nope')
    r1.message(cb.full, 'news', mtype='headline', mid='h1')
    cb.wait(is_message(body='news'))
    cb.send("<message type='error' id='h1' to='%s'>%s</message>"
            % (r1.full, err))
    r1.wait(lambda e: e.get('type') == 'error' and e.get('id') == 'h1')
    r2.absent(is_carbon(), 0.2)


# --- <private/> and <no-copy/> (§9, XEP-0334) ----------------------------------

@pytest.mark.parametrize('extra', [PRIVATE + NO_COPY, PRIVATE, NO_COPY],
                         ids=['private+no-copy', 'private', 'no-copy'])
def test_private_and_no_copy(server, im, extra):
    """No copy to the sender's other resources nor the recipient's; the
    original is delivered as sent (XEP-0280 1.0 no longer asks the
    receiving server to remove <private/>)."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    x1 = im(b, 'x1')
    x2 = im(b, 'x2')
    enable(r2)
    enable(x2)
    r1.message(x1.full, 'secret', extra=extra)
    el = x1.wait(is_message(body='secret'))
    assert (el.find(q(NS_CARBONS, 'private')) is not None) == \
        ('private' in extra), tostr(el)
    assert (el.find(q(NS_HINTS, 'no-copy')) is not None) == \
        ('no-copy' in extra), tostr(el)
    x1.message(r1.full, 'secret too', extra=extra)
    r1.wait(is_message(body='secret too'))
    for c in (r1, r2, x1, x2):
        c.absent(is_carbon(), 0.1)


# --- delivery to the bare JID ---------------------------------------------------

def test_bare_jid_delivery_no_duplicates(server, im):
    """RFC 6121 §8.5.2.1.1: a chat message to the bare JID goes to both
    resources of the top priority; neither gets a carbon as well.  A
    carbons-enabled resource that did not get it (negative priority)
    gets one copy."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1', priority=5)
    r2 = im(a, 'r2', priority=5)
    low = im(a, 'low', priority=-1)
    cb = im(b, 'x')
    for c in (r1, r2, low):
        enable(c)
    cb.message(a, 'to the bare JID', mid='bare1')
    for c in (r1, r2):
        el = c.wait(is_message(body='to the bare JID'))
        assert el.get('from') == cb.full and not is_wrapped(el), tostr(el)
    check_carbon(low.wait(is_carbon('received')), low, 'received', 'chat',
                 'to the bare JID', to=a)
    for c in (r1, r2, low):
        c.absent(lambda e: e.tag == q(NS_CLIENT, 'message') and
                 (is_carbon()(e) or e.get('id') == 'bare1'), 0.2,
                 what='a second copy')

    # a normal message goes to the top priority only: the other
    # resource of lower priority gets the carbon
    r2.presence(priority=1)
    r2.settle()
    cb.message(a, 'normal one', mtype='normal', mid='bare2')
    r1.wait(is_message(body='normal one'))
    check_carbon(r2.wait(is_carbon('received')), r2, 'received', 'normal',
                 'normal one')
    check_carbon(low.wait(is_carbon('received')), low, 'received', 'normal',
                 'normal one')
    r1.absent(is_carbon(), 0.1)


def test_no_copy_of_a_message_stored_offline(server, im):
    """With no resource to deliver to (RFC 6121 §8.5.2.2.1) the message is
    stored; a carbons-enabled resource of negative priority gets no copy
    now, and the message once, from storage, after initial presence."""
    a, b = fresh_users(server, 2)
    low = im(a, 'low', presence=False)
    cb = im(b, 'x')
    enable(low)
    cb.message(a, 'while away', mid='off1')
    low.absent(lambda e: e.tag == q(NS_CLIENT, 'message'), 0.3)
    low.presence()
    el = low.wait(is_message(body='while away'))
    assert not is_wrapped(el), tostr(el)
    low.absent(lambda e: e.tag == q(NS_CLIENT, 'message'), 0.2)


def test_messages_to_own_account(server, im):
    """A message from r1 to another resource of the same account reaches
    that resource once, and the other enabled resources once, as
    <sent/>; none to the sender."""
    [a] = fresh_users(server, 1)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    r3 = im(a, 'r3')
    for c in (r1, r2, r3):
        enable(c)
    r1.message(r2.full, 'note to self', mid='self1')
    el = r2.wait(is_message(body='note to self'))
    assert not is_wrapped(el), tostr(el)
    check_carbon(r3.wait(is_carbon('sent')), r3, 'sent', 'chat',
                 'note to self', frm=r1.full, to=r2.full)
    for c in (r1, r2, r3):
        c.absent(lambda e: is_carbon()(e) or e.get('id') == 'self1', 0.1)


def stanza_ids(el):
    """{by: id} of the XEP-0359 <stanza-id/>s directly in el."""
    return {s.get('by'): s.get('id') for s in el.findall(q(NS_SID,
                                                          'stanza-id'))}


def test_copies_carry_archive_ids(server, im):
    """With the archive (XEP-0313) on, a <received/> copy carries the id
    the recipient's archive gave the message, as the original does, and a
    <sent/> copy the id in the sender's archive, which the routed message
    never shows (XEP-0313 §3.5)."""
    a, b = fresh_users(server, 2)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cb = im(b, 'x')
    enable(r2)
    cb.message(r1.full, 'archived in', mid='sid1')
    orig = r1.wait(is_message(body='archived in'))
    ids = stanza_ids(orig)
    assert list(ids) == [a] and ids[a], tostr(orig)
    inner = check_carbon(r2.wait(is_carbon('received')), r2, 'received',
                         'chat', 'archived in')
    assert stanza_ids(inner) == ids, tostr(inner)

    r1.message(b, 'archived out', mid='sid2')
    routed = cb.wait(is_message(body='archived out'))
    assert a not in stanza_ids(routed), tostr(routed)
    inner = check_carbon(r2.wait(is_carbon('sent')), r2, 'sent', 'chat',
                         'archived out')
    sent_ids = stanza_ids(inner)
    assert list(sent_ids) == [a] and sent_ids[a] not in (None, ids[a]), \
        tostr(inner)


# --- forged carbons (§11) -------------------------------------------------------

def forged(kind, body, ns=NS_CARBONS, frm='friend@localhost/phone',
           to='victim@localhost'):
    return ("<%s xmlns='%s'><forwarded xmlns='%s'><message xmlns='%s' "
            "from='%s' to='%s' type='chat'><body>%s</body></message>"
            "</forwarded></%s>" % (kind, ns, NS_FORWARD, NS_CLIENT, frm, to,
                                   body, kind))


@pytest.mark.parametrize('kind,ns', [
    ('received', NS_CARBONS), ('sent', NS_CARBONS),
    ('received', 'urn:xmpp:carbons:1')],
    ids=['received', 'sent', 'received-v1'])
def test_forged_carbon_from_third_party(server, im, kind, ns):
    """A third party's message carrying a carbons wrapper reaches the
    user without it, whether sent to a full or the bare JID, and even
    with a spoofed 'from' (the server stamps the sender's JID); the
    user's carbons then copy the clean message only."""
    a, b, m = fresh_users(server, 3)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    cm = im(m, 'evil')
    enable(r2)
    fake = forged(kind, 'I love you, says b', ns=ns, frm=b + '/x', to=a)
    for to, frm_attr in ((r1.full, ''), (a, ''),
                         (r1.full, " from='%s'" % a)):
        cm.send("<message to='%s'%s type='chat' id='f1'>%s</message>"
                % (to, frm_attr, fake))
        el = r1.wait(lambda e: e.tag == q(NS_CLIENT, 'message') and
                     e.get('id') == 'f1', what='the forged message')
        assert el.get('from') == cm.full, tostr(el)
        assert not is_wrapped(el), tostr(el)
        if to == a:
            r2.wait(lambda e: e.get('id') == 'f1')   # bare: both got it
        else:
            c = r2.wait(is_carbon('received'))
            assert c.get('from') == a, tostr(c)
            inner = c.find('%s/%s/%s' % (q(NS_CARBONS, 'received'),
                                         q(NS_FORWARD, 'forwarded'),
                                         q(NS_CLIENT, 'message')))
            assert inner.get('from') == cm.full, tostr(c)
            assert not is_wrapped(inner), tostr(c)
    for c in (r1, r2):
        c.absent(lambda e: is_wrapped(e) and
                 'I love you' in tostr(e), 0.2, what='the forged carbon')


def test_client_cannot_forge_carbon_to_own_resources(server, im):
    """Even the user's own resource cannot send a carbon: a carbon comes
    from the bare JID, never a full one (§11)."""
    [a] = fresh_users(server, 1)
    r1 = im(a, 'r1')
    r2 = im(a, 'r2')
    enable(r1)
    r2.send("<message to='%s' type='chat' id='own1'>%s</message>"
            % (r1.full, forged('received', 'fake', to=a)))
    el = r1.wait(lambda e: e.get('id') == 'own1', what='the message')
    assert el.get('from') == r2.full and not is_wrapped(el), tostr(el)


def test_forged_carbon_bounced_without_wrapper(server, im):
    """The wrapper is gone before routing: an error for the message does
    not echo it back either."""
    [m] = fresh_users(server, 1)
    cm = im(m, 'evil')
    cm.send("<message to='nobody-here@localhost/x' type='chat' id='b1'>"
            "<body>hi</body>%s</message>" % forged('sent', 'x'))
    el = cm.wait(lambda e: e.get('id') == 'b1')
    assert_stanza_error(el, 'message', 'service-unavailable')
    assert not is_wrapped(el), tostr(el)


# --- slixmpp --------------------------------------------------------------------

def test_slixmpp_second_client(server, im):
    """slixmpp's xep_0280 plugin enables carbons and sees both kinds of
    copy as its events (it checks they come from the bare JID)."""
    a, b = fresh_users(server, 2)
    raw = im(a, 'raw')
    cb = im(b, 'x')
    got = {}
    clients = []

    def on_received(msg):
        got['received'] = (msg['from'].full,
                           msg['carbon_received']['body'],
                           msg['carbon_received']['from'].full)

    def on_sent(msg):
        got['sent'] = (msg['from'].full, msg['carbon_sent']['body'],
                       msg['carbon_sent']['to'].full)

    async def scenario(loop):
        # Made inside the loop, so that its futures belong to it.
        x = slixmpp_client(server, a)
        clients.append(x)
        x.register_plugin('xep_0280')
        x.add_event_handler('carbon_received', on_received)
        x.add_event_handler('carbon_sent', on_sent)
        started = loop.create_future()
        x.add_event_handler('session_start',
                            lambda _e: started.done() or
                            started.set_result(True))
        x.connect(('127.0.0.1', server.c2s_port), force_starttls=True)
        await started
        await x.plugin['xep_0280'].enable()
        cb.message(raw.full, 'to raw')
        while 'received' not in got:
            await asyncio.sleep(0.02)
        raw.message(b, 'from raw')
        while 'sent' not in got:
            await asyncio.sleep(0.02)
        x.disconnect()
        await asyncio.sleep(0.1)

    try:
        run_async(scenario, clients)
    finally:
        # run_async leaves "no current event loop" behind, which breaks
        # later tests that make a slixmpp client outside a loop: start
        # again from a fresh policy, as if no loop had been set.
        asyncio.set_event_loop_policy(None)
    assert got['received'] == (a, 'to raw', cb.full), got
    assert got['sent'] == (a, 'from raw', b), got
    raw.wait(is_message(body='to raw'))
    cb.wait(is_message(body='from raw'))
