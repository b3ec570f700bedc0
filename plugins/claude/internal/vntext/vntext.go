// Package vntext folds Vietnamese text for matching: customers type with or
// without diacritics ("bảo hành", "bao hanh"), so both sides of a match are
// lowercased and stripped of tone and vowel marks first.
package vntext

import (
	"strings"
	"unicode"

	"golang.org/x/text/unicode/norm"
)

const (
	tableLo = 0x00C0
	tableHi = 0x1EFF // end of Latin Extended Additional, where Vietnamese lives
)

// table maps each precomposed Latin letter to its lowercase base letter,
// computed once so Fold does no allocation per rune.
var table = func() []rune {
	t := make([]rune, tableHi-tableLo+1)
	for r := rune(tableLo); r <= tableHi; r++ {
		base := []rune(norm.NFD.String(string(r)))[0]
		switch base {
		case 'đ', 'Đ':
			base = 'd'
		}
		t[r-tableLo] = unicode.ToLower(base)
	}
	return t
}()

func foldRune(r rune) rune {
	switch {
	case r < 0x80:
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	case r >= tableLo && r <= tableHi:
		return table[r-tableLo]
	}
	return unicode.ToLower(r)
}

// FoldRunes returns the folded runes of s, one per rune of norm.NFC(s), so
// an index into the result is an index into []rune(NFC(s)).
func FoldRunes(s string) []rune {
	rs := []rune(norm.NFC.String(s))
	for i, r := range rs {
		rs[i] = foldRune(r)
	}
	return rs
}

// Fold lowercases s and removes Vietnamese diacritics: "Bảo Hành" → "bao hanh".
func Fold(s string) string {
	if isASCII(s) {
		return strings.ToLower(s)
	}
	return string(FoldRunes(s))
}

// HasDiacritics reports whether s contains a Latin letter with a mark, the
// cheap tell of Vietnamese text among our customers.
func HasDiacritics(s string) bool {
	for _, r := range norm.NFC.String(s) {
		if r >= tableLo && r <= tableHi && table[r-tableLo] != unicode.ToLower(r) {
			return true
		}
		if unicode.Is(unicode.Mn, r) {
			return true
		}
	}
	return false
}

// Words splits folded s into words of letters and digits.
func Words(s string) []string {
	return strings.FieldsFunc(Fold(s), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
}

// ContainsPhrase reports whether the word sequence phrase occurs in words.
func ContainsPhrase(words, phrase []string) bool {
	return IndexPhrase(words, phrase) >= 0
}

// IndexPhrase returns the index of the first occurrence of phrase in words,
// or -1.
func IndexPhrase(words, phrase []string) int {
	if len(phrase) == 0 {
		return -1
	}
outer:
	for i := 0; i+len(phrase) <= len(words); i++ {
		for j, p := range phrase {
			if words[i+j] != p {
				continue outer
			}
		}
		return i
	}
	return -1
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
