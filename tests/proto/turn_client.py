"""A TURN Allocate (RFC 8656 §7.2) over UDP with long-term credentials
(RFC 8489 §9.2), just enough to check credentials against a real TURN
server: first request unauthenticated (401 with REALM and NONCE), then
again with USERNAME, REALM, NONCE and MESSAGE-INTEGRITY."""

import hashlib
import hmac
import os
import socket
import struct

MAGIC = 0x2112A442
ALLOCATE_REQUEST = 0x0003
ALLOCATE_SUCCESS = 0x0103
ALLOCATE_ERROR = 0x0113
ATTR_USERNAME = 0x0006
ATTR_MESSAGE_INTEGRITY = 0x0008
ATTR_ERROR_CODE = 0x0009
ATTR_REALM = 0x0014
ATTR_NONCE = 0x0015
ATTR_REQUESTED_TRANSPORT = 0x0019
ATTR_XOR_RELAYED_ADDRESS = 0x0016
ATTR_LIFETIME = 0x000D


def _attr(t, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack('!HH', t, len(value)) + value + b'\0' * pad


def _message(mtype, tid, attrs, key=None):
    body = b''.join(_attr(t, v) for t, v in attrs)
    if key is not None:
        # RFC 8489 §14.5: the length counts the integrity attribute.
        head = struct.pack('!HHI', mtype, len(body) + 24, MAGIC) + tid
        mac = hmac.new(key, head + body, hashlib.sha1).digest()
        body += _attr(ATTR_MESSAGE_INTEGRITY, mac)
    return struct.pack('!HHI', mtype, len(body), MAGIC) + tid + body


def _parse(data):
    mtype, length, magic = struct.unpack('!HHI', data[:8])
    assert magic == MAGIC, data
    attrs, p = {}, 20
    while p < 20 + length:
        t, n = struct.unpack('!HH', data[p:p + 4])
        attrs.setdefault(t, data[p + 4:p + 4 + n])
        p += 4 + n + (4 - n % 4) % 4
    return mtype, data[8:20], attrs


def _error_code(attrs):
    v = attrs.get(ATTR_ERROR_CODE)
    return None if v is None else (v[2] & 7) * 100 + v[3]


def allocate(host, port, username, password, timeout=5):
    """(True, relayed 'ip:port') on success, or (False, error code)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    transport = _attr(ATTR_REQUESTED_TRANSPORT, b'\x11\0\0\0')[4:]
    try:
        tid = os.urandom(12)
        s.sendto(_message(ALLOCATE_REQUEST, tid,
                          [(ATTR_REQUESTED_TRANSPORT, transport)]),
                 (host, port))
        mtype, rtid, attrs = _parse(s.recv(4096))
        assert rtid == tid and mtype == ALLOCATE_ERROR, (mtype, attrs)
        assert _error_code(attrs) == 401, _error_code(attrs)
        realm, nonce = attrs[ATTR_REALM], attrs[ATTR_NONCE]
        key = hashlib.md5(b'%s:%s:%s' % (username.encode(), realm,
                                         password.encode())).digest()
        tid = os.urandom(12)
        s.sendto(_message(ALLOCATE_REQUEST, tid, [
            (ATTR_REQUESTED_TRANSPORT, transport),
            (ATTR_USERNAME, username.encode()),
            (ATTR_REALM, realm), (ATTR_NONCE, nonce)], key=key),
            (host, port))
        mtype, rtid, attrs = _parse(s.recv(4096))
        assert rtid == tid
        if mtype != ALLOCATE_SUCCESS:
            return False, _error_code(attrs)
        x = attrs[ATTR_XOR_RELAYED_ADDRESS]
        rport = struct.unpack('!H', x[2:4])[0] ^ (MAGIC >> 16)
        ip = struct.unpack('!I', x[4:8])[0] ^ MAGIC
        return True, '%s:%d' % (socket.inet_ntoa(struct.pack('!I', ip)),
                                rport)
    finally:
        s.close()
