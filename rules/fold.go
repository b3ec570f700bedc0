package rules

import (
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// foldTable maps precomposed Latin letters (Vietnamese included) to their
// lowercase ASCII base letter; 0 means "no mapping". It is built once from
// the Unicode decompositions so that it is complete without a hand-typed table.
var foldTable [0x1F00]byte

func init() {
	add := func(lo, hi rune) {
		for r := lo; r < hi; r++ {
			d := norm.NFD.String(string(r))
			base, size := utf8.DecodeRuneInString(d)
			if base >= utf8.RuneSelf || !isASCIILetter(byte(base)) || size == len(d) {
				continue
			}
			onlyMarks := true
			for _, m := range d[size:] {
				if !unicode.Is(unicode.Mn, m) {
					onlyMarks = false
					break
				}
			}
			if onlyMarks {
				foldTable[r] = toLowerASCII(byte(base))
			}
		}
	}
	add(0xC0, 0x250)
	add(0x1E00, 0x1F00)
	// Letters with a stroke have no decomposition. U+00D0 (Eth) is often
	// typed by mistake for Đ, so it folds the same way.
	for _, r := range []rune{'đ', 'Đ', 'Ð'} {
		foldTable[r] = 'd'
	}
}

func isASCIILetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

func toLowerASCII(b byte) byte {
	if b >= 'A' && b <= 'Z' {
		return b + 'a' - 'A'
	}
	return b
}

// isCombining reports whether r is a combining diacritical mark. Text typed on
// some keyboards (and macOS file names) arrives decomposed (NFD), with the
// tone marks as separate code points; dropping them folds NFD and NFC alike.
func isCombining(r rune) bool { return r >= 0x300 && r < 0x370 }

// Fold lowercases s and removes diacritics, so that "Mua ngay TUẦN NÀY" and
// "mua ngay tuan nay" compare equal; "đ" becomes "d". Text that is already
// folded is returned as is, without allocating.
func Fold(s string) string {
	if isFolded(s) {
		return s
	}
	return string(appendFold(make([]byte, 0, len(s)), s))
}

// isFolded reports whether Fold(s) == s, cheaply: plain lowercase ASCII.
func isFolded(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= utf8.RuneSelf || (c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// appendFold appends the folded form of s to dst.
func appendFold(dst []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			dst = append(dst, toLowerASCII(c))
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r < rune(len(foldTable)) && foldTable[r] != 0:
			dst = append(dst, foldTable[r])
		case isCombining(r):
			// drop the mark
		default:
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
		}
	}
	return dst
}

// asciiWord maps an ASCII byte to itself lowercased when it is a letter or a
// digit, and to 0 when it separates words.
var asciiWord [utf8.RuneSelf]byte

func init() {
	for c := byte('0'); c <= '9'; c++ {
		asciiWord[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		asciiWord[c] = c
		asciiWord[c-'a'+'A'] = c
	}
}

// appendWords appends s folded, with every run of characters that are not
// letters or digits replaced by one space, and a space on each side:
// "Báo giá?!" gives " bao gia ". Matching " gia " in that form is matching a
// whole word.
func appendWords(dst []byte, s string) []byte {
	dst = append(dst, ' ')
	space := true
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			if w := asciiWord[c]; w != 0 {
				dst = append(dst, w)
				space = false
			} else if !space {
				dst = append(dst, ' ')
				space = true
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r < rune(len(foldTable)) && foldTable[r] != 0:
			dst = append(dst, foldTable[r])
			space = false
		case isCombining(r):
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			dst = utf8.AppendRune(dst, unicode.ToLower(r))
			space = false
		default:
			if !space {
				dst = append(dst, ' ')
				space = true
			}
		}
	}
	if !space {
		dst = append(dst, ' ')
	}
	return dst
}

// Words returns s in the form containsWord matches against: folded, with
// punctuation turned into single spaces and a space on each side.
func Words(s string) string { return string(appendWords(nil, s)) }
