/*
 * XEP-0363 HTTP file upload, the XMPP side (mod_upload.c): what the HTTP
 * side (web/upload_http.c) needs to check a PUT against the slot it was
 * given for, and to find files.
 *
 * A slot is a random token (UPLOAD_TOKEN_LEN hex digits) naming the
 * file in upload-dir and its row in the store (store/upload.h).  Its
 * URLs are upload-url "/upload/" token "/" the file name
 * percent-encoded; the PUT URL carries "?e=EXPIRY&s=SIGNATURE", the
 * signature being HMAC-SHA-256 (a key derived from the server's secret,
 * store/fast.h) over "token/name", the size, the content type and the
 * expiry, so that only the slot's uploader, before it expires, may
 * write exactly what was announced.
 */
#ifndef XMPPD_MOD_UPLOAD_H
#define XMPPD_MOD_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#define NS_HTTP_UPLOAD "urn:xmpp:http:upload:0"
#define UPLOAD_PATH "/upload" /* the HTTP route */
#define UPLOAD_TOKEN_LEN 32
#define UPLOAD_SLOT_LIFETIME 300 /* s: a PUT URL is valid this long */

/* Whether the module runs (upload-url set, not switched off). */
int upload_running(void);

/* The signature (64 lowercase hex digits and a NUL) of a PUT of size
 * bytes of type ("" when the request named none) to path ("token/name",
 * name as in the URL) until expires (unix seconds). */
void upload_sign(const char *path, int64_t size, const char *type,
    int64_t expires, char out[65]);
/* Whether sig is that signature: constant time. */
int upload_signature_ok(const char *path, int64_t size, const char *type,
    int64_t expires, const char *sig);

/* The file of token in upload-dir (malloc'ed); tmp: the name a PUT
 * writes to first, unique per request id. */
char *upload_file_path(const char *token);
char *upload_tmp_path(const char *token, uint64_t request_id);

/* Remove the files of tokens (n of them) on a worker thread. */
void upload_remove_files(const char *const *tokens, size_t n);

/* Whether a file name may be given a slot (not-acceptable otherwise):
 * 1..255 bytes, no '/', '\\' or control characters, not "." or "..". */
int upload_filename_ok(const char *name);
/* The name percent-encoded for a URL path segment (malloc'ed). */
char *upload_encode_name(const char *name);

#endif
