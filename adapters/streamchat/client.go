package streamchat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

// Client is a small typed client of Stream Chat's server-side REST API:
// only what callgate needs. Every request carries `?api_key=`, the server
// JWT in Authorization (no "Bearer") and `Stream-Auth-Type: jwt`.
type Client struct {
	base   string
	key    string
	secret []byte
	http   httpClient
	token  string
}

// NewClient builds a client for the app with key and secret at base
// (https://chat.stream-io-api.com).
func NewClient(base, key, secret string, hc httpClient) *Client {
	if hc == nil {
		hc = httpx.New(httpx.Options{})
	}
	c := &Client{base: strings.TrimRight(base, "/"), key: key, secret: []byte(secret), http: hc}
	c.token = ServerToken(c.secret)
	return c
}

// ServerToken is the server-side JWT: HS256 {"server": true} signed with the
// API secret, exactly as Stream's server SDKs make it.
func ServerToken(secret []byte) string {
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"server": true}).SignedString(secret)
	if err != nil {
		panic(err) // HS256 with a byte key cannot fail
	}
	return s
}

// UserToken is a user JWT: HS256 {"user_id": id} (with exp when not zero),
// as the SDKs' createToken makes it.
func UserToken(secret []byte, userID string, exp time.Time) string {
	claims := jwt.MapClaims{"user_id": userID}
	if !exp.IsZero() {
		claims["exp"] = exp.Unix()
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
	if err != nil {
		panic(err)
	}
	return s
}

// VerifyToken checks a Stream JWT (server or user token) against the
// secrets: HS256 only, exp honoured when present. It returns the claims.
func VerifyToken(token string, now time.Time, secrets ...[]byte) (jwt.MapClaims, error) {
	var last error
	for _, secret := range secrets {
		claims := jwt.MapClaims{}
		_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return secret, nil },
			jwt.WithValidMethods([]string{"HS256"}), jwt.WithTimeFunc(func() time.Time { return now }))
		if err == nil {
			return claims, nil
		}
		last = err
	}
	if last == nil {
		last = errors.New("no secret")
	}
	return nil, fmt.Errorf("%w: %v", calls.ErrWebhookUnauthenticated, last)
}

// MessageRequest is a message callgate sends or sets.
type MessageRequest struct {
	ID          string       `json:"id,omitempty"`
	Text        string       `json:"text"`
	Attachments []Attachment `json:"attachments"`
	UserID      string       `json:"user_id,omitempty"`
}

// Attachment is a message attachment; callgate's is of type "call".
type Attachment struct {
	Type      string    `json:"type"`
	Title     string    `json:"title,omitempty"`
	TitleLink string    `json:"title_link,omitempty"`
	Text      string    `json:"text,omitempty"`
	Fallback  string    `json:"fallback,omitempty"`
	Call      *CallView `json:"call,omitempty"`
	Actions   []Action  `json:"actions,omitempty"`
}

// Action is an attachment button; a click comes back to the custom action
// handler URL with form_data {Name: Value}.
type Action struct {
	Name  string `json:"name"`
	Text  string `json:"text"`
	Style string `json:"style,omitempty"`
	Type  string `json:"type"`
	Value string `json:"value"`
}

// SendMessage sends a message to a channel: POST /channels/{type}/{id}/message.
// It returns the message id Stream answers with.
func (c *Client) SendMessage(ctx context.Context, channelType, channelID string, msg MessageRequest) (string, error) {
	var out struct {
		Message struct {
			ID string `json:"id"`
		} `json:"message"`
	}
	err := c.do(ctx, http.MethodPost, "/channels/"+url.PathEscape(channelType)+"/"+url.PathEscape(channelID)+"/message",
		map[string]any{"message": msg}, &out, "Stream send message")
	if err != nil {
		return "", err
	}
	if out.Message.ID == "" {
		out.Message.ID = msg.ID
	}
	return out.Message.ID, nil
}

// PartialUpdateMessage sets and unsets fields of a message:
// PUT /messages/{id} {set, unset, user_id}.
func (c *Client) PartialUpdateMessage(ctx context.Context, id string, set map[string]any, unset []string, userID string) error {
	body := map[string]any{"set": set}
	if len(unset) > 0 {
		body["unset"] = unset
	}
	if userID != "" {
		body["user_id"] = userID
	}
	return c.do(ctx, http.MethodPut, "/messages/"+url.PathEscape(id), body, nil, "Stream partial update message")
}

// PartialUpdateChannel sets and unsets channel fields: PATCH
// /channels/{type}/{id} {set, unset}. Fields it does not name are kept;
// callgate never sends a full channel update, which would delete them.
func (c *Client) PartialUpdateChannel(ctx context.Context, channelType, channelID string, set map[string]any, unset []string) error {
	body := map[string]any{"set": set}
	if len(unset) > 0 {
		body["unset"] = unset
	}
	return c.do(ctx, http.MethodPatch, "/channels/"+url.PathEscape(channelType)+"/"+url.PathEscape(channelID), body, nil, "Stream partial update channel")
}

// SendEvent sends a custom event to a channel: POST
// /channels/{type}/{id}/event {event: {type, user_id, …}}.
func (c *Client) SendEvent(ctx context.Context, channelType, channelID string, event map[string]any) error {
	return c.do(ctx, http.MethodPost, "/channels/"+url.PathEscape(channelType)+"/"+url.PathEscape(channelID)+"/event",
		map[string]any{"event": event}, nil, "Stream send event")
}

func (c *Client) do(ctx context.Context, method, path string, in, out any, what string) error {
	body, err := json.Marshal(in)
	if err != nil {
		return calls.Permanent("cannot encode the request", err)
	}
	req, err := newRequest(ctx, method, c.base+path+"?api_key="+url.QueryEscape(c.key), body)
	if err != nil {
		return calls.Permanentf("%s: invalid api_url", what)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", c.token)
	req.Header.Set("Stream-Auth-Type", "jwt")
	req.Header.Set("X-Stream-Client", "callgate")
	answer, header, err := httpx.Do(c.http, req, what)
	if err != nil {
		return rateLimited(err, header, time.Now())
	}
	if out != nil && len(answer) > 0 {
		if err := json.Unmarshal(answer, out); err != nil {
			return calls.Permanent(what+": the answer is not JSON", err)
		}
	}
	return nil
}

// rateLimited adds Stream's X-RateLimit-Reset (Unix seconds) as the wait
// of a 429 that carried no Retry-After.
func rateLimited(err error, h http.Header, now time.Time) error {
	var temp *calls.TemporaryError
	if !errors.As(err, &temp) || temp.RetryAfter > 0 || h == nil {
		return err
	}
	reset, perr := strconv.ParseInt(strings.TrimSpace(h.Get("X-RateLimit-Reset")), 10, 64)
	if perr != nil || reset <= 0 {
		return err
	}
	if d := time.Unix(reset, 0).Sub(now); d > 0 {
		temp.RetryAfter = min(d, httpx.MaxRetryAfter)
	}
	return err
}

// alreadyExists tells a refused send of a message whose id exists.
func alreadyExists(err error) bool {
	var perm *calls.PermanentError
	return errors.As(err, &perm) && perm.Err != nil && strings.Contains(strings.ToLower(perm.Err.Error()), "already exists")
}
