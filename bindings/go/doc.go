// Package streamhub is the Go binding of libstreamhub, over its C API
// (cgo).
//
// Open a hub with a Config (the keys of docs/CONFIG.md), call its methods
// from any goroutine, and Close it:
//
//	hub, err := streamhub.Open(streamhub.Config{"store": "sqlite::memory:"})
//	if err != nil { ... }
//	defer hub.Close()
//	a, err := hub.Register(ctx, "alice", "alice@example.org", "password1")
//
// Service calls are synchronous C calls: the context is checked before
// the call, not during it.  Results are Go structs decoded from the JSON
// of the matching GraphQL type.  Errors are *Error values (or
// *RateLimitedError) that match the sentinels with errors.Is:
//
//	if errors.Is(err, streamhub.ErrConflict) { ... }
//	var rl *streamhub.RateLimitedError
//	if errors.As(err, &rl) { time.Sleep(rl.RetryAfter) }
//
// Events arrive on channels.  One goroutine per Hub, locked to its OS
// thread, waits on the hub's descriptor and runs sh_hub_poll(); the C
// callbacks it runs receive a runtime/cgo.Handle, never a Go pointer, and
// queue each event for its Subscription, whose own goroutine hands it to
// the reader, so that a slow reader never stalls the others.
//
// Building: the package uses `pkg-config streamhub`.  Against a build
// tree, set PKG_CONFIG_PATH=<builddir>/meson-uninstalled (its file carries
// the include directories and an rpath to the library); against an
// installed copy, PKG_CONFIG_PATH=<libdir>/pkgconfig if that is not a
// default, and LD_LIBRARY_PATH=<libdir> at run time if <libdir> is not
// among the system's library paths.
package streamhub
