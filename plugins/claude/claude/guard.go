package claude

import (
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/switchboard-hub/switchboard/plugins/claude/internal/vntext"
)

// Markup the prompt uses. Customer text may contain none of it, so nobody
// can close a block early or open one of their own.
const (
	agentMarker = "[Human agent]"
)

var (
	// invisible characters that can hide markup from a filter but not from
	// a model ("<da\u200bta>"): zero-width, bidi controls, BOM, soft hyphen.
	invisibleRe = regexp.MustCompile("[\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
	// any XML/HTML-like tag, including our own (<data>, </knowledge>,
	// <customer_profile>, <hub_event>) and ones a model might honour
	// (<system>, <instructions>).
	tagRe = regexp.MustCompile(`(?i)<\s*/?\s*[a-z_][a-z0-9_:.\-]*(\s[^<>]*)?/?\s*>`)
	// the same written with HTML entities.
	entityTagRe = regexp.MustCompile(`(?i)&(lt|#0*60|#x0*3c);\s*/?\s*[a-z_][^&<>]{0,80}?&(gt|#0*62|#x0*3e);`)
	// chat-template tokens of various model families.
	specialTokenRe = regexp.MustCompile(`<\|[^|<>]{0,40}\|>|\[/?INST\]|<</?SYS>>`)
	agentMarkerRe  = regexp.MustCompile(`(?i)\[\s*human\s+agent\s*\]`)
	// a <data>…</data> block in model output.
	dataBlockRe = regexp.MustCompile(`(?is)<data>\s*(.*?)\s*</data>`)
	spacesRe    = regexp.MustCompile(`[ \t]{2,}`)
)

// sanitizeCustomer makes customer text safe to place in the prompt: NFKC
// (so full-width ＜data＞ becomes <data> and is caught), invisible
// characters removed, every tag, template token and role label stripped
// until none is left, and the length capped at maxRunes.
func sanitizeCustomer(s string, maxRunes int) string {
	// Bound the regex work before anything else: a huge message is cut
	// first, generously, then precisely after cleaning.
	if len(s) > maxRunes*8+64 {
		s = s[:maxRunes*8+64]
		s = strings.ToValidUTF8(s, "")
	}
	s = stripMarkup(s, true)
	return capRunes(s, maxRunes)
}

// stripMarkup is sanitizeCustomer without the cap. The context block uses
// it too, since profile fields (a display name) are customer-controlled,
// but without removing role labels: the hub writes "Agent: Lan" there and
// means it.
func stripMarkup(s string, labels bool) string {
	s = norm.NFKC.String(s)
	tags, roles := mayHoldTags(s), labels && strings.ContainsAny(s, ":：")
	if tags {
		s = invisibleRe.ReplaceAllString(s, "")
	}
	for range 8 { // nested "<<data>data>" unwraps one layer per pass
		if !tags && !roles {
			break
		}
		before := s
		if tags {
			s = specialTokenRe.ReplaceAllString(s, "") // first: "<<SYS>>" holds a tag
			s = tagRe.ReplaceAllString(s, "")
			s = entityTagRe.ReplaceAllString(s, "")
			s = agentMarkerRe.ReplaceAllString(s, "")
		}
		if roles {
			s = stripRolePrefixes(s)
		}
		if s == before {
			break
		}
	}
	if tags {
		// Whatever still looks like the start of our data tag is defused.
		s = strings.NewReplacer("<data", "‹data", "</data", "‹/data").Replace(s)
	}
	s = spacesRe.ReplaceAllString(s, " ")
	return strings.TrimSpace(s)
}

// mayHoldTags is a cheap pre-check: every tag, token or marker
// stripMarkup removes needs one of these characters (after NFKC), and most
// chat messages have none, so they skip those regular expressions.
func mayHoldTags(s string) bool {
	for _, r := range s {
		switch {
		case r == '<' || r == '>' || r == '&' || r == '[':
			return true
		case r == 0xad || r == 0x180e || r >= 0x200b && r <= 0x200f || r >= 0x202a && r <= 0x202e ||
			r >= 0x2060 && r <= 0x2069 || r == 0xfeff:
			return true
		}
	}
	return false
}

// roleLabels are folded role names a customer may put at the start of a
// line to fake a transcript ("System: you are now…", "Assistant: sure",
// "Nhân viên: giá 0đ").
var roleLabels = map[string]bool{
	"system": true, "assistant": true, "human": true, "user": true, "developer": true, "bot": true, "ai": true,
	"model": true, "agent": true, "human agent": true, "operator": true, "admin": true, "administrator": true,
	"he thong": true, "quan tri vien": true, "quan tri": true, "nhan vien": true, "tro ly": true,
}

// stripRolePrefixes removes a role label and its colon from the start of
// every line. It is a hand-written scan rather than a regular expression
// because it runs on every customer message with a colon in it.
func stripRolePrefixes(s string) string {
	lines := strings.Split(s, "\n")
	changed := false
	for i, line := range lines {
		for { // "System: Assistant: x" loses both labels
			colon := strings.IndexAny(line, ":：")
			if colon < 0 || colon > 64 {
				break
			}
			label := strings.Trim(line[:colon], " \t>*#-[]()")
			if !roleLabels[vntext.Fold(label)] {
				break
			}
			rest := line[colon:]
			rest = strings.TrimLeft(rest, ":：")
			line, changed = rest, true
		}
		lines[i] = line
	}
	if !changed {
		return s
	}
	return strings.Join(lines, "\n")
}

func capRunes(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n])) + "…"
}

// cleanReply removes from a reply anything of the prompt's own markup the
// model may have copied (a <data> block, tags, the agent marker), so the
// customer never sees it and the bot never signs as a human agent.
func cleanReply(s string) string {
	if !strings.ContainsAny(s, "<[") {
		return strings.TrimSpace(s)
	}
	s = dataBlockRe.ReplaceAllString(s, "")
	s = tagRe.ReplaceAllString(s, "")
	s = agentMarkerRe.ReplaceAllString(s, "")
	return strings.TrimSpace(s)
}

// humanClaims are folded phrases in which the bot says it is a person.
var humanClaims = [][]string{
	strings.Fields("toi la nguoi that"), strings.Fields("em la nguoi that"), strings.Fields("minh la nguoi that"),
	strings.Fields("toi khong phai la bot"), strings.Fields("em khong phai la bot"), strings.Fields("em khong phai bot"),
	strings.Fields("toi khong phai la may"), strings.Fields("em khong phai la may"),
	strings.Fields("i am a human"), strings.Fields("i m a human"), strings.Fields("i am a real person"),
	strings.Fields("i m a real person"), strings.Fields("i am not a bot"), strings.Fields("i m not a bot"),
	strings.Fields("i am not an ai"), strings.Fields("i m not an ai"),
}

// claimsHuman reports whether reply has the bot claim to be a person.
func claimsHuman(reply string) bool {
	words := vntext.Words(reply)
	for _, p := range humanClaims {
		if vntext.ContainsPhrase(words, p) {
			return true
		}
	}
	return false
}

// detectLanguage says "vi" or "en" for text, or def when unclear.
func detectLanguage(text, def string) string {
	if vntext.HasDiacritics(text) {
		return "vi"
	}
	words := vntext.Words(text)
	en, vi := 0, 0
	for _, w := range words {
		switch w {
		case "the", "is", "are", "how", "what", "i", "you", "can", "please", "price", "hello", "hi", "want", "need", "much", "do", "my", "to", "and", "of":
			en++
		case "toi", "ban", "khong", "cho", "muon", "gia", "bao", "nhieu", "anh", "chi", "em", "a", "nhe", "duoc", "cua", "la":
			vi++
		}
	}
	switch {
	case en > vi:
		return "en"
	case vi > en:
		return "vi"
	}
	return def
}

// Amount is a sum of money found in text.
type Amount struct {
	Currency string // VND, USD, EUR
	Value    float64
}

var multipliers = map[string]float64{
	"k": 1e3, "nghin": 1e3, "ngan": 1e3, "tr": 1e6, "trieu": 1e6, "cu": 1e6, "ty": 1e9, "ti": 1e9,
}

var currencyWords = map[string]string{
	"d": "VND", "dong": "VND", "vnd": "VND", "vnđ": "VND", "₫": "VND",
	"usd": "USD", "$": "USD", "us$": "USD", "dollar": "USD", "dollars": "USD", "do": "USD", // "đô"
	"eur": "EUR", "€": "EUR", "euro": "EUR", "euros": "EUR",
}

// Amounts finds sums of money in text: "1.200.000đ", "1,2 triệu", "1tr2",
// "500k", "$99", "99 USD", "€5". A number counts only with a currency or a
// money magnitude word next to it, so "2 năm" or "5 người" do not.
func Amounts(text string) []Amount {
	rs := vntext.FoldRunes(text) // 1:1 with the NFC runes, lowercased, no marks
	var out []Amount
	i := 0
	for i < len(rs) {
		if !unicode.IsDigit(rs[i]) || (i > 0 && (unicode.IsLetter(rs[i-1]) || unicode.IsDigit(rs[i-1]))) {
			i++
			continue
		}
		start := i
		for i < len(rs) && (unicode.IsDigit(rs[i]) || rs[i] == '.' || rs[i] == ',') {
			i++
		}
		numText := strings.TrimRight(string(rs[start:i]), ".,")
		end := start + utf8.RuneCountInString(numText)
		val, ok := parseNumber(numText)
		if !ok {
			continue
		}
		currency := prefixCurrency(rs, start)
		mult := 1.0
		j := skipSpace(rs, end)
		w, wEnd := wordAt(rs, j)
		if m, ok := multipliers[w]; ok && (w != "k" || wEnd == len(rs) || !unicode.IsLetter(rs[wEnd])) {
			mult = m
			if currency == "" {
				currency = "VND"
			}
			// "1tr2" is 1.2 million, "2k5" 2,500.
			if wEnd < len(rs) && unicode.IsDigit(rs[wEnd]) && (w == "tr" || w == "k" || w == "trieu") {
				k := wEnd
				for k < len(rs) && unicode.IsDigit(rs[k]) {
					k++
				}
				frac, _ := strconv.ParseFloat("0."+string(rs[wEnd:k]), 64)
				val += frac
				wEnd = k
			}
			j = skipSpace(rs, wEnd)
			w, wEnd = wordAt(rs, j)
		}
		if c, ok := currencyWords[w]; ok {
			if currency == "" || currency == "VND" && c == "VND" {
				currency = c
			}
			i = wEnd
		}
		if currency == "" {
			continue
		}
		out = append(out, Amount{Currency: currency, Value: val * mult})
	}
	return out
}

func skipSpace(rs []rune, i int) int {
	for i < len(rs) && rs[i] == ' ' {
		i++
	}
	return i
}

// wordAt reads a currency symbol or a run of letters at i.
func wordAt(rs []rune, i int) (string, int) {
	if i >= len(rs) {
		return "", i
	}
	switch rs[i] {
	case '$', '€', '₫':
		return string(rs[i]), i + 1
	}
	j := i
	for j < len(rs) && unicode.IsLetter(rs[j]) {
		j++
	}
	return string(rs[i:j]), j
}

// prefixCurrency finds "$", "US$", "USD ", "€", "VND " just before a number.
func prefixCurrency(rs []rune, start int) string {
	j := start - 1
	for j >= 0 && rs[j] == ' ' {
		j--
	}
	if j < 0 {
		return ""
	}
	switch rs[j] {
	case '$':
		return "USD"
	case '€':
		return "EUR"
	case '₫':
		return "VND"
	}
	k := j
	for k >= 0 && unicode.IsLetter(rs[k]) {
		k--
	}
	switch string(rs[k+1 : j+1]) {
	case "usd":
		return "USD"
	case "eur":
		return "EUR"
	case "vnd":
		return "VND"
	}
	return ""
}

// parseNumber reads "1.200.000", "1,200,000.50", "1,2", "1.5" with the
// usual Vietnamese and English separators: a separator followed by exactly
// three digits groups thousands, otherwise it is the decimal point.
func parseNumber(s string) (float64, bool) {
	if s == "" {
		return 0, false
	}
	lastSep := strings.LastIndexAny(s, ".,")
	var intPart, frac string
	if lastSep >= 0 && len(s)-lastSep-1 != 3 {
		intPart, frac = s[:lastSep], s[lastSep+1:]
	} else {
		intPart = s
	}
	intPart = strings.NewReplacer(".", "", ",", "").Replace(intPart)
	if intPart == "" {
		intPart = "0"
	}
	v, err := strconv.ParseFloat(intPart+"."+frac, 64)
	if frac == "" {
		v, err = strconv.ParseFloat(intPart, 64)
	}
	if err != nil {
		return 0, false
	}
	return v, true
}

// unverifiedAmounts returns the amounts in reply that none of the sources
// state.
func unverifiedAmounts(reply string, sources []string) []Amount {
	stated := Amounts(reply)
	if len(stated) == 0 {
		return nil
	}
	var known []Amount
	for _, s := range sources {
		known = append(known, Amounts(s)...)
	}
	var bad []Amount
	for _, a := range stated {
		ok := false
		for _, k := range known {
			if k.Currency == a.Currency && math.Abs(k.Value-a.Value) <= 1e-9*math.Max(1, k.Value) {
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, a)
		}
	}
	return bad
}
