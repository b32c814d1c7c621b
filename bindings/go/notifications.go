package streamhub

/*
#include <stdbool.h>
#include <stdlib.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"unsafe"
)

// Notifications lists actorID's notifications, newest first: a page of at
// most first (1..100) after the cursor after ("" for the first page),
// only unread ones when unreadOnly.
func (w *Hub) Notifications(ctx context.Context, actorID string, first int,
	after string, unreadOnly bool) (*NotificationList, error) {
	const op = "Notifications"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cafter := cs.opt(actorID), cs.opt(after)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var l *C.sh_notification_list_t
	var eb errbuf
	if rc := C.sh_notification_list(c, ca, C.int(clampInt(first)), cafter,
		C.bool(unreadOnly), &l, eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_notification_list_free(l)
	var n C.size_t
	var out NotificationList
	if err := decode(op, C.sh_notification_list_json(l, &n), n,
		&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UnreadNotifications is the number of actorID's unread notifications.
func (w *Hub) UnreadNotifications(ctx context.Context,
	actorID string) (int64, error) {
	const op = "UnreadNotifications"
	c, err := w.enter(ctx, op)
	if err != nil {
		return 0, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca := cs.opt(actorID)
	if err := cs.check(op); err != nil {
		return 0, err
	}
	var out C.int64_t
	var eb errbuf
	if rc := C.sh_notification_unread_count(c, ca, &out, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return 0, newError(op, rc, eb.String())
	}
	return int64(out), nil
}

// MarkNotificationsRead marks ids read (all of actorID's notifications
// when ids is nil) and returns how many went from unread to read.
func (w *Hub) MarkNotificationsRead(ctx context.Context, actorID string,
	ids []string) (int64, error) {
	const op = "MarkNotificationsRead"
	c, err := w.enter(ctx, op)
	if err != nil {
		return 0, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca := cs.opt(actorID)
	// The array of C strings lives in C memory: a Go array of pointers
	// may not be handed to C.
	var arr **C.char
	if ids != nil {
		n := len(ids)
		if n == 0 {
			n = 1
		}
		arr = (**C.char)(C.calloc(C.size_t(n),
			C.size_t(unsafe.Sizeof((*C.char)(nil)))))
		defer C.free(unsafe.Pointer(arr))
		slots := unsafe.Slice(arr, n)
		for i, id := range ids {
			slots[i] = cs.str(id)
		}
	}
	if err := cs.check(op); err != nil {
		return 0, err
	}
	var changed C.int64_t
	var eb errbuf
	if rc := C.sh_notification_mark_read(c, ca, arr, C.size_t(len(ids)),
		&changed, eb.ptr(), eb.size()); rc != C.SH_OK {
		return 0, newError(op, rc, eb.String())
	}
	return int64(changed), nil
}
