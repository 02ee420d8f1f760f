// Package rickmorty speaks the Rick and Morty API (https://rickandmortyapi.com):
// its resource types exactly as the API serializes them, the URL conventions
// its references follow, and a one-attempt HTTP client for its documents.
//
// The types decode the API's JSON and, marshalled back with HTML escaping
// off, reproduce it: fields are declared in the order the API emits them,
// optional references are {"name":"unknown","url":""} rather than null, and
// timestamps stay strings in the API's own format (see TimeLayout) so that
// nothing is lost or reformatted on the way through.
package rickmorty

import (
	"fmt"
	"time"
)

// DefaultBaseURL is the public API's root.
const DefaultBaseURL = "https://rickandmortyapi.com/api"

// PageSize is the number of results on every page but the last.
const PageSize = 20

// The three resources, named as they appear in URL paths.
const (
	ResourceCharacter = "character"
	ResourceLocation  = "location"
	ResourceEpisode   = "episode"
)

// Resources lists the resources in crawl order.
var Resources = []string{ResourceCharacter, ResourceLocation, ResourceEpisode}

// KnownResource reports whether name is one of Resources.
func KnownResource(name string) bool {
	switch name {
	case ResourceCharacter, ResourceLocation, ResourceEpisode:
		return true
	}
	return false
}

// TimeLayout is the layout of every `created` value: UTC with milliseconds,
// as JavaScript's Date.toISOString writes it ("2017-11-04T18:48:46.250Z").
const TimeLayout = "2006-01-02T15:04:05.000Z"

// AirDateLayout is the layout of an episode's air_date ("December 2, 2013").
const AirDateLayout = "January 2, 2006"

// ParseCreated parses a `created` value. It accepts any RFC 3339 time, so a
// value with fewer fraction digits or an offset still parses.
func ParseCreated(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing created %q: %w", s, err)
	}
	return t.UTC(), nil
}

// ParseAirDate parses an episode's air_date as a calendar date (UTC midnight).
func ParseAirDate(s string) (time.Time, error) {
	t, err := time.Parse(AirDateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("parsing air_date %q: %w", s, err)
	}
	return t, nil
}

// Ref is a character's origin or location: a name and the location's URL.
// An unknown place is {"name":"unknown","url":""} (an empty URL, not null).
type Ref struct {
	Name string `json:"name"`
	URL  string `json:"url"`
}

// Character is one item of /api/character.
type Character struct {
	ID       int      `json:"id"`
	Name     string   `json:"name"`
	Status   string   `json:"status"` // Alive, Dead or unknown
	Species  string   `json:"species"`
	Type     string   `json:"type"`   // often ""
	Gender   string   `json:"gender"` // Female, Male, Genderless or unknown
	Origin   Ref      `json:"origin"`
	Location Ref      `json:"location"`
	Image    string   `json:"image"`
	Episode  []string `json:"episode"` // episode URLs
	URL      string   `json:"url"`
	Created  string   `json:"created"` // TimeLayout
}

// Location is one item of /api/location.
type Location struct {
	ID        int      `json:"id"`
	Name      string   `json:"name"`
	Type      string   `json:"type"`      // may be ""
	Dimension string   `json:"dimension"` // may be ""
	Residents []string `json:"residents"` // character URLs, not always sorted; [] when none
	URL       string   `json:"url"`
	Created   string   `json:"created"` // TimeLayout
}

// Episode is one item of /api/episode.
type Episode struct {
	ID         int      `json:"id"`
	Name       string   `json:"name"`
	AirDate    string   `json:"air_date"`   // AirDateLayout
	Code       string   `json:"episode"`    // "S01E01"
	Characters []string `json:"characters"` // character URLs, not always sorted
	URL        string   `json:"url"`
	Created    string   `json:"created"` // TimeLayout
}

// Info is a page's header. Next and Prev are absolute URLs, or nil on the
// last and the first page.
type Info struct {
	Count int     `json:"count"`
	Pages int     `json:"pages"`
	Next  *string `json:"next"`
	Prev  *string `json:"prev"`
}

// Page is one page of a resource listing; T is Character, Location, Episode,
// or json.RawMessage to look at items one by one.
type Page[T any] struct {
	Info    Info `json:"info"`
	Results []T  `json:"results"`
}

// Root is the document at the API's root: the URL of each resource listing.
type Root struct {
	Characters string `json:"characters"`
	Locations  string `json:"locations"`
	Episodes   string `json:"episodes"`
}

// ErrorBody is the body of the API's error answers, such as
// {"error":"There is nothing here"}.
type ErrorBody struct {
	Error string `json:"error"`
}
