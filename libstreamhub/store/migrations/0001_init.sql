-- 0001_init.sql: the whole schema of the API contract (api/schema.graphql).
--
-- Conventions (every table):
--  - ids are UUID text (version 4, lowercase, 36 characters);
--  - times are INTEGER milliseconds since the Unix epoch, UTC (BIGINT in
--    PostgreSQL); names end in _at, or are "until";
--  - booleans are INTEGER 0/1 with a CHECK (BOOLEAN-like SMALLINT in
--    PostgreSQL, or BOOLEAN with casts in the statements);
--  - JSON documents are TEXT holding one JSON value (JSONB in PostgreSQL);
--  - enums are TEXT with a CHECK listing the GraphQL enum's values;
--  - every foreign key names users(id) or streams(id) and cascades on
--    delete, so deleting a user removes what only made sense with them.
--
-- Portability: everything here but the full-text search maps one to one to
-- PostgreSQL (INTEGER -> BIGINT, TEXT -> TEXT, partial indexes exist in
-- both).  Stream search is an FTS5 table kept in sync by triggers here; the
-- PostgreSQL migration uses a generated tsvector column with a GIN index
-- instead, and the statements that search carry a per-backend text.
--
-- This file is applied once, in one transaction, and recorded in
-- schema_migrations; never edit it after a release: add 0002_... instead.

CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL,            -- as registered
    username_lc   TEXT    NOT NULL UNIQUE,     -- lowercased: unique, login
    email         TEXT    NOT NULL UNIQUE,     -- stored lowercased
    password_hash TEXT    NOT NULL,            -- crypto_pwhash_str (argon2id)
    role          TEXT    NOT NULL DEFAULT 'VIEWER'
                          CHECK (role IN ('VIEWER', 'MODERATOR', 'ADMIN')),
    created_at    INTEGER NOT NULL
);

-- Refresh tokens: only the SHA-256 (hex) of the token is stored.  A token
-- is single use: using it sets used_at and issues the next one in the same
-- family; presenting a used one revokes the whole family (theft detection).
CREATE TABLE refresh_tokens (
    token_hash TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family_id  TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at    INTEGER,
    revoked_at INTEGER
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user ON refresh_tokens (user_id);

CREATE TABLE follows (
    follower_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    followed_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (follower_id, followed_id),
    CHECK (follower_id <> followed_id)
);
-- followers of X, newest first; whom X follows, newest first
CREATE INDEX follows_followed ON follows (followed_id, created_at);
CREATE INDEX follows_follower ON follows (follower_id, created_at);

CREATE TABLE streams (
    id             TEXT    PRIMARY KEY,
    broadcaster_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    title          TEXT    NOT NULL,
    category       TEXT,
    status         TEXT    NOT NULL DEFAULT 'LIVE'
                           CHECK (status IN ('LIVE', 'OFFLINE')),
    viewer_count   INTEGER NOT NULL DEFAULT 0 CHECK (viewer_count >= 0),
    peak_viewers   INTEGER NOT NULL DEFAULT 0 CHECK (peak_viewers >= 0),
    started_at     INTEGER,
    ended_at       INTEGER
);
-- At most one LIVE stream per broadcaster (startStream: CONFLICT).
CREATE UNIQUE INDEX streams_one_live ON streams (broadcaster_id)
    WHERE status = 'LIVE';
-- liveStreams: most viewers first, then newest.
CREATE INDEX streams_live ON streams (viewer_count DESC, started_at DESC)
    WHERE status = 'LIVE';
CREATE INDEX streams_live_category ON streams
    (category, viewer_count DESC, started_at DESC) WHERE status = 'LIVE';
CREATE INDEX streams_broadcaster ON streams (broadcaster_id, started_at);

-- searchStreams: full-text over title and category (external content).
CREATE VIRTUAL TABLE streams_fts USING fts5(
    title, category, content='streams', content_rowid='rowid',
    tokenize='unicode61 remove_diacritics 2');
CREATE TRIGGER streams_fts_ai AFTER INSERT ON streams BEGIN
    INSERT INTO streams_fts (rowid, title, category)
        VALUES (new.rowid, new.title, coalesce(new.category, ''));
END;
CREATE TRIGGER streams_fts_ad AFTER DELETE ON streams BEGIN
    INSERT INTO streams_fts (streams_fts, rowid, title, category)
        VALUES ('delete', old.rowid, old.title, coalesce(old.category, ''));
END;
CREATE TRIGGER streams_fts_au AFTER UPDATE OF title, category ON streams
BEGIN
    INSERT INTO streams_fts (streams_fts, rowid, title, category)
        VALUES ('delete', old.rowid, old.title, coalesce(old.category, ''));
    INSERT INTO streams_fts (rowid, title, category)
        VALUES (new.rowid, new.title, coalesce(new.category, ''));
END;

-- "offset" is quoted: it is a keyword in PostgreSQL.
CREATE TABLE chat_messages (
    id         TEXT    PRIMARY KEY,
    stream_id  TEXT    NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    channel_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    author_id  TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    text       TEXT    NOT NULL,
    "offset"   INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    deleted    INTEGER NOT NULL DEFAULT 0 CHECK (deleted IN (0, 1)),
    UNIQUE (stream_id, "offset")
);
-- redaction of a banned/timed-out author's recent messages
CREATE INDEX chat_messages_author ON chat_messages (author_id, created_at);
CREATE INDEX chat_messages_channel_author ON chat_messages
    (channel_id, author_id, created_at);

CREATE TABLE chat_settings (
    channel_id         TEXT    PRIMARY KEY
                               REFERENCES users(id) ON DELETE CASCADE,
    slow_mode_seconds  INTEGER NOT NULL DEFAULT 0
                               CHECK (slow_mode_seconds >= 0),
    followers_only     INTEGER NOT NULL DEFAULT 0
                               CHECK (followers_only IN (0, 1)),
    max_message_length INTEGER NOT NULL DEFAULT 500
                               CHECK (max_message_length BETWEEN 1 AND 2000),
    blocked_terms      TEXT    NOT NULL DEFAULT '[]',   -- JSON array
    updated_at         INTEGER NOT NULL
);

CREATE TABLE bans (
    channel_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    reason     TEXT,
    created_by TEXT    REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

CREATE TABLE timeouts (
    channel_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    until      INTEGER NOT NULL,
    reason     TEXT,
    created_by TEXT    REFERENCES users(id) ON DELETE SET NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);
CREATE INDEX timeouts_until ON timeouts (until);

CREATE TABLE moderators (
    channel_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (channel_id, user_id)
);

-- PostgreSQL partitions this table by month of created_at.
CREATE TABLE notifications (
    id         TEXT    PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type       TEXT    NOT NULL CHECK (type IN ('STREAM_LIVE', 'NEW_FOLLOWER',
                           'RAID_INCOMING', 'SUBSCRIPTION_NEW', 'MENTION')),
    data       TEXT    NOT NULL DEFAULT '{}',          -- JSON object
    read       INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1)),
    created_at INTEGER NOT NULL
);
CREATE INDEX notifications_user ON notifications
    (user_id, created_at DESC, id DESC);
CREATE INDEX notifications_unread ON notifications (user_id, created_at DESC)
    WHERE read = 0;

CREATE TABLE raids (
    id             TEXT    PRIMARY KEY,
    from_stream_id TEXT    NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    from_user_id   TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    to_user_id     TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    viewer_count   INTEGER NOT NULL DEFAULT 0 CHECK (viewer_count >= 0),
    created_at     INTEGER NOT NULL
);
CREATE INDEX raids_to ON raids (to_user_id, created_at);

CREATE TABLE channel_subscriptions (
    id            TEXT    PRIMARY KEY,
    subscriber_id TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    channel_id    TEXT    NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    tier          INTEGER NOT NULL DEFAULT 1 CHECK (tier BETWEEN 1 AND 3),
    created_at    INTEGER NOT NULL
);
CREATE INDEX channel_subscriptions_channel ON channel_subscriptions
    (channel_id, created_at);
CREATE INDEX channel_subscriptions_subscriber ON channel_subscriptions
    (subscriber_id, created_at);

CREATE TABLE stream_stats (
    stream_id       TEXT    PRIMARY KEY
                            REFERENCES streams(id) ON DELETE CASCADE,
    chat_messages   INTEGER NOT NULL DEFAULT 0,
    unique_chatters INTEGER NOT NULL DEFAULT 0,
    new_followers   INTEGER NOT NULL DEFAULT 0,
    peak_viewers    INTEGER NOT NULL DEFAULT 0
);

-- One row per (stream, chatter): INSERT ... ON CONFLICT DO NOTHING, and
-- unique_chatters grows by the rows it changed.
CREATE TABLE stream_chatters (
    stream_id TEXT NOT NULL REFERENCES streams(id) ON DELETE CASCADE,
    user_id   TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (stream_id, user_id)
);
