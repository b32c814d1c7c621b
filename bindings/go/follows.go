package streamhub

/*
#include <stdbool.h>
#include "shim.h"
*/
import "C"

import "context"

// Follow makes actorID follow userID.  Returns true when the follow is
// new (following twice changes nothing and succeeds).
func (w *Hub) Follow(ctx context.Context, actorID, userID string) (bool,
	error) {
	const op = "Follow"
	c, err := w.enter(ctx, op)
	if err != nil {
		return false, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cu := cs.opt(actorID), cs.str(userID)
	if err := cs.check(op); err != nil {
		return false, err
	}
	var created C.bool
	var eb errbuf
	if rc := C.sh_follow(c, ca, cu, &created, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return false, newError(op, rc, eb.String())
	}
	return bool(created), nil
}

// Unfollow makes actorID stop following userID.  Returns true when a
// follow was removed.
func (w *Hub) Unfollow(ctx context.Context, actorID, userID string) (bool,
	error) {
	const op = "Unfollow"
	c, err := w.enter(ctx, op)
	if err != nil {
		return false, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cu := cs.opt(actorID), cs.str(userID)
	if err := cs.check(op); err != nil {
		return false, err
	}
	var removed C.bool
	var eb errbuf
	if rc := C.sh_unfollow(c, ca, cu, &removed, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return false, newError(op, rc, eb.String())
	}
	return bool(removed), nil
}

// Follows reports whether followerID follows followedID.
func (w *Hub) Follows(ctx context.Context, followerID,
	followedID string) (bool, error) {
	const op = "Follows"
	c, err := w.enter(ctx, op)
	if err != nil {
		return false, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cb := cs.str(followerID), cs.str(followedID)
	if err := cs.check(op); err != nil {
		return false, err
	}
	var out C.bool
	var eb errbuf
	if rc := C.sh_follow_check(c, ca, cb, &out, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return false, newError(op, rc, eb.String())
	}
	return bool(out), nil
}

// FollowCounts is the number of followers of userID and of users it
// follows.
func (w *Hub) FollowCounts(ctx context.Context, userID string) (followers,
	following int64, err error) {
	const op = "FollowCounts"
	c, err := w.enter(ctx, op)
	if err != nil {
		return 0, 0, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cu := cs.str(userID)
	if err := cs.check(op); err != nil {
		return 0, 0, err
	}
	var a, b C.int64_t
	var eb errbuf
	if rc := C.sh_follow_counts(c, cu, &a, &b, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return 0, 0, newError(op, rc, eb.String())
	}
	return int64(a), int64(b), nil
}

func (w *Hub) userList(ctx context.Context, op, userID string, first int,
	after string, following bool) (*UserList, error) {
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cu, ca := cs.str(userID), cs.opt(after)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var l *C.sh_user_list_t
	var eb errbuf
	var rc C.sh_err_t
	if following {
		rc = C.sh_following_list(c, cu, C.int(clampInt(first)), ca, &l,
			eb.ptr(), eb.size())
	} else {
		rc = C.sh_followers_list(c, cu, C.int(clampInt(first)), ca, &l,
			eb.ptr(), eb.size())
	}
	if rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_user_list_free(l)
	var n C.size_t
	var out UserList
	if err := decode(op, C.sh_user_list_json(l, &n), n, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Followers lists the followers of userID, newest follow first: a page
// of at most first (1..100) after the cursor after ("" for the first).
func (w *Hub) Followers(ctx context.Context, userID string, first int,
	after string) (*UserList, error) {
	return w.userList(ctx, "Followers", userID, first, after, false)
}

// Following lists the users userID follows, as Followers.
func (w *Hub) Following(ctx context.Context, userID string, first int,
	after string) (*UserList, error) {
	return w.userList(ctx, "Following", userID, first, after, true)
}

// SubscribeChannel records a paid subscription of actorID to channelID
// at tier (1..3; 0 means 1) and notifies the channel.
func (w *Hub) SubscribeChannel(ctx context.Context, actorID,
	channelID string, tier int) (*ChannelSubscription, error) {
	const op = "SubscribeChannel"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cc := cs.opt(actorID), cs.str(channelID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var s *C.sh_channel_subscription_t
	var eb errbuf
	if rc := C.sh_channel_subscribe(c, ca, cc, C.int(clampInt(tier)), &s,
		eb.ptr(), eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	defer C.sh_channel_subscription_free(s)
	var n C.size_t
	var out ChannelSubscription
	if err := decode(op, C.sh_channel_subscription_json(s, &n), n,
		&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// clampInt keeps a Go int inside C int range (out-of-range values stay
// out of the API's range, so they are still refused or clamped there).
func clampInt(v int) int32 {
	const max, min = 1<<31 - 1, -1 << 31
	if v > max {
		return max
	}
	if v < min {
		return min
	}
	return int32(v)
}
