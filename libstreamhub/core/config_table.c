/* libstreamhub/core/config_table.c: every configuration key, one row each.
 *
 * This table is the single source of the keys: sh_config_set() validates
 * against it, streamhubd --help prints it, and docs/CONFIG.md is generated
 * from it (streamhubd --help-markdown).  A new key is one row here.
 */
#include "core_int.h"

#define S(n, d, doc) { n, SH__CONF_STRING, d, 0, 0, NULL, doc }
#define K(n, d, doc) { n, SH__CONF_SECRET, d, 0, 0, NULL, doc }
#define I(n, d, lo, hi, doc) { n, SH__CONF_INT, d, lo, hi, NULL, doc }
#define B(n, d, doc) { n, SH__CONF_BOOL, d, 0, 0, NULL, doc }
#define E(n, d, ch, doc) { n, SH__CONF_ENUM, d, 0, 0, ch, doc }

const struct sh__conf_key sh__conf_keys[] = {
    S("listen", "127.0.0.1:8080",
      "Address and port of every door (port 0: any free port)."),
    B("listen-reuseport", "false",
      "Bind the listener with SO_REUSEPORT, so that several streamhubd "
      "processes on one machine share one port (the kernel spreads new "
      "connections over them), each with its own open-files limit; every "
      "process sharing the port must set it."),
    I("loops", "0", 0, 256,
      "Event loops of the gateway, one thread each, every connection on "
      "one loop for its life; 0: one per online core.  The first loop is "
      "the one the gateway is started on (streamhubd's, or an embedder's "
      "event_base); one acceptor on it hands new connections to the loops "
      "in turn."),
    S("trusted-proxies", "",
      "Comma-separated IP addresses or CIDR blocks of the reverse proxies "
      "(nginx) in front of this node.  Only for a TCP peer inside them is "
      "the client address taken from X-Forwarded-For (the rightmost hop "
      "not inside them; all hops trusted: the leftmost) or, without it, "
      "X-Real-IP; it feeds the per-IP rate limits and the logs.  A header "
      "that cannot be read leaves the peer's own address.  Empty: no "
      "header is believed."),
    S("store", "sqlite:streamhub.db",
      "sqlite:PATH, sqlite::memory:, or a postgres:// or postgresql:// URI."),
    S("store-read", "",
      "Where reads that may lag go: a postgres:// URI of a streaming "
      "replica (or, on SQLite, sqlite:PATH of the store's own file, opened "
      "read-only); empty: every read goes to store.  Writes, the reads of "
      "a call that writes (a mutation's payload), the reads that rules "
      "and credentials rest on, and reads of what this node wrote in the "
      "last store-read.write-window-ms (a user's own follow, chat "
      "message, edit) go to store; other reads (users, streams, lists, "
      "counts, history, notifications, search) go here.  When a read "
      "fails here it is answered by store, which takes every read for "
      "store-read.retry-ms."),
    S("bus", "local", "local, or redis://[:password@]host:port[/db]."),
    E("log-level", "info", "debug|info|warn|error",
      "Least severe level logged."),
    K("jwt-secret", "",
      "HS256 secret, at least 32 bytes; random at each start when unset."),
    E("jwt-alg", "HS256", "HS256|EdDSA", "Algorithm of the access tokens."),
    K("jwt-private-key", "",
      "EdDSA: the Ed25519 seed (32 bytes) or secret key (64), base64."),
    S("jwt-public-key", "",
      "EdDSA: the Ed25519 public key (32 bytes), base64; derived from the "
      "private key when unset."),
    S("jwt-issuer", "streamhub", "The iss claim of issued tokens."),
    I("jwt-ttl-seconds", "900", 10, 86400, "Lifetime of access tokens."),
    I("jwt-leeway-seconds", "30", 0, 300,
      "Clock skew allowed when checking an access token: it is still "
      "accepted up to this many seconds after its exp, and already up to "
      "this many seconds before its nbf and iat. Refresh tokens get none."),
    I("refresh-ttl-seconds", "2592000", 60, 31536000,
      "Lifetime of refresh tokens."),
    K("api-key", "", "Key for Authorization: Apikey; empty: publish API off."),
    B("allow-anonymous", "true", "Anonymous read-only WebSocket clients."),
    E("app-subscribe", "anyone", "anyone|authenticated|apikey",
      "Who may subscribe to app: channels on /ws: anyone (anonymous "
      "clients too, where allow-anonymous is on), authenticated (a "
      "connection that sent auth, or a subscribe carrying the API key "
      "as apiKey), apikey (a subscribe carrying the API key as apiKey, "
      "or an admin's connection: those who may publish there).  The "
      "default keeps app: channels as readable as live and stream:, "
      "which is safe because only API-key holders and admins publish "
      "to them: put nothing there that every client may not read, or "
      "choose apikey."),
    I("store.pool-size", "4", 1, 64,
      "Store connections, opened at start and shared by every thread of "
      "the hub (workers, chat writer); sqlite::memory: uses one."),
    I("store.busy-timeout-ms", "5000", 0, 600000,
      "SQLite: wait this long for a lock before failing."),
    B("store.prepared-statements", "true",
      "PostgreSQL: prepare each statement once per connection (named "
      "statements). Set false behind pgbouncer in transaction pooling "
      "mode: then only unnamed statements are used and nothing is kept "
      "in the session."),
    I("store.statement-timeout-ms", "5000", 100, 600000,
      "PostgreSQL: the longest the hub waits for the server on one round "
      "trip (connecting, preparing, each statement, BEGIN and COMMIT; "
      "migrations at start excepted).  Past it the statement fails with a "
      "store error, a cancel is sent and the connection is replaced.  "
      "Unlike PostgreSQL's own statement_timeout, which the server "
      "enforces and so cannot when it hangs or is unreachable, this one "
      "is enforced by the hub; keep it above any statement_timeout set on "
      "the server."),
    I("store.bulk-statement-timeout-ms", "600000", 100, 86400000,
      "PostgreSQL: store.statement-timeout-ms for the statements whose "
      "work grows with the data, instead of the short one: going live "
      "inserts one notification per follower in one statement."),
    I("store.notifications-months-ahead", "3", 1, 24,
      "PostgreSQL: monthly partitions of notifications created ahead of "
      "the current month (at start and hourly)."),
    I("store.notifications-retention-months", "0", 0, 1200,
      "PostgreSQL: drop notification partitions older than this many "
      "months before the current one; 0 keeps them all."),
    S("redis", "",
      "State shared by the nodes of a cluster (presence and viewer counts, "
      "User.online, ws.max-connections-per-user, rate limits, the hot-read "
      "cache): redis://[[user]:password@]host[:port][/db].  Empty: the bus "
      "URI when bus is redis://, else none (every count is this node's)."),
    S("redis.key-prefix", "sh:",
      "Prefix (at most 32 bytes) of the keys of the shared state in redis, "
      "so that several deployments can share one server; the bus has its "
      "own, bus.redis-key-prefix."),
    I("redis.pool-size", "8", 1, 256,
      "Blocking connections to the redis server, shared by the threads "
      "that wait on it (workers)."),
    I("redis.connect-timeout-ms", "1000", 1, 60000,
      "Deadline of a connect (with AUTH, SELECT and a PING) to redis."),
    I("redis.timeout-ms", "1000", 1, 60000,
      "Deadline of one redis command.  After a failure every call fails at "
      "once (50 ms doubling to 2 s) until a reconnect succeeds."),
    I("redis.node-ttl-ms", "5000", 1000, 600000,
      "A node refreshes its heartbeat every third of this; the counts of a "
      "node whose heartbeat is older (killed, cut off) no longer count."),
    E("redis.rate-limit-down", "local", "local|closed",
      "Rate limits while redis is unreachable: local (fail open to this "
      "node's own buckets, so each node allows the full rate) or closed "
      "(refuse, rate_limited)."),
    I("redis.cache-ttl-seconds", "30", 0, 86400,
      "Lifetime of a cached stream, user or unread count in redis (the "
      "writes that change one delete it first); 0: no cache."),
    I("cache.memory-entries", "10000", 0, 10000000,
      "Hot reads (streams, users, unread counts, live list pages, "
      "follower counts) each node keeps in memory, per kind, least "
      "recently used first out; the writes that change one drop it "
      "before their response; 0: none."),
    B("cache.memory-in-cluster", "false",
      "Keep hot reads in memory in a cluster too (a redis bus or the "
      "`redis` key): a write through another node may then go unseen "
      "here for up to cache.memory-ttl-ms.  Off: a cluster's nodes read "
      "the redis tier only, and no node serves an old value after any "
      "node's write response."),
    I("cache.memory-ttl-ms", "1000", 0, 3600000,
      "Lifetime of a hot read kept in memory: how long a write made "
      "through another node may go unseen here (never on the writing "
      "node); 0: no memory tier."),
    I("store-read.write-window-ms", "2000", 0, 600000,
      "After a write through this node, reads of the users, streams and "
      "channels it touched stay on store for this long: a user sees their "
      "own writes while the replica's lag is under it."),
    I("store-read.retry-ms", "1000", 0, 600000,
      "After a read failed on store-read, every read goes to store for "
      "this long before store-read is tried again."),
    I("bus.history-size", "1000", 0, 1000000,
      "Events kept per channel for recovery."),
    I("bus.history-ttl-seconds", "600", 1, 604800,
      "Age past which a channel's events leave its history.  With bus = "
      "redis: a channel's key (epoch and history) expires this long after "
      "its last publish once no node listens to it; a channel that is "
      "listened to keeps its history, bounded by bus.history-size."),
    I("bus.max-idle-channels", "100000", 1, 100000000,
      "Channels with no subscriber and no history kept for their numbering "
      "until bus.history-ttl-seconds: past this many channels in all, every "
      "such channel is dropped at the next sweep (a client that resumes on "
      "one gets recovered: false), so that subscribing to ever new names "
      "cannot grow memory."),
    S("bus.redis-key-prefix", "sh:",
      "bus = redis: prefix of every Redis key and PUBLISH channel of the "
      "bus (at most 64 bytes), so that several deployments (or tests) can "
      "share one Redis."),
    I("bus.redis-timeout-ms", "3000", 100, 600000,
      "bus = redis: deadline of every Redis request and of the health "
      "PING sent each second; past it the node counts Redis as down "
      "(/readyz 503, publishes refused with SH_EBUS) and reconnects."),
    I("bus.redis-claim-timeout-ms", "10000", 100, 3600000,
      "bus = redis: a claimed offset (a chat message being stored) not "
      "released within this long, by a node that died or stalled, becomes "
      "a gap, so that later events of the channel are not held back."),
    I("bus.subscriber-queue", "4096", 16, 1048576,
      "Events queued per subscriber before its oldest is dropped."),
    I("chat.max-message-length", "500", 1, 2000,
      "Default maximum message length in code points."),
    I("chat.rate-limit", "100", 1, 100000,
      "Messages per user per chat.rate-window-seconds."),
    I("chat.rate-window-seconds", "60", 1, 86400, "Window of chat.rate-limit."),
    I("chat.redact-window-seconds", "300", 0, 86400,
      "A ban or timeout redacts the user's messages of this many seconds."),
    I("chat.write-behind-queue", "65536", 1, 16777216,
      "Messages waiting to be stored before sends are refused."),
    I("chat.write-behind-batch", "512", 1, 65536,
      "Messages stored per transaction."),
    I("chat.cache-users", "100000", 1, 100000000,
      "Users (name, roles) the chat keeps in memory; the least recently "
      "used go first."),
    I("chat.cache-streams", "100000", 1, 100000000,
      "Streams (channel, liveness) the chat keeps in memory; the least "
      "recently used go first."),
    I("chat.cache-authors", "1000000", 1, 100000000,
      "Authors' last sends kept for slow mode, over all channels.  Only a "
      "send older than its channel's slow-mode window is forgotten; a new "
      "author finding all within it is refused (rate_limited)."),
    I("chat.cache-followers", "1000000", 1, 100000000,
      "Follower answers kept for followers-only chat, over all channels; "
      "the least recently used go first."),
    E("chat.durability", "commit", "commit|async",
      "commit: a send is acknowledged once its batch is stored (it survives "
      "kill -9); async: acknowledged when queued, before it is stored (up "
      "to chat.write-behind-queue acknowledged messages lost on a crash)."),
    I("chat.offset-block", "1000", 1, 1000000,
      "Most chat offsets reserved in the store at a time (a crash skips at "
      "most this many, never repeats one)."),
    K("events-amqp", "",
      "amqp://user:pass@host:port/vhost of a RabbitMQ broker that gets "
      "every event StreamHub stores (stream.live, stream.offline, "
      "user.new_follower, chat.message, raid.incoming, subscription.new) "
      "through the transactional outbox: the durable topic exchange "
      "streamhub.events, routing key the event type, persistent messages "
      "with the event's id as message-id, publisher confirms; an event no "
      "queue took is returned and dead-lettered to streamhub.events.dlx "
      "(queue streamhub.events.dead).  Empty: no outbox for it."),
    I("outbox.batch", "256", 1, 10000,
      "Most outbox rows a relay hands a sink at a time."),
    I("outbox.poll-interval-ms", "200", 10, 60000,
      "How often an idle relay looks for rows written by other nodes (its "
      "own node wakes it at once)."),
    I("outbox.delivery-timeout-ms", "5000", 100, 600000,
      "Longest a relay waits for a sink to confirm a batch; what is not "
      "confirmed by then is delivered again later."),
    I("outbox.lease-ms", "15000", 1000, 3600000,
      "How long a node holds an outbox lane it relays; a dead node's lanes "
      "are taken over by another node after this.  More than twice "
      "outbox.delivery-timeout-ms."),
    I("outbox.retry-max-ms", "10000", 100, 600000,
      "Longest wait between a relay's attempts while its sink fails (the "
      "wait doubles from 100 ms)."),
    I("ws.max-message-bytes", "65536", 125, 16777216,
      "Largest WebSocket message, across fragments."),
    I("ws.max-connections-per-user", "10", 1, 10000,
      "Concurrent WebSocket connections per user."),
    I("ws.send-buffer-bytes", "1048576", 4096, 268435456,
      "Send buffer per connection (HTTP and WebSocket): over it, nothing "
      "more is read from the connection until it drains to half, and "
      "fan-out closes a slow WebSocket client (4408)."),
    I("ws.ping-interval-ms", "30000", 100, 3600000,
      "Interval of server pings."),
    I("ws.pong-timeout-ms", "60000", 100, 3600000,
      "A connection silent this long is closed."),
    I("ws.auth-timeout-ms", "10000", 100, 600000,
      "Time to authenticate where anonymous access is off."),
    I("presence.max-streams", "65536", 1, 16777216,
      "Streams whose viewers one node counts at once (a chat: or stream: "
      "subscription with a UUID counts its connection as a viewer); past "
      "it, new streams are not counted."),
    I("presence.max-streams-per-connection", "32", 1, 100000,
      "Streams one connection counts as a viewer of; its further "
      "subscriptions work but are not counted."),
    I("http.max-header-bytes", "16384", 256, 1048576,
      "Request line and headers, in all."),
    I("http.max-headers", "100", 1, 1000, "Header fields per request."),
    I("http.max-body-bytes", "1048576", 0, 1073741824,
      "Request body (413 above)."),
    I("http.header-timeout-ms", "10000", 100, 600000,
      "Time to receive a request's headers."),
    I("http.idle-timeout-ms", "60000", 100, 3600000,
      "Keep-alive connection idle time."),
    I("http.rate-limit-per-ip", "1000", 1, 1000000,
      "HTTP requests per client address per second (token bucket)."),
    I("workers", "4", 1, 64, "Worker threads for store-bound requests."),
    I("workers.max-in-flight", "1024", 1, 1000000,
      "Jobs handed to the workers and not yet answered, in all; a request "
      "past it is refused with rate_limited (HTTP 429 with Retry-After, "
      "GraphQL RATE_LIMITED)."),
    I("workers.max-in-flight-per-connection", "64", 1, 100000,
      "The same bound for one connection's requests (native commands, "
      "graphql-ws operations starting, HTTP requests)."),
    S("cors-origins", "",
      "Comma-separated origins allowed by CORS and WebSocket Origin checks; "
      "empty: same-origin only, * any."),
    S("tls-cert", "", "PEM certificate chain file; with tls-key, serve TLS."),
    S("tls-key", "", "PEM private key file."),
    B("console", "true",
      "Serve the console (live streams, chat, notifications, operations) "
      "at / and GraphiQL at /graphql for a browser's GET with Accept: "
      "text/html; false: those answer 404, and /graphql only GraphQL."),
    S("console-dir", "",
      "Directory of the console's files (static/ and node_modules/ from "
      "npm ci, as in the source tree's console/); empty: the source "
      "tree's console/ when it exists, else the installed copy "
      "(share/streamhub/console under the install prefix)."),
    B("graphql.introspection", "true", "Answer __schema and __type."),
    I("graphql.max-depth", "12", 1, 1000, "Deepest selection allowed."),
    I("graphql.max-cost", "5000", 1, 100000000, "Cost budget per operation."),
    I("graphql.max-aliases", "50", 1, 100000,
      "Aliases and root fields per operation."),
    I("graphql.max-document-bytes", "65536", 64, 16777216,
      "Largest GraphQL document."),
    I("graphql.document-cache-size", "1000", 0, 1000000,
      "GraphQL documents kept parsed and validated (keyed by a hash of "
      "their text), so that a document sent again skips both; the least "
      "recently used goes first; 0: none."),
    S("push-webhook", "",
      "https:// URL that gets a POST for each notification (user.new_"
      "follower, raid.incoming, subscription.new) whose user has no open "
      "connection anywhere in the cluster, standing in for FCM/APNs; "
      "delivered from the outbox (durable across restarts), signed with "
      "push-webhook-secret (docs/webhooks.md).  Empty: off."),
    K("push-webhook-secret", "",
      "HMAC-SHA-256 key of the push webhooks' StreamHub-Signature, at "
      "least 16 bytes; required with push-webhook."),
    I("push-webhook.timeout-ms", "5000", 100, 600000,
      "Each webhook attempt's deadline (connect, send, answer)."),
    I("push-webhook.max-attempts", "8", 1, 1000,
      "The give-up rule: after this many failed attempts (or at once on a "
      "status other than 408, 429 or 5xx) a delivery moves to the "
      "webhook_dead table."),
    I("push-webhook.retry-base-ms", "1000", 10, 3600000,
      "Wait before the first retry; it doubles per attempt, half of it "
      "random (jitter), up to push-webhook.retry-max-ms; a Retry-After "
      "from the receiver is followed instead (within that cap)."),
    I("push-webhook.retry-max-ms", "300000", 10, 86400000,
      "Longest wait between two attempts of one delivery."),
    I("push-webhook.concurrency", "16", 1, 1024,
      "Webhook requests in flight at once per node (one per user at a "
      "time), so that a slow receiver for some users never holds up the "
      "others."),
    S("otlp-endpoint", "",
      "OpenTelemetry collector for trace spans (HTTP requests, GraphQL "
      "operations, store queries, bus publishes), sent as OTLP/HTTP JSON: "
      "http://host:4318 (then /v1/traces is added) or the full URL of the "
      "traces path.  Empty: no spans are made at all."),
    S("otlp.service-name", "streamhubd",
      "The service.name resource attribute of the spans."),
    I("otlp.queue-spans", "2048", 16, 1048576,
      "Spans waiting for export, at most (memory is allocated once, about "
      "1 KiB each); past it new spans are dropped and counted in "
      "streamhub_otel_spans_dropped_total{reason=\"queue_full\"}."),
    I("otlp.batch-spans", "512", 1, 65536,
      "Spans per export request, at most."),
    I("otlp.batch-delay-ms", "1000", 1, 600000,
      "How long a partial batch waits for more spans before it is sent."),
    I("otlp.timeout-ms", "10000", 10, 600000,
      "Each export attempt's deadline (connect, send, answer)."),
    I("otlp.max-attempts", "5", 1, 100,
      "Attempts per batch: an answer of 429, 502, 503 or 504, or none, is "
      "retried with exponential backoff and jitter (or after Retry-After, "
      "at most 60 s); any other failure drops the batch at once."),
};

const size_t sh__conf_nkeys = sizeof sh__conf_keys / sizeof sh__conf_keys[0];
