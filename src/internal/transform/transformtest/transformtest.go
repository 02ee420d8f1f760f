// Package transformtest generates large, API-shaped raw objects for tests
// and benchmarks of the transform, streamed rather than held in memory.
package transformtest

import (
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// CharacterPage returns a reader of one page ({"info":...,"results":[...]})
// of generated characters, at least size bytes long: deterministic, valid,
// with the API's quirks (unknown origins with url "", empty types, non-ASCII
// names, unsorted episode lists). It is generated as it is read.
func CharacterPage(size int64) io.Reader {
	return &pageReader{size: size}
}

type pageReader struct {
	size    int64
	emitted int64
	n       int
	buf     bytes.Buffer
	done    bool
}

const api = "https://rickandmortyapi.com/api"

func (r *pageReader) Read(p []byte) (int, error) {
	for r.buf.Len() == 0 {
		if r.done {
			return 0, io.EOF
		}
		r.fill()
	}
	n, _ := r.buf.Read(p)
	r.emitted += int64(n)
	return n, nil
}

var names = []string{"Zeb Quorl", "Mina Fax’s Clone", "Sector ζ Drifter", "Ángel Gómez", `Dr. "Bolt", Jr.`, "Qix"}
var statuses = []string{"Alive", "Dead", "unknown"}
var genders = []string{"Male", "Female", "unknown", "Genderless"}

func (r *pageReader) fill() {
	b := &r.buf
	if r.n == 0 {
		b.WriteString(`{"info":{"count":0,"pages":1,"next":null,"prev":null},"results":[`)
	}
	if r.emitted+int64(b.Len()) >= r.size && r.n > 0 {
		b.WriteString("]}")
		r.done = true
		return
	}
	r.n++
	id := r.n
	if id > 1 {
		b.WriteByte(',')
	}
	name := names[id%len(names)]
	fmt.Fprintf(b, `{"id":%d,"name":%s,"status":%q,"species":"Human","type":%q,"gender":%q,`,
		id, strconv.Quote(name), statuses[id%3], map[bool]string{true: "", false: "Parasite"}[id%2 == 0], genders[id%4])
	if id%3 == 0 {
		b.WriteString(`"origin":{"name":"unknown","url":""},`)
	} else {
		fmt.Fprintf(b, `"origin":{"name":"Gloop Prime","url":"%s/location/%d"},`, api, 1+id%126)
	}
	if id%7 == 0 {
		b.WriteString(`"location":{"name":"unknown","url":""},`)
	} else {
		fmt.Fprintf(b, `"location":{"name":"Citadel","url":"%s/location/%d"},`, api, 1+(id*7)%126)
	}
	fmt.Fprintf(b, `"image":"%s/character/avatar/%d.jpeg","episode":[`, api, id)
	eps := 1 + id%41
	for i := 0; i < eps; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(b, `"%s/episode/%d"`, api, 1+(id*13+i*7)%51)
	}
	fmt.Fprintf(b, `],"url":"%s/character/%d","created":"2017-11-04T18:48:46.%03dZ"}`, api, id, id%1000)
}

// Records returns how many characters a page of size bytes from
// CharacterPage holds (by generating it).
func Records(size int64) int {
	r := &pageReader{size: size}
	_, _ = io.Copy(io.Discard, r)
	return r.n
}
