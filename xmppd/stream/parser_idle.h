/*
 * Idle streams (c2s, s2s) give their expat parser back, and the heap the
 * parsers and TLS handshakes left full of holes is trimmed after a batch
 * of such releases.
 */
#ifndef XMPPD_STREAM_PARSER_IDLE_H
#define XMPPD_STREAM_PARSER_IDLE_H

#define PARSER_IDLE 2.0         /* seconds without input before a stream's
                                   parser is released (xml_stream_release) */

struct ev_loop;

/* One kind of stream swept its idle streams and released n parsers. */
void parser_idle_swept(struct ev_loop *loop, unsigned n);

#endif
