package detect

import (
	"slices"
	"strings"
	"testing"
)

// Key-shaped test values are assembled at run time so that no literal in the
// repository looks like a live credential to secret scanners.
var (
	fakeOpenAI    = "sk-" + "proj-" + strings.Repeat("Ab3dE", 9)
	fakeOpenAIOld = "sk-" + strings.Repeat("x7Yz", 12)
	fakeAnthropic = "sk-" + "ant-api03-" + strings.Repeat("Qw9_", 20)
	fakeAWS       = "AKIA" + "IOSFODNN7EXAMPLE"
	fakeAWSTemp   = "ASIA" + "Y3FDSNDKFKSIDJSW"
	fakeGCP       = "AIza" + "SyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"
	fakeGitHub    = "ghp" + "_" + strings.Repeat("aB3d", 9)
	fakeGitHubPAT = "github" + "_pat_" + strings.Repeat("11ABCDEFG0", 3) + "_" + strings.Repeat("xY7", 20)
	fakeSlack     = "xox" + "b-123456789012-1234567890123-" + "AbCdEfGhIjKlMnOpQrStUvWx"
	fakeTollgate  = "tg" + "_demo_0123456789abcdefghijklmnopqrstuvwxyzAB"
	fakePEM       = "-----BEGIN RSA " + "PRIVATE KEY-----\nMIIEowIBAAKCAQEAx0\nAbCdEf==\n-----END RSA " + "PRIVATE KEY-----"
)

// found runs Find and returns "kind:text" for each match, in text order.
func found(s string, kinds Kinds) []string {
	spans := Find(nil, s, kinds)
	slices.SortFunc(spans, func(a, b Span) int { return a.Start - b.Start })
	var out []string
	for _, sp := range spans {
		out = append(out, sp.Kind.String()+":"+s[sp.Start:sp.End])
	}
	return out
}

type detectCase struct {
	in   string
	want []string // "kind:text"; nil for no match
}

func runDetect(t *testing.T, kinds Kinds, cases []detectCase) {
	t.Helper()
	for _, c := range cases {
		if got := found(c.in, kinds); !slices.Equal(got, c.want) {
			t.Errorf("Find(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestEmail(t *testing.T) {
	runDetect(t, 1<<Email, []detectCase{
		{"mail bob@example.com today", []string{"email:bob@example.com"}},
		{"Contact: alice.smith+tag@mail.example.co.uk.", []string{"email:alice.smith+tag@mail.example.co.uk"}},
		{"<jo_doe-1@sub.example.org>", []string{"email:jo_doe-1@sub.example.org"}},
		{"josé@bücher.de", []string{"email:josé@bücher.de"}},
		{"a@b.co,c@d.io", []string{"email:a@b.co", "email:c@d.io"}},
		{"...bob@example.com", []string{"email:bob@example.com"}},
		{"x@xn--80ak6aa92e.com", []string{"email:x@xn--80ak6aa92e.com"}},
		// not emails
		{"@example.com", nil},
		{"bob@localhost", nil},
		{"bob@example", nil},
		{"bob@-example.com", nil},
		{"foo@bar.c", nil},
		{"a@b.123", nil},
		{"user@@example.com", nil},
		{"git@github.com:org/repo", []string{"email:git@github.com"}},
		{strings.Repeat("a", 65) + "@example.com", nil},
		{"@@@@", nil},
	})
}

func TestPhone(t *testing.T) {
	runDetect(t, 1<<Phone, []detectCase{
		{"call +1 415 555 2671 now", []string{"phone:+1 415 555 2671"}},
		{"+14155552671", []string{"phone:+14155552671"}},
		{"tel: +44 20 7946 0958.", []string{"phone:+44 20 7946 0958"}},
		{"+1 (415) 555-2671", []string{"phone:+1 (415) 555-2671"}},
		{"+33 1 42 68 53 00", []string{"phone:+33 1 42 68 53 00"}},
		{"+49-30-901820", []string{"phone:+49-30-901820"}},
		{"+44 (0)20 7946 0958", []string{"phone:+44 (0)20 7946 0958"}},
		{"+91.98765.43210", []string{"phone:+91.98765.43210"}},
		// not phones: dates, versions, ids, short or long digit runs
		{"2024-01-15", nil},
		{"version 1.2.3.4", nil},
		{"v+1.2.3", nil},
		{"+1.2.3.4.5.6.7.8", nil},
		{"x+14155552671", nil},
		{"+0044 20 7946 0958", nil},
		{"+123", nil},
		{"+1234567890123456", nil},
		{"2024-01-15T10:00:00+05:30", nil},
		{"+14155552671abc", nil},
		{"(415) 555-2671", nil},
		{"1+1=2", nil},
	})
}

func TestCard(t *testing.T) {
	runDetect(t, 1<<Card, []detectCase{
		{"card 4111 1111 1111 1111 exp", []string{"card:4111 1111 1111 1111"}},
		{"4111-1111-1111-1111", []string{"card:4111-1111-1111-1111"}},
		{"4111111111111111", []string{"card:4111111111111111"}},
		{"5500 0000 0000 0004", []string{"card:5500 0000 0000 0004"}},
		{"amex 3782 822463 10005", []string{"card:3782 822463 10005"}},
		{"6011111111111117", []string{"card:6011111111111117"}},
		{"2223000048400011", []string{"card:2223000048400011"}},
		{"4111111111111111 5500000000000004", []string{"card:4111111111111111", "card:5500000000000004"}},
		{"(4111111111111111)", []string{"card:4111111111111111"}},
		// Luhn failures and other look-alikes
		{"4111 1111 1111 1112", nil},
		{"4111111111111112", nil},
		{"1712345678901", nil},           // epoch milliseconds: first digit 1
		{"1234567812345678", nil},        // first digit 1
		{"4111 1111-1111 1111", nil},     // mixed separators split the number
		{"4111111111111111abc", nil},     // glued to a word
		{"id4111111111111111", nil},      // glued to a word
		{"3.4111111111111111", nil},      // decimal
		{"41111111111111111111111", nil}, // 23 digits
		{"+4111111111111111", nil},       // phone-like
		{"4111  1111  1111  1111", nil},  // double spaces: four short groups
		{"0000 0000 0000 0000", nil},     // first digit 0
		{"79927398713", nil},             // valid Luhn, too short
		{"4111111111111111.5", nil},      // decimal
	})
	// A grouped run longer than a card is split at group boundaries.
	runDetect(t, 1<<Card, []detectCase{
		{"4111 1111 1111 1111 2024", []string{"card:4111 1111 1111 1111"}},
		{"2024 4111 1111 1111 1111", []string{"card:4111 1111 1111 1111"}},
	})
}

func TestLuhn(t *testing.T) {
	for _, c := range []struct {
		in   string
		want bool
	}{{"79927398713", true}, {"79927398710", false}, {"4111111111111111", true}, {"4111-1111-1111-1111", true}, {"0", true}, {"18", true}, {"19", false}} {
		if got := luhn(c.in); got != c.want {
			t.Errorf("luhn(%q) = %v", c.in, got)
		}
	}
}

func TestIBAN(t *testing.T) {
	runDetect(t, 1<<IBAN, []detectCase{
		{"IBAN DE89370400440532013000", []string{"iban:DE89370400440532013000"}},
		{"DE89 3704 0044 0532 0130 00 is mine", []string{"iban:DE89 3704 0044 0532 0130 00"}},
		{"GB82WEST12345698765432", []string{"iban:GB82WEST12345698765432"}},
		{"NL91 ABNA 0417 1643 00", []string{"iban:NL91 ABNA 0417 1643 00"}},
		{"NO93 8601 1117 947.", []string{"iban:NO93 8601 1117 947"}},
		{"FR14 2004 1010 0505 0001 3M02 606", []string{"iban:FR14 2004 1010 0505 0001 3M02 606"}},
		{"MT84MALT011000012345MTLCAST001S", []string{"iban:MT84MALT011000012345MTLCAST001S"}},
		// wrong checksum, unknown country, wrong length, glued, lower case
		{"DE89370400440532013001", nil},
		{"DE88370400440532013000", nil},
		{"XX89370400440532013000", nil},
		{"DE8937040044053201300", nil},
		{"DE893704004405320130000", nil},
		{"ADE89370400440532013000", nil},
		{"de89370400440532013000", nil},
		{"DE89 37040 044 0532 0130 00", nil},
	})
}

func TestSSN(t *testing.T) {
	runDetect(t, 1<<SSN, []detectCase{
		{"SSN 123-45-6789.", []string{"ssn:123-45-6789"}},
		{"078 05 1120", []string{"ssn:078 05 1120"}},
		{"665-01-0001", []string{"ssn:665-01-0001"}},
		// invalid areas, groups and serials
		{"000-12-3456", nil},
		{"666-12-3456", nil},
		{"900-12-3456", nil},
		{"999-12-3456", nil},
		{"123-00-4567", nil},
		{"123-45-0000", nil},
		// other shapes
		{"123-45-67890", nil},
		{"1123-45-6789", nil},
		{"555-123-4567", nil},
		{"123456789", nil},
		{"123-45 6789", nil},
		{"99-123-45-6789", nil},
		{"123-45-6789-1", nil},
	})
}

func TestIP(t *testing.T) {
	runDetect(t, 1<<IPv4|1<<IPv6, []detectCase{
		{"host 192.168.1.1 up", []string{"ipv4:192.168.1.1"}},
		{"8.8.8.8, 255.255.255.255 and 0.0.0.0", []string{"ipv4:8.8.8.8", "ipv4:255.255.255.255", "ipv4:0.0.0.0"}},
		{"ip:10.0.0.1.", []string{"ipv4:10.0.0.1"}},
		{"2001:db8::1", []string{"ipv6:2001:db8::1"}},
		{"fe80::1%eth0", []string{"ipv6:fe80::1"}},
		{"[2001:db8::1]:443", []string{"ipv6:2001:db8::1"}},
		{"2001:0db8:85a3:0000:0000:8a2e:0370:7334", []string{"ipv6:2001:0db8:85a3:0000:0000:8a2e:0370:7334"}},
		{"loopback ::1.", []string{"ipv6:::1"}},
		{"at 2001:db8::1: done", []string{"ipv6:2001:db8::1"}},
		// invalid
		{"999.1.1.1", nil},
		{"256.1.1.1", nil},
		{"1.2.3", nil},
		{"1.2.3.4.5", nil},
		{"01.2.3.4", nil},
		{"v1.2.3.4", nil},
		{"version 10.0.19041.1", nil},
		{"12:30:45", nil},
		{"std::vector", nil},
		{"a::b::c", nil},
		{" :: ", nil},
		{"00:1A:2B:3C:4D:5E", nil},
		{"1:2:3:4:5:6:7:8:9", nil},
		{"Foo::Bar::baz", nil},
	})
	// IPv4-mapped addresses are IPv6 matches that contain an IPv4 match.
	runDetect(t, 1<<IPv6, []detectCase{{"::ffff:192.0.2.1", []string{"ipv6:::ffff:192.0.2.1"}}})
}

func TestSecrets(t *testing.T) {
	runDetect(t, Secrets, []detectCase{
		{"key=" + fakeOpenAI + " ok", []string{"openai_key:" + fakeOpenAI}},
		{fakeOpenAIOld, []string{"openai_key:" + fakeOpenAIOld}},
		{"ANTHROPIC_API_KEY=" + fakeAnthropic, []string{"anthropic_key:" + fakeAnthropic}},
		{"aws " + fakeAWS + ".", []string{"aws_access_key:" + fakeAWS}},
		{fakeAWSTemp, []string{"aws_access_key:" + fakeAWSTemp}},
		{`"` + fakeGCP + `"`, []string{"gcp_api_key:" + fakeGCP}},
		{"token " + fakeGitHub, []string{"github_token:" + fakeGitHub}},
		{fakeGitHubPAT, []string{"github_token:" + fakeGitHubPAT}},
		{fakeSlack, []string{"slack_token:" + fakeSlack}},
		{"Bearer " + fakeTollgate, []string{"tollgate_key:" + fakeTollgate}},
		{"x\n" + fakePEM + "\ny", []string{"private_key:" + fakePEM}},
		{"-----BEGIN " + "PRIVATE KEY-----\nMIIE", []string{"private_key:-----BEGIN PRIVATE KEY-----\nMIIE"}},
		// look-alikes
		{"pip install sk-learn; sk-this-is-a-long-slug-without-digits", nil},
		{"task-" + fakeOpenAI[3:], nil},
		{"ASIAN markets and ASIAPACIFICREGIONAL", nil},
		{"AKIA123", nil},
		{fakeAWS + "X", nil},
		{"ghp_short", nil},
		{"tg_process_request_handler_v2", nil},
		{"AIzaShort", nil},
		{"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", nil},
		{"-----BEGIN PUBLIC KEY-----", nil},
	})
	// Only the enabled kinds are reported.
	runDetect(t, 1<<AnthropicKey, []detectCase{{fakeOpenAI + " " + fakeAnthropic, []string{"anthropic_key:" + fakeAnthropic}}})
	runDetect(t, 1<<OpenAIKey, []detectCase{{fakeAnthropic, nil}})
}

func TestPEMOpenAndEnd(t *testing.T) {
	s := "a -----BEGIN EC " + "PRIVATE KEY-----\nMHcC"
	spans := Find(nil, s, 1<<PrivateKey)
	if len(spans) != 1 || !spans[0].Open || spans[0].End != len(s) || spans[0].Start != 2 {
		t.Fatalf("unterminated block: %+v", spans)
	}
	spans = Find(nil, fakePEM, 1<<PrivateKey)
	if len(spans) != 1 || spans[0].Open {
		t.Fatalf("terminated block: %+v", spans)
	}
	for _, c := range []struct {
		in   string
		want int
	}{
		{"xx-----END RSA PRIVATE KEY-----yy", 31},
		{"-----END CERTIFICATE-----", -1},
		{"-----END PRIVATE KEY", -1},
		{"-----END bad-----\n-----END PRIVATE KEY-----", 43},
	} {
		if got := FindPEMEnd(c.in); got != c.want {
			t.Errorf("FindPEMEnd(%q) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestKinds(t *testing.T) {
	for k := range numKinds {
		got, ok := KindNamed(k.String())
		if !ok || got != k || k.Label() == "" {
			t.Errorf("kind %d: KindNamed(%q) = %v, %v", k, k, got, ok)
		}
	}
	if _, ok := KindNamed("nope"); ok {
		t.Error("KindNamed(nope) succeeded")
	}
	if PII&Secrets != 0 || len(PII.Members())+len(Secrets.Members()) != int(numKinds) {
		t.Error("PII and Secrets must partition the kinds")
	}
}
