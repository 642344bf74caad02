package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/tollgate-ai/tollgate/envoy/validate"
	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// checkCmd validates configuration without serving. It prints every problem,
// each with its file and field path, and exits non-zero if there is any.
func checkCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths, bootstraps multiFlag
	fs.Var(&paths, "config", "config file or directory (repeatable)")
	fs.Var(&bootstraps, "envoy", "Envoy bootstrap file to validate (repeatable)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if len(paths) == 0 && len(bootstraps) == 0 {
		fmt.Fprintln(stderr, "tollgate check: give --config and/or --envoy")
		return 2
	}
	problems := 0
	if len(paths) > 0 {
		cfg, err := config.Load(paths...)
		if err == nil {
			// Exactly what serve runs to build a snapshot, secrets aside, so
			// check passes only what serve accepts.
			err = gateway.Check(cfg, time.Now())
		}
		var ps config.Problems
		switch {
		case errors.As(err, &ps):
			for _, p := range ps {
				fmt.Fprintln(stdout, p.String())
			}
			problems += len(ps)
		case err != nil:
			fmt.Fprintln(stdout, err)
			problems++
		}
	}
	for _, f := range bootstraps {
		for _, p := range validate.File(f) {
			fmt.Fprintln(stdout, p.String())
			problems++
		}
	}
	if problems > 0 {
		fmt.Fprintf(stderr, "tollgate check: %d problem(s)\n", problems)
		return 1
	}
	fmt.Fprintln(stdout, "ok")
	return 0
}
