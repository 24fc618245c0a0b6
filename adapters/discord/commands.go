package discord

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"

	"github.com/bwmarrin/discordgo"
	"github.com/hashicorp/go-retryablehttp"

	"github.com/callgate/callgate/adapters"
	"github.com/callgate/callgate/adapters/httpx"
	"github.com/callgate/callgate/calls"
)

// AppCommand is an application command as `callgate discord register`
// installs it (a subset of Discord's object, without the nulls
// discordgo.ApplicationCommand would send).
type AppCommand struct {
	Name        string                           `json:"name"`
	Type        discordgo.ApplicationCommandType `json:"type"`
	Description string                           `json:"description"`
	// DescriptionLocalizations by Discord locale ("fr", "de", "es-ES").
	DescriptionLocalizations map[discordgo.Locale]string `json:"description_localizations,omitempty"`
	Options                  []AppOption                 `json:"options,omitempty"`
}

// AppOption is a subcommand or an option.
type AppOption struct {
	Type                     discordgo.ApplicationCommandOptionType `json:"type"`
	Name                     string                                 `json:"name"`
	Description              string                                 `json:"description"`
	DescriptionLocalizations map[discordgo.Locale]string            `json:"description_localizations,omitempty"`
	Required                 bool                                   `json:"required,omitempty"`
	Choices                  []AppChoice                            `json:"choices,omitempty"`
	MaxLength                int                                    `json:"max_length,omitempty"`
	Options                  []AppOption                            `json:"options,omitempty"`
}

// AppChoice is one of an option's fixed values.
type AppChoice struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// maxChoices is Discord's bound on an option's choices.
const maxChoices = 25

func loc(fr, de, es string) map[discordgo.Locale]string {
	return map[discordgo.Locale]string{discordgo.French: fr, discordgo.German: de, discordgo.SpanishES: es}
}

// Commands is the command set callgate installs: one chat command, /call,
// with three subcommands (Discord allows no options beside subcommands):
//
//	/call start [type: audio|video] [with: @user] [with2: @user] [with3: @user]
//	            [provider: <configured provider>] [title: text] [new: true|false]
//	/call end
//	/call help
//
// `with*` ring those people (a direct call); `provider` offers the
// configured providers as choices (as free text past 25 of them); `new`
// insists on a new call when the channel has a live one. providers may be
// empty, and then there is no provider option.
func Commands(providers []string) []AppCommand {
	start := []AppOption{
		{Type: discordgo.ApplicationCommandOptionString, Name: OptType, Description: "Audio or video (video if left out)",
			DescriptionLocalizations: loc("Audio ou vidéo (vidéo par défaut)", "Audio oder Video (sonst Video)", "Audio o vídeo (vídeo si no se indica)"),
			Choices:                  []AppChoice{{Name: "video", Value: "video"}, {Name: "audio", Value: "audio"}}},
		{Type: discordgo.ApplicationCommandOptionUser, Name: OptWith, Description: "Someone to ring",
			DescriptionLocalizations: loc("Une personne à appeler", "Eine Person, die angerufen wird", "Alguien a quien llamar")},
		{Type: discordgo.ApplicationCommandOptionUser, Name: OptWith + "2", Description: "Someone else to ring",
			DescriptionLocalizations: loc("Une autre personne à appeler", "Noch eine Person", "Otra persona a quien llamar")},
		{Type: discordgo.ApplicationCommandOptionUser, Name: OptWith + "3", Description: "Someone else to ring",
			DescriptionLocalizations: loc("Une autre personne à appeler", "Noch eine Person", "Otra persona a quien llamar")},
	}
	if len(providers) > 0 {
		p := AppOption{Type: discordgo.ApplicationCommandOptionString, Name: OptProvider, Description: "Which video service to use",
			DescriptionLocalizations: loc("Quel service vidéo utiliser", "Welcher Videodienst", "Qué servicio de vídeo usar")}
		sorted := append([]string(nil), providers...)
		sort.Strings(sorted)
		if len(sorted) <= maxChoices {
			for _, name := range sorted {
				p.Choices = append(p.Choices, AppChoice{Name: truncate(name, 100), Value: name})
			}
		}
		start = append(start, p)
	}
	start = append(start,
		AppOption{Type: discordgo.ApplicationCommandOptionString, Name: OptTitle, Description: "A title for the call", MaxLength: calls.MaxTitleLength,
			DescriptionLocalizations: loc("Un titre pour l'appel", "Ein Titel für den Anruf", "Un título para la llamada")},
		AppOption{Type: discordgo.ApplicationCommandOptionBoolean, Name: OptNew, Description: "Start a new call even if one is live here",
			DescriptionLocalizations: loc("Lancer un nouvel appel même si un appel est en cours ici", "Einen neuen Anruf starten, auch wenn hier einer läuft", "Iniciar otra llamada aunque ya haya una aquí")},
	)
	return []AppCommand{{
		Name: CommandName, Type: discordgo.ChatApplicationCommand, Description: "Voice and video calls in this channel",
		DescriptionLocalizations: loc("Appels audio et vidéo dans ce salon", "Sprach- und Videoanrufe in diesem Kanal", "Llamadas de voz y vídeo en este canal"),
		Options: []AppOption{
			{Type: discordgo.ApplicationCommandOptionSubCommand, Name: SubStart, Description: "Start a call here, or show the one already live",
				DescriptionLocalizations: loc("Lancer un appel ici, ou afficher celui en cours", "Hier einen Anruf starten oder den laufenden zeigen", "Iniciar una llamada aquí, o mostrar la que ya está en curso"),
				Options:                  start},
			{Type: discordgo.ApplicationCommandOptionSubCommand, Name: SubEnd, Description: "End the call in this channel",
				DescriptionLocalizations: loc("Terminer l'appel de ce salon", "Den Anruf in diesem Kanal beenden", "Terminar la llamada de este canal")},
			{Type: discordgo.ApplicationCommandOptionSubCommand, Name: SubHelp, Description: "How to use /call",
				DescriptionLocalizations: loc("Comment utiliser /call", "So funktioniert /call", "Cómo usar /call")},
			{Type: discordgo.ApplicationCommandOptionSubCommand, Name: SubRing, Description: "Whether others may ring you by name",
				DescriptionLocalizations: loc("Si les autres peuvent vous appeler par votre nom", "Ob andere dich per Namen anrufen dürfen", "Si otros pueden llamarte por tu nombre"),
				Options: []AppOption{{Type: discordgo.ApplicationCommandOptionString, Name: OptRing, Description: "on or off", Required: true,
					Choices: []AppChoice{{Name: "on", Value: "on"}, {Name: "off", Value: "off"}}}}},
		},
	}}
}

// RegisterOptions shape Register.
type RegisterOptions struct {
	// Guild installs the commands in one server (at once) instead of
	// globally; empty uses the settings' guild_id, else global.
	Guild string
	// Providers are the configured provider names, offered as choices.
	Providers []string
	// Client replaces the HTTP client (tests).
	Client *retryablehttp.Client
}

// Registered is a command Discord confirmed.
type Registered struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// Register installs Commands(providers) with a bulk overwrite:
// PUT {api_url}/applications/{application_id}/commands, or
// …/guilds/{guild}/commands for one server. It replaces every command the
// application had there.
func Register(ctx context.Context, s *Settings, o RegisterOptions) ([]Registered, string, error) {
	if s == nil {
		return nil, "", fmt.Errorf("discord register: no settings")
	}
	guild := o.Guild
	if guild == "" {
		guild = s.GuildID
	}
	if guild != "" && !isSnowflake(guild) {
		return nil, "", fmt.Errorf("discord register: %q is not a server id", truncate(guild, 32))
	}
	if _, err := adapters.ParseBaseURL(s.APIURL); err != nil {
		return nil, "", fmt.Errorf("discord register: api_url %w", err)
	}
	if !isSnowflake(s.ApplicationID) || s.BotToken == "" {
		return nil, "", fmt.Errorf("discord register: application_id and bot_token are required")
	}
	path := "/applications/" + s.ApplicationID + "/commands"
	where := "globally (Discord may take up to an hour to show them everywhere)"
	if guild != "" {
		path = "/applications/" + s.ApplicationID + "/guilds/" + guild + "/commands"
		where = "in server " + guild
	}
	client := o.Client
	if client == nil {
		client = httpx.New(httpx.Options{Timeout: s.Timeout})
	}
	req, err := retryablehttp.NewRequestWithContext(ctx, http.MethodPut, trimSlash(s.APIURL)+path, jsonBody(Commands(o.Providers)))
	if err != nil {
		return nil, "", fmt.Errorf("discord register: %w", err)
	}
	(&App{token: s.BotToken}).authorize(req)
	answer, _, err := httpx.Do(client, req, "discord register commands")
	if err != nil {
		return nil, "", err
	}
	var got []Registered
	if err := json.Unmarshal(answer, &got); err != nil {
		return nil, "", fmt.Errorf("discord register: Discord's answer is not a command list: %w", err)
	}
	return got, where, nil
}

func trimSlash(s string) string {
	for len(s) > 0 && s[len(s)-1] == '/' {
		s = s[:len(s)-1]
	}
	return s
}
