"""A client side of SASL2 (XEP-0388) with Bind 2 (XEP-0386), inline
XEP-0198 and FAST tokens (XEP-0484) for the raw-XML protocol tests: SCRAM
(with -PLUS) and PLAIN in the SASL2 framing, and the HT-SHA-256-*
mechanisms (draft-schmaus-kitten-sasl-ht), computed here."""

import base64
import hashlib
import hmac
import os
import ssl
import uuid
from xml.sax.saxutils import escape, quoteattr

from xmpp_raw import (NS_SASL, NS_STREAM, RawClient, channel_binding,
                      client_tls_context, q, scram_parse, scram_saslname,
                      tostr)

NS_SASL2 = 'urn:xmpp:sasl:2'
NS_BIND2 = 'urn:xmpp:bind:0'
NS_FAST = 'urn:xmpp:fast:0'
NS_SM = 'urn:xmpp:sm:3'
NS_CARBONS = 'urn:xmpp:carbons:2'
NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas'

FAST_CB = {'HT-SHA-256-NONE': None,
           'HT-SHA-256-ENDP': 'tls-server-end-point',
           'HT-SHA-256-EXPR': 'tls-exporter'}


def new_agent():
    return str(uuid.uuid4())


def tls_client(server, transport='starttls', version=None):
    """An encrypted, unauthenticated client; returns (client, features)."""
    ctx = client_tls_context(version, version) if version else None
    if transport == 'direct':
        c = RawClient(server.tls_port, tls=True, tls_context=ctx)
        return c, c.open_stream()
    c = server.client()
    c.open_stream()
    c.starttls(ctx)
    return c, c.open_stream()


def sasl2_feature(features):
    return features.find(q(NS_SASL2, 'authentication'))


def sasl2_mechanisms(features):
    auth = sasl2_feature(features)
    assert auth is not None, 'no SASL2 feature: %s' % tostr(features)
    return [m.text for m in auth.findall(q(NS_SASL2, 'mechanism'))]


def fast_mechanisms(features):
    auth = sasl2_feature(features)
    fast = auth.find('%s/%s' % (q(NS_SASL2, 'inline'), q(NS_FAST, 'fast')))
    if fast is None:
        return []
    return [m.text for m in fast.findall(q(NS_FAST, 'mechanism'))]


def assert_failure(el, condition, text=None):
    """A SASL2 <failure/> with the RFC 6120 condition (and text)."""
    assert el is not None and el.tag == q(NS_SASL2, 'failure'), (
        'expected SASL2 <failure><%s/></failure>, got %s'
        % (condition, tostr(el)))
    conds = [c.tag for c in el if c.tag.startswith('{%s}' % NS_SASL)]
    assert conds == [q(NS_SASL, condition)], (
        'expected <%s/>, got %s' % (condition, tostr(el)))
    if text is not None:
        assert el.findtext(q(NS_SASL2, 'text')) == text, tostr(el)


def assert_success(el):
    assert el is not None and el.tag == q(NS_SASL2, 'success'), (
        'expected SASL2 <success/>, got %s' % tostr(el))
    return el


def authz_id(success):
    return success.findtext(q(NS_SASL2, 'authorization-identifier'))


class Result:
    """The outcome of an exchange: final element, challenges, the SCRAM
    server-first-message, whether the server's signature (or HT
    responder MAC) was right, and the features that followed success."""

    def __init__(self):
        self.final = None
        self.challenges = []
        self.server_first = None
        self.signature_ok = None
        self.features = None

    @property
    def ok(self):
        return self.final is not None and \
            self.final.tag == q(NS_SASL2, 'success')

    def child(self, ns, name):
        return None if self.final is None else \
            self.final.find(q(ns, name))


def extras(agent=None, software='TestXMPP', device='pytest', bind=None,
           bind_inline='', extra=''):
    """The parts of <authenticate/> beside the initial response.  bind:
    None for no Bind 2, else the tag ('' for none)."""
    x = ''
    if agent is not None:
        x += "<user-agent id=%s>" % quoteattr(agent)
        if software is not None:
            x += '<software>%s</software>' % escape(software)
        if device is not None:
            x += '<device>%s</device>' % escape(device)
        x += '</user-agent>'
    if bind is not None:
        x += "<bind xmlns='%s'>%s%s</bind>" % (
            NS_BIND2, '<tag>%s</tag>' % escape(bind) if bind else '',
            bind_inline)
    return x + extra


def send_authenticate(c, mech, initial=None, **kw):
    ir = '' if initial is None else '<initial-response>%s</initial-response>' \
        % base64.b64encode(initial).decode()
    c.send("<authenticate xmlns='%s' mechanism=%s>%s%s</authenticate>"
           % (NS_SASL2, quoteattr(mech), ir, extras(**kw)))


def finish(c, res, el):
    res.final = el
    if res.ok:
        res.features = c.expect(q(NS_STREAM, 'features'))
    return res


def scram(c, user, password, hash_name='SHA-256', plus=None, cbdata=None,
          cbflag=None, mechanism=None, password_proof=None, **kw):
    """SCRAM-<hash>[-PLUS] over SASL2; kw go to extras().  Returns a
    Result; on success the stream features that follow are read."""
    res = Result()
    digest = {'SHA-1': hashlib.sha1, 'SHA-256': hashlib.sha256}[hash_name]
    mech = mechanism or 'SCRAM-%s%s' % (hash_name, '-PLUS' if plus else '')
    if plus:
        gs2 = 'p=%s,,' % plus
        if cbdata is None:
            cbdata = channel_binding(c.sock, plus)
    else:
        gs2 = (cbflag or 'n') + ',,'
        cbdata = b''
    cnonce = base64.b64encode(os.urandom(18)).decode()
    bare = 'n=%s,r=%s' % (scram_saslname(user), cnonce)
    send_authenticate(c, mech, (gs2 + bare).encode(), **kw)
    el = c.next_element()
    if el.tag != q(NS_SASL2, 'challenge'):
        return finish(c, res, el)
    res.challenges.append(el)
    server_first = base64.b64decode(el.text or '', validate=True).decode()
    res.server_first = server_first
    attrs = scram_parse(server_first)
    salted = hashlib.pbkdf2_hmac(digest().name,
                                 (password_proof or password).encode(),
                                 base64.b64decode(attrs['s']),
                                 int(attrs['i']))
    client_key = hmac.new(salted, b'Client Key', digest).digest()
    stored_key = digest(client_key).digest()
    wo_proof = 'c=%s,r=%s' % (base64.b64encode(gs2.encode() + cbdata)
                              .decode(), attrs['r'])
    auth_message = '%s,%s,%s' % (bare, server_first, wo_proof)
    sig = hmac.new(stored_key, auth_message.encode(), digest).digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    final = '%s,p=%s' % (wo_proof, base64.b64encode(proof).decode())
    c.send("<response xmlns='%s'>%s</response>"
           % (NS_SASL2, base64.b64encode(final.encode()).decode()))
    el = c.next_element()
    if el.tag == q(NS_SASL2, 'success'):
        server_key = hmac.new(salted, b'Server Key', digest).digest()
        want = base64.b64encode(hmac.new(server_key, auth_message.encode(),
                                         digest).digest()).decode()
        data = el.findtext(q(NS_SASL2, 'additional-data'))
        res.signature_ok = data is not None and scram_parse(
            base64.b64decode(data).decode()).get('v') == want
    return finish(c, res, el)


def plain(c, user, password, **kw):
    res = Result()
    send_authenticate(c, 'PLAIN', ('\0%s\0%s' % (user, password)).encode(),
                      **kw)
    return finish(c, res, c.next_element())


def ht_cb(c, mech, cbdata=None):
    if cbdata is not None:
        return cbdata
    cbtype = FAST_CB[mech]
    return b'' if cbtype is None else channel_binding(c.sock, cbtype)


def ht(c, user, token, mech='HT-SHA-256-NONE', count=None, invalidate=False,
       cbdata=None, fast=True, **kw):
    """Log in with a FAST token (XEP-0484 §3.4): one message, user NUL
    HMAC(token, "Initiator" || cb); the server's additional data is
    HMAC(token, "Responder" || cb), checked into signature_ok."""
    res = Result()
    cb = ht_cb(c, mech, cbdata)
    mac = hmac.new(token.encode(), b'Initiator' + cb, hashlib.sha256)
    attrs = ''
    if count is not None:
        attrs += " count='%d'" % count
    if invalidate:
        attrs += " invalidate='true'"
    extra = kw.pop('extra', '')
    if fast:
        extra += "<fast xmlns='%s'%s/>" % (NS_FAST, attrs)
    send_authenticate(c, mech, user.encode() + b'\0' + mac.digest(),
                      extra=extra, **kw)
    el = c.next_element()
    if el.tag == q(NS_SASL2, 'success'):
        want = hmac.new(token.encode(), b'Responder' + cb,
                        hashlib.sha256).digest()
        data = el.findtext(q(NS_SASL2, 'additional-data'))
        res.signature_ok = data is not None and \
            base64.b64decode(data) == want
    return finish(c, res, el)


def request_token(mech):
    return "<request-token xmlns='%s' mechanism='%s'/>" % (NS_FAST, mech)


def token_of(res):
    t = res.child(NS_FAST, 'token')
    assert t is not None, 'no <token/> in %s' % tostr(res.final)
    return t.get('token'), t.get('expiry')


def connect(server, version=ssl.TLSVersion.TLSv1_3, transport='starttls'):
    c, _ = tls_client(server, transport, version)
    return c


def login(server, jid, agent=None, tag='TestXMPP', bind_inline='',
          version=ssl.TLSVersion.TLSv1_3, extra='', mech='SCRAM-SHA-256',
          plus=None):
    """A new connection authenticated with SASL2 SCRAM (and Bind 2 unless
    tag is None); returns (client, Result)."""
    c = connect(server, version)
    user = jid.split('@')[0]
    hash_name = mech[len('SCRAM-'):].replace('-PLUS', '')
    res = scram(c, user, server.users[jid], hash_name, plus=plus,
                agent=agent, bind=tag, bind_inline=bind_inline, extra=extra)
    assert res.ok, tostr(res.final)
    c.jid = authz_id(res.final)
    return c, res
