package sqlcrm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/switchboard-hub/switchboard/plugins/sdk"
)

// Identity rows use these channels for phones and emails, so one unique
// (channel, user_id) constraint makes a phone, an email and a channel id
// each belong to at most one contact.
const (
	chanPhone = "phone"
	chanEmail = "email"
)

// identityKey is one normalized way to recognise a person: a row of the
// identities table.
type identityKey struct {
	Channel     string
	Value       string
	DisplayName string
	Instance    string
}

// Errors below never quote the offending value: phones and emails are
// customer PII and errors end up in the hub's logs.
var (
	errPhoneFormat = errors.New("phone number is not a valid international number")
	errPhoneNation = errors.New("phone number is in national format and no default_country_code is configured")
	errEmailFormat = errors.New("email address is malformed")
)

// normalizePhone returns the E.164 form of p. Separators are dropped; "00"
// is an international prefix; a leading "0" is a national trunk prefix
// replaced by cc; bare digits are taken to start with a country code, which
// is how WhatsApp ids and most APIs spell numbers.
func normalizePhone(p, cc string) (string, error) {
	var b strings.Builder
	for i, r := range strings.TrimSpace(p) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == '+' && i == 0:
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\u00a0':
		default:
			return "", errPhoneFormat
		}
	}
	digits := b.String()
	plus := strings.HasPrefix(strings.TrimSpace(p), "+")
	switch {
	case plus:
	case strings.HasPrefix(digits, "00"):
		digits = digits[2:]
	case strings.HasPrefix(digits, "0"):
		if cc == "" {
			return "", errPhoneNation
		}
		digits = cc + digits[1:]
	}
	// E.164 allows at most 15 digits; fewer than 8 is no subscriber number.
	if len(digits) < 8 || len(digits) > 15 || digits[0] == '0' {
		return "", errPhoneFormat
	}
	return "+" + digits, nil
}

// normalizeEmail lower-cases the whole address: mailbox local parts are
// case-sensitive in theory and never in practice, and two spellings of one
// address must not make two contacts.
func normalizeEmail(e string) (string, error) {
	e = strings.ToLower(strings.TrimSpace(e))
	at := strings.IndexByte(e, '@')
	if at <= 0 || at != strings.LastIndexByte(e, '@') || at == len(e)-1 ||
		strings.ContainsAny(e, " \t\r\n<>,;\"") || len(e) > 320 {
		return "", errEmailFormat
	}
	return e, nil
}

func normalizeChannel(c string) string { return strings.ToLower(strings.TrimSpace(c)) }

// keySet collects identity keys without duplicates, keeping the first
// display name seen for each.
type keySet struct {
	cc   string
	keys []identityKey
	seen map[[2]string]int
}

func (s *keySet) add(channel, value, name, instance string) {
	k := [2]string{channel, value}
	if s.seen == nil {
		s.seen = map[[2]string]int{}
	}
	if i, ok := s.seen[k]; ok {
		if s.keys[i].DisplayName == "" {
			s.keys[i].DisplayName = name
		}
		if s.keys[i].Instance == "" {
			s.keys[i].Instance = instance
		}
		return
	}
	s.seen[k] = len(s.keys)
	s.keys = append(s.keys, identityKey{Channel: channel, Value: value, DisplayName: name, Instance: instance})
}

func (s *keySet) addPhone(p string) (string, error) {
	if strings.TrimSpace(p) == "" {
		return "", nil
	}
	n, err := normalizePhone(p, s.cc)
	if err != nil {
		return "", err
	}
	s.add(chanPhone, n, "", "")
	return n, nil
}

func (s *keySet) addEmail(e string) (string, error) {
	if strings.TrimSpace(e) == "" {
		return "", nil
	}
	n, err := normalizeEmail(e)
	if err != nil {
		return "", err
	}
	s.add(chanEmail, n, "", "")
	return n, nil
}

// addIdentity adds every key an identity carries: its channel user id, and
// its phone and email, each of which identifies the person on its own.
func (s *keySet) addIdentity(id sdk.Identity) error {
	ch := normalizeChannel(id.Channel)
	uid := strings.TrimSpace(id.UserID)
	name := strings.TrimSpace(id.DisplayName)
	switch {
	case ch == chanPhone && uid != "":
		if _, err := s.addPhone(uid); err != nil {
			return err
		}
	case ch == chanEmail && uid != "":
		if _, err := s.addEmail(uid); err != nil {
			return err
		}
	case uid != "":
		if ch == "" {
			return fmt.Errorf("identity user id has no channel")
		}
		s.add(ch, uid, name, strings.TrimSpace(id.Instance))
	}
	if _, err := s.addPhone(id.Phone); err != nil {
		return err
	}
	_, err := s.addEmail(id.Email)
	return err
}

// identityFromKey turns an identities row back into the SDK's shape.
func identityFromKey(k identityKey) sdk.Identity {
	switch k.Channel {
	case chanPhone:
		return sdk.Identity{Channel: chanPhone, Phone: k.Value}
	case chanEmail:
		return sdk.Identity{Channel: chanEmail, Email: k.Value}
	}
	return sdk.Identity{Channel: k.Channel, UserID: k.Value, DisplayName: k.DisplayName, Instance: k.Instance}
}
