/*
 * UTF-8 validation, for text that must be well-formed before libraries
 * that assume it (libidn's stringprep) see it.
 */
#ifndef SHARED_UTF8_H
#define SHARED_UTF8_H

#include <stddef.h>

/*
 * 1 if the n bytes at s are well-formed UTF-8 (RFC 3629 §4: no overlong
 * forms, no surrogates, nothing above U+10FFFF) without NUL, else 0.
 */
int utf8_valid(const unsigned char *s, size_t n);

#endif
