-- The transactional outbox (services/outbox.c): see ../0003_outbox.sql.
-- Relays on several nodes claim lanes with FOR UPDATE SKIP LOCKED, so
-- that each lane (and each row in it) is relayed by one node at a time.
CREATE TABLE outbox (
    seq         bigint  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sink        text    NOT NULL,
    lane        integer NOT NULL,
    id          text    NOT NULL,
    channel     text    NOT NULL,
    type        text    NOT NULL,
    payload     text    NOT NULL,
    created_ms  bigint  NOT NULL,
    attempts    integer NOT NULL DEFAULT 0,
    traceparent text
);
CREATE INDEX outbox_lane ON outbox (sink, lane, seq);

CREATE TABLE outbox_lanes (
    sink        text    NOT NULL,
    lane        integer NOT NULL,
    owner       text,
    lease_until bigint  NOT NULL DEFAULT 0,
    last_ms     bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (sink, lane)
);
