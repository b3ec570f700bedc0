package rules

import (
	"bytes"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Text matching is the bulk of a typical rule set ("does the message say any
// of these twenty phrases"). Run as expr operators, each phrase costs a
// reflective field load and two nil checks; so the compiler turns every
// constant phrase list matched against a string field into a match slot,
// computed here in plain Go once per evaluation, and the expression reads
// the result (Env.M). Each field is normalized once, into one stack buffer.

// textForm is a normalized form of a text.
type textForm uint8

const (
	formFold  textForm = iota // Fold: lowercase, no diacritics
	formWords                 // Words: folded, punctuation → single spaces, padded
	formExact                 // exactWords: lowercase with diacritics, punctuation → spaces, padded
	numForms
)

func appendForm(dst []byte, s string, f textForm) []byte {
	switch f {
	case formWords:
		return appendWords(dst, s)
	case formExact:
		return appendExactWords(dst, s)
	}
	return appendFold(dst, s)
}

// normalizeNeedle puts a phrase in the form of the text it is looked for in.
// Word forms lose their leading space: a match must then start at a word
// boundary, which matchWords checks; searching for a leading space would
// try every space of the text.
func normalizeNeedle(s string, f textForm) string {
	n := string(appendForm(nil, s, f))
	if f != formFold {
		n = strings.TrimPrefix(n, " ")
	}
	return n
}

// appendExactWords is appendWords without removing diacritics: only case is
// ignored, so "gấp" (urgent) does not match "gặp" (meet). The text is first
// composed (NFC), so decomposed input matches composed phrases.
func appendExactWords(dst []byte, s string) []byte {
	if hasCombining(s) {
		s = norm.NFC.String(s)
	}
	dst = append(dst, ' ')
	space := true
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.Mn, r) {
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			space = false
		} else if !space {
			dst = append(dst, ' ')
			space = true
		}
	}
	if !space {
		dst = append(dst, ' ')
	}
	return dst
}

// hasCombining reports whether s holds a combining diacritic (U+0300 to
// U+036F, encoded 0xCC 0x80 to 0xCD 0xAF): only then can composing change
// how Vietnamese text compares. Cheaper than norm's full check.
func hasCombining(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if c := s[i]; c == 0xCC || c == 0xCD && s[i+1] <= 0xAF {
			return true
		}
	}
	return false
}

// fieldSlot is one string field the rules normalize.
type fieldSlot struct {
	field stringField
	forms [numForms]bool // forms to build
	read  bool           // expressions read the folded text (Env.F)
}

// matchDef is one precomputed match: a phrase list against a field's form,
// or (blank) whether the field has no word at all.
type matchDef struct {
	slot    int
	form    textForm
	blank   bool
	needles []string
}

// wordGroup matches every word-form phrase list on one field form in a
// single pass over the text's words: each word is hashed and looked up among
// the phrases' first words, so the cost follows the text's length, not the
// number of phrases.
type wordGroup struct {
	slot  int
	form  textForm
	bloom [4]uint64         // bit (hash & 255) set for every first word
	first map[uint64][]cand // first-word hash → phrases starting with it
}

type cand struct {
	k      int    // match slot
	needle string // the whole phrase, trailing space included
}

func wordHash(w []byte) uint64 {
	h := uint64(14695981039346656037) // FNV-1a
	for _, c := range w {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// groupMatches builds the word groups of a rule set's matches.
func groupMatches(matches []matchDef) []wordGroup {
	var gs []wordGroup
	for k, m := range matches {
		if m.blank || m.form == formFold {
			continue
		}
		gi := slices.IndexFunc(gs, func(g wordGroup) bool { return g.slot == m.slot && g.form == m.form })
		if gi < 0 {
			gs = append(gs, wordGroup{slot: m.slot, form: m.form, first: map[uint64][]cand{}})
			gi = len(gs) - 1
		}
		g := &gs[gi]
		for _, n := range m.needles {
			w, _, _ := strings.Cut(n, " ")
			h := wordHash([]byte(w))
			g.bloom[h&255>>6] |= 1 << (h & 63)
			g.first[h] = append(g.first[h], cand{k, n})
		}
	}
	return gs
}

// eval sets the matches of the group found in t (a padded word form),
// hashing each word as it scans.
func (g *wordGroup) eval(t []byte, out *[matchSlots]bool) {
	const offset = 14695981039346656037
	h, start := uint64(offset), 1
	for p := 1; p < len(t); p++ {
		c := t[p]
		if c != ' ' {
			h = (h ^ uint64(c)) * 1099511628211
			continue
		}
		if g.bloom[h&255>>6]&(1<<(h&63)) != 0 {
			for _, cd := range g.first[h] {
				if !out[cd.k] && len(t)-start >= len(cd.needle) && string(t[start:start+len(cd.needle)]) == cd.needle {
					out[cd.k] = true
				}
			}
		}
		h, start = offset, p+1
	}
}

// evalOne evaluates a match on its own: blank checks, substring (fold)
// lists, and lists only known at run time.
func (m *matchDef) evalOne(t []byte) bool {
	if m.blank {
		return len(t) <= 1 // the words form of a text with no word is " "
	}
	for _, n := range m.needles {
		if m.form == formFold && bytesContains(t, n) || m.form != formFold && matchWords(t, n) {
			return true
		}
	}
	return false
}

// matchWords finds needle (a word form without its leading space) at a word
// boundary in t (a padded word form).
func matchWords(t []byte, needle string) bool {
	for from := 0; ; {
		i := bytesIndex(t[from:], needle)
		if i < 0 {
			return false
		}
		if at := from + i; at > 0 && t[at-1] == ' ' {
			return true
		}
		from += i + 1
	}
}

// bytesIndex is bytes.Index for a string needle without converting it.
func bytesIndex(b []byte, sub string) int {
	n := len(sub)
	if n == 0 {
		return 0
	}
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], sub[0])
		if i < 0 {
			return -1
		}
		at := off + i
		if len(b)-at < n {
			return -1
		}
		if string(b[at:at+n]) == sub {
			return at
		}
		off = at + 1
	}
}

// bytesContains reports whether sub is in b.
func bytesContains(b []byte, sub string) bool { return bytesIndex(b, sub) >= 0 }

// matchText normalizes text and matches needles (already normalized): the
// run-time path, for lists or fields only known when the rule runs.
func matchText(text string, needles []string, f textForm) bool {
	var stack [512]byte
	m := matchDef{form: f, needles: needles}
	return m.evalOne(appendForm(stack[:0], text, f))
}

type rng struct{ from, to int }

// fillEnv copies the input into e and computes the field forms and matches
// the rules read.
func (rs *Ruleset) fillEnv(e *Env, in *Input) {
	e.Message, e.Contact, e.Lead, e.Conversation = in.Message, in.Contact, in.Lead, in.Conversation
	e.Text, e.Intent, e.Action = in.Message.Text, in.Lead.Intent, in.Lead.Action
	e.Now = in.Now
	if e.Now.IsZero() {
		e.Now = time.Now()
	}
	if len(rs.slots) == 0 {
		return
	}
	var at [fieldSlots][numForms]rng
	var stack [2048]byte
	buf := stack[:0]
	for i := range rs.slots {
		s := &rs.slots[i]
		v := s.field.get(e)
		for f := textForm(0); f < numForms; f++ {
			if s.forms[f] {
				from := len(buf)
				buf = appendForm(buf, v, f)
				at[i][f] = rng{from, len(buf)}
			}
		}
		if s.read {
			if isFolded(v) {
				e.F[i] = v
			} else {
				r := at[i][formFold]
				e.F[i] = string(buf[r.from:r.to])
			}
		}
	}
	for k := range rs.matches {
		if m := &rs.matches[k]; m.blank || m.form == formFold {
			r := at[m.slot][m.form]
			e.M[k] = m.evalOne(buf[r.from:r.to])
		}
	}
	for i := range rs.groups {
		g := &rs.groups[i]
		r := at[g.slot][g.form]
		g.eval(buf[r.from:r.to], &e.M)
	}
}
