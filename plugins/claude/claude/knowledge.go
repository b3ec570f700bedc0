package claude

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/switchboard-hub/switchboard/plugins/claude/internal/vntext"
)

// Section is one entry of the knowledge file: a product, a price list, a
// policy.
type Section struct {
	Title    string
	Keywords []string
	Content  string

	terms  map[string]float64 // folded word or bigram → weighted count
	length float64
}

// Knowledge is the business's knowledge file, indexed for retrieval. It is
// immutable after loading and safe for concurrent use.
type Knowledge struct {
	sections []Section
	df       map[string]int
	avgLen   float64
}

// LoadKnowledge reads a YAML (.yaml, .yml) or Markdown (anything else) file.
func LoadKnowledge(path string) (*Knowledge, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("knowledge file: %w", err)
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".yaml", ".yml":
		return ParseKnowledgeYAML(b)
	default:
		return ParseKnowledgeMarkdown(b), nil
	}
}

// ParseKnowledgeYAML reads a mapping whose values are lists of entries,
// e.g. `sections:`, or `products:` and `policies:`. An entry has a title
// (or name), optional keywords (or tags), and content (or text,
// description); its other scalar fields ("price: 1.200.000 VND") become
// content lines in file order. The list's key is added as a keyword.
func ParseKnowledgeYAML(b []byte) (*Knowledge, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("knowledge file: %w", err)
	}
	if len(doc.Content) == 0 {
		return newKnowledge(nil), nil
	}
	root := doc.Content[0]
	var secs []Section
	addList := func(category string, list *yaml.Node) error {
		for _, item := range list.Content {
			s, err := sectionFromYAML(item)
			if err != nil {
				return err
			}
			if category != "" && category != "sections" {
				s.Keywords = append(s.Keywords, category)
			}
			secs = append(secs, s)
		}
		return nil
	}
	switch root.Kind {
	case yaml.SequenceNode:
		if err := addList("", root); err != nil {
			return nil, err
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(root.Content); i += 2 {
			key, val := root.Content[i].Value, root.Content[i+1]
			if val.Kind != yaml.SequenceNode {
				return nil, fmt.Errorf("knowledge file line %d: %q must be a list of entries", val.Line, key)
			}
			if err := addList(key, val); err != nil {
				return nil, err
			}
		}
	default:
		return nil, fmt.Errorf("knowledge file line %d: want a mapping of lists", root.Line)
	}
	return newKnowledge(secs), nil
}

func sectionFromYAML(n *yaml.Node) (Section, error) {
	if n.Kind == yaml.ScalarNode {
		return Section{Content: n.Value}, nil
	}
	if n.Kind != yaml.MappingNode {
		return Section{}, fmt.Errorf("knowledge file line %d: an entry must be a mapping", n.Line)
	}
	var s Section
	var lines []string
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := n.Content[i].Value, n.Content[i+1]
		switch strings.ToLower(key) {
		case "title", "name":
			s.Title = val.Value
		case "keywords", "tags":
			for _, k := range val.Content {
				s.Keywords = append(s.Keywords, k.Value)
			}
		case "content", "text", "description":
			lines = append(lines, strings.TrimSpace(val.Value))
		default:
			switch val.Kind {
			case yaml.ScalarNode:
				lines = append(lines, key+": "+val.Value)
			case yaml.SequenceNode:
				var parts []string
				for _, e := range val.Content {
					parts = append(parts, e.Value)
				}
				lines = append(lines, key+": "+strings.Join(parts, ", "))
			default:
				return Section{}, fmt.Errorf("knowledge file line %d: field %q must be text or a list", val.Line, key)
			}
		}
	}
	s.Content = strings.Join(lines, "\n")
	return s, nil
}

// ParseKnowledgeMarkdown splits on ATX headings; a section's title is its
// heading path ("Products > Pro plan") and its content the text up to the
// next heading. Text before the first heading is a section of its own.
func ParseKnowledgeMarkdown(b []byte) *Knowledge {
	var secs []Section
	var path []string // heading path by level
	var cur *Section
	var body []string
	flush := func() {
		if cur != nil {
			cur.Content = strings.TrimSpace(strings.Join(body, "\n"))
			if cur.Content != "" || cur.Title != "" {
				secs = append(secs, *cur)
			}
		} else if c := strings.TrimSpace(strings.Join(body, "\n")); c != "" {
			secs = append(secs, Section{Content: c})
		}
		body = body[:0]
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	inFence := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			inFence = !inFence
		}
		level := 0
		for level < len(line) && level < 6 && line[level] == '#' {
			level++
		}
		if !inFence && level > 0 && len(line) > level && line[level] == ' ' {
			flush()
			title := strings.TrimSpace(strings.Trim(strings.TrimSpace(line[level:]), "#"))
			if len(path) >= level {
				path = path[:level-1]
			}
			for len(path) < level-1 {
				path = append(path, "")
			}
			path = append(path, title)
			var nonEmpty []string
			for _, p := range path {
				if p != "" {
					nonEmpty = append(nonEmpty, p)
				}
			}
			cur = &Section{Title: strings.Join(nonEmpty, " > ")}
			continue
		}
		body = append(body, line)
	}
	flush()
	return newKnowledge(secs)
}

// stopwords are folded words too common to say anything about relevance.
var stopwords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a ah ak anh ban bi cac cho chi co cua da day de di do duoc em gi ha hay
		khong ko la len luc ma minh mot nao nay nhe nhung o oi ra roi sao se thi toi tu va vay voi vs
		an and are be can could do does for from have hello hi how i in is it me my of on or our please
		that the this to want we what when where which with would you your`) {
		m[w] = true
	}
	return m
}()

// terms turns text into folded words and adjacent-word bigrams (Vietnamese
// words are mostly two syllables: "bảo hành" is one idea, "bao" alone many).
func terms(text string, weight float64, into map[string]float64) float64 {
	words := vntext.Words(text)
	var n float64
	prev := ""
	for _, w := range words {
		if !stopwords[w] {
			into[w] += weight
			n += weight
		}
		if prev != "" {
			into[prev+" "+w] += weight
		}
		prev = w
	}
	return n
}

func newKnowledge(secs []Section) *Knowledge {
	k := &Knowledge{sections: secs, df: map[string]int{}}
	var total float64
	for i := range k.sections {
		s := &k.sections[i]
		s.terms = map[string]float64{}
		// Titles and keywords name what a section is about: they weigh
		// more than a passing mention in the body.
		s.length = terms(s.Title, 3, s.terms) + terms(strings.Join(s.Keywords, " "), 3, s.terms) + terms(s.Content, 1, s.terms)
		total += s.length
		for t := range s.terms {
			k.df[t]++
		}
	}
	if len(secs) > 0 {
		k.avgLen = total / float64(len(secs))
	}
	return k
}

// Len is the number of sections.
func (k *Knowledge) Len() int {
	if k == nil {
		return 0
	}
	return len(k.sections)
}

// Retrieve returns up to topK sections relevant to query, best first, by a
// BM25 score over folded words and bigrams; sections that share nothing
// with the query are never returned. maxChars bounds the total content.
func (k *Knowledge) Retrieve(query string, topK, maxChars int) []Section {
	if k.Len() == 0 || topK <= 0 {
		return nil
	}
	q := map[string]float64{}
	terms(query, 1, q)
	type scored struct {
		i     int
		score float64
	}
	var res []scored
	n := float64(len(k.sections))
	const k1, b = 1.2, 0.75
	for i, s := range k.sections {
		var score float64
		for t := range q {
			tf := s.terms[t]
			if tf == 0 {
				continue
			}
			idf := math.Log(1 + (n-float64(k.df[t])+0.5)/(float64(k.df[t])+0.5))
			if strings.Contains(t, " ") {
				idf *= 1.5 // a matched two-word phrase says more than its words
			}
			norm := tf * (k1 + 1) / (tf + k1*(1-b+b*s.length/math.Max(k.avgLen, 1)))
			score += idf * norm
		}
		if score > 0 {
			res = append(res, scored{i, score})
		}
	}
	sort.SliceStable(res, func(a, b int) bool { return res[a].score > res[b].score })
	var out []Section
	used := 0
	for _, r := range res {
		if len(out) == topK {
			break
		}
		s := k.sections[r.i]
		size := len(s.Title) + len(s.Content)
		if maxChars > 0 && used+size > maxChars && len(out) > 0 {
			break
		}
		used += size
		out = append(out, s)
	}
	return out
}
