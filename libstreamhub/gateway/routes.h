/* libstreamhub/gateway/routes.h: the router floor (routes.c), which the
 * listener floor (loops.c) gives to the connection layer.  See gw.h for
 * the floors. */
#ifndef SH_GATEWAY_ROUTES_H
#define SH_GATEWAY_ROUTES_H

#include "gw.h"

/* Answer @req (any route but WebSocket upgrades). */
void sh__route(struct sh__req *req);

/* The router's and handlers' functions the connection layer calls up to
 * (struct sh__conn_ops): every loop's connections use this table. */
extern const struct sh__conn_ops sh__gateway_ops;

#endif
