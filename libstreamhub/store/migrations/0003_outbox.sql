-- The transactional outbox (services/outbox.c).  A service that stores an
-- event writes it here in the same transaction, one row per configured
-- sink (events-amqp, push-webhook, ...), so that each sink progresses on
-- its own; the relay of that sink forwards the rows in seq order within
-- each lane and deletes a row only after the sink confirmed it.  A crash
-- at any point loses nothing and at worst repeats: consumers drop repeats
-- by the event's id, the same for every sink.
--
-- lane = a hash of channel (modulo the lane count of outbox.c): the rows
-- of one channel share a lane, so the one relay that holds a lane at a
-- time keeps each channel in order.
CREATE TABLE outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sink        TEXT    NOT NULL,
    lane        INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    channel     TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    payload     TEXT    NOT NULL,
    created_ms  INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    traceparent TEXT
);
CREATE INDEX outbox_lane ON outbox (sink, lane, seq);

-- Who relays each lane of each sink: a node holds a lane while its lease
-- runs (lease_until, wall ms) and frees it when its batch is settled; a
-- dead node's lease lapses and another node takes the lane over.
CREATE TABLE outbox_lanes (
    sink        TEXT    NOT NULL,
    lane        INTEGER NOT NULL,
    owner       TEXT,
    lease_until INTEGER NOT NULL DEFAULT 0,
    last_ms     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sink, lane)
);
