package fakeapi

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/dataeng/rickmorty-pipeline/src/internal/rickmorty"
)

// Sizes are the item counts of a generated dataset.
type Sizes struct {
	Characters, Locations, Episodes int
}

// DefaultSizes mirror the real API: 826 characters, 126 locations, 51
// episodes (42 + 7 + 3 pages).
var DefaultSizes = Sizes{Characters: 826, Locations: 126, Episodes: 51}

// Generate returns a deterministic synthetic dataset of the given sizes: the
// same sizes and seed give the same bytes in every run and Go release.
func Generate(sz Sizes, seed uint64) (*Dataset, error) {
	if sz.Characters < 0 || sz.Locations < 0 || sz.Episodes < 0 {
		return nil, fmt.Errorf("negative dataset size %+v", sz)
	}
	c, l, e := Synthetic(sz, seed)
	return FromItems(c, l, e)
}

// Synthetic generates the items of a dataset in the API's exact shape and
// with the real data's quirks, scaled to the sizes (at DefaultSizes the
// counts below are exact):
//   - unknown origins (300 of 826) and locations (21) are
//     {"name":"unknown","url":""};
//   - character type "" on 401 of 826; one location with type "" (118) and
//     two with dimension "" (123, 126); residents [] on 32 of 126 locations;
//   - status Alive/Dead/unknown 439/287/100, gender Male/Female/unknown/
//     Genderless 610/148/49/19;
//   - residents (7 locations) and episode characters (12 episodes) not
//     sorted by id; character episode lists sorted;
//   - ’ in 14 character names and 2 location names, ζ (location 31),
//     Á (location 75), í (one character), & (one episode name);
//   - the three cross-reference disagreements: character 125 lists two
//     episodes that do not list it and is missing from its location's
//     residents; episode 10 lists character 663, which does not list it;
//   - created "2017-11-04T18:48:46.250Z", air_date "December 2, 2013",
//     episode codes "S01E01".
//
// The item URLs use the real API's host (rickmorty.DefaultBaseURL), like
// the real data: they are data, not links to the fake API.
func Synthetic(sz Sizes, seed uint64) ([]rickmorty.Character, []rickmorty.Location, []rickmorty.Episode) {
	g := &gen{rng: rng{s: seed ^ 0x5eed5eed5eed5eed}, sz: sz, base: rickmorty.DefaultBaseURL}
	locs := g.locations()
	eps := g.episodes()
	chars := g.characters(locs, eps)
	return chars, locs, eps
}

type gen struct {
	rng
	sz   Sizes
	base string
}

// scaled maps an id of the real dataset (of realN items) onto a dataset of n
// items: the same id at the real size, the same relative position otherwise.
func scaled(realID, realN, n int) int {
	if n <= 0 {
		return 0
	}
	id := int(math.Round(float64(realID) * float64(n) / float64(realN)))
	return max(1, min(n, id))
}

// quota scales a count of the real dataset to n items.
func quota(realCount, realN, n int) int {
	return int(math.Round(float64(realCount) * float64(n) / float64(realN)))
}

// chosen returns n flags with exactly k set, at random positions (index 0 is
// id 1).
func (r *rng) chosen(n, k int) []bool {
	flags := make([]bool, n)
	for _, i := range r.perm(n)[:min(k, n)] {
		flags[i] = true
	}
	return flags
}

// reserve clears the flags at the given indexes and sets as many others
// instead, so the count stays the same when there is room.
func reserve(flags []bool, idx ...int) {
	taken := map[int]bool{}
	for _, i := range idx {
		if i >= 0 && i < len(flags) {
			taken[i] = true
		}
	}
	moved := 0
	for i := range taken {
		if flags[i] {
			flags[i] = false
			moved++
		}
	}
	for i := 0; i < len(flags) && moved > 0; i++ {
		if !flags[i] && !taken[i] {
			flags[i] = true
			moved--
		}
	}
}

// quotas returns n labels with the given counts (the first label takes the
// remainder), shuffled.
func (r *rng) quotas(n int, labels []string, counts []int) []string {
	out := make([]string, 0, n)
	for i := 1; i < len(labels); i++ {
		for j := 0; j < counts[i] && len(out) < n; j++ {
			out = append(out, labels[i])
		}
	}
	for len(out) < n {
		out = append(out, labels[0])
	}
	r.shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

func stamp(t time.Time) string { return t.UTC().Format(rickmorty.TimeLayout) }

func (g *gen) locations() []rickmorty.Location {
	n := g.sz.Locations
	locs := make([]rickmorty.Location, n)
	t := time.Date(2017, 11, 10, 12, 42, 4, 162e6, time.UTC)
	for i := range locs {
		id := i + 1
		name := g.pick(placeA) + " " + g.pick(placeB)
		if g.intn(6) == 0 {
			name = fmt.Sprintf("Earth (%c%d-%d)", 'A'+rune(g.intn(26)), g.intn(90)+10, g.intn(200))
		}
		locs[i] = rickmorty.Location{
			ID:        id,
			Name:      name,
			Type:      g.weighted(locationTypes),
			Dimension: g.weighted(dimensions),
			Residents: []string{},
			URL:       rickmorty.ItemURL(g.base, rickmorty.ResourceLocation, id),
			Created:   stamp(t),
		}
		t = t.Add(time.Duration(30+g.intn(1800))*time.Second + time.Duration(g.intn(1000))*time.Millisecond)
	}
	if n == 0 {
		return locs
	}
	locs[scaled(31, 126, n)-1].Name = fmt.Sprintf("Earth (J%dζ%d)", 10+g.intn(90), g.intn(10))
	locs[scaled(75, 126, n)-1].Name = "Árboles " + g.pick(placeB)
	locs[scaled(120, 126, n)-1].Name = "Morty’s Story"
	locs[scaled(124, 126, n)-1].Name = "Ricks’s Story"
	locs[scaled(118, 126, n)-1].Type = ""
	locs[scaled(123, 126, n)-1].Dimension = ""
	locs[scaled(126, 126, n)-1].Dimension = ""
	return locs
}

func (g *gen) episodes() []rickmorty.Episode {
	n := g.sz.Episodes
	eps := make([]rickmorty.Episode, n)
	premieres := []time.Time{
		time.Date(2013, 12, 2, 0, 0, 0, 0, time.UTC),
		time.Date(2015, 7, 26, 0, 0, 0, 0, time.UTC),
		time.Date(2017, 4, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2019, 11, 10, 0, 0, 0, 0, time.UTC),
		time.Date(2021, 6, 20, 0, 0, 0, 0, time.UTC),
	}
	created := time.Date(2017, 11, 10, 12, 56, 33, 798e6, time.UTC)
	season, number := 1, 0
	var air time.Time
	for i := range eps {
		id := i + 1
		length := 10
		if season == 1 {
			length = 11
		}
		if number == length {
			season, number = season+1, 0
		}
		number++
		switch {
		case number == 1 && season <= len(premieres):
			air = premieres[season-1]
		case number == 1:
			air = air.AddDate(1, 6, 0)
		default:
			air = air.AddDate(0, 0, 7*(1+boolInt(g.intn(8) == 0)))
		}
		eps[i] = rickmorty.Episode{
			ID:         id,
			Name:       g.pick(episodeA) + " " + g.pick(episodeB),
			AirDate:    air.Format(rickmorty.AirDateLayout),
			Code:       fmt.Sprintf("S%02dE%02d", season, number),
			Characters: []string{},
			URL:        rickmorty.ItemURL(g.base, rickmorty.ResourceEpisode, id),
			Created:    stamp(created),
		}
		created = created.Add(time.Duration(90+g.intn(40)) * time.Millisecond)
	}
	if n > 0 {
		eps[scaled(45, 51, n)-1].Name = "Rick & Morty’s " + g.pick(episodeB) + " Spectacular"
	}
	return eps
}

func (g *gen) characters(locs []rickmorty.Location, eps []rickmorty.Episode) []rickmorty.Character {
	n, nl, ne := g.sz.Characters, len(locs), len(eps)
	chars := make([]rickmorty.Character, n)
	if n == 0 {
		return chars
	}
	status := g.quotas(n, []string{"Alive", "Dead", "unknown"}, []int{0, quota(287, 826, n), quota(100, 826, n)})
	gender := g.quotas(n, []string{"Male", "Female", "unknown", "Genderless"}, []int{0, quota(148, 826, n), quota(49, 826, n), quota(19, 826, n)})
	emptyType := g.chosen(n, quota(401, 826, n))
	unknownOrigin := g.chosen(n, quota(300, 826, n))
	unknownLoc := g.chosen(n, quota(21, 826, n))
	apostrophe := g.chosen(n, quota(14, 826, n))
	martinez := scaled(180, 826, n)
	reserve(apostrophe, 0, 1, 2, 3, 4, martinez-1) // their names are fixed below

	// The quirky characters: x (real 125) disagrees with its episodes and
	// its location; y (real 663) is listed by an episode it does not list.
	x := scaled(125, 826, n)
	y := scaled(663, 826, n)
	if y == x {
		y = x%n + 1
	}
	if unknownLoc[x-1] && nl > 0 { // x needs a location to be missing from
		unknownLoc[x-1] = false
		for i := range unknownLoc {
			if !unknownLoc[i] && i != x-1 {
				unknownLoc[i] = true
				break
			}
		}
	}

	t := time.Date(2017, 11, 4, 18, 48, 46, 250e6, time.UTC)
	for i := range chars {
		id := i + 1
		name := g.pick(firstNames) + " " + g.pick(lastNames)
		if apostrophe[i] {
			name = g.pick(firstNames) + "’s " + g.pick(relations)
		}
		typ := ""
		if !emptyType[i] {
			typ = g.pick(characterTypes)
		}
		origin := rickmorty.Ref{Name: "unknown", URL: ""}
		if !unknownOrigin[i] && nl > 0 {
			l := locs[g.intn(nl)]
			origin = rickmorty.Ref{Name: l.Name, URL: l.URL}
		}
		chars[i] = rickmorty.Character{
			ID:       id,
			Name:     name,
			Status:   status[i],
			Species:  g.weighted(species),
			Type:     typ,
			Gender:   gender[i],
			Origin:   origin,
			Location: rickmorty.Ref{Name: "unknown", URL: ""},
			Image:    rickmorty.ResourceURL(g.base, rickmorty.ResourceCharacter) + fmt.Sprintf("/avatar/%d.jpeg", id),
			Episode:  g.appearances(id, ne),
			URL:      rickmorty.ItemURL(g.base, rickmorty.ResourceCharacter, id),
			Created:  stamp(t),
		}
		t = t.Add(time.Duration(10+g.intn(2400))*time.Second + time.Duration(g.intn(1000))*time.Millisecond)
	}
	for i, main := range []string{"Rick Sanchez", "Morty Smith", "Summer Smith", "Beth Smith", "Jerry Smith"} {
		if i < n {
			chars[i].Name = main
		}
	}
	chars[martinez-1].Name = g.pick(firstNames) + " Martínez"

	g.place(chars, locs, unknownLoc, x)

	// Episodes list the characters that list them, then the disagreements.
	var extra []string // x's episodes that do not list x
	if ne > 0 {
		ep := scaled(10, 51, ne)
		yEps := chars[y-1].Episode
		if yEps = slices.DeleteFunc(yEps, func(u string) bool { return u == eps[ep-1].URL }); len(yEps) == 0 && ne > 1 {
			yEps = []string{eps[ep%ne].URL}
		}
		chars[y-1].Episode = yEps
		if x != y {
			have := map[string]bool{}
			for _, u := range chars[x-1].Episode {
				have[u] = true
			}
			for _, step := range []int{3, 1} {
				for k := 0; k < ne && len(extra) < 2; k++ {
					if u := eps[(scaled(18, 51, ne)-1+k*step)%ne].URL; !have[u] {
						have[u] = true
						extra = append(extra, u)
					}
				}
			}
		}
		for _, c := range chars {
			for _, u := range c.Episode {
				if _, id, ok := rickmorty.ParseURL(u); ok {
					eps[id-1].Characters = append(eps[id-1].Characters, c.URL)
				}
			}
		}
		if x != y {
			eps[ep-1].Characters = append(eps[ep-1].Characters, chars[y-1].URL)
		}
		if len(extra) > 0 {
			xe := append(chars[x-1].Episode, extra...)
			slices.SortFunc(xe, byID)
			chars[x-1].Episode = xe
		}
	}
	for _, i := range g.unsortable(len(eps), func(i int) []string { return eps[i].Characters }, quota(12, 51, ne)) {
		g.unsort(eps[i].Characters)
	}
	for _, i := range g.unsortable(len(locs), func(i int) []string { return locs[i].Residents }, quota(7, 126, nl)) {
		g.unsort(locs[i].Residents)
	}
	return chars
}

// appearances picks the episodes character id appears in, sorted by id.
func (g *gen) appearances(id, ne int) []string {
	k := 0
	switch {
	case ne == 0:
	case id <= 2:
		k = ne
	case id <= 5:
		k = ne * (7 + g.intn(3)) / 10
	default:
		k = []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 3, 4 + g.intn(5)}[g.intn(20)]
	}
	k = max(1, min(k, ne))
	if ne == 0 {
		return []string{}
	}
	ids := g.perm(ne)[:k]
	slices.Sort(ids)
	out := make([]string, k)
	for i, e := range ids {
		out[i] = rickmorty.ItemURL(g.base, rickmorty.ResourceEpisode, e+1)
	}
	return out
}

// place sets each character's location and each location's residents:
// a quota of locations stays uninhabited (residents []), every other one
// gets at least one resident, early locations get more (like Earth), and
// character x is left out of its location's residents.
func (g *gen) place(chars []rickmorty.Character, locs []rickmorty.Location, unknown []bool, x int) {
	nl := len(locs)
	if nl == 0 {
		return
	}
	empty := g.chosen(nl, quota(32, 126, nl))
	xLoc := scaled(35, 126, nl)
	empty[xLoc-1] = false
	var inhabited []int
	for i := range locs {
		if !empty[i] {
			inhabited = append(inhabited, i)
		}
	}
	var movers []int // characters with a known location, but x
	for i := range chars {
		if !unknown[i] && i != x-1 {
			movers = append(movers, i)
		}
	}
	g.shuffle(len(movers), func(i, j int) { movers[i], movers[j] = movers[j], movers[i] })
	where := make([]int, len(chars))
	for i := range where {
		where[i] = -1
	}
	for k, c := range movers {
		if k < len(inhabited) {
			where[c] = inhabited[k]
		} else {
			u := g.float()
			where[c] = inhabited[int(u*u*float64(len(inhabited)))]
		}
	}
	if !unknown[x-1] {
		where[x-1] = xLoc - 1
	}
	for i, l := range where {
		if l < 0 {
			continue
		}
		chars[i].Location = rickmorty.Ref{Name: locs[l].Name, URL: locs[l].URL}
		if i != x-1 {
			locs[l].Residents = append(locs[l].Residents, chars[i].URL)
		}
	}
}

// unsortable picks k of n lists holding at least three URLs.
func (g *gen) unsortable(n int, list func(int) []string, k int) []int {
	var out []int
	for _, i := range g.perm(n) {
		if len(out) == k {
			break
		}
		if len(list(i)) >= 3 {
			out = append(out, i)
		}
	}
	return out
}

// unsort moves the last URL to an earlier position, as the API's arrays
// look where an item was linked after the fact.
func (g *gen) unsort(urls []string) {
	last := urls[len(urls)-1]
	at := g.intn(len(urls) - 1)
	copy(urls[at+1:], urls[at:len(urls)-1])
	urls[at] = last
}

func byID(a, b string) int {
	_, i, _ := rickmorty.ParseURL(a)
	_, j, _ := rickmorty.ParseURL(b)
	return i - j
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// rng is splitmix64: tiny, and its sequence is fixed forever (math/rand's
// helpers may change between Go releases, which would change the data).
type rng struct{ s uint64 }

func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// unit maps a random word to [0, 1).
func unit(u uint64) float64 { return float64(u>>11) / (1 << 53) }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	return mix(r.s)
}

func (r *rng) float() float64 { return unit(r.next()) }

func (r *rng) intn(n int) int { return int(r.next() % uint64(n)) }

func (r *rng) pick(list []string) string { return list[r.intn(len(list))] }

func (r *rng) shuffle(n int, swap func(i, j int)) {
	for i := n - 1; i > 0; i-- {
		swap(i, r.intn(i+1))
	}
}

func (r *rng) perm(n int) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	r.shuffle(n, func(i, j int) { p[i], p[j] = p[j], p[i] })
	return p
}

// weighted picks a value with probability proportional to its weight.
func (r *rng) weighted(choices []weight) string {
	total := 0
	for _, c := range choices {
		total += c.n
	}
	k := r.intn(total)
	for _, c := range choices {
		if k < c.n {
			return c.value
		}
		k -= c.n
	}
	return choices[len(choices)-1].value
}

type weight struct {
	value string
	n     int
}

var (
	firstNames = []string{"Abadango", "Abradolf", "Adjudicator", "Alan", "Albert", "Alexander", "Amish", "Annie",
		"Antenna", "Anthony", "Baby", "Beebo", "Ben", "Bepisian", "Blim", "Bobby", "Brad", "Centaur", "Chris",
		"Cornvelious", "Cousin", "Cynthia", "Dale", "Davin", "Diane", "Eli", "Ethan", "Frank", "Gar", "Gene",
		"Glenn", "Gwendolyn", "Hamurai", "Jacob", "Jessica", "Joyce", "Karen", "Kevin", "King", "Krombopulos",
		"Nancy", "Noob-Noob", "Pencilvester", "Poncho", "Principal", "Revolio", "Scroopy", "Squanchy", "Stacy",
		"Tammy", "Toxic", "Unity", "Veronica", "Zeep", "Mr.", "Ms.", "Dr.", "Evil", "Cop", "Doofus", "Fascist"}
	lastNames = []string{"Sanchez", "Smith", "Goldenfold", "Vanderwhite", "Gueterman", "Poopybutthole",
		"Squanch", "Nooblenoob", "Clockberg", "Shmlangelo", "Hamburger", "Flippy", "Glootie", "Lincler",
		"Gearhead", "Gromflomite", "Jaguar", "Plumbus", "Wong", "Gazorpazorp", "Zigerion", "Blamph", "Tinkles",
		"Crumbs", "McGillicutty", "Fuller", "Pickle", "Mantis", "Rick", "Morty", "Clone", "Prime"}
	relations      = []string{"Clone", "Lawyer", "Wife", "Partner", "Daughter", "Disguise", "Father-in-law", "Mother-in-law", "Girlfriend", "Larvae"}
	characterTypes = []string{"Soulless Puppet", "Decoy", "Parasite", "Snake", "Narnian", "Clone", "Demon",
		"Genetic experiment", "Superhuman", "Fish-Person", "Cat-Person", "Gazorpian", "Robot-Crocodile hybrid",
		"Bird-Person", "Cromulon", "Lizard-Person", "Human with antennae", "Gromflomite", "Zigerion", "Traflorkian"}
	species = []weight{{"Human", 366}, {"Alien", 205}, {"Humanoid", 68}, {"Animal", 55}, {"Robot", 51},
		{"Mythological Creature", 46}, {"unknown", 13}, {"Poopybutthole", 8}, {"Cronenberg", 8}, {"Disease", 6}}
	placeA = []string{"Abadango", "Anatomy", "Bepis", "Bird", "Citadel of", "Cronenberg", "Froopy", "Gazorpazorp",
		"Gear", "Gromflom", "Immortality", "Interdimensional", "Larva", "Midland", "Nuptia", "Pawn", "Purge",
		"Signus", "Snake", "Squanch", "Venzenulon", "Zigerion", "Glorzo", "Plopstar", "Blips and", "Alphabetrium"}
	placeB = []string{"Prime", "World", "Park", "Station", "4", "5", "7", "9", "Cluster", "Sector", "Quadrant",
		"Nebula", "Colony", "Outpost", "Ricks", "Resort", "Land", "Hospital", "Lair", "Town"}
	locationTypes = []weight{{"Planet", 62}, {"Space station", 7}, {"Dimension", 4}, {"Microverse", 3},
		{"Diegesis", 3}, {"Dream", 2}, {"unknown", 2}, {"Spacecraft", 2}, {"Mount", 2}, {"Liquid", 2},
		{"Consciousness", 2}, {"Cluster", 1}, {"TV", 1}, {"Resort", 1}, {"Fantasy town", 1}, {"Menagerie", 1},
		{"Game", 1}, {"Customs", 1}, {"Daycare", 1}, {"Dwarf planet (Celestial Dwarf)", 1}, {"Arcade", 1},
		{"Nightmare", 1}, {"Quadrant", 1}, {"Reality", 1}, {"Woods", 1}, {"Memory", 1}, {"Base", 1},
		{"Asteroid", 1}, {"Machine", 1}, {"Convention", 1}, {"Miniverse", 1}, {"Teenyverse", 1}, {"Box", 1}}
	dimensions = []weight{{"Replacement Dimension", 57}, {"unknown", 29}, {"Dimension C-137", 5},
		{"Fantasy Dimension", 3}, {"Unknown dimension", 2}, {"Post-Apocalyptic Dimension", 1},
		{"Cronenberg Dimension", 1}, {"Dimension 5-126", 1}, {"Chair Dimension", 1}, {"Dimension C-35", 1},
		{"Cromulon Dimension", 1}, {"Merged Dimension", 1}, {"Wasp Dimension", 1}, {"Magic Dimension", 1},
		{"Pizza Dimension", 1}, {"Phone Dimension", 1}}
	episodeA = []string{"Rixty", "Mortynight", "Ricksy", "Total", "Auto", "Close", "Something", "Meeseeks",
		"Anatomy", "Raising", "Look Who's", "Vindicators", "Pickle", "Rest and", "Rickmancing", "Childrick",
		"Never Ricking", "Edge of", "Star", "Claw and", "Promortyus", "Rattlestar", "Mort Dinner", "Gotron",
		"Rickmurai", "Lawnmower", "Morty's", "Rickternal"}
	episodeB = []string{"Minutes", "Run", "Business", "Rickall", "Erotic", "Morty", "Stone", "Dog", "Park",
		"Rick", "Ricklantis", "Mixup", "Rickdemption", "Tomorty", "Spray", "Jack", "Ricks", "Hoarder",
		"Squanchy", "Wrangle", "Friendship", "Cycle", "Thanksploitation"}
)
