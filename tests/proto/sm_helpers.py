"""Helpers for the XEP-0198 stream management tests: a client side that
counts the stanzas it receives once stream management is on (what its
<a h/> must say), enabling, acks both ways and resumption on a new
connection."""

import collections

from xmpp_raw import NS_CLIENT, NS_STANZA_ERR, login, namespace, q, tostr

NS_SM = 'urn:xmpp:sm:3'
NS_DELAY = 'urn:xmpp:delay'


class CountingQueue(collections.deque):
    """RawClient.pending that counts the stanzas (jabber:client elements)
    that arrive after <enabled/> or <resumed/>, as a client must (XEP-0198
    §4); start sets the count a resumption starts from."""

    def __init__(self, items=(), start=None):
        super().__init__(items)
        self.on = start is not None
        self.stanzas = start or 0

    def append(self, el):
        if el.tag in (q(NS_SM, 'enabled'), q(NS_SM, 'resumed')):
            self.on = True
        elif self.on and namespace(el.tag) == NS_CLIENT:
            self.stanzas = (self.stanzas + 1) % 2 ** 32
        super().append(el)


def is_sm(name):
    def pred(el):
        return el.tag == q(NS_SM, name)
    pred.what = '<%s xmlns=%r/>' % (name, NS_SM)
    return pred


def counting(c):
    """Make c (an IMClient) count the stanzas it receives from now on."""
    if not isinstance(c.raw.pending, CountingQueue):
        c.raw.pending = CountingQueue(c.raw.pending)
    return c


def enable(c, resume=True):
    """Enable stream management on c; returns <enabled/>."""
    counting(c)
    c.send("<enable xmlns='%s'%s/>" % (NS_SM, " resume='true'" if resume
                                        else ''))
    return c.wait(is_sm('enabled'))


def received(c):
    """How many stanzas c has received since stream management began."""
    return c.raw.pending.stanzas


def ack(c, h=None):
    """Acknowledge what c has received (or h)."""
    c.send("<a xmlns='%s' h='%d'/>" % (NS_SM, received(c) if h is None
                                        else h))


def request(c):
    """<r/>: the server's <a h/> for what it handled; returns h."""
    c.send("<r xmlns='%s'/>" % NS_SM)
    return int(c.wait(is_sm('a')).get('h'))


def failed_condition(el):
    conds = [local for local in el if namespace(local.tag) == NS_STANZA_ERR]
    assert len(conds) == 1, tostr(el)
    return conds[0].tag.split('}')[1]


def authenticate(server, jid):
    """A new connection to server, authenticated as jid, not bound; the
    RawClient after the post-SASL stream restart, and its features."""
    raw = login(server.c2s_port, jid.split('@')[0], server.users[jid],
                bind=False)
    return raw


def resume(server, jid, previd, h):
    """Resume previd on a new connection with the client's count h;
    returns (raw, answer) with answer <resumed/> or <failed/> (anything
    else: the stream error or whatever came).  The new connection counts
    on from h."""
    raw = authenticate(server, jid)
    raw.pending = CountingQueue(raw.pending, start=h)
    raw.send("<resume xmlns='%s' previd='%s' h='%d'/>" % (NS_SM, previd, h))
    el = raw.next_element()
    return raw, el
