package config

import (
	"reflect"
	"testing"
)

func TestBasePath(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		want  string   // the merged base_path when there are no problems
		probs []string // expected problems
	}{
		{name: "unset", files: map[string]string{"a.yaml": "version: 1\n"}},
		{name: "set", files: map[string]string{"a.yaml": "version: 1\nbase_path: /api/v1/llm\n"}, want: "/api/v1/llm"},
		{name: "set in the second file", files: map[string]string{"a.yaml": "version: 1\n", "b.yaml": "version: 1\nbase_path: /llm\n"}, want: "/llm"},
		{name: "relative", files: map[string]string{"a.yaml": "version: 1\nbase_path: api\n"},
			probs: []string{`a.yaml:2: base_path: base_path "api" must start with "/"`}},
		{name: "trailing slash", files: map[string]string{"a.yaml": "version: 1\nbase_path: /api/\n"},
			probs: []string{`a.yaml:2: base_path: base_path "/api/" must not end with "/" (leave it unset to serve at the root)`}},
		{name: "root", files: map[string]string{"a.yaml": "version: 1\nbase_path: /\n"},
			probs: []string{`a.yaml:2: base_path: base_path "/" must not end with "/" (leave it unset to serve at the root)`}},
		{name: "dot dot", files: map[string]string{"a.yaml": "version: 1\nbase_path: /api/../v1\n"},
			probs: []string{`a.yaml:2: base_path: base_path "/api/../v1" must not contain "." or ".." segments`}},
		{name: "empty segment", files: map[string]string{"a.yaml": "version: 1\nbase_path: /api//v1\n"},
			probs: []string{`a.yaml:2: base_path: base_path "/api//v1" must not contain empty segments ("//")`}},
		{name: "query", files: map[string]string{"a.yaml": "version: 1\nbase_path: /api?x=1\n"},
			probs: []string{`a.yaml:2: base_path: base_path "/api?x=1" may contain only path characters (no query, fragment, escapes or spaces)`}},
		{name: "twice", files: map[string]string{"a.yaml": "version: 1\nbase_path: /a\n", "b.yaml": "version: 1\nbase_path: /b\n"},
			probs: []string{"b.yaml:2: base_path: base_path is already set at a.yaml:2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			writeFiles(t, dir, tt.files)
			cfg, probs := load(t, dir)
			if !reflect.DeepEqual(probs, tt.probs) {
				t.Fatalf("problems:\n got  %q\n want %q", probs, tt.probs)
			}
			if probs == nil && cfg.BasePath != tt.want {
				t.Errorf("base_path = %q, want %q", cfg.BasePath, tt.want)
			}
		})
	}
}
