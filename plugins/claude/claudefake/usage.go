package claudefake

import (
	"crypto/sha256"
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

type cacheEntry struct {
	tokens  int64
	expires time.Time
}

// minCacheTokens is the smallest prefix a model caches (reference §4); a
// shorter prefix is accepted and simply not cached.
var minCacheTokens = []struct {
	prefix string
	tokens int64
}{
	{"claude-haiku-4-5", 4096}, {"claude-opus-4-5", 4096}, {"claude-opus-4-6", 4096},
	{"claude-sonnet-4-6", 2048}, {"claude-opus-4-7", 2048}, {"claude-3", 2048},
	{"claude-sonnet-5", 512}, {"claude-opus-5", 512}, {"claude-haiku-5", 512},
}

func (s *Server) minTokens(model string) int64 {
	if s.cacheMin >= 0 {
		return s.cacheMin
	}
	for _, m := range minCacheTokens {
		if strings.HasPrefix(model, m.prefix) {
			return m.tokens
		}
	}
	return 1024
}

// estimateTokens is a rough count (about four characters a token) that is
// stable, which is all the fake needs.
func estimateTokens(s string) int64 {
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return 0
	}
	return int64(n+3) / 4
}

// breakpoint is a cache_control mark: the prefix up to it, as a hash and a
// token count.
type breakpoint struct {
	hash   string
	tokens int64
	ttl    time.Duration
}

// usage counts the request's tokens and simulates prompt caching: the
// prefix up to the last breakpoint (order tools → system → messages) is
// written on first sight and read on repeats within its TTL, per model.
func (s *Server) usage(rec *Request, outputChars int) Usage {
	h := sha256.New()
	h.Write([]byte(rec.Model))
	var total int64
	var bps []breakpoint
	add := func(part string, cc *CacheControl) {
		h.Write([]byte(part))
		h.Write([]byte{0})
		total += estimateTokens(part)
		if cc != nil {
			ttl := 5 * time.Minute
			if cc.TTL == "1h" {
				ttl = time.Hour
			}
			bps = append(bps, breakpoint{hash: string(h.Sum(nil)), tokens: total, ttl: ttl})
		}
	}
	for _, t := range rec.Tools {
		add(t.Name+"\n"+t.Description+"\n"+string(t.InputSchema), t.CacheControl)
	}
	for _, b := range rec.System {
		add(b.Text, b.CacheControl)
	}
	for _, m := range rec.Messages {
		total += 3 // role framing
		for _, b := range m.Blocks {
			part := b.Text
			if b.Type != "text" {
				raw, _ := json.Marshal(b)
				part = string(raw)
			}
			add(part, b.CacheControl)
		}
	}
	u := Usage{InputTokens: total, OutputTokens: max(1, int64(outputChars+3)/4), ServiceTier: "standard",
		CacheCreation: &CacheCreation{}}
	if len(bps) == 0 || bps[len(bps)-1].tokens < s.minTokens(rec.Model) {
		return u
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	var read int64
	for _, bp := range bps {
		if e, ok := s.cache[bp.hash]; ok && now.Before(e.expires) && e.tokens > read {
			read = e.tokens
		}
	}
	last := bps[len(bps)-1]
	write := last.tokens - read
	for _, bp := range bps {
		if bp.tokens >= s.minTokens(rec.Model) {
			s.cache[bp.hash] = cacheEntry{tokens: bp.tokens, expires: now.Add(bp.ttl)}
		}
	}
	u.CacheReadInputTokens = read
	u.CacheCreationInputTokens = write
	if last.ttl == time.Hour {
		u.CacheCreation.Ephemeral1h = write
	} else {
		u.CacheCreation.Ephemeral5m = write
	}
	u.InputTokens = total - read - write
	return u
}
