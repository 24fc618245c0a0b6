package templates

import (
	"strconv"
	"strings"
	"time"

	"github.com/callgate/callgate/calls"
)

// Card is a call as every chat platform shows it, in one language: the
// words are chosen here, once, and each platform's adapter lays them out
// in its own format (Block Kit, an embed, message attachments) with its
// own escaping. Nothing in a Card is escaped yet.
type Card struct {
	Lang string
	// Title is the call's title, or "Video call" / "Audio call".
	Title string
	// Subtitle is "Started by Ada", or "Incoming call from Ada" while it rings.
	Subtitle string
	Type     calls.Type
	State    calls.State
	// StateText is the state in words ("In progress", "Call ended").
	StateText string
	Live      bool
	// People are the display names of who is in the call now, in join
	// order; PeopleText says it in a sentence, naming at most MaxNames.
	People     []string
	PeopleText string
	// Duration is how long the call has lasted (ended: in all), and
	// DurationText the same in words; zero before anyone joined.
	Duration     time.Duration
	DurationText string
	// Summary is the final line of a call that is over:
	// "Call ended · 14 min · 5 people".
	Summary string
	JoinURL string
	// Actions are the buttons a card of this state offers; who may press
	// them is checked when they are pressed.
	Actions    []CardAction
	Recordings []CardRecording
}

// CardAction is one button.
type CardAction struct {
	ID    string // "join", "end", "accept", "decline"
	Label string
	// URL is set for link buttons (join).
	URL string
	// Style is "primary", "danger" or "".
	Style string
}

// CardRecording links a recording or transcript.
type CardRecording struct {
	Label string
	URL   string
}

// MaxNames is how many people a card names before "and N more".
const MaxNames = 5

// CardInput is what a card is made from.
type CardInput struct {
	Call calls.Call
	// Names maps user ids and provider identities to display names, where
	// the platform knows them; others show as the participant's name or id.
	Names map[string]string
	// Recordings of the call, when the provider reported any.
	Recordings []calls.Recording
	JoinURL    string
	Lang       string
	Now        time.Time
}

// Card builds the card of a call in a language.
func (s *Set) Card(in CardInput) Card {
	c := in.Call
	lang := in.Lang
	if _, ok := s.strings[lang]; !ok {
		lang = DefaultLang
	}
	t := func(key string, args ...string) string {
		text := s.Text(lang, key)
		for i := 0; i+1 < len(args); i += 2 {
			text = strings.ReplaceAll(text, "{"+args[i]+"}", args[i+1])
		}
		return text
	}
	card := Card{
		Lang: lang, Title: c.Title, Type: c.Type, State: c.State,
		StateText: t("card.state." + string(c.State)), Live: !c.State.Terminal(), JoinURL: in.JoinURL,
	}
	if card.Title == "" {
		card.Title = t("card.title." + string(c.Type))
	}
	creator := in.name(c.CreatedBy, "")
	switch {
	case c.State == calls.StateRinging && creator != "":
		card.Subtitle = t("card.incoming", "name", creator)
	case creator != "":
		card.Subtitle = t("card.started_by", "name", creator)
	}
	for _, p := range c.Participants {
		card.People = append(card.People, in.name(p.Identity, p.Name))
	}
	card.PeopleText = peopleText(card.People, t)
	card.Duration = duration(c, in.Now)
	if card.Duration > 0 {
		card.DurationText = durationText(card.Duration, t)
	}
	if !card.Live {
		// Who was there: everyone who ever joined, as the roster marks
		// remember them once the call is over.
		count := len(c.Seqs)
		if count == 0 {
			count = len(c.Participants)
		}
		people := t("card.summary.people.many", "count", strconv.Itoa(count))
		if count == 1 {
			people = t("card.summary.people.one")
		}
		parts := []string{card.StateText}
		if card.DurationText != "" {
			parts = append(parts, card.DurationText)
		}
		if count > 0 {
			parts = append(parts, people)
		}
		card.Summary = strings.Join(parts, " · ")
	}
	switch {
	case c.State == calls.StateRinging:
		card.Actions = []CardAction{
			{ID: "accept", Label: t("card.action.accept"), Style: "primary"},
			{ID: "decline", Label: t("card.action.decline"), Style: "danger"},
		}
	case card.Live:
		card.Actions = []CardAction{
			{ID: "join", Label: t("card.action.join"), URL: in.JoinURL, Style: "primary"},
			{ID: "end", Label: t("card.action.end"), Style: "danger"},
		}
	}
	for _, r := range in.Recordings {
		if r.URL == "" {
			continue
		}
		label := t("card.recording")
		if r.Kind == "transcript" {
			label = t("card.transcript")
		}
		card.Recordings = append(card.Recordings, CardRecording{Label: label, URL: r.URL})
	}
	return card
}

func (in CardInput) name(id, fallback string) string {
	if n := in.Names[id]; n != "" {
		return n
	}
	if fallback != "" {
		return fallback
	}
	return id
}

// peopleText names up to MaxNames people: "Ada", "Ada and Ben",
// "Ada, Ben and Cy", "Ada, Ben, Cy, Dee, Eve and 3 more".
func peopleText(people []string, t func(string, ...string) string) string {
	switch n := len(people); {
	case n == 0:
		return t("card.people.none")
	case n == 1:
		return t("card.people.one", "names", people[0])
	case n <= MaxNames:
		names := strings.Join(people[:n-1], ", ") + " " + t("card.and") + " " + people[n-1]
		return t("card.people.many", "names", names)
	default:
		names := t("card.people.more", "names", strings.Join(people[:MaxNames], ", "), "count", strconv.Itoa(n-MaxNames))
		return t("card.people.many", "names", names)
	}
}

// duration is how long the call has lasted: from when it went live (or was
// created) to its end, or to now.
func duration(c calls.Call, now time.Time) time.Duration {
	start := c.CreatedAt
	end := now
	if c.EndedAt != nil {
		end = *c.EndedAt
	}
	if end.Before(start) {
		return 0
	}
	return end.Sub(start)
}

func durationText(d time.Duration, t func(string, ...string) string) string {
	if d < time.Minute {
		return t("card.duration.short")
	}
	return t("card.duration", "minutes", strconv.Itoa(int(d.Round(time.Minute)/time.Minute)))
}
