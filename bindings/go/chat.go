package streamhub

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"unsafe"
)

// SendChat sends text to the chat of stream streamID as actorID.  The
// refusals are distinct errors, checked in this order: ErrUnauthenticated,
// ErrNotFound / ErrConflict (stream offline), ErrBanned, ErrTimedOutUser,
// ErrFollowersOnly, ErrSlowMode, ErrTooLong, ErrBadUTF8, ErrEmpty,
// ErrBlockedTerm, ErrRateLimited.  Those that say when to retry carry it
// in (*Error).RetryAfter (and *RateLimitedError for ErrRateLimited).
func (w *Hub) SendChat(ctx context.Context, actorID, streamID,
	text string) (*ChatMessage, error) {
	const op = "SendChat"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cst := cs.opt(actorID), cs.str(streamID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	// Length-delimited: NUL bytes in text are the library's to strip.
	ct := C.CString(text)
	defer C.free(unsafe.Pointer(ct))
	var m *C.sh_chat_message_t
	var retry C.int64_t
	var eb errbuf
	if rc := C.sh_chat_send(c, ca, cst, ct, C.size_t(len(text)), &m,
		&retry, eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newRetryError(op, rc, eb.String(), int64(retry))
	}
	defer C.sh_chat_message_free(m)
	var n C.size_t
	var out ChatMessage
	if err := decode(op, C.sh_chat_message_json(m, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChatHistory reads the last messages (1..100; 0 means 50) of stream
// streamID before the cursor before ("" for the newest), newest last.
func (w *Hub) ChatHistory(ctx context.Context, streamID string, last int,
	before string) (*ChatHistory, error) {
	const op = "ChatHistory"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cst, cb := cs.str(streamID), cs.opt(before)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var l *C.sh_chat_message_list_t
	var eb errbuf
	if rc := C.sh_chat_history(c, cst, C.int(clampInt(last)), cb, &l,
		eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_chat_message_list_free(l)
	var n C.size_t
	var out ChatHistory
	if err := decode(op, C.sh_chat_message_list_json(l, &n), n,
		&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// DeleteChat deletes a message (the channel's broadcaster, moderators or
// an admin).
func (w *Hub) DeleteChat(ctx context.Context, actorID,
	messageID string) error {
	const op = "DeleteChat"
	c, err := w.enter(ctx, op)
	if err != nil {
		return err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cm := cs.opt(actorID), cs.str(messageID)
	if err := cs.check(op); err != nil {
		return err
	}
	var eb errbuf
	if rc := C.sh_chat_delete(c, ca, cm, eb.ptr(), eb.size()); rc != C.SH_OK {
		return newError(op, rc, eb.String())
	}
	return nil
}
