// Command callgate is the gateway binary.
//
//	callgate [serve] [--config FILE] [--addr :8080] [--data-dir ./callgate-data]
//	callgate config check --config FILE
//	callgate healthcheck [--addr :8080]
//	callgate version
//	callgate help (or -h, --help)
//
// Every flag has an environment variable (CALLGATE_CONFIG, CALLGATE_ADDR,
// CALLGATE_DATA_DIR); a flag wins over the variable, which wins over the YAML.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/callgate/callgate/adapters/discord"
	slackkind "github.com/callgate/callgate/adapters/slack"
	"github.com/callgate/callgate/config"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.LookupEnv))
}

// run executes one command line and returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	cmd := "serve"
	if len(args) > 0 && (args[0] == "" || args[0][0] != '-' || isHelpOrVersion(args[0])) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		opts, err := parseServeFlags(args, stderr, getenv)
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		if err != nil {
			return 2
		}
		startPprof(getenv, stderr)
		if err := serve(ctx, builtinKinds(), opts, stderr, nil); err != nil {
			fmt.Fprintf(stderr, "callgate: %v\n", err)
			return 1
		}
		return 0
	case "config":
		if len(args) == 0 || args[0] != "check" {
			fmt.Fprintln(stderr, "usage: callgate config check --config FILE")
			return 2
		}
		return configCheck(args[1:], stdout, stderr, getenv)
	case "healthcheck":
		return healthcheck(ctx, args, stderr, getenv)
	case "slack":
		return slackkind.Command(args, stdout, stderr, getenv, builtinKinds().config())
	case "discord":
		return discord.Main(ctx, args, stdout, stderr, getenv, builtinKinds().config())
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, "callgate", buildVersion())
		return 0
	case "help", "-h", "-help", "--help":
		usage(stdout)
		return 0
	}
	fmt.Fprintf(stderr, "callgate: unknown command %q\n\n", cmd)
	usage(stderr)
	return 2
}

// isHelpOrVersion reports whether a first argument that looks like a flag
// is really a request for the usage or the version.
func isHelpOrVersion(arg string) bool {
	switch arg {
	case "-h", "-help", "--help", "-version", "--version":
		return true
	}
	return false
}

func usage(w io.Writer) {
	fmt.Fprint(w, `callgate: voice and video calls for chat

Commands:
  serve          run the gateway (the default)
                   --config FILE     YAML configuration (CALLGATE_CONFIG); none: embedded defaults
                   --addr ADDR       listen address (CALLGATE_ADDR), default :8080
                   --data-dir DIR    SQLite file and generated secrets (CALLGATE_DATA_DIR), default ./callgate-data
  config check   --config FILE: report every problem in the file, exit 1 if any
  slack manifest [--chat NAME] [--config FILE]: print the Slack app manifest
  discord register [--guild ID] [--chat NAME] --config FILE: install /call for a Discord chat
  healthcheck    exit 0 if the gateway at --addr (CALLGATE_ADDR) answers /healthz; for container health checks
  version        print the version
`)
}

func buildVersion() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// serveOptions are the serve command's settings after flags and environment.
type serveOptions struct {
	configFile string
	addr       string // empty: from the YAML
	dataDir    string // empty: from the YAML
	getenv     func(string) (string, bool)
}

func parseServeFlags(args []string, stderr io.Writer, getenv func(string) (string, bool)) (serveOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// -h prints the whole usage (run does it), not only serve's flags.
	fs.Usage = func() {}
	env := func(name string) string { v, _ := getenv(name); return v }
	opts := serveOptions{getenv: getenv}
	fs.StringVar(&opts.configFile, "config", env("CALLGATE_CONFIG"), "YAML configuration file")
	fs.StringVar(&opts.addr, "addr", env("CALLGATE_ADDR"), "listen address (default :8080)")
	fs.StringVar(&opts.dataDir, "data-dir", env("CALLGATE_DATA_DIR"), "data directory (default ./callgate-data)")
	if err := fs.Parse(args); err != nil {
		return opts, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "callgate serve: unexpected argument %q\n", fs.Arg(0))
		return opts, errors.New("unexpected argument")
	}
	return opts, nil
}

func configCheck(args []string, stdout, stderr io.Writer, getenv func(string) (string, bool)) int {
	fs := flag.NewFlagSet("config check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := ""
	if v, ok := getenv("CALLGATE_CONFIG"); ok {
		file = v
	}
	fs.StringVar(&file, "config", file, "YAML configuration file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if file == "" {
		fmt.Fprintln(stderr, "usage: callgate config check --config FILE")
		return 2
	}
	cfg, err := config.Load(file, getenv, builtinKinds().config())
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok (%s)\n", file, cfg.Summary())
	return 0
}

// healthcheck asks the local gateway's /healthz. Distroless images have no
// curl, so the binary checks itself.
func healthcheck(ctx context.Context, args []string, stderr io.Writer, getenv func(string) (string, bool)) int {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr, _ := getenv("CALLGATE_ADDR")
	fs.StringVar(&addr, "addr", addr, "the gateway's listen address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if addr == "" {
		addr = ":8080"
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: bad address %q: %v\n", addr, err)
		return 2
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/healthz", nil)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "healthcheck:", err)
		return 1
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		fmt.Fprintln(stderr, "healthcheck: status", res.StatusCode)
		return 1
	}
	return 0
}
