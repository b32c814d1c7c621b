/* libstreamhub/gateway/graphql_ws.c: the graphql-transport-ws protocol on
 * /graphql.  Placeholder until the GraphQL executor lands: the socket is
 * accepted (the subprotocol was negotiated) and closed with 4500, which
 * graphql-ws clients report as an internal server error. */
#include "gw.h"

void sh__gqlws_open(struct sh__conn *c)
{
    sh__ws_close(c, 4500, "GraphQL over WebSocket is not available yet");
}

void sh__gqlws_on_text(struct sh__conn *c, const char *text, size_t len)
{
    (void)text;
    (void)len;
    sh__ws_close(c, 4500, "GraphQL over WebSocket is not available yet");
}

void sh__gqlws_free(struct sh__conn *c)
{
    (void)c;
}
