/*
 * GET /metrics: the server's counters in the Prometheus text format
 * (version 0.0.4), served by the HTTP layer to the listeners and the
 * bearer token of the configuration's "metrics" block.
 */
#ifndef XMPPD_METRICS_H
#define XMPPD_METRICS_H

struct conf;

/* Start-up, after the modules: route /metrics if conf has a metrics
 * block. */
void metrics_init(const struct conf *conf);
/* Reload: follow the new block (added, changed or removed). */
void metrics_set_conf(const struct conf *conf);

#endif
