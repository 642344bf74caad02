package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/tollgate-ai/tollgate/envoy/validate"
	"github.com/tollgate-ai/tollgate/internal/gateway"
	"github.com/tollgate-ai/tollgate/internal/xds"
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
	var resources *xds.Resources // what the config routes to, for the bootstraps' cross-check
	if len(paths) > 0 {
		cfg, err := config.Load(paths...)
		if err == nil {
			// Exactly what serve runs to build a snapshot, secrets aside, so
			// check passes only what serve accepts. It includes generating
			// the Envoy resources and validating them strictly.
			err = gateway.Check(cfg, time.Now())
		}
		if err == nil {
			resources, err = xds.Generate(cfg)
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
		ps := validate.File(f)
		for _, p := range ps {
			fmt.Fprintln(stdout, p.String())
			problems++
		}
		if len(ps) > 0 || resources == nil {
			continue
		}
		// Clusters the gateway sends requests to must exist in Envoy: the
		// generated ones arrive over CDS (or are inlined by --static), the
		// externally managed ones must be in the bootstrap.
		data, err := os.ReadFile(f)
		if err == nil {
			var missing []string
			if missing, err = xds.MissingClusters(resources, data); err == nil {
				for _, name := range missing {
					fmt.Fprintf(stdout, "%s: static_resources.clusters: no cluster %q, which the gateway configuration routes to\n", f, name)
					problems++
				}
			}
		}
		if err != nil {
			fmt.Fprintf(stdout, "%s: %v\n", f, err)
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
