package guardrails

import "strconv"

// Vault maps the placeholders of one request back to the values they
// replaced. Placeholders are numbered per label in order of first use,
// [EMAIL_1], [EMAIL_2], …, and the same value under the same label always gets
// the same placeholder, so the model can still tell two addresses apart and
// refer to one consistently.
//
// A Vault belongs to one request and is not safe for concurrent use.
type Vault struct {
	byValue map[vaultKey]string   // (label, value) → placeholder
	entries map[string]vaultEntry // placeholder → original
	counts  map[string]int        // label → placeholders issued
}

type vaultKey struct{ label, value string }

type vaultEntry struct {
	value   string
	restore bool // an input guardrail asked for it to be put back into the completion
}

// placeholder returns the placeholder for value under label, issuing a new
// one on first use. restore is ANDed into the entry when input is true: a
// value any input guardrail wants kept out of the completion stays out.
// Output redactions (input false) never change an existing entry.
func (v *Vault) placeholder(label, value string, restore, input bool) string {
	if v.byValue == nil {
		v.byValue = map[vaultKey]string{}
		v.entries = map[string]vaultEntry{}
		v.counts = map[string]int{}
	}
	k := vaultKey{label, value}
	if p, ok := v.byValue[k]; ok {
		if input && !restore {
			e := v.entries[p]
			e.restore = false
			v.entries[p] = e
		}
		return p
	}
	v.counts[label]++
	p := "[" + label + "_" + strconv.Itoa(v.counts[label]) + "]"
	v.byValue[k] = p
	v.entries[p] = vaultEntry{value: value, restore: restore && input}
	return p
}

// Original returns the value a placeholder such as "[EMAIL_1]" replaced.
func (v *Vault) Original(placeholder string) (string, bool) {
	e, ok := v.entries[placeholder]
	return e.value, ok
}

// Len returns the number of placeholders issued.
func (v *Vault) Len() int { return len(v.entries) }

// restorable returns the original for a placeholder an input guardrail
// marked for restoring.
func (v *Vault) restorable(placeholder string) (string, bool) {
	e, ok := v.entries[placeholder]
	return e.value, ok && e.restore
}

func (v *Vault) anyRestorable() bool {
	for _, e := range v.entries {
		if e.restore {
			return true
		}
	}
	return false
}

// maxPlaceholder is the longest placeholder: a 32-byte label and a number
// below 10^8 in brackets, far below the smallest output half-window.
const maxPlaceholder = 1 + MaxLabelLen + 1 + 8 + 1

// findPlaceholder returns the end of the placeholder starting at s[i] == '['
// ("[" [A-Z][A-Z0-9_]* "_" digits "]"), or -1.
func findPlaceholder(s string, i int) int {
	j := i + 1
	for j < len(s) && j-i < maxPlaceholder && (isUpperASCII(s[j]) || isDigitASCII(s[j]) || s[j] == '_') {
		j++
	}
	if j >= len(s) || s[j] != ']' || j-i < 4 || !isUpperASCII(s[i+1]) || !isDigitASCII(s[j-1]) {
		return -1
	}
	return j + 1
}

func isUpperASCII(c byte) bool { return 'A' <= c && c <= 'Z' }
func isDigitASCII(c byte) bool { return '0' <= c && c <= '9' }
