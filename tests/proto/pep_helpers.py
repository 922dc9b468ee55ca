"""PEP (XEP-0163) test helpers on raw IMClient sessions: caps that the
server resolves (XEP-0115, answered by the client), publish with
publish-options, items, node configuration, and event matching."""

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

from im_helpers import DOMAIN, NS_CAPS, NS_DISCO_INFO, NS_XDATA, caps_ver
from xmpp_raw import NS_CLIENT, q, tostr

NS_PUBSUB = 'http://jabber.org/protocol/pubsub'
NS_PUBSUB_EVENT = NS_PUBSUB + '#event'
NS_PUBSUB_OWNER = NS_PUBSUB + '#owner'
NS_PUBSUB_ERRORS = NS_PUBSUB + '#errors'
CAPS_NODE = 'https://xmppd.test/client'


def disco_query(features, identity=('client', 'pc', 'test')):
    """A disco#info <query/> element with identity and features."""
    query = ET.Element(q(NS_DISCO_INFO, 'query'))
    cat, typ, name = identity
    ET.SubElement(query, q(NS_DISCO_INFO, 'identity'),
                  {'category': cat, 'type': typ, 'name': name})
    for f in sorted(set(features)):
        ET.SubElement(query, q(NS_DISCO_INFO, 'feature'), {'var': f})
    return query


def query_xml(features, node, identity=('client', 'pc', 'test')):
    cat, typ, name = identity
    inner = "<identity category=%s type=%s name=%s/>" % (
        quoteattr(cat), quoteattr(typ), quoteattr(name))
    inner += ''.join("<feature var=%s/>" % quoteattr(f)
                     for f in sorted(set(features)))
    return "<query xmlns='%s' node=%s>%s</query>" % (
        NS_DISCO_INFO, quoteattr(node), inner)


def is_caps_query(el):
    query = el.find(q(NS_DISCO_INFO, 'query'))
    return (el.tag == q(NS_CLIENT, 'iq') and el.get('type') == 'get' and
            query is not None and
            (query.get('node') or '').startswith(CAPS_NODE + '#'))


def answer_caps_queries(c, features, ver=None, lie=False):
    """Answer every queued caps disco#info query of c with features
    (with lie, features other than those the ver was computed from).
    Returns how many were answered."""
    n = 0
    for el in c.discard(is_caps_query):
        node = el.find(q(NS_DISCO_INFO, 'query')).get('node')
        feats = list(features) + (['urn:xmpp:forged'] if lie else [])
        c.send("<iq type='result' id=%s to=%s>%s</iq>" % (
            quoteattr(el.get('id')), quoteattr(el.get('from')),
            query_xml(feats, node)))
        n += 1
    return n


def caps_presence(features, ver=None, show=None):
    """Presence payload with XEP-0115 caps for features."""
    ver = ver or caps_ver(disco_query(features))
    extra = "<c xmlns='%s' hash='sha-1' node='%s' ver=%s/>" % (
        NS_CAPS, CAPS_NODE, quoteattr(ver))
    if show:
        extra = '<show>%s</show>' % show + extra
    return extra


def announce(c, features, answer=True, lie=False):
    """Send available presence with caps for features; answer the
    server's caps query if one comes (unless answer is False).  Returns
    the number of queries seen."""
    c.send('<presence>%s</presence>' % caps_presence(features))
    c.sync()
    n = 0
    if answer:
        n = answer_caps_queries(c, features, lie=lie)
        c.sync()
    return n


def notify(*nodes):
    return [n + '+notify' for n in nodes]


def options_form(fields, form_type=NS_PUBSUB + '#publish-options'):
    out = "<x xmlns='%s' type='submit'>" % NS_XDATA
    out += ("<field var='FORM_TYPE' type='hidden'><value>%s</value></field>"
            % form_type)
    for var, value in fields.items():
        values = value if isinstance(value, (list, tuple)) else [value]
        out += "<field var=%s>%s</field>" % (
            quoteattr(var), ''.join('<value>%s</value>' % escape(str(v))
                                    for v in values))
    return out + '</x>'


def publish_xml(node, payload, item_id=None, options=None):
    item = '<item%s>%s</item>' % (
        '' if item_id is None else ' id=%s' % quoteattr(item_id), payload)
    out = "<pubsub xmlns='%s'><publish node=%s>%s</publish>" % (
        NS_PUBSUB, quoteattr(node), item)
    if options is not None:
        out += '<publish-options>%s</publish-options>' % options_form(options)
    return out + '</pubsub>'


def publish(c, node, payload, item_id=None, options=None):
    """Publish and return the item id the server reports."""
    el = c.iq_ok('set', publish_xml(node, payload, item_id, options))
    item = el.find('.//' + q(NS_PUBSUB, 'item'))
    assert item is not None and item.get('id'), tostr(el)
    return item.get('id')


def items_xml(node, max_items=None, ids=()):
    attrs = ' node=%s' % quoteattr(node)
    if max_items is not None:
        attrs += " max_items='%s'" % max_items
    inner = ''.join('<item id=%s/>' % quoteattr(i) for i in ids)
    return "<pubsub xmlns='%s'><items%s>%s</items></pubsub>" % (
        NS_PUBSUB, attrs, inner)


def items(c, owner, node, max_items=None, ids=()):
    """[(id, payload element)] of owner's node, as c may read it."""
    el = c.iq_ok('get', items_xml(node, max_items, ids), to=owner)
    out = []
    for it in el.iter(q(NS_PUBSUB, 'item')):
        kids = list(it)
        out.append((it.get('id'), kids[0] if kids else None))
    return out


def configure_get(c, node):
    from im_helpers import form_fields
    el = c.iq_ok('get', "<pubsub xmlns='%s'><configure node=%s/></pubsub>"
                 % (NS_PUBSUB_OWNER, quoteattr(node)))
    x = el.find('.//' + q(NS_XDATA, 'x'))
    assert x is not None, tostr(el)
    return form_fields(x)


def configure_set_xml(node, fields):
    return "<pubsub xmlns='%s'><configure node=%s>%s</configure></pubsub>" % (
        NS_PUBSUB_OWNER, quoteattr(node),
        options_form(fields, NS_PUBSUB + '#node_config'))


def pubsub_error(el):
    """The pubsub#errors condition of an error reply, or None."""
    err = el.find(q(NS_CLIENT, 'error'))
    assert err is not None, tostr(el)
    for child in err:
        if child.tag.startswith('{%s}' % NS_PUBSUB_ERRORS):
            return child.tag.split('}', 1)[1]
    return None


def is_event(node=None, frm=None, item_id=None, kind='items'):
    """A pubsub#event message (of node, from, with an item id)."""
    def pred(el):
        if el.tag != q(NS_CLIENT, 'message'):
            return False
        ev = el.find(q(NS_PUBSUB_EVENT, 'event'))
        if ev is None:
            return False
        if frm is not None and el.get('from') != frm:
            return False
        child = ev.find(q(NS_PUBSUB_EVENT, kind))
        if child is None or (node is not None and child.get('node') != node):
            return False
        if item_id is not None:
            ids = [i.get('id') for i in child
                   if i.tag in (q(NS_PUBSUB_EVENT, 'item'),
                                q(NS_PUBSUB_EVENT, 'retract'))]
            return item_id in ids
        return True
    pred.what = 'pubsub event %s %s %s' % (kind, node, item_id)
    return pred


def event_items(el):
    ev = el.find(q(NS_PUBSUB_EVENT, 'event'))
    return [(i.get('id'), list(i)[0] if len(i) else None)
            for i in ev.iter(q(NS_PUBSUB_EVENT, 'item'))]


__all__ = ['DOMAIN']
