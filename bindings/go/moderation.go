package streamhub

/*
#include <stdbool.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"time"
	"unsafe"
)

// modCall runs one of the moderation calls that take (actor, channel,
// user) and return only an error.
func (w *Hub) modCall(ctx context.Context, op string, actorID, channelID,
	userID string, fn func(c *C.sh_hub_t, a, ch, u *C.char,
	eb *errbuf) C.sh_err_t) error {
	c, err := w.enter(ctx, op)
	if err != nil {
		return err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	ca, cc, cu := cs.opt(actorID), cs.str(channelID), cs.str(userID)
	if err := cs.check(op); err != nil {
		return err
	}
	var eb errbuf
	if rc := fn(c, ca, cc, cu, &eb); rc != C.SH_OK {
		return newError(op, rc, eb.String())
	}
	return nil
}

// Timeout times userID out of channelID's chat for d (whole seconds, 1s
// to 14 days).  reason "" is none.
func (w *Hub) Timeout(ctx context.Context, actorID, channelID,
	userID string, d time.Duration, reason string) error {
	var cs cstrings
	defer cs.free()
	cr := cs.opt(reason)
	if err := cs.check("Timeout"); err != nil {
		return err
	}
	secs := int64(d / time.Second)
	return w.modCall(ctx, "Timeout", actorID, channelID, userID,
		func(c *C.sh_hub_t, a, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_timeout(c, a, ch, u, C.int64_t(secs),
				cr, eb.ptr(), eb.size())
		})
}

// Ban bans userID from channelID's chat until unbanned.
func (w *Hub) Ban(ctx context.Context, actorID, channelID, userID,
	reason string) error {
	var cs cstrings
	defer cs.free()
	cr := cs.opt(reason)
	if err := cs.check("Ban"); err != nil {
		return err
	}
	return w.modCall(ctx, "Ban", actorID, channelID, userID,
		func(c *C.sh_hub_t, a, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_ban(c, a, ch, u, cr, eb.ptr(),
				eb.size())
		})
}

// Unban lifts a ban and a timeout.
func (w *Hub) Unban(ctx context.Context, actorID, channelID,
	userID string) error {
	return w.modCall(ctx, "Unban", actorID, channelID, userID,
		func(c *C.sh_hub_t, a, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_unban(c, a, ch, u, eb.ptr(), eb.size())
		})
}

// AddModerator makes userID a moderator of channelID.
func (w *Hub) AddModerator(ctx context.Context, actorID, channelID,
	userID string) error {
	return w.modCall(ctx, "AddModerator", actorID, channelID, userID,
		func(c *C.sh_hub_t, a, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_add_moderator(c, a, ch, u, eb.ptr(),
				eb.size())
		})
}

// RemoveModerator removes userID from channelID's moderators.
func (w *Hub) RemoveModerator(ctx context.Context, actorID, channelID,
	userID string) error {
	return w.modCall(ctx, "RemoveModerator", actorID, channelID, userID,
		func(c *C.sh_hub_t, a, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_remove_moderator(c, a, ch, u,
				eb.ptr(), eb.size())
		})
}

// IsModerator reports whether userID moderates channelID.
func (w *Hub) IsModerator(ctx context.Context, channelID,
	userID string) (bool, error) {
	var out C.bool
	err := w.modCall(ctx, "IsModerator", "", channelID, userID,
		func(c *C.sh_hub_t, _, ch, u *C.char, eb *errbuf) C.sh_err_t {
			return C.sh_moderation_is_moderator(c, ch, u, &out, eb.ptr(),
				eb.size())
		})
	return bool(out), err
}

// MarshalJSON writes only the members that are set; BlockedTerms set to
// an empty non-nil slice clears the list.
func (p ChatSettingsPatch) MarshalJSON() ([]byte, error) {
	m := map[string]any{}
	if p.SlowModeSeconds != nil {
		m["slowModeSeconds"] = *p.SlowModeSeconds
	}
	if p.FollowersOnly != nil {
		m["followersOnly"] = *p.FollowersOnly
	}
	if p.MaxMessageLength != nil {
		m["maxMessageLength"] = *p.MaxMessageLength
	}
	if p.BlockedTerms != nil {
		m["blockedTerms"] = p.BlockedTerms
	}
	return json.Marshal(m)
}

func settingsResult(op string, s *C.sh_chat_settings_t) (*ChatSettings,
	error) {
	defer C.sh_chat_settings_free(s)
	var n C.size_t
	var out ChatSettings
	if err := decode(op, C.sh_chat_settings_json(s, &n), n,
		&out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UpdateChatSettings changes some of channelID's chat settings.
func (w *Hub) UpdateChatSettings(ctx context.Context, actorID,
	channelID string, patch ChatSettingsPatch) (*ChatSettings, error) {
	const op = "UpdateChatSettings"
	b, err := json.Marshal(patch)
	if err != nil {
		return nil, err
	}
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
	var s *C.sh_chat_settings_t
	var eb errbuf
	if rc := C.sh_chat_settings_update(c, ca, cc,
		(*C.char)(unsafe.Pointer(&b[0])), C.size_t(len(b)), &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return settingsResult(op, s)
}

// ChatSettings reads channelID's chat settings.
func (w *Hub) ChatSettings(ctx context.Context,
	channelID string) (*ChatSettings, error) {
	const op = "ChatSettings"
	c, err := w.enter(ctx, op)
	if err != nil {
		return nil, err
	}
	defer w.leave()
	var cs cstrings
	defer cs.free()
	cc := cs.str(channelID)
	if err := cs.check(op); err != nil {
		return nil, err
	}
	var s *C.sh_chat_settings_t
	var eb errbuf
	if rc := C.sh_chat_settings_get(c, cc, &s, eb.ptr(),
		eb.size()); rc != C.SH_OK {
		return nil, newError(op, rc, eb.String())
	}
	return settingsResult(op, s)
}
