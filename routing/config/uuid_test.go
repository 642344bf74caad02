package config

import (
	"regexp"
	"testing"
)

// uuidV4 is the definition IsUUIDv4 implements by hand.
var uuidV4 = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}$`)

var uuidCases = []string{
	"", "not-a-uuid",
	"6fa459ea-ee8a-4ca4-894e-db77e160355e", // v4
	"6FA459EA-EE8A-4CA4-B94E-DB77E160355E", // v4, upper case
	"1b4e28ba-2fa1-11d2-883f-0016d3cca427", // v1
	"6fa459ea-ee8a-4ca4-c94e-db77e160355e", // another variant
	"6fa459ea-ee8a-4ca4-894e-db77e160355",  // short
	"6fa459ea-ee8a-4ca4-894e-db77e160355e0",
	"6fa459eaxee8a-4ca4-894e-db77e160355e",
	"6fa459ea-ee8a-4ca4-894e-db77e160355g",
	"6fa459ea-ee8a-4ca4-894e-db77e160355\n",
	"{fa459ea-ee8a-4ca4-894e-db77e160355e",
}

func TestIsUUIDv4(t *testing.T) {
	for _, s := range uuidCases {
		if got, want := IsUUIDv4(s), uuidV4.MatchString(s); got != want {
			t.Errorf("IsUUIDv4(%q) = %v, want %v", s, got, want)
		}
	}
}

func FuzzIsUUIDv4(f *testing.F) {
	for _, s := range uuidCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := IsUUIDv4(s), uuidV4.MatchString(s); got != want {
			t.Fatalf("IsUUIDv4(%q) = %v, want %v", s, got, want)
		}
	})
}
