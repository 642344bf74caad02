package yamldoc

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with a configuration document: the gateway
// config, a price table or a guardrails section all report this one type.
type Problem struct {
	File    string // file (or directory) as given to the loader, or the name given to a parser; may be empty
	Line    int    // 1-based line in File; 0 when unknown
	Path    string // field path such as "providers[1].credential.source"; empty for whole-file problems
	Message string
}

// String formats p as "file:line: path: message", leaving out the parts that are empty.
func (p Problem) String() string {
	var b strings.Builder
	if p.File != "" {
		b.WriteString(p.File)
		if p.Line > 0 {
			b.WriteByte(':')
			b.WriteString(strconv.Itoa(p.Line))
		}
		b.WriteString(": ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Message)
	return b.String()
}

// Problems is every problem found; loaders return it as their error.
type Problems []Problem

// Error returns one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}

// ParseProblem turns an error from [Parse] into a Problem in file, taking the
// line out of the parser's "yaml: line N: message" form when it has one.
func ParseProblem(file string, err error) Problem {
	p := Problem{File: file, Message: strings.TrimPrefix(err.Error(), "yaml: ")}
	if rest, ok := strings.CutPrefix(p.Message, "line "); ok {
		if n, msg, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				p.Line, p.Message = l, msg
			}
		}
	}
	return p
}
