package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// resolver replaces secret references in scalar values, in place.
type resolver struct {
	file    string
	dir     string
	env     func(string) (string, bool)
	secrets []string
	errs    Errors
}

func (r *resolver) walk(n *yaml.Node) {
	if n.Kind == yaml.ScalarNode && n.Tag != "!!binary" {
		r.scalar(n)
		return
	}
	for _, c := range n.Content {
		r.walk(c)
	}
}

func (r *resolver) scalar(n *yaml.Node) {
	v := n.Value
	if strings.HasPrefix(v, "file:") {
		p := strings.TrimPrefix(v, "file:")
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.dir, p)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			r.errs = append(r.errs, Error{File: r.file, Line: n.Line, Msg: fmt.Sprintf("secret file: %v", err)})
			return
		}
		n.Value = strings.TrimRight(string(b), "\r\n")
		n.Tag, n.Style = "!!str", 0
		r.secrets = append(r.secrets, n.Value)
		return
	}
	if !strings.Contains(v, "${") {
		return
	}
	n.Value = envRef.ReplaceAllStringFunc(v, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		val, ok := r.env(m[1])
		if !ok || val == "" {
			if m[2] != "" {
				return m[3]
			}
			r.errs = append(r.errs, Error{File: r.file, Line: n.Line,
				Msg: fmt.Sprintf("environment variable %s is not set (write ${%s:-default} for an optional one)", m[1], m[1])})
			return ""
		}
		r.secrets = append(r.secrets, val)
		return val
	})
	n.Tag, n.Style = "!!str", 0
}
