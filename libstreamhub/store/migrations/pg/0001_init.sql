-- pg/0001_init.sql: the whole schema of the API contract, in PostgreSQL's
-- idiom; the same tables, columns and meanings as ../0001_init.sql and
-- ../0002_bus_offsets.sql (SQLite), so that the services' portable
-- statements run unchanged on both.
--
-- Types:
--  - ids are `uuid`.  The services bind them as text; the backend
--    (store/postgres.c) checks every parameter the server typed as uuid and
--    binds a value that is not a canonical lowercase UUID as the nil UUID,
--    which no row has: a client's "nope" finds nothing, as on SQLite, and
--    never raises an error that would abort an open transaction.
--    Token families and hashes stay text: they are not row ids.
--  - times stay BIGINT milliseconds since the Unix epoch, UTC, not
--    timestamptz.  Every service binds and reads integer milliseconds
--    (store_int.h's convention) in statements shared with SQLite, and
--    cursors compare them; timestamptz would need a second text of nearly
--    every statement (to_timestamp($n / 1000.0) in, extract(epoch) * 1000
--    out) with the risk of the two drifting apart, for no gain in what is
--    stored.  Month partitions of notifications are ranges of milliseconds
--    computed by streamhub_notifications_maintain() below.
--  - booleans stay INTEGER 0/1 with a CHECK, like the SQLite schema, for
--    the same reason (statements compare and bind 0/1).
--  - notification data is `jsonb` with a GIN index (jsonb_path_ops).
--  - searchStreams: a generated tsvector column with a GIN index; the
--    statements that search carry a PostgreSQL text using it.
--
-- Applied once, in one transaction holding an advisory lock, and recorded
-- in schema_migrations; never edit it after a release: add 0002_... .

CREATE TABLE users (
    id            uuid    PRIMARY KEY,
    username      text    NOT NULL,
    username_lc   text    NOT NULL UNIQUE,
    email         text    NOT NULL UNIQUE,
    password_hash text    NOT NULL,
    role          text    NOT NULL DEFAULT 'VIEWER'
                          CHECK (role IN ('VIEWER', 'MODERATOR', 'ADMIN')),
    created_at    bigint  NOT NULL
);

CREATE TABLE refresh_tokens (
    token_hash text    PRIMARY KEY,
    user_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id  text    NOT NULL,
    created_at bigint  NOT NULL,
    expires_at bigint  NOT NULL,
    used_at    bigint,
    revoked_at bigint
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE follows (
    follower_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followed_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  bigint  NOT NULL,
    PRIMARY KEY (follower_id, followed_id),
    CHECK (follower_id <> followed_id)
);
CREATE INDEX follows_followed ON follows (followed_id, created_at);
CREATE INDEX follows_follower ON follows (follower_id, created_at);

CREATE TABLE streams (
    id             uuid    PRIMARY KEY,
    broadcaster_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title          text    NOT NULL,
    category       text,
    status         text    NOT NULL DEFAULT 'LIVE'
                           CHECK (status IN ('LIVE', 'OFFLINE')),
    viewer_count   integer NOT NULL DEFAULT 0 CHECK (viewer_count >= 0),
    peak_viewers   integer NOT NULL DEFAULT 0 CHECK (peak_viewers >= 0),
    started_at     bigint,
    ended_at       bigint,
    search         tsvector GENERATED ALWAYS AS
                   (to_tsvector('simple', title || ' ' ||
                                coalesce(category, ''))) STORED
);
CREATE UNIQUE INDEX streams_one_live ON streams (broadcaster_id)
    WHERE status = 'LIVE';
CREATE INDEX streams_live ON streams (viewer_count DESC, started_at DESC)
    WHERE status = 'LIVE';
CREATE INDEX streams_live_category ON streams
    (category, viewer_count DESC, started_at DESC) WHERE status = 'LIVE';
CREATE INDEX streams_broadcaster ON streams (broadcaster_id, started_at);
CREATE INDEX streams_search ON streams USING gin (search);

CREATE TABLE chat_messages (
    id         uuid    PRIMARY KEY,
    stream_id  uuid    NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    channel_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    author_id  uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text       text    NOT NULL,
    "offset"   bigint  NOT NULL,
    created_at bigint  NOT NULL,
    deleted    integer NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    UNIQUE (stream_id, "offset")
);
CREATE INDEX chat_messages_author ON chat_messages (author_id, created_at);
CREATE INDEX chat_messages_channel_author ON chat_messages
    (channel_id, author_id, created_at);

CREATE TABLE chat_settings (
    channel_id         uuid    PRIMARY KEY
                               REFERENCES users(id) ON DELETE CASCADE,
    slow_mode_seconds  integer NOT NULL DEFAULT 0
                               CHECK (slow_mode_seconds >= 0),
    followers_only     integer NOT NULL DEFAULT 0
                               CHECK (followers_only IN (0, 1)),
    max_message_length integer NOT NULL DEFAULT 500
                               CHECK (max_message_length BETWEEN 1 AND 2000),
    blocked_terms      text    NOT NULL DEFAULT '[]',   -- JSON array
    updated_at         bigint  NOT NULL
);

CREATE TABLE bans (
    channel_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason     text,
    created_by uuid    REFERENCES users(id) ON DELETE SET NULL,
    created_at bigint  NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE timeouts (
    channel_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until      bigint  NOT NULL,
    reason     text,
    created_by uuid    REFERENCES users(id) ON DELETE SET NULL,
    created_at bigint  NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX timeouts_until ON timeouts (until);

CREATE TABLE moderators (
    channel_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at bigint  NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- Partitioned by month of created_at (milliseconds): a partition per UTC
-- month, created ahead and dropped past the retention by
-- streamhub_notifications_maintain().  No DEFAULT partition: a row it held
-- would stop that month's partition from ever being created.  The primary
-- key carries the partition key, as PostgreSQL requires.
CREATE TABLE notifications (
    id         uuid    NOT NULL,
    user_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type       text    NOT NULL CHECK (type IN ('STREAM_LIVE', 'NEW_FOLLOWER',
                           'RAID_INCOMING', 'SUBSCRIPTION_NEW', 'MENTION')),
    data       jsonb   NOT NULL DEFAULT '{}',
    read       integer NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    created_at bigint  NOT NULL,
    PRIMARY KEY (id, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX notifications_user ON notifications
    (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, created_at DESC)
    WHERE read = 0;
CREATE INDEX notifications_data ON notifications
    USING gin (data jsonb_path_ops);

-- Create the partitions of the current UTC month and the @ahead months
-- after it that are missing (so that a start after a long downtime fills
-- the gap), and drop those whose whole range ends before the first day of
-- the month @retention months before the current one (0: keep all).
-- Several nodes may call it at once: it serialises on a transaction-level
-- advisory lock, and checks before it creates.
CREATE FUNCTION streamhub_notifications_maintain(ahead integer,
                                                 retention integer)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    cur  timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
    m    timestamp;
    lo   bigint;
    hi   bigint;
    name text;
    keep bigint;
    r    record;
BEGIN
    PERFORM pg_advisory_xact_lock(7395851620144861202);
    FOR i IN 0..ahead LOOP
        m := cur + make_interval(months => i);
        name := 'notifications_' || to_char(m, 'YYYY_MM');
        IF to_regclass(quote_ident(name)) IS NULL THEN
            lo := (extract(epoch FROM m AT TIME ZONE 'UTC') * 1000)::bigint;
            hi := (extract(epoch FROM (m + interval '1 month')
                           AT TIME ZONE 'UTC') * 1000)::bigint;
            EXECUTE format('CREATE TABLE %I PARTITION OF notifications '
                           'FOR VALUES FROM (%s) TO (%s)', name, lo, hi);
        END IF;
    END LOOP;
    IF retention > 0 THEN
        keep := (extract(epoch FROM (cur - make_interval(months => retention))
                         AT TIME ZONE 'UTC') * 1000)::bigint;
        FOR r IN SELECT c.relname,
                        substring(pg_get_expr(c.relpartbound, c.oid)
                                  FROM 'TO \(''?(-?[0-9]+)''?\)')::bigint
                            AS hi
                 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'notifications'::regclass LOOP
            IF r.hi IS NOT NULL AND r.hi <= keep THEN
                EXECUTE format('DROP TABLE %I', r.relname);
            END IF;
        END LOOP;
    END IF;
END
$$;

CREATE TABLE raids (
    id             uuid    PRIMARY KEY,
    from_stream_id uuid    NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    from_user_id   uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    to_user_id     uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    viewer_count   integer NOT NULL DEFAULT 0 CHECK (viewer_count >= 0),
    created_at     bigint  NOT NULL
);
CREATE INDEX raids_to ON raids (to_user_id, created_at);

CREATE TABLE channel_subscriptions (
    id            uuid    PRIMARY KEY,
    subscriber_id uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id    uuid    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tier          integer NOT NULL DEFAULT 1 CHECK (tier BETWEEN 1 AND 3),
    created_at    bigint  NOT NULL
);
CREATE INDEX channel_subscriptions_channel ON channel_subscriptions
    (channel_id, created_at);
CREATE INDEX channel_subscriptions_subscriber ON channel_subscriptions
    (subscriber_id, created_at);

CREATE TABLE stream_stats (
    stream_id       uuid    PRIMARY KEY
                            REFERENCES streams(id) ON DELETE CASCADE,
    chat_messages   bigint  NOT NULL DEFAULT 0,
    unique_chatters bigint  NOT NULL DEFAULT 0,
    new_followers   bigint  NOT NULL DEFAULT 0,
    peak_viewers    bigint  NOT NULL DEFAULT 0
);

CREATE TABLE stream_chatters (
    stream_id uuid NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id   uuid NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, user_id)
);

-- Offsets reserved durably ahead of use (bus/bus_local.c): see
-- ../0002_bus_offsets.sql.
CREATE TABLE bus_offsets (
    channel       text    PRIMARY KEY,
    reserved_upto bigint  NOT NULL CHECK (reserved_upto >= 0)
);
