"""A raw-XML XMPP client for the protocol tests: TCP or direct TLS, an
incremental parser over the server's stream, STARTTLS on the raw socket,
SASL PLAIN and SCRAM-SHA-1/-SHA-256 (with -PLUS: tls-server-end-point and
tls-exporter) implemented here, resource binding, and helpers that assert
the exact element, stream error or SASL failure the server answers.

Nothing here knows about the daemon's process; conftest.py starts it.
"""

import base64
import collections
import contextlib
import ctypes
import functools
import hashlib
import hmac
import os
import select
import socket
import ssl
import time
import warnings
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape, quoteattr

NS_STREAM = 'http://etherx.jabber.org/streams'
NS_CLIENT = 'jabber:client'
NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls'
NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl'
NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind'
NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session'
NS_STREAM_ERR = 'urn:ietf:params:xml:ns:xmpp-streams'
NS_STANZA_ERR = 'urn:ietf:params:xml:ns:xmpp-stanzas'
NS_SASL_CB = 'urn:xmpp:sasl-cb:0'

DOMAIN = 'localhost'
TIMEOUT = float(os.environ.get('XMPP_TEST_TIMEOUT', '5'))


def q(ns, local):
    """Clark notation, as ElementTree names elements: {ns}local."""
    return '{%s}%s' % (ns, local)


def tostr(el):
    """Serialise an element for assertion messages."""
    if el is None:
        return 'None'
    return ET.tostring(el, encoding='unicode')


def local(tag):
    return tag.rsplit('}', 1)[-1]


def namespace(tag):
    return tag[1:].split('}', 1)[0] if tag.startswith('{') else ''


class StreamClosed(AssertionError):
    """The server closed the stream or the connection while we waited."""


class ChannelBindingUnavailable(Exception):
    """This Python cannot compute the requested channel binding."""


def client_tls_context(min_version=None, max_version=None,
                       alpn=('xmpp-client',)):
    """A client context that does not verify the (self-signed) certificate.
    Versions below TLS 1.2 need security level 0 to be offered at all."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        if min_version is not None:
            if min_version < ssl.TLSVersion.TLSv1_2:
                ctx.set_ciphers('DEFAULT:@SECLEVEL=0')
            ctx.minimum_version = min_version
        if max_version is not None:
            ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


# --- channel bindings --------------------------------------------------------

def cb_tls_server_end_point(sslsock):
    """RFC 5929 §4.1: hash of the server's certificate with the hash of its
    signature algorithm (SHA-256 for the ecdsa-with-SHA256 certificate that
    conftest.py generates; MD5 and SHA-1 would also map to SHA-256)."""
    der = sslsock.getpeercert(binary_form=True)
    if not der:
        raise ChannelBindingUnavailable('no peer certificate')
    return hashlib.sha256(der).digest()


_libssl = None


def cb_tls_exporter(sslsock):
    """RFC 9266: 32 bytes of keying material, label "EXPORTER-Channel-Binding",
    no context.  Python 3.11's ssl module has no exporter API, so this calls
    OpenSSL's SSL_export_keying_material through ctypes on the SSL* inside
    the _ssl._SSLSocket object (PyObject_HEAD, then the socket weakref, then
    SSL *ssl).  The pointer is validated by comparing SSL_get_version() with
    what the ssl module reports; anything unexpected raises
    ChannelBindingUnavailable so the test can skip with the reason."""
    global _libssl
    try:
        if _libssl is None:
            lib = ctypes.CDLL('libssl.so.3')
            lib.SSL_get_version.argtypes = [ctypes.c_void_p]
            lib.SSL_get_version.restype = ctypes.c_char_p
            lib.SSL_export_keying_material.argtypes = [
                ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t,
                ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p,
                ctypes.c_size_t, ctypes.c_int]
            lib.SSL_export_keying_material.restype = ctypes.c_int
            _libssl = lib
        obj = sslsock._sslobj
        word = ctypes.sizeof(ctypes.c_void_p)
        # PyObject_HEAD is ob_refcnt + ob_type (two words); then Socket.
        ptr = ctypes.c_void_p.from_address(id(obj) + 3 * word).value
        if not ptr:
            raise ChannelBindingUnavailable('no SSL* found')
        if _libssl.SSL_get_version(ptr).decode() != sslsock.version():
            raise ChannelBindingUnavailable('SSL* layout not recognised')
        out = ctypes.create_string_buffer(32)
        label = b'EXPORTER-Channel-Binding'
        if _libssl.SSL_export_keying_material(ptr, out, 32, label,
                                              len(label), None, 0, 0) != 1:
            raise ChannelBindingUnavailable('SSL_export_keying_material '
                                            'failed')
        return out.raw
    except (OSError, AttributeError) as e:
        raise ChannelBindingUnavailable('tls-exporter needs OpenSSL 3 via '
                                        'ctypes: %s' % e) from e


def channel_binding(sslsock, cbtype):
    if not isinstance(sslsock, ssl.SSLSocket):
        raise ChannelBindingUnavailable('not a TLS connection')
    if cbtype == 'tls-server-end-point':
        return cb_tls_server_end_point(sslsock)
    if cbtype == 'tls-exporter':
        return cb_tls_exporter(sslsock)
    raise ChannelBindingUnavailable('unknown channel binding %s' % cbtype)


# --- SCRAM ----------------------------------------------------------------

def scram_saslname(s):
    """RFC 5802 §5.1: ',' and '=' are escaped in usernames and authzids."""
    return s.replace('=', '=3D').replace(',', '=2C')


def scram_parse(msg):
    attrs = collections.OrderedDict()
    for part in msg.split(','):
        if len(part) < 2 or part[1] != '=':
            raise AssertionError('malformed SCRAM message %r' % msg)
        attrs[part[0]] = part[2:]
    return attrs


class ScramResult:
    """The outcome of a SCRAM exchange: the final element (<success/> or
    <failure/>), every challenge seen, and whether the server's signature
    was verified."""

    def __init__(self):
        self.final = None
        self.challenges = []
        self.server_first = None
        self.server_signature_ok = None


# --- the client --------------------------------------------------------------

class RawClient:
    """One XMPP connection driven byte by byte.

    Elements received are the top-level children of the server's stream
    (stream:features, stanzas, stream:error, SASL and TLS elements); the
    stream header is kept in .header, the stream's end tag sets
    .stream_ended, EOF sets .eof."""

    def __init__(self, port, tls=False, host='127.0.0.1', timeout=TIMEOUT,
                 tls_context=None, server_hostname=DOMAIN):
        self.port = port
        self.timeout = timeout
        self.server_hostname = server_hostname
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls:
            self._wrap_tls(tls_context or client_tls_context())
        self.jid = None
        self.log = []          # ('>', bytes) / ('<', bytes) for failures
        self.log_limit = 2000  # bytes of each read or write kept
        self._reset_parser()

    # -- transport --

    @property
    def tls(self):
        return isinstance(self.sock, ssl.SSLSocket)

    def _wrap_tls(self, ctx):
        self.sock.settimeout(self.timeout)
        self.sock = ctx.wrap_socket(self.sock,
                                    server_hostname=self.server_hostname)

    def send(self, data):
        if isinstance(data, str):
            data = data.encode('utf-8')
        self.log.append(('>', data[:self.log_limit]))
        self.sock.sendall(data)

    def send_bytewise(self, data, delay=0.001):
        """Send one byte per write (each its own TCP segment / TLS record)."""
        if isinstance(data, str):
            data = data.encode('utf-8')
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            if delay:
                time.sleep(delay)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def history(self):
        """What was said on this connection, for assertion messages."""
        out = []
        for d, b in self.log[-30:]:
            out.append('%s %s' % (d, b.decode('utf-8', 'replace')[:500]))
        return '\n'.join(out)

    # -- parsing --

    def _reset_parser(self):
        self.parser = ET.XMLPullParser(events=('start', 'end'))
        self.depth = 0
        self.header = None
        self.stream_ended = False
        self.eof = False
        self.pending = collections.deque()

    def _feed(self, data):
        self.log.append(('<', data[:self.log_limit]))
        try:
            self.parser.feed(data)
            events = list(self.parser.read_events())
        except ET.ParseError as e:
            raise AssertionError('server sent malformed XML: %s\n%s'
                                 % (e, self.history())) from e
        for ev, el in events:
            if ev == 'start':
                if self.depth == 0:
                    if el.tag != q(NS_STREAM, 'stream'):
                        raise AssertionError(
                            'server did not open a stream, got <%s>: %s'
                            % (el.tag, self.history()))
                    self.header = el
                self.depth += 1
            else:
                self.depth -= 1
                if self.depth == 1:
                    self.pending.append(el)
                    # keep the tree small on long streams
                    if self.header is not None:
                        try:
                            self.header.remove(el)
                        except ValueError:
                            pass
                elif self.depth == 0:
                    self.stream_ended = True

    def _read_some(self, deadline):
        """Read once (up to deadline); returns False on timeout."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        if self.eof:
            return False
        if not (self.tls and self.sock.pending()):
            r, _, _ = select.select([self.sock], [], [], remaining)
            if not r:
                return False
        self.sock.settimeout(max(remaining, 0.01))
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        except ssl.SSLWantReadError:
            return True
        except (ssl.SSLEOFError, ssl.SSLZeroReturnError, ConnectionResetError,
                BrokenPipeError):
            data = b''
        except ssl.SSLError as e:
            if 'UNEXPECTED_EOF' in str(e) or 'EOF' in str(e):
                data = b''
            else:
                raise
        if not data:
            self.eof = True
            return True
        self._feed(data)
        return True

    def read_header(self, timeout=None):
        """Wait for the server's stream header; returns it."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while self.header is None:
            if self.eof:
                raise StreamClosed('connection closed before the stream '
                                   'header\n' + self.history())
            if not self._read_some(deadline) and not self.eof:
                if time.monotonic() >= deadline:
                    raise AssertionError('no stream header within timeout\n'
                                         + self.history())
        return self.header

    def next_element(self, timeout=None):
        """The next top-level element; raises StreamClosed if the stream or
        connection ends first, AssertionError on timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.pending:
            if self.stream_ended or self.eof:
                raise StreamClosed('stream closed (end tag: %s, eof: %s) '
                                   'while waiting for an element\n%s'
                                   % (self.stream_ended, self.eof,
                                      self.history()))
            if not self._read_some(deadline):
                if time.monotonic() >= deadline:
                    raise AssertionError('no element within %.1fs\n%s'
                                         % (timeout or self.timeout,
                                            self.history()))
        return self.pending.popleft()

    def poll_element(self, timeout):
        """The next element within timeout, or None (also on stream end)."""
        deadline = time.monotonic() + timeout
        while not self.pending:
            if self.stream_ended or self.eof:
                return None
            if not self._read_some(deadline) and \
                    time.monotonic() >= deadline:
                return None
        return self.pending.popleft()

    def expect(self, tag, timeout=None):
        """The next element, which must be tag ({ns}local)."""
        el = self.next_element(timeout)
        assert el.tag == tag, ('expected <%s>, got %s\n%s'
                               % (tag, tostr(el), self.history()))
        return el

    def expect_stanza(self, tag, timeout=None, skip=('presence',)):
        """The next stanza named tag (jabber:client), skipping the local
        names in skip (presence broadcasts by default)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            el = self.next_element(max(deadline - time.monotonic(), 0.01))
            if el.tag != q(NS_CLIENT, tag) and \
                    namespace(el.tag) == NS_CLIENT and local(el.tag) in skip:
                continue
            assert el.tag == q(NS_CLIENT, tag), (
                'expected <%s/> stanza, got %s\n%s'
                % (tag, tostr(el), self.history()))
            return el

    def expect_no_stanza(self, tag, duration=0.5, skip=('presence',)):
        """Nothing but skipped stanzas arrives within duration."""
        deadline = time.monotonic() + duration
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            el = self.poll_element(remaining)
            if el is None:
                return
            if namespace(el.tag) == NS_CLIENT and local(el.tag) in skip and \
                    local(el.tag) != tag:
                continue
            raise AssertionError('unexpected element %s' % tostr(el))

    def expect_stream_error(self, condition, timeout=None):
        """The next element is <stream:error> with exactly the condition
        (urn:ietf:params:xml:ns:xmpp-streams), then the stream ends and the
        connection closes."""
        el = self.next_element(timeout)
        assert el.tag == q(NS_STREAM, 'error'), (
            'expected stream error <%s/>, got %s\n%s'
            % (condition, tostr(el), self.history()))
        conds = [c.tag for c in el if c.tag != q(NS_STREAM_ERR, 'text')]
        assert conds == [q(NS_STREAM_ERR, condition)], (
            'expected stream error <%s/>, got %s' % (condition, tostr(el)))
        self.expect_stream_end(timeout)
        return el

    def expect_stream_end(self, timeout=None, eof=True):
        """The server sends </stream:stream> and (if eof) closes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.stream_ended:
            if self.pending:
                raise AssertionError('expected end of stream, got %s'
                                     % tostr(self.pending[0]))
            if self.eof:
                raise AssertionError('connection closed without '
                                     '</stream:stream>\n' + self.history())
            if not self._read_some(deadline) and \
                    time.monotonic() >= deadline:
                raise AssertionError('no </stream:stream> within timeout\n'
                                     + self.history())
        if eof:
            self.expect_eof(max(deadline - time.monotonic(), 1.0))

    def expect_eof(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.eof:
            if self.pending:
                raise AssertionError('expected connection close, got %s'
                                     % tostr(self.pending.popleft()))
            if not self._read_some(deadline) and \
                    time.monotonic() >= deadline:
                raise AssertionError('server did not close the connection')

    # -- stream --

    def stream_header(self, to=DOMAIN, version='1.0', xmlns=NS_CLIENT,
                      stream_ns=NS_STREAM, xml_decl=True, extra=''):
        attrs = ''
        if to is not None:
            attrs += ' to=%s' % quoteattr(to)
        if version is not None:
            attrs += ' version=%s' % quoteattr(version)
        s = ("<stream:stream xmlns=%s xmlns:stream=%s xml:lang='en'%s%s>"
             % (quoteattr(xmlns), quoteattr(stream_ns), attrs, extra))
        if xml_decl:
            s = "<?xml version='1.0'?>" + s
        return s

    def open_stream(self, to=DOMAIN, features=True, **kw):
        """Send a stream header, wait for the server's; returns the
        <stream:features/> element (or the header if features=False)."""
        self._reset_parser()
        self.send(self.stream_header(to=to, **kw))
        header = self.read_header()
        if not features:
            return header
        return self.expect(q(NS_STREAM, 'features'))

    def starttls(self, tls_context=None):
        """<starttls/>, <proceed/>, TLS handshake on this socket."""
        self.send("<starttls xmlns='%s'/>" % NS_TLS)
        self.expect(q(NS_TLS, 'proceed'))
        assert not self.pending, 'data after <proceed/>'
        self._wrap_tls(tls_context or client_tls_context())

    def end_stream(self):
        self.send('</stream:stream>')

    # -- SASL --

    def sasl_plain(self, user, password, authzid=None):
        """PLAIN; returns the server's answer (<success/> or <failure/>)."""
        msg = ('%s\0%s\0%s' % (authzid or '', user, password)).encode()
        self.send("<auth xmlns='%s' mechanism='PLAIN'>%s</auth>"
                  % (NS_SASL, base64.b64encode(msg).decode()))
        return self.next_element()

    def sasl_scram(self, user, password, hash_name='SHA-256', plus=None,
                   authzid=None, cbflag=None, cbdata=None, mechanism=None,
                   cnonce=None):
        """SCRAM-<hash_name>[-PLUS] (RFC 5802, RFC 7677).

        plus: channel-binding type for -PLUS; cbflag overrides the gs2 flag
        ('n' or 'y') without PLUS; cbdata replaces the real channel-binding
        data (to test rejection).  Returns a ScramResult."""
        res = ScramResult()
        digest = {'SHA-1': hashlib.sha1, 'SHA-256': hashlib.sha256}[hash_name]
        mech = mechanism or ('SCRAM-%s%s' % (hash_name, '-PLUS' if plus
                                             else ''))
        if plus:
            gs2 = 'p=%s,' % plus
            if cbdata is None:
                cbdata = channel_binding(self.sock, plus)
        else:
            gs2 = (cbflag or 'n') + ','
            cbdata = b''
        gs2 += ('a=' + scram_saslname(authzid) if authzid else '') + ','
        cnonce = cnonce or base64.b64encode(os.urandom(18)).decode()
        bare = 'n=%s,r=%s' % (scram_saslname(user), cnonce)
        self.send("<auth xmlns='%s' mechanism='%s'>%s</auth>"
                  % (NS_SASL, mech,
                     base64.b64encode((gs2 + bare).encode()).decode()))
        el = self.next_element()
        if el.tag != q(NS_SASL, 'challenge'):
            res.final = el
            return res
        res.challenges.append(el)
        server_first = base64.b64decode(el.text or '', validate=True).decode()
        res.server_first = server_first
        attrs = scram_parse(server_first)
        assert attrs['r'].startswith(cnonce) and len(attrs['r']) > len(
            cnonce), 'server nonce does not extend ours: %r' % server_first
        salt = base64.b64decode(attrs['s'])
        iterations = int(attrs['i'])
        salted = hashlib.pbkdf2_hmac(digest().name, password.encode(), salt,
                                     iterations)
        client_key = hmac.new(salted, b'Client Key', digest).digest()
        stored_key = digest(client_key).digest()
        final_wo_proof = 'c=%s,r=%s' % (
            base64.b64encode(gs2.encode() + cbdata).decode(), attrs['r'])
        auth_message = '%s,%s,%s' % (bare, server_first, final_wo_proof)
        signature = hmac.new(stored_key, auth_message.encode(),
                             digest).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        final = '%s,p=%s' % (final_wo_proof, base64.b64encode(proof).decode())
        self.send("<response xmlns='%s'>%s</response>"
                  % (NS_SASL, base64.b64encode(final.encode()).decode()))
        el = self.next_element()
        server_key = hmac.new(salted, b'Server Key', digest).digest()
        expected_v = base64.b64encode(hmac.new(
            server_key, auth_message.encode(), digest).digest()).decode()
        if el.tag == q(NS_SASL, 'challenge'):
            # RFC 6120 §6.3.10 allows v= in a challenge; answer empty.
            res.challenges.append(el)
            data = base64.b64decode(el.text or '').decode()
            res.server_signature_ok = scram_parse(data).get('v') == expected_v
            self.send("<response xmlns='%s'/>" % NS_SASL)
            el = self.next_element()
        elif el.tag == q(NS_SASL, 'success'):
            data = base64.b64decode(el.text or '').decode()
            res.server_signature_ok = scram_parse(data).get('v') == \
                expected_v if data else False
        res.final = el
        return res

    def bind(self, resource=None, iq_id='bind1'):
        """Bind a resource (None: let the server choose); returns the full
        JID and remembers it in .jid."""
        inner = ('<resource>%s</resource>' % escape(resource)
                 if resource is not None else '')
        self.send("<iq type='set' id='%s'><bind xmlns='%s'>%s</bind></iq>"
                  % (iq_id, NS_BIND, inner))
        el = self.expect(q(NS_CLIENT, 'iq'))
        assert el.get('type') == 'result' and el.get('id') == iq_id, (
            'bind failed: %s' % tostr(el))
        jid = el.find('%s/%s' % (q(NS_BIND, 'bind'), q(NS_BIND, 'jid')))
        assert jid is not None and jid.text, 'no <jid/> in %s' % tostr(el)
        self.jid = jid.text
        return self.jid

    def presence(self, priority=None, show=None):
        inner = ''
        if show:
            inner += '<show>%s</show>' % show
        if priority is not None:
            inner += '<priority>%d</priority>' % priority
        self.send('<presence>%s</presence>' % inner if inner
                  else '<presence/>')

    def message(self, to, body, mtype='chat', mid=None, extra_attrs=''):
        attrs = 'to=%s' % quoteattr(to)
        if mtype:
            attrs += ' type=%s' % quoteattr(mtype)
        if mid:
            attrs += ' id=%s' % quoteattr(mid)
        self.send('<message %s%s><body>%s</body></message>'
                  % (attrs, extra_attrs, escape(body)))


# --- assertion helpers -------------------------------------------------------

def mechanisms(features):
    """The SASL mechanism names in a <stream:features/> element."""
    mechs = features.find(q(NS_SASL, 'mechanisms'))
    if mechs is None:
        return None
    return [m.text for m in mechs.findall(q(NS_SASL, 'mechanism'))]


def assert_sasl_success(el):
    assert el is not None and el.tag == q(NS_SASL, 'success'), (
        'expected SASL <success/>, got %s' % tostr(el))


def assert_sasl_failure(el, condition):
    """<failure xmlns=sasl> with exactly one condition child (plus an
    optional <text/>)."""
    assert el is not None and el.tag == q(NS_SASL, 'failure'), (
        'expected SASL <failure><%s/></failure>, got %s'
        % (condition, tostr(el)))
    conds = [c.tag for c in el if c.tag != q(NS_SASL, 'text')]
    assert conds == [q(NS_SASL, condition)], (
        'expected SASL failure <%s/>, got %s' % (condition, tostr(el)))


def stanza_error(el):
    """(error type, [condition local names]) of an error stanza."""
    err = el.find(q(NS_CLIENT, 'error'))
    assert err is not None, 'no <error/> in %s' % tostr(el)
    conds = [local(c.tag) for c in err
             if namespace(c.tag) == NS_STANZA_ERR and local(c.tag) != 'text']
    return err.get('type'), conds


def assert_stanza_error(el, name, condition, etype=None, frm=None,
                        sid=None):
    """el is <name type='error'> with exactly the condition (and the error
    type / from / id when given)."""
    assert el.tag == q(NS_CLIENT, name), 'expected <%s/>, got %s' % (
        name, tostr(el))
    assert el.get('type') == 'error', 'not an error: %s' % tostr(el)
    t, conds = stanza_error(el)
    assert conds == [condition], 'expected <%s/> error, got %s' % (
        condition, tostr(el))
    if etype is not None:
        assert t == etype, 'expected error type %s, got %s' % (etype,
                                                                tostr(el))
    if frm is not None:
        assert el.get('from') == frm, 'expected from=%r in %s' % (frm,
                                                                  tostr(el))
    if sid is not None:
        assert el.get('id') == sid, 'expected id=%r in %s' % (sid, tostr(el))


def login(port, user, password, resource=None, tls='starttls',
          mechanism='PLAIN', tls_context=None, bind=True):
    """Connect, TLS (tls='starttls', 'direct' or None), authenticate, restart
    and (if bind) bind.  Returns the RawClient."""
    c = RawClient(port, tls=(tls == 'direct'), tls_context=tls_context)
    try:
        c.open_stream()
        if tls == 'starttls':
            c.starttls(tls_context)
            c.open_stream()
        if mechanism == 'PLAIN':
            el = c.sasl_plain(user, password)
        else:
            hash_name = mechanism[len('SCRAM-'):].replace('-PLUS', '')
            plus = 'tls-server-end-point' if mechanism.endswith('-PLUS') \
                else None
            el = c.sasl_scram(user, password, hash_name, plus=plus).final
        assert_sasl_success(el)
        features = c.open_stream()
        if bind:
            assert features.find(q(NS_BIND, 'bind')) is not None, (
                'no <bind/> feature after SASL: %s' % tostr(features))
            c.bind(resource)
        return c
    except BaseException:
        c.close()
        raise


@contextlib.contextmanager
def source_address(ip):
    """New TCP connections made inside come from ip (any 127/8 address
    reaches the daemon's 127.0.0.1 listeners on Linux)."""
    orig = socket.create_connection
    socket.create_connection = functools.partial(orig,
                                                 source_address=(ip, 0))
    try:
        yield
    finally:
        socket.create_connection = orig
