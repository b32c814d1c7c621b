package streamhub

/*
#cgo pkg-config: streamhub
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"strings"
	"unsafe"
)

// errbuf is the caller-owned error buffer of the C API (error.h): one per
// call, on the Go stack or heap.  It holds no Go pointer, so cgo lets C
// write into it for the duration of the call.
type errbuf [C.SH_ERRBUF_SIZE]C.char

func (b *errbuf) ptr() *C.char   { return &b[0] }
func (b *errbuf) size() C.size_t { return C.SH_ERRBUF_SIZE }
func (b *errbuf) String() string { return C.GoString(&b[0]) }

// cstrings turns Go strings into C strings and frees them all at once.
// An empty Go string maps to "" unless it was added with optional(),
// which maps it to NULL.
// A string holding a NUL byte cannot cross as a C string without being cut
// short, so it marks the set bad and the call fails with ErrInvalid.
type cstrings struct {
	ptrs []unsafe.Pointer
	bad  string // the first argument that held a NUL byte
}

func (cs *cstrings) str(s string) *C.char {
	if strings.IndexByte(s, 0) >= 0 && cs.bad == "" {
		cs.bad = s
	}
	p := C.CString(s)
	cs.ptrs = append(cs.ptrs, unsafe.Pointer(p))
	return p
}

// check returns an ErrInvalid error when an argument held a NUL byte.
func (cs *cstrings) check(op string) error {
	if cs.bad == "" {
		return nil
	}
	return &Error{Op: op, Code: CodeInvalid, Name: "SH_EINVAL",
		Message: "argument contains a NUL byte"}
}

// opt returns NULL for "", else the C copy of s.
func (cs *cstrings) opt(s string) *C.char {
	if s == "" {
		return nil
	}
	return cs.str(s)
}

func (cs *cstrings) free() {
	for _, p := range cs.ptrs {
		C.free(p)
	}
	cs.ptrs = nil
}

// goStr copies a borrowed C string; NULL becomes "".
func goStr(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

// goBytes copies a borrowed C buffer of n bytes.
func goBytes(p *C.char, n C.size_t) []byte {
	if p == nil {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}
