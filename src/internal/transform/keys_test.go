package transform

import "testing"

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		res Resource
		id  int64
		ok  bool
	}{
		{"https://rickandmortyapi.com/api/character/1", Character, 1, true},
		{"http://127.0.0.1:8080/api/location/126", Location, 126, true},
		{"HTTPS://mirror.example/v2/episode/51/", Episode, 51, true},
		{"https://x.example/api/episode/7?page=2#f", Episode, 7, true},
		{"https://x.example/character/2147483647", Character, 2147483647, true},
		{"https://x.example/api/character/2147483648", "", 0, false},
		{"https://x.example/api/character/0", "", 0, false},
		{"https://x.example/api/character/007", "", 0, false},
		{"https://x.example/api/character/-1", "", 0, false},
		{"https://x.example/api/character/1,2,3", "", 0, false},
		{"https://x.example/api/character/", "", 0, false},
		{"https://x.example/api/characters/1", "", 0, false},
		{"https://x.example/api/character/avatar/1.jpeg", "", 0, false},
		{"/api/character/1", "", 0, false},
		{"ftp://x.example/api/character/1", "", 0, false},
		{"https:///api/character/1", "", 0, false},
		{"https://x.example/1", "", 0, false},
		{"", "", 0, false},
	} {
		res, id, ok := parseURL(tc.url)
		if res != tc.res || id != tc.id || ok != tc.ok {
			t.Errorf("parseURL(%q) = %q, %d, %v; want %q, %d, %v", tc.url, res, id, ok, tc.res, tc.id, tc.ok)
		}
	}
}

func TestResourceFromKey(t *testing.T) {
	for key, want := range map[string]Resource{
		"raw/character/page-0001.json": Character, "raw/episode/x.JSON": Episode, "raw/location": "",
		"raw/manual/rick and morty+1 100%/ζ.json": "", "processed/characters/page-0001.csv": "", "raw/characters/x.json": "",
	} {
		if res, _ := ResourceFromKey(key); res != want {
			t.Errorf("ResourceFromKey(%q) = %q, want %q", key, res, want)
		}
	}
}

func TestParseEpisodeCode(t *testing.T) {
	for _, tc := range []struct {
		code           string
		season, number int64
		ok             bool
	}{
		{"S01E01", 1, 1, true}, {"S05E10", 5, 10, true}, {"S10E105", 10, 105, true}, {"S00E00", 0, 0, true},
		{"s01e01", 0, 0, false}, {"S01", 0, 0, false}, {"S01E", 0, 0, false}, {"SE01", 0, 0, false},
		{"S01E01x", 0, 0, false}, {"S-1E01", 0, 0, false}, {"S12345E1", 0, 0, false}, {"", 0, 0, false},
	} {
		s, n, ok := parseEpisodeCode(tc.code)
		if s != tc.season || n != tc.number || ok != tc.ok {
			t.Errorf("parseEpisodeCode(%q) = %d, %d, %v", tc.code, s, n, ok)
		}
	}
}
