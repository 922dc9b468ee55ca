/*
 * Base64 (RFC 4648 §4) encoding and strict decoding, as SASL needs it.
 */
#ifndef SHARED_BASE64_H
#define SHARED_BASE64_H

#include <stddef.h>

/* Length of the encoding of n bytes, without NUL. */
size_t base64_encoded_len(size_t n);
/* Encode n bytes into out (room for base64_encoded_len(n) + 1). */
void base64_encode(const unsigned char *in, size_t n, char *out);
/* malloc'ed NUL-terminated encoding. */
char *base64_encode_alloc(const void *in, size_t n);
/*
 * Strict decode of n chars (padding required, no whitespace, no trailing
 * garbage) into out, which has room for n / 4 * 3 bytes.  Returns the
 * decoded length or -1 on any invalid input.
 */
long base64_decode(const char *in, size_t n, unsigned char *out);
/* malloc'ed decode, NUL-terminated for convenience; -1 on error. */
long base64_decode_alloc(const char *in, size_t n, unsigned char **out);

#endif
