package main

import (
	"flag"
	"fmt"
	"io"
	"regexp"
	"time"

	"github.com/tollgate-ai/tollgate/policy/keys"
)

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// keysCmd implements `tollgate keys new`: it prints a fresh key once, with
// the entry to paste into the keys Secret. Only the hash is ever stored.
func keysCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "new" {
		fmt.Fprintln(stderr, "usage: tollgate keys new --tenant T [--app A] [--id ID] [--tier TIER]")
		return 2
	}
	fs := flag.NewFlagSet("keys new", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "", "tenant the key belongs to (required)")
	app := fs.String("app", "", "app the key is bound to; omit for a tenant-scoped key")
	id := fs.String("id", "", "key id (default: <tenant>[-<app>]-<UTC timestamp>)")
	tier := fs.String("tier", "", "rate-limit tier")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	for name, v := range map[string]string{"tenant": *tenant, "app": *app, "tier": *tier} {
		if v != "" && !keyNameRE.MatchString(v) {
			fmt.Fprintf(stderr, "tollgate keys new: --%s %q: use letters, digits, '_', '.' and '-'\n", name, v)
			return 2
		}
	}
	if *tenant == "" {
		fmt.Fprintln(stderr, "tollgate keys new: --tenant is required")
		return 2
	}
	if *id == "" {
		*id = *tenant
		if *app != "" {
			*id += "-" + *app
		}
		*id += "-" + time.Now().UTC().Format("20060102T150405Z")
	}
	key, err := keys.Generate()
	if err != nil {
		fmt.Fprintf(stderr, "tollgate keys new: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# The key is shown once; hand it to its owner now. Tollgate stores only its hash.\n")
	fmt.Fprintf(stdout, "# key: %s\n", key)
	fmt.Fprintf(stdout, "# Add this entry to the keys file (keys: list) in the keys Secret:\n")
	fmt.Fprintf(stdout, "- id: %s\n  sha256: %s\n  tenant: %s\n", *id, keys.Hash(key), *tenant)
	if *app != "" {
		fmt.Fprintf(stdout, "  app: %s\n", *app)
	}
	if *tier != "" {
		fmt.Fprintf(stdout, "  tier: %s\n", *tier)
	}
	return 0
}
