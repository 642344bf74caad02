package yamldoc

import (
	"errors"
	"testing"
)

func TestParseProblem(t *testing.T) {
	tests := []struct {
		err  string
		want Problem
	}{
		{"yaml: line 3: did not find expected key", Problem{File: "a.yaml", Line: 3, Message: "did not find expected key"}},
		{"yaml: unmarshal errors", Problem{File: "a.yaml", Message: "unmarshal errors"}},
		{"YAML parser failed: boom", Problem{File: "a.yaml", Message: "YAML parser failed: boom"}},
		{"yaml: line x: odd", Problem{File: "a.yaml", Message: "line x: odd"}},
	}
	for _, tt := range tests {
		if got := ParseProblem("a.yaml", errors.New(tt.err)); got != tt.want {
			t.Errorf("ParseProblem(%q) = %+v, want %+v", tt.err, got, tt.want)
		}
	}
}

func TestProblemsError(t *testing.T) {
	ps := Problems{
		{File: "a.yaml", Line: 2, Path: "keys[0].id", Message: "is required"},
		{File: "dir", Message: "no files"},
		{Path: "models[x]", Message: "bad"},
		{Message: "plain"},
	}
	want := "a.yaml:2: keys[0].id: is required\ndir: no files\nmodels[x]: bad\nplain"
	if got := ps.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// A budget of n allows n nodes and reports exhaustion once.
func TestBudget(t *testing.T) {
	b := NewBudget(2)
	var whys []string
	for range 5 {
		if _, why := b.Spend(); why != "" {
			whys = append(whys, why)
		}
	}
	if len(whys) != 1 {
		t.Errorf("reasons %q, want one", whys)
	}
	b = NewBudget(2)
	for i := range 3 {
		if ok, _ := b.Spend(); ok != (i < 2) {
			t.Errorf("spend %d: ok = %v", i, ok)
		}
	}
}

func TestFollowAndDescribe(t *testing.T) {
	root, err := Parse([]byte("a: &x {k: v}\nb: *x\nc: hello\nd: 5\ne: ~\nf: [1]\ng: true\nh: 2001-12-14\n"))
	if err != nil {
		t.Fatal(err)
	}
	val := map[string]int{}
	for i := 0; i < len(root.Content); i += 2 {
		val[root.Content[i].Value] = i + 1
	}
	tests := []struct {
		key, describe, value string
	}{
		{"b", "a mapping", "a mapping"},
		{"c", "a string", `the string "hello"`},
		{"d", "a number", "the number 5"},
		{"e", "null", "null"},
		{"f", "a list", "a list"},
		{"g", "a boolean", "a boolean"},
		{"h", "a timestamp", "a timestamp"},
	}
	for _, tt := range tests {
		n := Follow(root.Content[val[tt.key]])
		if n == nil {
			t.Fatalf("%s: Follow returned nil", tt.key)
		}
		if got := Describe(n); got != tt.describe {
			t.Errorf("Describe(%s) = %q, want %q", tt.key, got, tt.describe)
		}
		if got := DescribeValue(n); got != tt.value {
			t.Errorf("DescribeValue(%s) = %q, want %q", tt.key, got, tt.value)
		}
	}
	if !IsNull(root.Content[val["e"]]) || IsNull(root.Content[val["c"]]) {
		t.Error("IsNull")
	}
}
