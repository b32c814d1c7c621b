-- Offsets reserved durably ahead of use (bus/bus_local.c), like a
-- sequence's cache: a channel hands out an offset only once this table
-- says it may, so that a crash leaves a gap in the numbering, never a
-- repeat.  One row per chat channel ('chat:<streamId>'), whose offsets are
-- the stored messages' offsets, and one row '*': the floor above which
-- every other channel (stream:, user:, live, app:) starts its numbering
-- after a restart.
CREATE TABLE bus_offsets (
    channel       TEXT    PRIMARY KEY,
    reserved_upto INTEGER NOT NULL CHECK (reserved_upto >= 0)
);

-- Chat channels continue above the offsets already stored.
INSERT INTO bus_offsets (channel, reserved_upto)
    SELECT 'chat:' || stream_id, MAX("offset") FROM chat_messages
    GROUP BY stream_id;
