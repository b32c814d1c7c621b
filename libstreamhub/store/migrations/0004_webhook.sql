-- Push webhooks (services/sink_webhook.c).  The outbox hands the webhook
-- sink each event addressed to a user; for a user with no open
-- connection anywhere in the cluster the sink stores one delivery here
-- (the outbox row is then confirmed) and its sender POSTs it, retrying
-- with backoff until it is delivered or the give-up rule moves it to
-- webhook_dead.  A sender claims a due row with a lease (lease_until,
-- wall ms), so one node sends it at a time and a dead node's claims
-- lapse; a restart finds every undelivered row here.
CREATE TABLE webhook_deliveries (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_ms     INTEGER NOT NULL,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms);

-- Deliveries given up: kept for an operator to inspect or replay.
CREATE TABLE webhook_dead (
    id          TEXT    PRIMARY KEY,
    user_id     TEXT    NOT NULL,
    body        TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL,
    last_status INTEGER NOT NULL,
    failed_ms   INTEGER NOT NULL
);
