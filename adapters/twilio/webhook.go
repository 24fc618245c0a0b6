package twilio

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// SignatureHeader is the header Twilio signs its callbacks in.
const SignatureHeader = "X-Twilio-Signature"

// ReplayWindow is how old a callback's Timestamp may be. Twilio signs no
// delivery time, but the event's Timestamp is inside the signed body: a
// captured callback stops working an hour after its event (within the hour,
// the delivery id makes a replay change nothing). MaxFutureSkew tolerates a
// clock running behind Twilio's.
const (
	ReplayWindow  = time.Hour
	MaxFutureSkew = 5 * time.Minute
)

// Status callback events callgate understands; every other event
// (track-added, recording-started, composition-progress, …) is acknowledged
// and ignored.
const (
	eventRoomCreated           = "room-created"
	eventRoomEnded             = "room-ended"
	eventParticipantConnected  = "participant-connected"
	eventParticipantDisconnect = "participant-disconnected"
	eventRecordingCompleted    = "recording-completed"
	eventCompositionAvailable  = "composition-available"
)

// ReceiveWebhook verifies a Twilio status callback and turns it into
// provider events. Verification comes first: nothing is read from an
// unauthenticated body. Errors wrap calls.ErrWebhookUnauthenticated or
// calls.ErrWebhookMalformed; an error of neither kind (the room SID of a
// composition callback could not be resolved) makes Twilio retry.
func (p *Provider) ReceiveWebhook(ctx context.Context, req calls.WebhookRequest) (calls.ProviderWebhook, error) {
	events, err := p.parseWebhook(ctx, req)
	return calls.ProviderWebhook{Events: events}, err
}

func (p *Provider) parseWebhook(ctx context.Context, req calls.WebhookRequest) ([]calls.ProviderEvent, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("twilio: webhook: %w", err)
	}
	params, err := p.verify(req)
	if err != nil {
		return nil, err
	}
	get := func(k string) string { return params.Get(k) }

	event := get("StatusCallbackEvent")
	var kind calls.ProviderEventKind
	switch event {
	case eventRoomCreated:
		kind = calls.ProviderRoomStarted
	case eventRoomEnded:
		kind = calls.ProviderRoomEnded
	case eventParticipantConnected:
		kind = calls.ProviderParticipantJoined
	case eventParticipantDisconnect:
		kind = calls.ProviderParticipantLeft
	case eventRecordingCompleted, eventCompositionAvailable:
		kind = calls.ProviderRecordingReady
	default:
		// Including none at all: an authentic callback callgate has no use
		// for is acknowledged, so Twilio does not retry it.
		return []calls.ProviderEvent{}, nil
	}

	out := calls.ProviderEvent{Kind: kind, Room: get("RoomName")}
	roomSID := get("RoomSid")
	if out.Room == "" && roomSID != "" {
		// Composition callbacks name the room only by its SID.
		name, err := p.roomName(ctx, roomSID)
		var perm *calls.PermanentError
		if errors.As(err, &perm) {
			return nil, fmt.Errorf("%w: twilio: %s for room %s, which Twilio does not know: %v", calls.ErrWebhookMalformed, event, roomSID, err)
		}
		if err != nil {
			return nil, fmt.Errorf("twilio: %s: resolving room %s: %w", event, roomSID, err)
		}
		out.Room = name
	}
	if out.Room == "" {
		return nil, fmt.Errorf("%w: twilio: %s has neither RoomName nor RoomSid", calls.ErrWebhookMalformed, event)
	}

	if s := get("SequenceNumber"); s != "" {
		seq, err := strconv.ParseInt(s, 10, 64)
		if err != nil || seq < 0 {
			return nil, fmt.Errorf("%w: twilio: SequenceNumber %q is not a number", calls.ErrWebhookMalformed, s)
		}
		out.Seq = seq
		if roomSID != "" {
			// SequenceNumber counts a room's events: with the room SID it
			// names this event, the same on every redelivery.
			out.DeliveryID = roomSID + ":" + s
		}
	}

	if ts := get("Timestamp"); ts != "" {
		if at, ok := parseTimestamp(ts); ok {
			now := p.now()
			if d := now.Sub(at); d > ReplayWindow || d < -MaxFutureSkew {
				return nil, fmt.Errorf("%w: twilio: event time %s is outside the replay window (%s old, %s ahead)", calls.ErrWebhookUnauthenticated, at.Format(time.RFC3339), ReplayWindow, MaxFutureSkew)
			}
			out.At = at
		}
	}

	switch kind {
	case calls.ProviderParticipantJoined, calls.ProviderParticipantLeft:
		out.Identity = get("ParticipantIdentity")
		if out.Identity == "" {
			return nil, fmt.Errorf("%w: twilio: %s has no ParticipantIdentity", calls.ErrWebhookMalformed, event)
		}
	case calls.ProviderRecordingReady:
		rec := &calls.Recording{Kind: "recording", ProviderID: get("RecordingSid"), URL: get("MediaUri"), At: out.At}
		if event == eventCompositionAvailable {
			rec.Kind, rec.ProviderID = "composition", get("CompositionSid")
		}
		if rec.ProviderID == "" {
			return nil, fmt.Errorf("%w: twilio: %s names no recording or composition SID", calls.ErrWebhookMalformed, event)
		}
		if d, err := strconv.ParseFloat(get("Duration"), 64); err == nil && d > 0 && d < 1e9 {
			rec.Duration = time.Duration(d * float64(time.Second))
		}
		if out.DeliveryID == "" {
			out.DeliveryID = rec.ProviderID + ":" + event
		}
		out.Recording = rec
	}
	return []calls.ProviderEvent{out}, nil
}

// timestampLayouts are the forms Twilio writes callback times in.
var timestampLayouts = []string{time.RFC3339Nano, time.RFC1123Z, time.RFC1123, "2006-01-02 15:04:05"}

// parseTimestamp reads a callback Timestamp; an unreadable one is ignored
// rather than refused (the body is authentic; the event is not lost).
func parseTimestamp(s string) (time.Time, bool) {
	for _, l := range timestampLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// verify checks X-Twilio-Signature and returns the request's parameters.
// Form bodies (what Video status callbacks are) are signed over the URL
// plus the parameters; JSON bodies are signed over the URL alone, which
// then carries bodySHA256 = hex(SHA-256(body)).
func (p *Provider) verify(req calls.WebhookRequest) (url.Values, error) {
	if len(p.authTokens) == 0 {
		return nil, fmt.Errorf("%w: twilio: no auth_token is configured, so no callback can be verified", calls.ErrWebhookUnauthenticated)
	}
	sig := headerValue(req.Header, SignatureHeader)
	if sig == "" {
		return nil, fmt.Errorf("%w: twilio: %s header is missing", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	u, err := url.Parse(req.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: twilio: the request URL cannot be verified", calls.ErrWebhookUnauthenticated)
	}
	var params url.Values
	if bodyHash := u.Query().Get("bodySHA256"); bodyHash != "" {
		sum := sha256.Sum256(req.Body)
		if subtle.ConstantTimeCompare([]byte(strings.ToLower(bodyHash)), []byte(hex.EncodeToString(sum[:]))) != 1 {
			return nil, fmt.Errorf("%w: twilio: the body does not match the URL's bodySHA256", calls.ErrWebhookUnauthenticated)
		}
		if !validSignature(p.authTokens, sig, req.URL, nil) {
			return nil, fmt.Errorf("%w: twilio: %s does not match any configured auth token", calls.ErrWebhookUnauthenticated, SignatureHeader)
		}
		return jsonParams(req.Body)
	}
	params, err = url.ParseQuery(string(req.Body))
	if err != nil {
		return nil, fmt.Errorf("%w: twilio: the body is not a form a signature could cover", calls.ErrWebhookUnauthenticated)
	}
	if !validSignature(p.authTokens, sig, req.URL, params) {
		return nil, fmt.Errorf("%w: twilio: %s does not match any configured auth token", calls.ErrWebhookUnauthenticated, SignatureHeader)
	}
	return params, nil
}

// jsonParams reads a verified JSON body's top-level scalars as parameters.
func jsonParams(body []byte) (url.Values, error) {
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: twilio: the body is not a JSON object: %w", calls.ErrWebhookMalformed, err)
	}
	out := url.Values{}
	for k, v := range m {
		switch x := v.(type) {
		case string:
			out.Set(k, x)
		case float64:
			out.Set(k, strconv.FormatFloat(x, 'f', -1, 64))
		case bool:
			out.Set(k, strconv.FormatBool(x))
		}
	}
	return out, nil
}

// validSignature reports whether sig is Twilio's signature of the request
// under one of the tokens. As the SDKs' validateRequest, it tries the URL
// as received with its port removed and with the scheme's default port
// added: a proxy may have added or dropped the port Twilio signed.
func validSignature(tokens [][]byte, sig, rawURL string, params url.Values) bool {
	want, err := base64.StdEncoding.Strict().DecodeString(sig)
	if err != nil || len(want) != sha1.Size {
		return false
	}
	data := signedParams(params)
	candidates := [2]string{removePort(rawURL), addPort(rawURL)}
	ok := false
	for _, token := range tokens {
		for i, c := range candidates {
			if i == 1 && c == candidates[0] {
				continue
			}
			mac := hmac.New(sha1.New, token)
			mac.Write([]byte(c))
			mac.Write(data)
			// Every candidate is computed: the time taken does not say
			// which token or URL form matched.
			if hmac.Equal(mac.Sum(nil), want) {
				ok = true
			}
		}
	}
	return ok
}

// signedParams is the parameters as Twilio signs them: names sorted
// byte-wise, each followed by its value; a repeated name's values sorted
// and without duplicates (as twilio-node and twilio-python), each value
// preceded by the name.
func signedParams(params url.Values) []byte {
	if len(params) == 0 {
		return nil
	}
	names := make([]string, 0, len(params))
	size := 0
	for k, vs := range params {
		names = append(names, k)
		for _, v := range vs {
			size += len(k) + len(v)
		}
	}
	slices.Sort(names)
	out := make([]byte, 0, size)
	for _, k := range names {
		vs := params[k]
		if len(vs) > 1 {
			vs = slices.Compact(slices.Sorted(slices.Values(vs)))
		}
		for _, v := range vs {
			out = append(out, k...)
			out = append(out, v...)
		}
	}
	return out
}

type urlParts struct{ scheme, userInfo, host, port, rest string }

// splitURL splits "scheme://authority…" without normalising the rest, as
// twilio-node's splitUrl (/^([a-z][a-z0-9+.-]*:\/\/)([^/?#]*)/i): the
// characters Twilio signed stay as they are.
func splitURL(raw string) (urlParts, bool) {
	i := 0
	for ; i < len(raw); i++ {
		c := raw[i]
		alpha := (c|0x20) >= 'a' && (c|0x20) <= 'z'
		if alpha || (i > 0 && ((c >= '0' && c <= '9') || c == '+' || c == '.' || c == '-')) {
			continue
		}
		break
	}
	if i == 0 || !strings.HasPrefix(raw[i:], "://") {
		return urlParts{}, false
	}
	schemeEnd := i + len("://")
	end := schemeEnd
	for end < len(raw) && raw[end] != '/' && raw[end] != '?' && raw[end] != '#' {
		end++
	}
	authority := raw[schemeEnd:end]
	userEnd := strings.LastIndexByte(authority, '@') + 1
	hostPort := authority[userEnd:]
	// A colon starts the port only after an IPv6 literal's closing bracket.
	after := strings.LastIndexByte(hostPort, ']') + 1
	host, port := hostPort, ""
	if j := strings.IndexByte(hostPort[after:], ':'); j >= 0 {
		host, port = hostPort[:after+j], hostPort[after+j:]
	}
	return urlParts{scheme: raw[:schemeEnd], userInfo: authority[:userEnd], host: host, port: port, rest: raw[end:]}, true
}

// addPort adds the scheme's default port (443 for https, 80 otherwise) to
// a URL that has none.
func addPort(raw string) string {
	p, ok := splitURL(raw)
	if !ok || p.port != "" {
		return raw
	}
	port := ":80"
	if strings.EqualFold(p.scheme, "https://") {
		port = ":443"
	}
	return p.scheme + p.userInfo + p.host + port + p.rest
}

// removePort drops a URL's port, whatever it is (as the SDKs do).
func removePort(raw string) string {
	p, ok := splitURL(raw)
	if !ok {
		return raw
	}
	return p.scheme + p.userInfo + p.host + p.rest
}

// headerValue reads a header whether or not the map's keys are canonical:
// WebhookRequest.Header may be built by hand rather than by net/http.
func headerValue(h http.Header, name string) string {
	if v := h.Get(name); v != "" {
		return v
	}
	for k, vs := range h {
		if strings.EqualFold(k, name) && len(vs) > 0 {
			return vs[0]
		}
	}
	return ""
}
