package config

import (
	"strconv"
	"strings"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	File    string // file (or directory) as given to Load, or the name given to Parse
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

// Problems is the error returned by Load and Parse: every problem found, in file order and, within a file,
// by line.
type Problems []Problem

// Error returns one problem per line.
func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
