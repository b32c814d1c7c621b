package streamhub

/*
#include "shim.h"
*/
import "C"

import "context"

func streamResult(op string, s *C.sh_stream_t) (*Stream, error) {
	defer C.sh_stream_free(s)
	var n C.size_t
	var out Stream
	if err := decode(op, C.sh_stream_json(s, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

func streamListResult(op string, l *C.sh_stream_list_t) (*StreamList,
	error) {
	defer C.sh_stream_list_free(l)
	var n C.size_t
	var out StreamList
	if err := decode(op, C.sh_stream_list_json(l, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartStream starts a live stream for actorID (its broadcaster): it
// publishes stream.live and notifies every follower.  category "" is
// none.  ErrConflict when the broadcaster is live already.
func (w *Hub) StartStream(ctx context.Context, actorID, title,
	category string) (*Stream, error) {
	const op = "StartStream"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, ct, cc := cs.opt(actorID), cs.str(title), cs.opt(category)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var s *C.sh_stream_t
	var eb errbuf
	if rc := C.sh_stream_start(c, ca, ct, cc, &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamResult(op, s)
}

// StopStream ends a stream (its broadcaster or an admin); ErrConflict
// when it is offline already.
func (w *Hub) StopStream(ctx context.Context, actorID,
	streamID string) (*Stream, error) {
	const op = "StopStream"
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
	var s *C.sh_stream_t
	var eb errbuf
	if rc := C.sh_stream_stop(c, ca, cst, &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamResult(op, s)
}

// UpdateStream changes a stream's title and/or category: nil keeps a
// value, a pointer to "" clears the category.
func (w *Hub) UpdateStream(ctx context.Context, actorID, streamID string,
	title, category *string) (*Stream, error) {
	const op = "UpdateStream"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cst := cs.opt(actorID), cs.str(streamID)
	var ct, cc *C.char
	if title != nil {
		ct = cs.str(*title)
	}
	if category != nil {
		cc = cs.str(*category)
	}
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var s *C.sh_stream_t
	var eb errbuf
	if rc := C.sh_stream_update(c, ca, cst, ct, cc, &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamResult(op, s)
}

// Stream reads one stream.
func (w *Hub) Stream(ctx context.Context, streamID string) (*Stream,
	error) {
	const op = "Stream"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cst := cs.str(streamID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var s *C.sh_stream_t
	var eb errbuf
	if rc := C.sh_stream_get(c, cst, &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamResult(op, s)
}

// LiveStreams lists live streams, most viewers first: a page of at most
// first (1..100) after the cursor after ("" for the first page), of
// category only when not "".
func (w *Hub) LiveStreams(ctx context.Context, first int, after,
	category string) (*StreamList, error) {
	const op = "LiveStreams"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cc := cs.opt(after), cs.opt(category)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var l *C.sh_stream_list_t
	var eb errbuf
	if rc := C.sh_stream_live_list(c, C.int(clampInt(first)), ca, cc, &l,
		eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamListResult(op, l)
}

// SearchStreams searches titles and categories for every word of query.
func (w *Hub) SearchStreams(ctx context.Context, query string, first int,
	after string) (*StreamList, error) {
	const op = "SearchStreams"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cq, ca := cs.str(query), cs.opt(after)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var l *C.sh_stream_list_t
	var eb errbuf
	if rc := C.sh_stream_search(c, cq, C.int(clampInt(first)), ca, &l,
		eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return streamListResult(op, l)
}

// SetViewers records a live stream's viewer count (published at most
// once a second; see FlushViewers).
func (w *Hub) SetViewers(ctx context.Context, streamID string,
	count int64) error {
	const op = "SetViewers"
	c, err := w.enter(ctx, op)
	if err != nil {
		return err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cst := cs.str(streamID)
	if err := cs.check(op); err != nil {
		return err
	}
	var eb errbuf
	if rc := C.sh_stream_set_viewers(c, cst, C.int64_t(count), eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return newError(op, rc, eb.String())
	}
	return nil
}

// FlushViewers publishes the viewer counts recorded but not yet
// published; call it on a one-second tick.  Returns how many it published.
func (w *Hub) FlushViewers(ctx context.Context) (int, error) {
	c, err := w.enter(ctx, "FlushViewers")
	if err != nil {
		return 0, err
	}
	defer w.leave()
	return int(C.sh_stream_flush_viewers(c)), nil
}

// StreamStats reads a stream's statistics.
func (w *Hub) StreamStats(ctx context.Context,
	streamID string) (*StreamStats, error) {
	const op = "StreamStats"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cst := cs.str(streamID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var st *C.sh_stream_stats_t
	var eb errbuf
	if rc := C.sh_stream_stats_get(c, cst, &st, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_stream_stats_free(st)
	var n C.size_t
	var out StreamStats
	if err := decode(op, C.sh_stream_stats_json(st, &n), n,
		&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// StartRaid sends the viewers of live stream fromStreamID to toUserID.
func (w *Hub) StartRaid(ctx context.Context, actorID, fromStreamID,
	toUserID string) (*Raid, error) {
	const op = "StartRaid"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cf, ct := cs.opt(actorID), cs.str(fromStreamID), cs.str(toUserID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var r *C.sh_raid_t
	var eb errbuf
	if rc := C.sh_raid_start(c, ca, cf, ct, &r, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_raid_free(r)
	var n C.size_t
	var out Raid
	if err := decode(op, C.sh_raid_json(r, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}
