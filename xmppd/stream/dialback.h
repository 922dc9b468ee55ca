/*
 * Server dialback keys (XEP-0220 §2.1, generated as XEP-0185 §3 says):
 * HMAC-SHA256 keyed with SHA-256 of a secret only this server knows, over
 * "Receiving Server ' ' Originating Server ' ' Stream ID", in lowercase
 * hex.  Pure: unit-tested.
 */
#ifndef XMPPD_STREAM_DIALBACK_H
#define XMPPD_STREAM_DIALBACK_H

#include <stddef.h>

#define DIALBACK_KEY_LEN 64     /* hex digits */

/* out holds DIALBACK_KEY_LEN + 1 bytes. */
void dialback_key(const unsigned char *secret, size_t secret_len,
    const char *receiving, const char *originating, const char *stream_id,
    char *out);
/* Whether key is the one for these names, compared in constant time. */
int dialback_key_valid(const unsigned char *secret, size_t secret_len,
    const char *receiving, const char *originating, const char *stream_id,
    const char *key);

#endif
