package streamhub

/*
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"fmt"
	"log"
	"os"
	"runtime"
	"runtime/cgo"
	"sort"
	"sync"
	"unsafe"
)

// Config is a hub's configuration: the keys of docs/CONFIG.md with their
// text values ("store": "sqlite::memory:", "log-level": "error", ...).
// Keys not given keep their defaults.  Every key and value is checked by
// Open, and a bad one is an ErrInvalid error naming it.
type Config map[string]string

// LogLevel is the level of a log line (log.h).
type LogLevel int

// The levels of log.h.
const (
	LogDebug LogLevel = C.SH_LOG_DEBUG
	LogInfo  LogLevel = C.SH_LOG_INFO
	LogWarn  LogLevel = C.SH_LOG_WARN
	LogError LogLevel = C.SH_LOG_ERROR
)

// LogFunc receives the hub's log lines: one JSON object each (log.h).  It
// is called from any of the hub's threads, possibly concurrently, and must
// not call back into the hub.  line is only valid during the call.
type LogFunc func(level LogLevel, line []byte)

// Option changes how Open builds a hub.
type Option func(*options)

type options struct {
	log LogFunc
}

// WithLogger sends the hub's log lines to fn instead of stderr.
func WithLogger(fn LogFunc) Option {
	return func(o *options) { o.log = fn }
}

// Hub is one StreamHub instance: a store, a bus and the services.  Its
// methods may be called from any goroutine, concurrently.  Close it when
// done.
type Hub struct {
	*hub
}

// hub is the state shared by the Hub, its poller and its subscriptions.
// The Hub wrapper exists so that a finalizer can notice a Hub dropped
// without Close while the poller goroutine still references the state.
type hub struct {
	// mu guards c: service calls hold it shared, Close exclusively,
	// because sh_hub_close() must not run concurrently with any call.
	mu     sync.RWMutex
	c      *C.sh_hub_t
	closed bool

	once     sync.Once
	logH     cgo.Handle // 0 without a logger; deleted after close
	waker    [2]C.int
	stop     chan struct{}
	pollDone chan struct{}

	// cmds run on the poller goroutine between two sh_hub_poll() calls:
	// sh_unsubscribe() is made there, on the callback thread, where it
	// cannot race with the subscription's final callback.
	// cmdMu also guards the waker's descriptors: they are closed, and
	// stopped set, under it, so that no write reaches a reused number.
	cmdMu   sync.Mutex
	cmds    []func()
	stopped bool

	subsMu sync.Mutex
	subs   map[*Subscription]struct{}
}

// Open builds a configuration from cfg and opens a hub on it, then starts
// the goroutine that delivers its events.
func Open(cfg Config, opts ...Option) (*Hub, error) {
	var o options
	for _, fn := range opts {
		fn(&o)
	}
	var conf *C.sh_config_t
	if rc := C.sh_config_new(&conf); rc != C.SH_OK {
		return nil, newError("Open", rc, "")
	}
	keys := make([]string, 0, len(cfg))
	for k := range cfg {
		keys = append(keys, k)
	}
	sort.Strings(keys) // errors name the same key from run to run
	var eb errbuf
	for _, k := range keys {
		var cs cstrings
		ck, cv := cs.str(k), cs.str(cfg[k])
		err := cs.check("Open")
		if err == nil {
			if rc := C.sh_config_set(conf, ck, cv, eb.ptr(),
				eb.size()); rc != C.SH_OK {
				err = newError("Open", rc, eb.String())
			}
		}
		cs.free()
		if err != nil {
			C.sh_config_free(conf)
			return nil, err
		}
	}
	h := &hub{
		stop:     make(chan struct{}),
		pollDone: make(chan struct{}),
		subs:     make(map[*Subscription]struct{}),
		waker:    [2]C.int{-1, -1},
	}
	if o.log != nil {
		h.logH = cgo.NewHandle(o.log)
		C.shgo_config_set_log(conf, C.uintptr_t(h.logH))
	}
	if rc := C.sh_hub_open(conf, &h.c, eb.ptr(), eb.size()); rc != C.SH_OK {
		C.sh_config_free(conf) // still ours on error
		if h.logH != 0 {
			h.logH.Delete()
		}
		return nil, newError("Open", rc, eb.String())
	}
	if e := C.shgo_waker_open((*C.int)(unsafe.Pointer(&h.waker[0]))); e != 0 {
		C.sh_hub_close(h.c)
		if h.logH != 0 {
			h.logH.Delete()
		}
		return nil, &Error{Op: "Open", Code: CodeIO, Name: CodeIO.Name(),
			Message: fmt.Sprintf("pipe: errno %d", int(e))}
	}
	go h.pollLoop(C.sh_hub_fd(h.c))
	w := &Hub{h}
	runtime.SetFinalizer(w, func(w *Hub) {
		w.mu.RLock()
		closed := w.closed
		w.mu.RUnlock()
		if !closed {
			log.Printf("streamhub: a Hub was garbage-collected without " +
				"Close: its store, bus and poller leak")
		}
	})
	return w, nil
}

// pollLoop is the one goroutine that runs the hub's callbacks: it waits
// for the hub's descriptor (or the waker), then runs sh_hub_poll(hub, 0).
// Locked to its OS thread so that every callback runs on one thread, as
// the C API expects of sh_hub_poll()'s caller.
func (h *hub) pollLoop(fd C.int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer close(h.pollDone)
	for {
		h.runCmds()
		select {
		case <-h.stop:
			return
		default:
		}
		if e := C.shgo_wait(fd, h.waker[0]); e != 0 {
			fmt.Fprintf(os.Stderr, "streamhub: poll: errno %d\n", int(e))
			return
		}
		C.shgo_waker_drain(h.waker[0])
		C.sh_hub_poll(h.c, 0)
	}
}

func (h *hub) runCmds() {
	h.cmdMu.Lock()
	cmds := h.cmds
	h.cmds = nil
	h.cmdMu.Unlock()
	for _, fn := range cmds {
		fn()
	}
}

// post queues fn for the poller goroutine; false when the poller has
// stopped (the hub is closing: sh_hub_close() ends everything itself).
func (h *hub) post(fn func()) bool {
	h.cmdMu.Lock()
	defer h.cmdMu.Unlock()
	if h.stopped {
		return false
	}
	h.cmds = append(h.cmds, fn)
	C.shgo_wake(h.waker[1])
	return true
}

// enter starts a service call: it holds the hub shared until leave, so
// that Close waits for calls in flight.
func (h *hub) enter(ctx context.Context, op string) (*C.sh_hub_t, error) {
	if ctx != nil {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
	h.mu.RLock()
	if h.closed {
		h.mu.RUnlock()
		return nil, errClosed(op)
	}
	return h.c, nil
}

func (h *hub) leave() { h.mu.RUnlock() }

// Close stops event delivery, ends every subscription (its Events channel
// closes), flushes what the hub still holds to the store and frees the
// hub.  It waits for calls in flight.  A second call does nothing.
// Close must not be called from a goroutine that is blocked reading a
// Subscription's Events (it would wait for itself).
func (w *Hub) Close() error {
	h := w.hub
	h.once.Do(func() {
		h.cmdMu.Lock()
		h.stopped = true
		close(h.stop)
		C.shgo_wake(h.waker[1])
		h.cmdMu.Unlock()
		<-h.pollDone
		h.mu.Lock()
		h.closed = true
		// Final callbacks of every subscription run inside, on this
		// goroutine's thread.
		C.sh_hub_close(h.c)
		h.c = nil
		h.mu.Unlock()
		h.finishSubs()
		h.cmdMu.Lock()
		C.shgo_waker_close((*C.int)(unsafe.Pointer(&h.waker[0])))
		h.cmdMu.Unlock()
		if h.logH != 0 {
			h.logH.Delete()
			h.logH = 0
		}
		runtime.SetFinalizer(w, nil)
	})
	return nil
}

// Log writes one line through the hub's log sink.  fields, when not nil,
// is marshalled to a JSON object whose members join the line.
func (w *Hub) Log(level LogLevel, msg string, fields map[string]any) error {
	var fj string
	if fields != nil {
		b, err := marshal(fields)
		if err != nil {
			return err
		}
		fj = string(b)
	}
	c, err := w.enter(nil, "Log")
	if err != nil {
		return err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cm, cf := cs.str(msg), cs.opt(fj)
	if err := cs.check("Log"); err != nil {
		return err
	}
	C.sh_hub_log(c, C.sh_log_level_t(level), cm, cf)
	return nil
}

// Version is the library's version, "MAJOR.MINOR.PATCH".
func Version() string { return C.GoString(C.sh_version()) }

//export shgoLog
func shgoLog(handle C.uintptr_t, level C.int, line *C.char, n C.size_t) {
	fn, ok := cgo.Handle(handle).Value().(LogFunc)
	if !ok {
		return
	}
	fn(LogLevel(level), C.GoBytes(unsafe.Pointer(line), C.int(n)))
}
