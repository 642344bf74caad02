package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/tollgate-ai/tollgate/internal/xds"
	"github.com/tollgate-ai/tollgate/routing/config"
)

// envoyCmd groups the Envoy helpers; "bootstrap" is the only one.
func envoyCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "bootstrap" {
		fmt.Fprintln(stderr, "usage: tollgate envoy bootstrap [flags]")
		return 2
	}
	return bootstrapCmd(args[1:], stdout, stderr)
}

// bootstrapCmd prints an Envoy bootstrap. Without --static it is the minimal
// one: clusters and routes come from tollgate serve over ADS. With --static
// the clusters and routes generated from --config are inlined.
func bootstrapCmd(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("envoy bootstrap", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var paths multiFlag
	fs.Var(&paths, "config", "gateway config file or directory (repeatable); with --static")
	static := fs.Bool("static", false, "inline the clusters and routes generated from --config instead of ADS")
	listen := fs.String("listen", xds.DefaultListen, "Envoy listener address")
	admin := fs.String("admin", xds.DefaultAdmin, "Envoy admin address")
	extProc := fs.String("ext-proc", xds.DefaultExtProc, "tollgate serve's gRPC address (ext_proc and ADS): host:port or unix:///path")
	tls := fs.Bool("tls", false, "terminate TLS on the listener")
	cert := fs.String("tls-cert", xds.DefaultTLSCert, "listener certificate chain (with --tls)")
	key := fs.String("tls-key", xds.DefaultTLSKey, "listener private key (with --tls)")
	node := fs.String("node-id", xds.DefaultNodeID, "node id Envoy presents to the ADS server")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *static != (len(paths) > 0) {
		fmt.Fprintln(stderr, "tollgate envoy bootstrap: --static and --config go together")
		return 2
	}
	o := xds.BootstrapOptions{Listen: *listen, Admin: *admin, ExtProc: *extProc, NodeID: *node, Command: commandLine(fs)}
	if *tls {
		o.TLS = &xds.ListenerTLS{Cert: *cert, Key: *key}
	}
	if *static {
		cfg, err := config.Load(paths...)
		if err == nil {
			o.Static, err = xds.Generate(cfg)
		}
		if err != nil {
			var ps config.Problems
			if errors.As(err, &ps) {
				for _, p := range ps {
					fmt.Fprintln(stderr, p.String())
				}
			} else {
				fmt.Fprintln(stderr, err)
			}
			return 1
		}
	}
	out, err := xds.Bootstrap(o)
	if err != nil {
		fmt.Fprintln(stderr, "tollgate envoy bootstrap:", err)
		return 1
	}
	_, _ = stdout.Write(out)
	return 0
}

// commandLine is the command with the flags that were set, for the
// bootstrap's header: the file says how to make it again.
func commandLine(fs *flag.FlagSet) string {
	parts := []string{"tollgate envoy bootstrap"}
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "config" {
			return
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			parts = append(parts, "--"+f.Name)
			return
		}
		parts = append(parts, "--"+f.Name+" "+f.Value.String())
	})
	if c := fs.Lookup("config"); c != nil {
		for _, p := range *c.Value.(*multiFlag) {
			parts = append(parts, "--config "+p)
		}
	}
	return strings.Join(parts, " ")
}
