"""The XML stream in raw bytes (RFC 6120 §4, §11): stream header checks,
restricted XML, well-formedness, size limits, partial input, whitespace
keepalives and the closing handshake.  Every error case is followed by a
fresh client logging in (the still_serving fixture)."""

import json
import random
import ssl
import time

import pytest

from xml.sax.saxutils import escape

from xmpp_raw import NS_CLIENT, NS_STREAM, q, tostr


@pytest.fixture(autouse=True)
def still_serving(server):
    yield
    server.assert_serves()


def header(to="'localhost'", version="'1.0'",
           xmlns="'jabber:client'",
           stream_ns="'http://etherx.jabber.org/streams'", decl=True):
    attrs = ''
    if to is not None:
        attrs += ' to=%s' % to
    if version is not None:
        attrs += ' version=%s' % version
    s = '<stream:stream xmlns=%s xmlns:stream=%s%s>' % (xmlns, stream_ns,
                                                        attrs)
    return ("<?xml version='1.0'?>" if decl else '') + s


def send_header_expect_error(server, data, condition):
    """Send data as the start of a connection; the server must answer with
    its own stream header (RFC 6120 §4.9.1.2), then the stream error."""
    c = server.client()
    try:
        c.send(data)
        c.read_header()
        el = c.next_element()
        if el.tag == q(NS_STREAM, 'features'):
            raise AssertionError('stream accepted (features sent) instead '
                                 'of <%s/>: %s' % (condition, tostr(el)))
        c.pending.appendleft(el)
        c.expect_stream_error(condition)
    finally:
        c.close()


def opened(server):
    """A plaintext stream with features read, ready for raw input."""
    c = server.client()
    c.open_stream()
    return c


# --- stream header -----------------------------------------------------------

def test_wrong_stream_namespace(server):
    send_header_expect_error(
        server, header(stream_ns="'http://example.com/not-streams'"),
        'invalid-namespace')


def test_wrong_content_namespace(server):
    send_header_expect_error(server, header(xmlns="'urn:example:bogus'"),
                             'invalid-namespace')


def test_unknown_host(server):
    send_header_expect_error(server, header(to="'example.net'"),
                             'host-unknown')


# A missing, empty or invalid 'to': test_stream_edges.py.


def test_unsupported_version(server):
    send_header_expect_error(server, header(version="'2.0'"),
                             'unsupported-version')


def test_non_utf8_encoding_declaration(server):
    """RFC 6120 §11.6: only UTF-8 is allowed."""
    data = ("<?xml version='1.0' encoding='ISO-8859-1'?>"
            + header(decl=False))
    send_header_expect_error(server, data, 'unsupported-encoding')


# --- restricted XML (RFC 6120 §11.1) -----------------------------------------

def test_doctype_restricted(server):
    send_header_expect_error(
        server, "<?xml version='1.0'?><!DOCTYPE stream:stream>"
        + header(decl=False), 'restricted-xml')


def test_entity_declaration_restricted(server):
    send_header_expect_error(
        server, "<?xml version='1.0'?><!DOCTYPE stream:stream "
        "[<!ENTITY boom 'x'>]>" + header(decl=False), 'restricted-xml')


def test_comment_restricted(server):
    c = opened(server)
    try:
        c.send('<!-- a comment -->')
        c.expect_stream_error('restricted-xml')
    finally:
        c.close()


def test_comment_inside_stanza_restricted(server):
    c = opened(server)
    try:
        c.send("<message to='bob@localhost'><!-- hidden --><body>x</body>"
               "</message>")
        c.expect_stream_error('restricted-xml')
    finally:
        c.close()


def test_processing_instruction_restricted(server):
    c = opened(server)
    try:
        c.send("<?evil instruction?>")
        c.expect_stream_error('restricted-xml')
    finally:
        c.close()


# --- well-formedness ---------------------------------------------------------

@pytest.mark.parametrize('garbage', [
    b"<message><body>x</bod></message>",
    b"<message to='a' to='b'/>",
    b"<message><<<",
    b"</notopen>",
], ids=['mismatched-tag', 'duplicate-attribute', 'lt-garbage',
        'stray-end-tag'])
def test_not_well_formed(server, garbage):
    c = opened(server)
    try:
        c.send(garbage)
        c.expect_stream_error('not-well-formed')
    finally:
        c.close()


@pytest.mark.parametrize('bad', [b'\xff\xfe', b'\xc0\xaf', b'\xed\xa0\x80',
                                 b'\xf4\x90\x80\x80', b'\x01', b'&#1;'],
                         ids=['ff-fe', 'overlong', 'surrogate',
                              'above-10ffff', 'control-char', 'char-ref-1'])
def test_invalid_utf8_or_char(server, bad):
    c = opened(server)
    try:
        c.send(b"<message to='bob@localhost'><body>" + bad +
               b"</body></message>")
        c.expect_stream_error('not-well-formed')
    finally:
        c.close()


def test_invalid_utf8_in_header(server):
    send_header_expect_error(
        server, header(to="'local\xffhost'").encode('latin-1'),
        'not-well-formed')


# --- limits ------------------------------------------------------------------

def send_watching(c, data, chunk=8192):
    """Send data in chunks, stopping as soon as the server answers or
    closes (so its stream error is not lost to a TCP reset)."""
    for i in range(0, len(data), chunk):
        try:
            c.sock.sendall(data[i:i + chunk])
        except (OSError, ssl.SSLError):
            return
        el = c.poll_element(0.005)
        if el is not None:
            c.pending.appendleft(el)
            return
        if c.eof or c.stream_ended:
            return


def test_stanza_over_limit_policy_violation(server):
    c = server.login('alice@localhost', resource='big')
    try:
        body = b'x' * (300 * 1024)
        send_watching(c, b"<message to='bob@localhost'><body>" + body +
                      b"</body></message>")
        c.expect_stream_error('policy-violation', timeout=10)
    finally:
        c.close()


def test_preauth_stanza_over_limit_policy_violation(server):
    """preauth-stanza-size defaults to 16384 (xmppd.conf(5))."""
    c = opened(server)
    try:
        send_watching(c, b"<message><body>" + b'y' * 20000 +
                      b"</body></message>")
        c.expect_stream_error('policy-violation')
    finally:
        c.close()


def nested(depth):
    """A message to alice/sink whose deepest element is at depth (the
    stanza itself is at depth 1, xmppd.conf(5))."""
    inner = "<x xmlns='urn:example:deep'>" * (depth - 1) + \
        "</x>" * (depth - 1)
    return "<message to='alice@localhost/sink' id='d%d'>%s</message>" % (
        depth, inner)


def test_nesting_depth_limit(server):
    """depth 64 (the default) passes, 65 ends the stream."""
    sink = server.login('alice@localhost', resource='sink')
    c = server.login('bob@localhost', resource='deep')
    try:
        c.send(nested(64))
        el = sink.expect_stanza('message')
        assert el.get('id') == 'd64'
        depth, node = 1, el
        while len(node):
            node, depth = node[0], depth + 1
        assert depth == 64
        c.send(nested(65))
        c.expect_stream_error('policy-violation')
        sink.expect_no_stanza('message', 0.3)
    finally:
        c.close()
        sink.close()


def test_attribute_count_limit(server):
    """64 attributes on one element (the default) pass, 65 end the
    stream."""
    sink = server.login('alice@localhost', resource='sink')
    c = server.login('bob@localhost', resource='attrs')
    try:
        def msg(n, mid):
            # to, id and n - 2 more on the message; n on a child
            attrs = ' '.join("a%d='v'" % i for i in range(n - 2))
            child = ' '.join("b%d='v'" % i for i in range(n))
            return ("<message to='alice@localhost/sink' id='%s' %s>"
                    "<x xmlns='urn:example:attrs' %s/></message>"
                    % (mid, attrs, child.replace("b0='v'", "b0='w'")))
        c.send(msg(64, 'ok64'))
        el = sink.expect_stanza('message')
        assert el.get('id') == 'ok64'
        assert len(el.find('{urn:example:attrs}x').attrib) == 64
        c.send(msg(65, 'bad65'))
        c.expect_stream_error('policy-violation')
        sink.expect_no_stanza('message', 0.3)
    finally:
        c.close()
        sink.close()


def test_200k_stanza_delivered_intact(server):
    alice = server.login('alice@localhost', resource='sender')
    bob = server.login('bob@localhost', resource='receiver')
    try:
        rnd = random.Random(1)
        alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789 <>&\'"\u00e9\u4e2d'
        envelope = ("<message to='bob@localhost/receiver' type='chat' "
                    "id='big'><body>%s</body></message>")
        chars = []
        size = len(envelope) - 2
        while size < 200 * 1024:
            ch = rnd.choice(alphabet)
            chars.append(ch)
            size += len(escape(ch).encode())
        body = ''.join(chars)
        raw = (envelope % escape(body)).encode()
        assert 200 * 1024 <= len(raw) < 201 * 1024, len(raw)
        alice.send(raw)   # one write
        el = bob.expect_stanza('message', timeout=10)
        assert el.get('from') == 'alice@localhost/sender'
        assert el.get('id') == 'big'
        got = el.find(q(NS_CLIENT, 'body')).text
        assert len(got) == len(body) and got == body, 'body altered'
    finally:
        alice.close()
        bob.close()


def test_stanza_one_byte_at_a_time(server):
    alice = server.login('alice@localhost', resource='slow')
    bob = server.login('bob@localhost', resource='receiver')
    try:
        alice.send_bytewise("<message to='bob@localhost/receiver' "
                            "type='chat' id='slow1'><body>dribble \u00e9"
                            "</body></message>")
        t0 = time.monotonic()
        el = bob.expect_stanza('message', timeout=2)
        assert time.monotonic() - t0 < 2
        assert el.find(q(NS_CLIENT, 'body')).text == 'dribble \u00e9'
        assert el.get('id') == 'slow1'
    finally:
        alice.close()
        bob.close()


def test_whitespace_keepalives(server):
    c = server.client()
    bob = server.login('bob@localhost', resource='receiver')
    try:
        c.open_stream()
        c.send(' \n ')             # before TLS
        c.starttls()
        c.open_stream()
        c.send('\n')               # before SASL
        el = c.sasl_plain('alice', server.users['alice@localhost'])
        assert el.tag.endswith('success'), tostr(el)
        c.open_stream()
        c.bind('ws')
        for i in range(3):
            c.send(' ')
            c.send("<message to='bob@localhost/receiver' type='chat'>"
                   "<body>%d</body></message>\n\t \r\n" % i)
        for i in range(3):
            el = bob.expect_stanza('message')
            assert el.find(q(NS_CLIENT, 'body')).text == str(i)
        assert c.poll_element(0.3) is None
    finally:
        c.close()
        bob.close()


def test_unknown_top_level_element(server):
    """RFC 6120 §4.9.3.24: <unsupported-stanza-type/>."""
    c = server.login('alice@localhost', resource='odd')
    try:
        c.send("<frobnicate xmlns='jabber:client'/>")
        c.expect_stream_error('unsupported-stanza-type')
    finally:
        c.close()


# --- closing -----------------------------------------------------------------

def test_graceful_close_before_auth(server):
    c = opened(server)
    try:
        c.end_stream()
        c.expect_stream_end()
    finally:
        c.close()


def test_graceful_close_bound_session(server):
    c = server.login('alice@localhost', resource='closing')
    try:
        c.end_stream()
        c.expect_stream_end()
    finally:
        c.close()


def test_abrupt_disconnect_mid_stanza(server):
    """Robustness: a client vanishing mid-stanza (and mid-TLS-record)."""
    c = server.login('alice@localhost', resource='abrupt')
    c.send("<message to='bob@localhost'><body>half")
    c.sock.close()
    c2 = opened(server)
    try:
        c2.send(b"<message to='bob@localhost'><bo")
    finally:
        c2.sock.close()
    time.sleep(0.2)


# --- timeouts (xmppd.conf(5) limits) -----------------------------------------

def wait_eof(c, limit):
    """Seconds until the server closes c (at most limit)."""
    t0 = time.monotonic()
    while not c.eof:
        if c.poll_element(0.1) is None and time.monotonic() - t0 > limit:
            raise AssertionError('connection still open after %.1fs' % limit)
    return time.monotonic() - t0


def test_handshake_and_preauth_timeouts(server_factory):
    srv = server_factory(limits={'handshake-timeout': 1,
                                 'preauth-timeout': 2})
    # TCP to the direct-TLS port, no ClientHello: closed after ~1 s
    import socket
    s = socket.create_connection(('127.0.0.1', srv.tls_port))
    s.settimeout(5)
    t0 = time.monotonic()
    assert s.recv(100) == b''
    assert 0.5 < time.monotonic() - t0 < 3.5
    s.close()
    # a stream that never authenticates: told so and closed after ~2 s
    # (test_stream_edges.py has the details)
    c = srv.client()
    try:
        c.open_stream()
        t0 = time.monotonic()
        c.expect_stream_error('connection-timeout', timeout=4.5)
        assert 1.0 < time.monotonic() - t0 < 4.5
    finally:
        c.close()
    srv.assert_serves()


def test_idle_timeout_and_keepalive(server_factory):
    srv = server_factory(limits={'idle-timeout': 2})
    quiet = srv.login('alice@localhost', resource='quiet')
    chatty = srv.login('bob@localhost', resource='chatty')
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 3.5:
            chatty.send(' ')
            time.sleep(0.4)
            if quiet.eof:
                break
        waited = wait_eof(quiet, 3.0) + (time.monotonic() - t0)
        assert 1.0 < waited < 5.0, waited
        assert not chatty.eof and chatty.poll_element(0.1) is None
        chatty.message('bob@localhost/chatty', 'alive')
        assert chatty.expect_stanza('message').find(
            q(NS_CLIENT, 'body')).text == 'alive'
    finally:
        quiet.close()
        chatty.close()


def test_connections_per_ip(server_factory):
    """connections-per-ip 2: a third simultaneous connection is refused
    (never gets stream features); once one closes, a new one works."""
    srv = server_factory(limits={'connections-per-ip': 2})
    a, b = srv.client(), srv.client()
    try:
        a.open_stream()
        b.open_stream()
        third = srv.client()
        try:
            try:
                third.send(third.stream_header())
            except OSError:
                pass
            el = None
            try:
                third.read_header(3)
                el = third.poll_element(3)
            except (AssertionError, OSError):
                pass
            assert el is None or el.tag != q(NS_STREAM, 'features'), (
                'third connection accepted: %s' % tostr(el))
        finally:
            third.close()
        a.end_stream()
        a.expect_stream_end()
        a.close()
        deadline = time.monotonic() + 3
        while True:
            c = srv.client()
            try:
                c.open_stream()
                break
            except (AssertionError, OSError):
                assert time.monotonic() < deadline, 'slot not released'
                time.sleep(0.1)
            finally:
                c.close()
    finally:
        a.close()
        b.close()


def test_slow_reader_disconnected(server_factory):
    """output-max: a client that never reads is disconnected once its
    queue would pass the limit, and the sender is not harmed."""
    srv = server_factory(limits={'output-buffer': '16K',
                                 'output-max': '64K'})
    alice = srv.login('alice@localhost', resource='flood')
    bob = srv.login('bob@localhost', resource='stuck')
    try:
        bob.presence()
        chunk = 'z' * 8000
        sent = 0
        gone = False
        for batch in range(40):          # up to 40 * 100 * 8 KB = 32 MB
            for i in range(100):
                alice.message('bob@localhost/stuck', chunk, mtype='headline')
                sent += 1
            while alice.poll_element(0.01) is not None:
                pass                     # drain presence / errors
            r = srv.ctl('--json', 'status')
            if json.loads(r.stdout)['sessions'] == 1:
                gone = True
                break
        assert gone, 'bob still connected after %d x 8 KB' % sent
        # bob's socket holds what the kernel buffered, then EOF
        deadline = time.monotonic() + 10
        while not bob.eof:
            assert time.monotonic() < deadline, 'no EOF for bob'
            try:
                bob._read_some(deadline)
            except AssertionError:
                break                    # cut off mid-element: fine
        alice.message('alice@localhost/flood', 'sender fine')
        while True:      # errors for headlines to bob may come first
            el = alice.expect_stanza('message')
            if el.get('type') != 'error':
                break
        assert el.find(q(NS_CLIENT, 'body')).text == 'sender fine'
    finally:
        alice.close()
        bob.close()
    srv.assert_serves()
