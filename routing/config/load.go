package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/tollgate-ai/tollgate/routing/pricing"
)

const (
	// maxFileSize bounds one configuration file; real ones are a few kilobytes.
	maxFileSize = 16 << 20
	// maxProblems bounds the problems returned; beyond it a summary line says how many were left out.
	maxProblems = 100
)

// Load reads, merges and validates the configuration at paths. Each path is a file (read whatever its
// extension) or a directory, which contributes each regular file directly inside it (symlinks followed)
// whose name ends in .yaml, .yml or .json and does not start with "." — so the "..data" and timestamped
// entries of a Kubernetes volume are skipped, and the visible symlinks are read. Files are read in the
// order of paths, a directory's files in name order; their lists are concatenated.
//
// When the error is non-nil it is a Problems value listing every problem found.
func Load(paths ...string) (*Config, error) {
	var probs Problems
	if len(paths) == 0 {
		return nil, Problems{{Message: "no configuration paths given"}}
	}
	var files []string
	seen := map[string]bool{}
	var emptyDirs []string
	for _, p := range paths {
		found, dirProbs := expand(p)
		probs = append(probs, dirProbs...)
		if len(found) == 0 && len(dirProbs) == 0 {
			emptyDirs = append(emptyDirs, p)
		}
		for _, f := range found {
			if c := filepath.Clean(f); !seen[c] {
				seen[c] = true
				files = append(files, f)
			}
		}
	}
	if len(files) == 0 && len(probs) == 0 {
		for _, d := range emptyDirs {
			probs = append(probs, Problem{File: d, Message: "no .yaml, .yml or .json files found"})
		}
	}
	docs := make([]*document, 0, len(files))
	for _, f := range files {
		data, err := readFile(f)
		if err != nil {
			probs = append(probs, Problem{File: f, Message: err.Error()})
			continue
		}
		docs = append(docs, decodeDocument(f, data, maxNodes))
	}
	return finish(docs, probs)
}

// Parse decodes and validates one configuration file's content; name is used in problems and as the base
// for relative secret file paths. Use it for Example.
func Parse(name string, data []byte) (*Config, error) {
	if len(data) > maxFileSize {
		return nil, Problems{{File: name, Message: fmt.Sprintf("larger than %d bytes", maxFileSize)}}
	}
	return finish([]*document{decodeDocument(name, data, maxNodes)}, nil)
}

// finish validates the decoded documents and merges them, or returns every problem.
func finish(docs []*document, probs Problems) (*Config, error) {
	validate(docs)
	hasVersion := false
	for _, d := range docs {
		hasVersion = hasVersion || d.hasVersion
		// Problems within a file are reported in line order; the sort is stable so problems on one line
		// keep the order in which they were found.
		sort.SliceStable(d.problems, func(i, j int) bool { return d.problems[i].Line < d.problems[j].Line })
		probs = append(probs, d.problems...)
	}
	if len(probs) == 0 && !hasVersion {
		// Every file was empty: almost certainly the wrong path or an unpopulated volume.
		names := make([]string, len(docs))
		for i, d := range docs {
			names[i] = d.file
		}
		probs = append(probs, Problem{File: strings.Join(names, ", "), Message: fmt.Sprintf("configuration is empty (set version: %d)", Version)})
	}
	if len(probs) > maxProblems {
		more := len(probs) - maxProblems
		probs = append(probs[:maxProblems:maxProblems], Problem{Message: fmt.Sprintf("and %d more problems", more)})
	}
	if len(probs) > 0 {
		return nil, probs
	}
	cfg := &Config{Version: Version}
	for _, d := range docs {
		cfg.Providers = append(cfg.Providers, d.cfg.Providers...)
		cfg.Models = append(cfg.Models, d.cfg.Models...)
		cfg.Keys = append(cfg.Keys, d.cfg.Keys...)
		cfg.Tenants = append(cfg.Tenants, d.cfg.Tenants...)
		if d.cfg.RequestMetadata != nil {
			cfg.RequestMetadata = d.cfg.RequestMetadata
		}
		if d.cfg.Limits != nil {
			cfg.Limits = d.cfg.Limits
		}
		if d.cfg.Ledger != nil {
			cfg.Ledger = d.cfg.Ledger
		}
		if d.cfg.Cache != nil {
			cfg.Cache = d.cfg.Cache
		}
		if d.cfg.Admin != nil {
			cfg.Admin = d.cfg.Admin
		}
		if d.cfg.Metrics != nil {
			cfg.Metrics = d.cfg.Metrics
		}
		if d.cfg.BasePath != "" {
			cfg.BasePath = d.cfg.BasePath
		}
		if g := d.cfg.Guardrails; g != nil {
			if cfg.Guardrails == nil {
				cfg.Guardrails = &Guardrails{}
			}
			cfg.Guardrails.Policies = append(cfg.Guardrails.Policies, g.Policies...)
		}
		for name, e := range d.cfg.Prices.Models {
			if cfg.Prices.Models == nil {
				cfg.Prices.Models = map[string]pricing.Entry{}
			}
			cfg.Prices.Models[name] = e
		}
	}
	return cfg, nil
}

// expand returns the files a path stands for.
func expand(path string) ([]string, Problems) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, Problems{{File: path, Message: describeErr(err).Error()}}
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, Problems{{File: path, Message: describeErr(err).Error()}}
	}
	var probs Problems
	var files []string
	for _, e := range entries {
		if !isConfigName(e.Name()) {
			continue
		}
		f := filepath.Join(path, e.Name())
		fi, err := os.Stat(f) // follows the symlinks of a Kubernetes volume
		if err != nil {
			// A dangling symlink, e.g. mid-update of a volume: report it, read the rest.
			probs = append(probs, Problem{File: f, Message: describeErr(err).Error()})
			continue
		}
		if fi.Mode().IsRegular() {
			files = append(files, f)
		}
	}
	slices.Sort(files) // ReadDir sorts already; keep the order explicit
	return files, probs
}

func readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, describeErr(err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, describeErr(err)
	}
	if len(data) > maxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", maxFileSize)
	}
	return data, nil
}

// describeErr drops the path from a *fs.PathError, since the Problem names the file already.
func describeErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
