/*
 * The XEP-0114 component handshake: hex(SHA-1(stream id + secret)),
 * computed and compared in constant time.
 */
#ifndef XMPPD_HANDSHAKE_H
#define XMPPD_HANDSHAKE_H

#define HANDSHAKE_HEX_LEN 40

/* out gets the 40 lowercase hex digits and a NUL (XEP-0114 §3). */
void handshake_digest(const char *stream_id, const char *secret,
    char out[HANDSHAKE_HEX_LEN + 1]);
/* Whether received (the <handshake/> element's text, hex digits in
 * either case) is the digest for stream_id and secret.  The comparison
 * takes the same time whatever the digits. */
int handshake_verify(const char *stream_id, const char *secret,
    const char *received);

#endif
