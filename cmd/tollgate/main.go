// Command tollgate is the Tollgate AI gateway: an Envoy external processor.
//
//	tollgate run     [--config PATH]... [--listen ADDR] [--front auto|envoy|emulated] [--envoy PATH] [--dev]
//	tollgate serve   [--config PATH]... [--grpc-addr ADDR] [--admin-addr ADDR] [--drain-timeout D] [--dev] [--pprof]
//	tollgate check   [--config PATH]... [--envoy FILE]...
//	tollgate health  [--grpc-addr ADDR]
//	tollgate keys new --tenant T [--app A] [--id ID] [--tier TIER]
//	tollgate version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: tollgate <command> [flags]

commands:
  run       the whole gateway locally: processor, mock provider and Envoy (or the development front)
  serve     run the ext_proc gRPC server and the admin server
  check     validate gateway configuration and Envoy bootstraps
  envoy bootstrap  print an Envoy bootstrap (ADS from tollgate serve, or --static from a config)
  health    query the gRPC health service (for exec probes)
  keys new  generate a gateway key and the entry to paste into the keys Secret
  version   print the version

Run 'tollgate <command> -h' for a command's flags.
`

// run is main without the process: it returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "run":
		return runCmd(ctx, args[1:], stderr)
	case "serve":
		return serveCmd(ctx, args[1:], stderr)
	case "check":
		return checkCmd(args[1:], stdout, stderr)
	case "envoy":
		return envoyCmd(args[1:], stdout, stderr)
	case "health":
		return healthCmd(ctx, args[1:], stdout, stderr)
	case "keys":
		return keysCmd(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "tollgate %s\n", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "tollgate: unknown command %q\n\n%s", args[0], usage)
	return 2
}

// multiFlag collects a repeatable flag.
type multiFlag []string

func (m *multiFlag) String() string { return fmt.Sprint([]string(*m)) }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
