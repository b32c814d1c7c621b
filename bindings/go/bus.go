package streamhub

/*
#include <stdlib.h>
#include <string.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"runtime/cgo"
	"sync"
	"time"
	"unsafe"
)

// Position is a place in a channel: its epoch and the offset of the last
// event seen (bus.h).  The zero Position means "no position".
type Position struct {
	Epoch  string `json:"epoch"`
	Offset uint64 `json:"offset"`
}

func (p Position) toC(op string) (C.sh_position_t, error) {
	var cp C.sh_position_t
	if len(p.Epoch) >= C.SH_EPOCH_SIZE {
		return cp, &Error{Op: op, Code: CodeInvalid, Name: "SH_EINVAL",
			Message: "since: epoch too long"}
	}
	for i := 0; i < len(p.Epoch); i++ {
		if p.Epoch[i] == 0 {
			return cp, &Error{Op: op, Code: CodeInvalid, Name: "SH_EINVAL",
				Message: "since: epoch contains a NUL byte"}
		}
		cp.epoch[i] = C.char(p.Epoch[i])
	}
	cp.offset = C.uint64_t(p.Offset)
	return cp, nil
}

func positionFromC(cp *C.sh_position_t) Position {
	return Position{Epoch: C.GoString(&cp.epoch[0]),
		Offset: uint64(cp.offset)}
}

// Event is one event received on a channel.
type Event struct {
	Channel  string
	Position Position        // the event's epoch and offset
	Type     string          // e.g. "chat.message", "notification"
	Data     json.RawMessage // JSON of the matching GraphQL type
	Time     time.Time       // when it was published
}

// DefaultSubscriptionBuffer is how many events a Subscription holds for a
// reader that is behind before it is dropped with ErrBusy.
const DefaultSubscriptionBuffer = 4096

// Subscription is one channel's subscription.  Events arrive in order on
// Events(); the channel closes when the subscription ends: after Close,
// when the context given to Subscribe is done, when the hub closes, or
// when the reader falls DefaultSubscriptionBuffer events behind (Err then
// says why; subscribe again from the last Position to recover).
type Subscription struct {
	Channel string
	// Recovered is true when every event after the since Position given
	// to Subscribe will be delivered (see bus.h).
	Recovered bool
	// Current is the channel's epoch and top offset at subscription.
	Current Position

	h      *hub
	handle cgo.Handle
	buffer int
	events chan Event

	mu    sync.Mutex
	csub  *C.sh_subscription_t // nil once the final callback ran
	queue []Event
	final bool  // the final callback ran
	err   error // why it ended, when not by Close
	wake  chan struct{}

	closeOnce sync.Once
	closeReq  chan struct{}
	done      chan struct{} // the pump exited: Events is closed
}

// Events is the channel the subscription's events arrive on.
func (s *Subscription) Events() <-chan Event { return s.events }

// Err is why the subscription ended on its own: an error matching
// ErrBusy (the reader fell behind) or ErrCanceled (the hub closed); nil
// while it runs and after Close.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Close ends the subscription and closes Events (events not yet read are
// dropped).  It is idempotent and safe from any goroutine.
func (s *Subscription) Close() error {
	s.closeOnce.Do(func() {
		close(s.closeReq)
		s.h.post(func() {
			s.mu.Lock()
			c := s.csub
			s.mu.Unlock()
			if c != nil {
				// On the callback thread: no event follows.
				C.sh_unsubscribe(c)
			}
		})
	})
	<-s.done
	return nil
}

// Subscribe subscribes to channel ("chat:<streamId>", "stream:<id>",
// "live", "user:<userId>", "app:<name>").  With since nil only live events
// come; with the Position last seen, what was missed comes first (see
// Recovered).  The subscription also ends when ctx is done.
func (w *Hub) Subscribe(ctx context.Context, channel string,
	since *Position) (*Subscription, error) {
	return w.SubscribeBuffer(ctx, channel, since, DefaultSubscriptionBuffer)
}

// SubscribeBuffer is Subscribe with the number of unread events held
// before the subscription is dropped (ErrBusy).
func (w *Hub) SubscribeBuffer(ctx context.Context, channel string,
	since *Position, buffer int) (*Subscription, error) {
	const op = "Subscribe"
	if buffer < 1 {
		return nil, &Error{Op: op, Code: CodeInvalid, Name: "SH_EINVAL",
			Message: "buffer must be at least 1"}
	}
	var csince *C.sh_position_t
	if since != nil {
		cp, err := since.toC(op)
		if err != nil {
			return nil, err
		}
		csince = (*C.sh_position_t)(C.malloc(C.sizeof_sh_position_t))
		*csince = cp
		defer C.free(unsafe.Pointer(csince))
	}
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cch := cs.str(channel)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	s := &Subscription{
		Channel:  channel,
		h:        w.hub,
		buffer:   buffer,
		events:   make(chan Event),
		wake:     make(chan struct{}, 1),
		closeReq: make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.handle = cgo.NewHandle(s)
	w.subsMu.Lock()
	w.subs[s] = struct{}{}
	w.subsMu.Unlock()
	var res C.sh_subscribe_result_t
	var eb errbuf
	s.mu.Lock() // the first callback waits until csub is set
	rc := C.shgo_subscribe(c, cch, csince, C.uintptr_t(s.handle), &s.csub,
		&res, eb.ptr(), eb.size())
	s.mu.Unlock()
	if rc != C.SH_OK {
		w.subsMu.Lock()
		delete(w.subs, s)
		w.subsMu.Unlock()
		s.handle.Delete()
		return nil, newError(op, rc, eb.String())
	}
	s.Recovered = res.recovered != 0
	s.Current = positionFromC(&res.current)
	go s.pump()
	if done := ctx.Done(); done != nil {
		go func() {
			select {
			case <-done:
				s.Close()
			case <-s.done:
			}
		}()
	}
	return s, nil
}

// pump hands queued events to the reader, so that the callback (on the
// poller goroutine) never blocks on a slow reader.
func (s *Subscription) pump() {
	defer close(s.done)
	defer close(s.events)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		final := s.final
		s.mu.Unlock()
		for _, ev := range batch {
			select {
			case s.events <- ev:
			case <-s.closeReq:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		if final {
			return
		}
		select {
		case <-s.wake:
		case <-s.closeReq:
			return
		}
	}
}

// deliver runs on the poller goroutine (or inside sh_hub_close).
func (s *Subscription) deliver(ev *C.sh_event_t, status C.sh_err_t) {
	if status == C.SH_OK {
		var n C.size_t
		data := C.sh_event_data(ev, &n)
		e := Event{
			Channel: goStr(C.sh_event_channel(ev)),
			Position: Position{Epoch: goStr(C.sh_event_epoch(ev)),
				Offset: uint64(C.sh_event_offset(ev))},
			Type: goStr(C.sh_event_type(ev)),
			Data: json.RawMessage(goBytes(data, n)),
			Time: time.UnixMilli(int64(C.sh_event_time_ms(ev))).UTC(),
		}
		s.mu.Lock()
		over := len(s.queue) >= s.buffer
		var c *C.sh_subscription_t
		if over {
			if s.err == nil {
				s.err = &Error{Op: "Subscribe", Code: CodeBusy,
					Name: CodeBusy.Name(),
					Message: "subscriber fell behind; " +
						"subscribe again from the last position"}
			}
			c = s.csub
		} else if s.err == nil {
			s.queue = append(s.queue, e)
		}
		s.mu.Unlock()
		if c != nil {
			C.sh_unsubscribe(c) // on the callback thread: allowed
		}
		s.signal()
		return
	}
	// The final call.  The handle stays ours until we release it: here,
	// on the goroutine that also runs every sh_unsubscribe() of ours (the
	// poller's, or Close's once the poller has stopped).
	s.mu.Lock()
	c := s.csub
	s.csub = nil
	s.final = true
	if s.err == nil {
		select {
		case <-s.closeReq:
		default:
			s.err = newError("Subscribe", status, "")
		}
	}
	s.mu.Unlock()
	if c != nil {
		C.sh_subscription_free(c)
	}
	s.h.subsMu.Lock()
	delete(s.h.subs, s)
	s.h.subsMu.Unlock()
	s.handle.Delete()
	s.signal()
}

func (s *Subscription) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// finishSubs ends, after sh_hub_close(), any subscription whose final
// callback did not run (none, if the library keeps its word).
func (h *hub) finishSubs() {
	h.subsMu.Lock()
	left := make([]*Subscription, 0, len(h.subs))
	for s := range h.subs {
		left = append(left, s)
	}
	h.subsMu.Unlock()
	for _, s := range left {
		s.deliver(nil, C.SH_ECANCELED)
	}
}

//export shgoEvent
func shgoEvent(handle C.uintptr_t, ev *C.sh_event_t, status C.sh_err_t) {
	s, ok := cgo.Handle(handle).Value().(*Subscription)
	if !ok {
		return
	}
	s.deliver(ev, status)
}

// Publish publishes one event of type eventType (1..64 bytes of
// [A-Za-z0-9._-]) on channel; data is one JSON value.  Returns the event's
// offset.
func (w *Hub) Publish(ctx context.Context, channel, eventType string,
	data []byte) (uint64, error) {
	const op = "Publish"
	c, err := w.enter(ctx, op)
	if err != nil {
		return 0, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cch, ct := cs.str(channel), cs.str(eventType)
	if err := cs.check(op); err != nil {
		return 0, err
	}
	var pd *C.char
	if len(data) > 0 {
		pd = (*C.char)(unsafe.Pointer(&data[0]))
	}
	var off C.uint64_t
	var eb errbuf
	rc := C.sh_publish(c, cch, ct, pd, C.size_t(len(data)), &off, eb.ptr(),
		eb.size())
	if rc != C.SH_OK {
		return 0, newError(op, rc, eb.String())
	}
	return uint64(off), nil
}

// PublishJSON is Publish with v marshalled by encoding/json.
func (w *Hub) PublishJSON(ctx context.Context, channel, eventType string,
	v any) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	return w.Publish(ctx, channel, eventType, b)
}

// ChannelPosition is the channel's current epoch and top offset.
func (w *Hub) ChannelPosition(ctx context.Context,
	channel string) (Position, error) {
	const op = "ChannelPosition"
	c, err := w.enter(ctx, op)
	if err != nil {
		return Position{}, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cch := cs.str(channel)
	if err := cs.check(op); err != nil {
		return Position{}, err
	}
	var cp C.sh_position_t
	var eb errbuf
	if rc := C.sh_channel_position(c, cch, &cp, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return Position{}, newError(op, rc, eb.String())
	}
	return positionFromC(&cp), nil
}
