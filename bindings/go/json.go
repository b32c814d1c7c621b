package streamhub

/*
#include "shim.h"
*/
import "C"

import (
	"encoding/json"
	"time"
)

func marshal(v any) ([]byte, error) { return json.Marshal(v) }

// decode unmarshals the JSON text a result handle lends (its _json()).
func decode(op string, p *C.char, n C.size_t, v any) error {
	if p == nil {
		return &Error{Op: op, Code: CodeInternal, Name: "SH_EINTERNAL",
			Message: "result has no JSON"}
	}
	if err := json.Unmarshal(goBytes(p, n), v); err != nil {
		return &Error{Op: op, Code: CodeInternal, Name: "SH_EINTERNAL",
			Message: "result JSON: " + err.Error()}
	}
	return nil
}

// Role is a set of SH_ROLE_* bits.
type Role uint

// The roles of auth.h.
const (
	RoleViewer    Role = C.SH_ROLE_VIEWER
	RoleModerator Role = C.SH_ROLE_MODERATOR
	RoleAdmin     Role = C.SH_ROLE_ADMIN
)

// UserRef is a user as other objects name it.
type UserRef struct {
	ID       string `json:"id"`
	Username string `json:"username"`
}

// User is the GraphQL User, without its counts.
type User struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Email     string    `json:"email"` // "" when hidden from the viewer
	CreatedAt time.Time `json:"createdAt"`
}

// Auth is the GraphQL AuthPayload.
type Auth struct {
	AccessToken  string `json:"accessToken"`
	RefreshToken string `json:"refreshToken"`
	ExpiresIn    int64  `json:"expiresIn"` // seconds
	User         User   `json:"user"`
}

// Principal is the identity an access token proves.
type Principal struct {
	UserID   string
	Username string
	Roles    Role
	Expires  time.Time
}

// UserList is a page of users (followers, following).
type UserList struct {
	Items      []User `json:"items"`
	NextCursor string `json:"nextCursor"` // "" on the last page
	TotalCount int64  `json:"totalCount"`
}

// ChannelSubscription is a paid channel subscription.
type ChannelSubscription struct {
	ID         string    `json:"id"`
	Subscriber UserRef   `json:"subscriber"`
	Channel    UserRef   `json:"channel"`
	Tier       int       `json:"tier"`
	CreatedAt  time.Time `json:"createdAt"`
}

// Stream status values.
const (
	StatusLive    = "LIVE"
	StatusOffline = "OFFLINE"
)

// Stream is the GraphQL Stream, without stats and chat settings.
type Stream struct {
	ID          string     `json:"id"`
	Broadcaster UserRef    `json:"broadcaster"`
	Title       string     `json:"title"`
	Category    string     `json:"category"` // "" for none
	Status      string     `json:"status"`   // StatusLive or StatusOffline
	ViewerCount int64      `json:"viewerCount"`
	StartedAt   *time.Time `json:"startedAt"`
	EndedAt     *time.Time `json:"endedAt"`
}

// Live reports whether the stream is live.
func (s *Stream) Live() bool { return s.Status == StatusLive }

// StreamList is a page of streams.
type StreamList struct {
	Items      []Stream `json:"items"`
	NextCursor string   `json:"nextCursor"`
	TotalCount int64    `json:"totalCount"`
}

// StreamStats is the GraphQL StreamStats.
type StreamStats struct {
	PeakViewers       int64 `json:"peakViewers"`
	ChatMessages      int64 `json:"chatMessages"`
	UniqueChatters    int64 `json:"uniqueChatters"`
	NewFollowers      int64 `json:"newFollowers"`
	MessagesPerMinute int64 `json:"messagesPerMinute"`
}

// Raid is the GraphQL Raid.
type Raid struct {
	ID   string `json:"id"`
	From struct {
		ID string `json:"id"`
	} `json:"from"`
	To          UserRef   `json:"to"`
	ViewerCount int64     `json:"viewerCount"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Notification types.
const (
	NotifyStreamLive      = "STREAM_LIVE"
	NotifyNewFollower     = "NEW_FOLLOWER"
	NotifyRaidIncoming    = "RAID_INCOMING"
	NotifySubscriptionNew = "SUBSCRIPTION_NEW"
	NotifyMention         = "MENTION"
)

// Notification is the GraphQL Notification; Data depends on Type.
type Notification struct {
	ID        string          `json:"id"`
	Type      string          `json:"type"`
	Data      json.RawMessage `json:"data"`
	Read      bool            `json:"read"`
	CreatedAt time.Time       `json:"createdAt"`
}

// NotificationList is a page of notifications.
type NotificationList struct {
	Items       []Notification `json:"items"`
	NextCursor  string         `json:"nextCursor"`
	TotalCount  int64          `json:"totalCount"`
	UnreadCount int64          `json:"unreadCount"`
}

// ChatMessage is the GraphQL ChatMessage.
type ChatMessage struct {
	ID        string    `json:"id"`
	StreamID  string    `json:"streamId"`
	Author    UserRef   `json:"author"`
	Text      string    `json:"text"`
	Offset    int64     `json:"offset"`
	CreatedAt time.Time `json:"createdAt"`
	Deleted   bool      `json:"deleted"`
}

// ChatHistory is a page of chat history, newest last.
type ChatHistory struct {
	Items           []ChatMessage `json:"items"`
	Cursors         []string      `json:"cursors"`
	HasPreviousPage bool          `json:"hasPreviousPage"`
	HasNextPage     bool          `json:"hasNextPage"`
	StartCursor     string        `json:"startCursor"` // pass as before
	EndCursor       string        `json:"endCursor"`
}

// ChatSettings is the GraphQL ChatSettings.
type ChatSettings struct {
	SlowModeSeconds  int64    `json:"slowModeSeconds"`
	FollowersOnly    bool     `json:"followersOnly"`
	MaxMessageLength int64    `json:"maxMessageLength"`
	BlockedTerms     []string `json:"blockedTerms"`
}

// ChatSettingsPatch changes some chat settings: nil fields keep their
// value; BlockedTerms, when not nil, replaces the whole list.
type ChatSettingsPatch struct {
	SlowModeSeconds  *int64   `json:"slowModeSeconds,omitempty"`
	FollowersOnly    *bool    `json:"followersOnly,omitempty"`
	MaxMessageLength *int64   `json:"maxMessageLength,omitempty"`
	BlockedTerms     []string `json:"blockedTerms,omitempty"`
}
