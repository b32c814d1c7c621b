-- Push webhooks (services/sink_webhook.c): see ../0004_webhook.sql.
CREATE TABLE webhook_deliveries (
    id          text    PRIMARY KEY,
    user_id     text    NOT NULL,
    body        text    NOT NULL,
    created_ms  bigint  NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    next_ms     bigint  NOT NULL,
    lease_until bigint  NOT NULL DEFAULT 0,
    last_status integer NOT NULL DEFAULT 0,
    traceparent text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_ms);

CREATE TABLE webhook_dead (
    id          text    PRIMARY KEY,
    user_id     text    NOT NULL,
    body        text    NOT NULL,
    created_ms  bigint  NOT NULL,
    attempts    integer NOT NULL,
    last_status integer NOT NULL,
    failed_ms   bigint  NOT NULL
);
