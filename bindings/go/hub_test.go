package streamhub

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

const secret = "0123456789abcdef0123456789abcdef-test"

func openHub(t *testing.T, extra Config) *Hub {
	t.Helper()
	cfg := Config{"store": "sqlite::memory:", "log-level": "error",
		"jwt-secret": secret}
	for k, v := range extra {
		cfg[k] = v
	}
	h, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

var userSeq int64

func newUser(t *testing.T, h *Hub) *Auth {
	t.Helper()
	n := atomic.AddInt64(&userSeq, 1)
	name := fmt.Sprintf("user_%d", n)
	a, err := h.Register(context.Background(), name, name+"@example.org",
		"correct horse battery")
	if err != nil {
		t.Fatalf("Register %s: %v", name, err)
	}
	return a
}

// expect fails unless err matches want (errors.Is) and is an *Error.
func expect(t *testing.T, err error, want error) *Error {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("%v is no *Error", err)
	}
	if e.Name == "" || e.Message == "" {
		t.Fatalf("empty name or message in %#v", e)
	}
	return e
}

func recv(t *testing.T, s *Subscription) Event {
	t.Helper()
	select {
	case ev, ok := <-s.Events():
		if !ok {
			t.Fatalf("subscription %s closed: %v", s.Channel, s.Err())
		}
		return ev
	case <-time.After(5 * time.Second):
		t.Fatalf("no event on %s", s.Channel)
	}
	return Event{}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	cases := []Config{
		{"no-such-key": "1"},
		{"chat.max-message-length": "5000"},
		{"log-level": "loud"},
		{"store": "sqlite::memory:\x00x"},
		{"": "x"},
	}
	for _, cfg := range cases {
		_, err := Open(cfg)
		e := expect(t, err, ErrInvalid)
		if e.Code != CodeInvalid || e.Name != "SH_EINVAL" {
			t.Errorf("%v: code %d name %s", cfg, e.Code, e.Name)
		}
	}
	_, err := Open(Config{"no-such-key": "1"})
	if !strings.Contains(err.Error(), "no-such-key") {
		t.Errorf("error does not name the key: %v", err)
	}
}

func TestCloseTwiceAndCallsAfterClose(t *testing.T) {
	h, err := Open(Config{"store": "sqlite::memory:", "log-level": "error"})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe(context.Background(), "app:x", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-sub.Events(); ok {
		t.Fatal("event after close")
	}
	expect(t, sub.Err(), ErrCanceled)
	sub.Close() // after the hub: a no-op
	_, err = h.Publish(context.Background(), "app:x", "t", []byte("1"))
	expect(t, err, ErrCanceled)
	_, err = h.Login(context.Background(), "a", "b")
	expect(t, err, ErrCanceled)
}

func TestLogger(t *testing.T) {
	var mu sync.Mutex
	var lines [][]byte
	h, err := Open(Config{"store": "sqlite::memory:", "log-level": "info"},
		WithLogger(func(l LogLevel, line []byte) {
			mu.Lock()
			lines = append(lines, line)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Log(LogWarn, "from go", map[string]any{"k": 1}); err != nil {
		t.Fatal(err)
	}
	expect(t, h.Log(LogWarn, "a\x00b", nil), ErrInvalid)
	h.Close()
	mu.Lock()
	defer mu.Unlock()
	var found bool
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("log line is not JSON: %q", l)
		}
		if m["msg"] == "from go" && m["k"] == float64(1) {
			found = true
		}
	}
	if !found {
		t.Fatalf("our line is missing from %d lines", len(lines))
	}
}

func TestContextCanceledBeforeCall(t *testing.T) {
	h := openHub(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.Login(ctx, "someone", "password1"); !errors.Is(err,
		context.Canceled) {
		t.Fatalf("got %v", err)
	}
	if _, err := h.Subscribe(ctx, "live", nil); !errors.Is(err,
		context.Canceled) {
		t.Fatalf("got %v", err)
	}
}

func TestAccounts(t *testing.T) {
	h := openHub(t, nil)
	ctx := context.Background()
	a := newUser(t, h)
	if a.AccessToken == "" || len(a.RefreshToken) != 43 || a.ExpiresIn <= 0 {
		t.Fatalf("bad payload %+v", a)
	}
	if a.User.Email != a.User.Username+"@example.org" {
		t.Fatalf("email %q", a.User.Email)
	}
	_, err := h.Register(ctx, a.User.Username, "other@example.org",
		"password123")
	expect(t, err, ErrConflict)
	for _, bad := range []string{"", "ab", strings.Repeat("a", 26),
		"bad name", "nul\x00name", "\xff\xfe\xfd"} {
		_, err = h.Register(ctx, bad, "x@example.org", "password123")
		expect(t, err, ErrInvalid)
	}
	_, err = h.Register(ctx, strings.Repeat("b", 25), "max@example.org",
		"password123")
	if err != nil {
		t.Fatalf("25-byte username: %v", err)
	}
	l, err := h.Login(ctx, strings.ToUpper(a.User.Username),
		"correct horse battery")
	if err != nil || l.User.ID != a.User.ID {
		t.Fatalf("login: %v", err)
	}
	_, err = h.Login(ctx, a.User.Username, "wrong password")
	expect(t, err, ErrUnauthenticated)
	_, err = h.Login(ctx, "nobody_here", "wrong password")
	expect(t, err, ErrUnauthenticated)

	p, err := h.Verify(ctx, a.AccessToken)
	if err != nil || p.UserID != a.User.ID || p.Roles&RoleViewer == 0 ||
		!p.Expires.After(time.Now()) {
		t.Fatalf("verify: %+v %v", p, err)
	}
	for _, bad := range []string{"", "x", a.AccessToken + "x",
		a.AccessToken[:len(a.AccessToken)/2],
		a.AccessToken + "\x00"} {
		_, err = h.Verify(ctx, bad)
		if !errors.Is(err, ErrUnauthenticated) && !errors.Is(err,
			ErrInvalid) {
			t.Fatalf("verify %q: %v", bad, err)
		}
	}
	r, err := h.Refresh(ctx, a.RefreshToken)
	if err != nil || r.RefreshToken == a.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	// Spending a spent token revokes the family.
	_, err = h.Refresh(ctx, a.RefreshToken)
	expect(t, err, ErrUnauthenticated)
	_, err = h.Refresh(ctx, r.RefreshToken)
	expect(t, err, ErrUnauthenticated)
	l2, _ := h.Login(ctx, a.User.Username, "correct horse battery")
	if err := h.Revoke(ctx, l2.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = h.Refresh(ctx, l2.RefreshToken)
	expect(t, err, ErrUnauthenticated)

	u, err := h.User(ctx, "", a.User.ID)
	if err != nil || u.Username != a.User.Username || u.Email != "" {
		t.Fatalf("user: %+v %v", u, err)
	}
	u, err = h.User(ctx, a.User.ID, a.User.ID)
	if err != nil || u.Email == "" {
		t.Fatalf("own user: %+v %v", u, err)
	}
	u, err = h.UserByUsername(ctx, "", strings.ToUpper(a.User.Username))
	if err != nil || u.ID != a.User.ID {
		t.Fatalf("by username: %v", err)
	}
	_, err = h.User(ctx, "", "00000000-0000-4000-8000-000000000000")
	expect(t, err, ErrNotFound)
	_, err = h.User(ctx, "", "not-a-uuid")
	expect(t, err, ErrNotFound)
}

func TestFollows(t *testing.T) {
	h := openHub(t, nil)
	ctx := context.Background()
	a, b, c := newUser(t, h), newUser(t, h), newUser(t, h)
	created, err := h.Follow(ctx, a.User.ID, b.User.ID)
	if err != nil || !created {
		t.Fatalf("follow: %v %v", created, err)
	}
	created, err = h.Follow(ctx, a.User.ID, b.User.ID)
	if err != nil || created {
		t.Fatalf("follow again: %v %v", created, err)
	}
	if _, err := h.Follow(ctx, c.User.ID, b.User.ID); err != nil {
		t.Fatal(err)
	}
	_, err = h.Follow(ctx, a.User.ID, a.User.ID)
	expect(t, err, ErrInvalid)
	_, err = h.Follow(ctx, "", b.User.ID)
	expect(t, err, ErrUnauthenticated)
	_, err = h.Follow(ctx, a.User.ID, "00000000-0000-4000-8000-000000000000")
	expect(t, err, ErrNotFound)
	ok, err := h.Follows(ctx, a.User.ID, b.User.ID)
	if err != nil || !ok {
		t.Fatalf("follows: %v %v", ok, err)
	}
	fr, fg, err := h.FollowCounts(ctx, b.User.ID)
	if err != nil || fr != 2 || fg != 0 {
		t.Fatalf("counts %d %d %v", fr, fg, err)
	}
	l, err := h.Followers(ctx, b.User.ID, 1, "")
	if err != nil || len(l.Items) != 1 || l.TotalCount != 2 ||
		l.NextCursor == "" {
		t.Fatalf("followers page 1: %+v %v", l, err)
	}
	l2, err := h.Followers(ctx, b.User.ID, 1, l.NextCursor)
	if err != nil || len(l2.Items) != 1 || l2.NextCursor != "" {
		t.Fatalf("followers page 2: %+v %v", l2, err)
	}
	// Both follows may share a millisecond: check the set, not the order.
	seen := map[string]bool{l.Items[0].ID: true, l2.Items[0].ID: true}
	if !seen[a.User.ID] || !seen[c.User.ID] {
		t.Fatalf("followers %v", seen)
	}
	for _, first := range []int{0, -1, -1 << 40} {
		_, err = h.Followers(ctx, b.User.ID, first, "")
		expect(t, err, ErrInvalid)
	}
	_, err = h.Followers(ctx, b.User.ID, 10, "not a cursor")
	expect(t, err, ErrInvalid)
	big, err := h.Following(ctx, a.User.ID, 1<<40, "")
	if err != nil || len(big.Items) != 1 {
		t.Fatalf("following, clamped: %+v %v", big, err)
	}
	removed, err := h.Unfollow(ctx, a.User.ID, b.User.ID)
	if err != nil || !removed {
		t.Fatalf("unfollow: %v %v", removed, err)
	}
	sub, err := h.SubscribeChannel(ctx, a.User.ID, b.User.ID, 0)
	if err != nil || sub.Tier != 1 || sub.Channel.ID != b.User.ID {
		t.Fatalf("subscribe channel: %+v %v", sub, err)
	}
	_, err = h.SubscribeChannel(ctx, a.User.ID, b.User.ID, 4)
	expect(t, err, ErrInvalid)
}

func TestStreamsNotificationsAndRaids(t *testing.T) {
	h := openHub(t, nil)
	ctx := context.Background()
	bc, fan, other := newUser(t, h), newUser(t, h), newUser(t, h)
	if _, err := h.Follow(ctx, fan.User.ID, bc.User.ID); err != nil {
		t.Fatal(err)
	}
	notes, err := h.Subscribe(ctx, "user:"+fan.User.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer notes.Close()
	live, err := h.Subscribe(ctx, "live", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()

	s, err := h.StartStream(ctx, bc.User.ID, "Speedrun ☃", "games")
	if err != nil || !s.Live() || s.Broadcaster.ID != bc.User.ID ||
		s.Category != "games" || s.StartedAt == nil || s.EndedAt != nil {
		t.Fatalf("start: %+v %v", s, err)
	}
	_, err = h.StartStream(ctx, bc.User.ID, "again", "")
	expect(t, err, ErrConflict)
	_, err = h.StartStream(ctx, other.User.ID, "", "")
	expect(t, err, ErrInvalid)
	_, err = h.StartStream(ctx, other.User.ID, strings.Repeat("é", 141), "")
	expect(t, err, ErrInvalid)
	_, err = h.StartStream(ctx, other.User.ID, "bad \xc3\x28", "")
	expect(t, err, ErrInvalid)
	_, err = h.StartStream(ctx, "", "x", "")
	expect(t, err, ErrUnauthenticated)

	ev := recv(t, live)
	if ev.Type != "stream.live" || ev.Channel != "live" {
		t.Fatalf("live event %+v", ev)
	}
	var evs Stream
	if err := json.Unmarshal(ev.Data, &evs); err != nil || evs.ID != s.ID {
		t.Fatalf("live data %s: %v", ev.Data, err)
	}
	ev = recv(t, notes)
	var n Notification
	if err := json.Unmarshal(ev.Data, &n); err != nil ||
		ev.Type != "notification" || n.Type != NotifyStreamLive {
		t.Fatalf("notification %+v %s %v", ev, ev.Data, err)
	}

	title := "New title"
	empty := ""
	u, err := h.UpdateStream(ctx, bc.User.ID, s.ID, &title, &empty)
	if err != nil || u.Title != title || u.Category != "" {
		t.Fatalf("update: %+v %v", u, err)
	}
	_, err = h.UpdateStream(ctx, other.User.ID, s.ID, &title, nil)
	expect(t, err, ErrForbidden)
	g, err := h.Stream(ctx, s.ID)
	if err != nil || g.Title != title {
		t.Fatalf("get: %+v %v", g, err)
	}
	_, err = h.Stream(ctx, "00000000-0000-4000-8000-000000000000")
	expect(t, err, ErrNotFound)
	ls, err := h.LiveStreams(ctx, 10, "", "")
	if err != nil || len(ls.Items) != 1 || ls.TotalCount != 1 {
		t.Fatalf("live list: %+v %v", ls, err)
	}
	found, err := h.SearchStreams(ctx, "new", 10, "")
	if err != nil || len(found.Items) != 1 {
		t.Fatalf("search: %+v %v", found, err)
	}
	if err := h.SetViewers(ctx, s.ID, 42); err != nil {
		t.Fatal(err)
	}
	expect(t, h.SetViewers(ctx, s.ID, -1), ErrInvalid)
	if _, err := h.FlushViewers(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := h.StreamStats(ctx, s.ID)
	if err != nil || st.PeakViewers != 42 {
		t.Fatalf("stats: %+v %v", st, err)
	}
	r, err := h.StartRaid(ctx, bc.User.ID, s.ID, other.User.ID)
	if err != nil || r.To.ID != other.User.ID || r.From.ID != s.ID {
		t.Fatalf("raid: %+v %v", r, err)
	}
	_, err = h.StartRaid(ctx, other.User.ID, s.ID, fan.User.ID)
	expect(t, err, ErrForbidden)

	_, err = h.StopStream(ctx, other.User.ID, s.ID)
	expect(t, err, ErrForbidden)
	stopped, err := h.StopStream(ctx, bc.User.ID, s.ID)
	if err != nil || stopped.Live() || stopped.EndedAt == nil {
		t.Fatalf("stop: %+v %v", stopped, err)
	}
	_, err = h.StopStream(ctx, bc.User.ID, s.ID)
	expect(t, err, ErrConflict)

	nl, err := h.Notifications(ctx, fan.User.ID, 10, "", false)
	if err != nil || len(nl.Items) != 1 || nl.UnreadCount != 1 ||
		nl.Items[0].Type != NotifyStreamLive {
		t.Fatalf("notifications: %+v %v", nl, err)
	}
	unread, err := h.UnreadNotifications(ctx, fan.User.ID)
	if err != nil || unread != 1 {
		t.Fatalf("unread %d %v", unread, err)
	}
	changed, err := h.MarkNotificationsRead(ctx, fan.User.ID,
		[]string{nl.Items[0].ID, "unknown-id"})
	if err != nil || changed != 1 {
		t.Fatalf("mark read %d %v", changed, err)
	}
	changed, err = h.MarkNotificationsRead(ctx, fan.User.ID, nil)
	if err != nil || changed != 0 {
		t.Fatalf("mark all read %d %v", changed, err)
	}
	_, err = h.MarkNotificationsRead(ctx, fan.User.ID, []string{"a\x00b"})
	expect(t, err, ErrInvalid)
	_, err = h.MarkNotificationsRead(ctx, fan.User.ID,
		make([]string, 1001))
	expect(t, err, ErrInvalid)
	_, err = h.Notifications(ctx, "", 10, "", false)
	expect(t, err, ErrUnauthenticated)
}

func TestChatAndModeration(t *testing.T) {
	h := openHub(t, Config{"chat.rate-limit": "3"})
	ctx := context.Background()
	bc, viewer, mod := newUser(t, h), newUser(t, h), newUser(t, h)
	s, err := h.StartStream(ctx, bc.User.ID, "chatty", "")
	if err != nil {
		t.Fatal(err)
	}
	chat, err := h.Subscribe(ctx, "chat:"+s.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer chat.Close()
	m, err := h.SendChat(ctx, viewer.User.ID, s.ID, "hi\x00 there\n")
	if err != nil || m.Text != "hi there" || m.Author.ID != viewer.User.ID {
		t.Fatalf("send: %+v %v", m, err)
	}
	ev := recv(t, chat)
	var em ChatMessage
	if err := json.Unmarshal(ev.Data, &em); err != nil ||
		ev.Type != "chat.message" || em.ID != m.ID ||
		ev.Position.Offset != uint64(m.Offset) {
		t.Fatalf("chat event %+v %v", ev, err)
	}
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, "\xc3\x28")
	expect(t, err, ErrBadUTF8)
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, "\x01\x02")
	expect(t, err, ErrEmpty)
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, "")
	expect(t, err, ErrEmpty)
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, strings.Repeat("x", 501))
	expect(t, err, ErrTooLong)
	_, err = h.SendChat(ctx, "", s.ID, "x")
	expect(t, err, ErrUnauthenticated)
	// The third and last message the rate limit allows, then a refusal.
	if _, err = h.SendChat(ctx, viewer.User.ID, s.ID,
		strings.Repeat("y", 500)); err != nil {
		t.Fatalf("500 code points: %v", err)
	}
	if _, err = h.SendChat(ctx, viewer.User.ID, s.ID, "3"); err != nil {
		t.Fatal(err)
	}
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, "4")
	expect(t, err, ErrRateLimited)
	var rl *RateLimitedError
	if !errors.As(err, &rl) || rl.RetryAfter <= 0 {
		t.Fatalf("no retry-after in %v", err)
	}

	if err := h.AddModerator(ctx, bc.User.ID, bc.User.ID,
		mod.User.ID); err != nil {
		t.Fatal(err)
	}
	isMod, err := h.IsModerator(ctx, bc.User.ID, mod.User.ID)
	if err != nil || !isMod {
		t.Fatalf("is moderator %v %v", isMod, err)
	}
	expect(t, h.AddModerator(ctx, viewer.User.ID, bc.User.ID,
		viewer.User.ID), ErrForbidden)
	expect(t, h.Ban(ctx, mod.User.ID, bc.User.ID, bc.User.ID, ""),
		ErrForbidden)

	other := newUser(t, h)
	five := int64(5)
	set, err := h.UpdateChatSettings(ctx, mod.User.ID, bc.User.ID,
		ChatSettingsPatch{SlowModeSeconds: &five,
			BlockedTerms: []string{"spoiler"}})
	if err != nil || set.SlowModeSeconds != 5 ||
		len(set.BlockedTerms) != 1 {
		t.Fatalf("settings: %+v %v", set, err)
	}
	_, err = h.SendChat(ctx, other.User.ID, s.ID, "no SPOILER here")
	expect(t, err, ErrBlockedTerm)
	if _, err := h.SendChat(ctx, other.User.ID, s.ID, "first"); err != nil {
		t.Fatal(err)
	}
	_, err = h.SendChat(ctx, other.User.ID, s.ID, "second")
	e := expect(t, err, ErrSlowMode)
	if e.RetryAfter <= 0 || e.RetryAfter > 5*time.Second {
		t.Fatalf("slow mode retry-after %v", e.RetryAfter)
	}
	var rl2 *RateLimitedError
	if errors.As(err, &rl2) {
		t.Fatal("slow mode is not ErrRateLimited")
	}
	huge := int64(86401)
	_, err = h.UpdateChatSettings(ctx, bc.User.ID, bc.User.ID,
		ChatSettingsPatch{SlowModeSeconds: &huge})
	expect(t, err, ErrInvalid)
	got, err := h.ChatSettings(ctx, bc.User.ID)
	if err != nil || got.SlowModeSeconds != 5 {
		t.Fatalf("settings unchanged: %+v %v", got, err)
	}
	zero := int64(0)
	if _, err := h.UpdateChatSettings(ctx, bc.User.ID, bc.User.ID,
		ChatSettingsPatch{SlowModeSeconds: &zero,
			BlockedTerms: []string{}}); err != nil {
		t.Fatal(err)
	}

	if err := h.Timeout(ctx, mod.User.ID, bc.User.ID, other.User.ID,
		time.Minute, "calm down"); err != nil {
		t.Fatal(err)
	}
	_, err = h.SendChat(ctx, other.User.ID, s.ID, "hello?")
	e = expect(t, err, ErrTimedOutUser)
	if e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
		t.Fatalf("timeout retry-after %v", e.RetryAfter)
	}
	if err := h.Ban(ctx, bc.User.ID, bc.User.ID, other.User.ID,
		"spam"); err != nil {
		t.Fatal(err)
	}
	_, err = h.SendChat(ctx, other.User.ID, s.ID, "hello?")
	expect(t, err, ErrBanned)
	if err := h.Unban(ctx, bc.User.ID, bc.User.ID, other.User.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.SendChat(ctx, other.User.ID, s.ID, "back"); err != nil {
		t.Fatal(err)
	}
	if err := h.RemoveModerator(ctx, bc.User.ID, bc.User.ID,
		mod.User.ID); err != nil {
		t.Fatal(err)
	}

	if err := h.DeleteChat(ctx, bc.User.ID, m.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, h.DeleteChat(ctx, viewer.User.ID, m.ID), ErrForbidden)
	hist, err := h.ChatHistory(ctx, s.ID, 0, "")
	if err != nil || len(hist.Items) < 3 || !hist.Items[0].Deleted ||
		hist.Items[0].Text != "" {
		t.Fatalf("history: %+v %v", hist, err)
	}
	_, err = h.ChatHistory(ctx, s.ID, -1, "")
	expect(t, err, ErrInvalid)
	_, err = h.ChatHistory(ctx, s.ID, 10, "not a cursor")
	expect(t, err, ErrInvalid)
	if _, err := h.StopStream(ctx, bc.User.ID, s.ID); err != nil {
		t.Fatal(err)
	}
	_, err = h.SendChat(ctx, viewer.User.ID, s.ID, "late")
	expect(t, err, ErrConflict)
}

func TestPublishRefusals(t *testing.T) {
	h := openHub(t, Config{"ws.max-message-bytes": "1024"})
	ctx := context.Background()
	bad := []struct {
		channel, typ string
		data         []byte
		want         error
	}{
		{"", "t", []byte("1"), ErrInvalid},
		{"app:", "t", []byte("1"), ErrInvalid},
		{"nope:x", "t", []byte("1"), ErrInvalid},
		{"app:" + strings.Repeat("a", 125), "t", []byte("1"), ErrInvalid},
		{"app:a\x00b", "t", []byte("1"), ErrInvalid},
		{"app:\xc3\x28", "t", []byte("1"), ErrInvalid},
		{"app:x", "", []byte("1"), ErrInvalid},
		{"app:x", strings.Repeat("t", 65), []byte("1"), ErrInvalid},
		{"app:x", "t", nil, ErrInvalid},
		{"app:x", "t", []byte("{"), ErrInvalid},
		{"app:x", "t", []byte("1 2"), ErrInvalid},
		{"app:x", "t", []byte("\"a\x00\""), ErrInvalid},
		{"app:x", "t", []byte("\"\xff\""), ErrInvalid},
		{"app:x", "t", bytes.Repeat([]byte(" "), 1025), ErrTooBig},
	}
	for _, c := range bad {
		_, err := h.Publish(ctx, c.channel, c.typ, c.data)
		if !errors.Is(err, c.want) {
			t.Errorf("publish %q %q %q: %v, want %v", c.channel, c.typ,
				c.data, err, c.want)
		}
	}
	// The longest channel name is fine.
	if _, err := h.Publish(ctx, "app:"+strings.Repeat("a", 124), "t",
		[]byte("1")); err != nil {
		t.Fatalf("max channel: %v", err)
	}
	_, err := h.Subscribe(ctx, "bad channel", nil)
	expect(t, err, ErrInvalid)
	_, err = h.Subscribe(ctx, "app:x", &Position{Epoch: strings.Repeat("e",
		40)})
	expect(t, err, ErrInvalid)
}

func TestSubscribeRecovers(t *testing.T) {
	h := openHub(t, nil)
	ctx := context.Background()
	for i := 1; i <= 3; i++ {
		off, err := h.PublishJSON(ctx, "app:game", "app.score",
			map[string]int{"n": i})
		if err != nil || off != uint64(i) {
			t.Fatalf("publish %d: %d %v", i, off, err)
		}
	}
	pos, err := h.ChannelPosition(ctx, "app:game")
	if err != nil || pos.Offset != 3 || pos.Epoch == "" {
		t.Fatalf("position %+v %v", pos, err)
	}
	sub, err := h.Subscribe(ctx, "app:game",
		&Position{Epoch: pos.Epoch, Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if !sub.Recovered || sub.Current != pos {
		t.Fatalf("recovered %v current %+v", sub.Recovered, sub.Current)
	}
	if _, err := h.Publish(ctx, "app:game", "app.score",
		[]byte(`{"n":4}`)); err != nil {
		t.Fatal(err)
	}
	for want := uint64(2); want <= 4; want++ {
		ev := recv(t, sub)
		var d struct{ N uint64 }
		if err := json.Unmarshal(ev.Data, &d); err != nil ||
			ev.Position.Offset != want || d.N != want ||
			ev.Position.Epoch != pos.Epoch || ev.Type != "app.score" ||
			time.Since(ev.Time) > time.Minute {
			t.Fatalf("event %d: %+v %v", want, ev, err)
		}
	}
	// A foreign epoch: not recovered, live events only.
	sub2, err := h.Subscribe(ctx, "app:game",
		&Position{Epoch: "other", Offset: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	if sub2.Recovered {
		t.Fatal("recovered from a foreign epoch")
	}
	if _, err := h.Publish(ctx, "app:game", "app.score",
		[]byte(`{"n":5}`)); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, sub2); ev.Position.Offset != 5 {
		t.Fatalf("live event %+v", ev)
	}
}

func TestSubscriptionEnds(t *testing.T) {
	h := openHub(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	sub, err := h.Subscribe(ctx, "app:a", nil)
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	select {
	case _, ok := <-sub.Events():
		if ok {
			t.Fatal("event after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("cancel did not end the subscription")
	}
	if sub.Err() != nil {
		t.Fatalf("err %v", sub.Err())
	}
	sub.Close()
	sub.Close()

	// A reader that never reads is dropped, not waited for.
	slow, err := h.SubscribeBuffer(context.Background(), "app:b", nil, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := h.Publish(context.Background(), "app:b", "t",
			[]byte("1")); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	deadline := time.After(5 * time.Second)
	for done := false; !done; {
		select {
		case _, ok := <-slow.Events():
			if !ok {
				done = true
			} else {
				n++
			}
		case <-deadline:
			t.Fatal("slow subscriber not dropped")
		}
	}
	expect(t, slow.Err(), ErrBusy)
	// Its buffer (2) and whatever was already on its way when the bus
	// dropped it arrive; not all ten (it was dropped, not waited for).
	// How many were on their way depends on the scheduler.
	if n < 2 || n >= 10 {
		t.Fatalf("slow subscriber got %d events", n)
	}
	_, err = h.SubscribeBuffer(context.Background(), "app:b", nil, 0)
	expect(t, err, ErrInvalid)
}

func TestConcurrentCallsAndClose(t *testing.T) {
	h, err := Open(Config{"store": "sqlite::memory:", "log-level": "error"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const writers, each = 8, 50
	sub, err := h.Subscribe(ctx, "app:load", nil)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				if _, err := h.PublishJSON(ctx, "app:load", "t",
					[]int{w, i}); err != nil {
					t.Error(err)
					return
				}
				if _, err := h.ChannelPosition(ctx, "app:load"); err != nil {
					t.Error(err)
					return
				}
			}
		}(w)
	}
	// Subscribers come and go meanwhile.
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := h.Subscribe(ctx, "app:load", nil)
			if err != nil {
				t.Error(err)
				return
			}
			s.Close()
		}()
	}
	last := uint64(0)
	for got := 0; got < writers*each; got++ {
		ev := recv(t, sub)
		if ev.Position.Offset != last+1 {
			t.Fatalf("offset %d after %d", ev.Position.Offset, last)
		}
		last = ev.Position.Offset
	}
	wg.Wait()

	// Close while calls are in flight: they finish or see ErrCanceled.
	// A reader keeps up meanwhile, so that the end is the hub's close.
	drained := make(chan struct{})
	go func() {
		for range sub.Events() {
		}
		close(drained)
	}()
	var racers sync.WaitGroup
	stop := make(chan struct{})
	for i := 0; i < 4; i++ {
		racers.Add(1)
		go func() {
			defer racers.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_, err := h.Publish(ctx, "app:load", "t", []byte("0"))
				if err != nil && !errors.Is(err, ErrCanceled) {
					t.Error(err)
					return
				}
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	var closers sync.WaitGroup
	for i := 0; i < 3; i++ {
		closers.Add(1)
		go func() { defer closers.Done(); h.Close() }()
	}
	closers.Wait()
	close(stop)
	racers.Wait()
	<-drained
	// The hub's close ends the subscription (ErrCanceled), unless the four
	// publishers outran the poller first: then the bus dropped the
	// subscriber (ErrBusy), which is the documented outcome under load.
	if err := sub.Err(); !errors.Is(err, ErrCanceled) && !errors.Is(err, ErrBusy) {
		t.Fatalf("subscription ended with %v, want ErrCanceled or ErrBusy", err)
	}
}

func TestErrorMapping(t *testing.T) {
	var err error = newError("X", 7, "slow down")
	var rl *RateLimitedError
	var e *Error
	var c Code
	if !errors.Is(err, ErrRateLimited) || !errors.As(err, &rl) ||
		!errors.As(err, &e) || !errors.As(err, &c) || c != CodeRateLimited {
		t.Fatalf("mapping of %v", err)
	}
	if errors.Is(err, ErrNotFound) {
		t.Fatal("rate limited is not found")
	}
	if e.Name != "SH_ERATELIMITED" || !strings.Contains(err.Error(),
		"slow down") {
		t.Fatalf("text %q", err.Error())
	}
	unknown := newError("X", 9999, "")
	if !strings.Contains(unknown.Error(), "SH_UNKNOWN") {
		t.Fatalf("unknown code: %v", unknown)
	}
	if Version() == "" {
		t.Fatal("no version")
	}
}
