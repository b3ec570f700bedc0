package rules

import "strings"

// nearest returns the candidate closest to s, if one is close enough to be a
// plausible typo.
func nearest(s string, candidates []string) string {
	norm := func(x string) string {
		return strings.ToLower(strings.NewReplacer("_", "", "-", "", " ", "").Replace(x))
	}
	ns := norm(s)
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if c == s {
			continue
		}
		nc := norm(c)
		if nc == ns {
			return c // decisionMaker → decision_maker
		}
		d := levenshtein(ns, nc)
		if d < bestD {
			best, bestD = c, d
		}
	}
	limit := 2
	if len(ns) > 8 {
		limit = 3
	}
	if len(ns) <= 3 {
		limit = 1
	}
	if best != "" && bestD <= limit {
		return best
	}
	return ""
}

// didYouMean renders nearest as a message suffix.
func didYouMean(s string, candidates []string) string {
	if n := nearest(s, candidates); n != "" {
		return "; did you mean " + n + "?"
	}
	return ""
}

// levenshtein is the optimal-string-alignment distance: insertions,
// deletions, substitutions and swaps of neighbours ("budgte") cost one each.
func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}
