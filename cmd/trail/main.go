// Command trail runs and uses the trail audit-log service.
//
//	trail serve     run the service (embedded SQLite store, or MongoDB)
//	trail push      send events
//	trail get       print records by id
//	trail tail      print records as they arrive
//	trail bench     generate load and report throughput and latency
//	trail export    export a log
//	trail verify    check a log against its signed checkpoints
//	trail version   print the version
//
// Every flag can also be set by an environment variable: TRAIL_ followed by
// the flag's name in capitals with '-' as '_' (--commit-max-events is
// TRAIL_COMMIT_MAX_EVENTS). A flag on the command line wins.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, restore the default handling so that a
		// second one ends a shutdown that takes too long.
		<-ctx.Done()
		stop()
	}()
	os.Exit(Main(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad command line
)

// usageError is a bad command line: it exits with exitUsage.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// Main runs the trail command line args (without the program name) and
// returns the process's exit code. Cancelling ctx (SIGINT, SIGTERM) stops
// a running command gracefully.
func Main(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := &cli{stdin: stdin, stdout: stdout, stderr: stderr}
	err := c.run(ctx, args)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(usageError)):
		fmt.Fprintf(stderr, "trail: %v\n", err)
		return exitUsage
	}
	fmt.Fprintf(stderr, "trail: %v\n", err)
	return exitError
}

// cli holds the program's standard streams, so that tests can run it in
// process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

const mainUsage = `trail is an append-only, tamper-evident audit log.

Usage:

	trail <command> [flags] [arguments]

Commands:

	serve     run the service (embedded store, or MongoDB)
	push      send events (JSON arguments, or NDJSON / a JSON array on stdin)
	get       print records by id, verbatim
	tail      print the latest records, and follow new ones
	bench     generate load over HTTP; report events/s and latency
	bench-reads  measure reads (get by id, filtered pages) of a filled server
	export    export a log
	verify    check a log against its signed checkpoints
	keygen    create the checkpoint signing key; print its verifier key
	keys      create, list and revoke API keys
	migrate   convert a data directory of the SQLite layout (trail.db)
	version   print the version

Run "trail <command> -h" for a command's flags. Every flag can also be set
by an environment variable: TRAIL_ and the flag's name in capitals, with
'_' for '-' (--commit-max-events is TRAIL_COMMIT_MAX_EVENTS). A flag given
on the command line wins over the environment.
`

func (c *cli) run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(c.stderr, mainUsage)
		return usageError{errors.New("no command given")}
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "serve":
		return c.runServe(ctx, args)
	case "push":
		return c.runPush(ctx, args)
	case "get":
		return c.runGet(ctx, args)
	case "tail":
		return c.runTail(ctx, args)
	case "bench":
		return c.runBench(ctx, args)
	case "bench-reads":
		return c.runBenchReads(ctx, args)
	case "export":
		return c.runExport(ctx, args)
	case "verify":
		return c.runVerify(ctx, args)
	case "keygen":
		return c.runKeygen(ctx, args)
	case "keys":
		return c.runKeys(ctx, args)
	case "migrate":
		return c.runMigrate(ctx, args)
	case "version":
		fmt.Fprintln(c.stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(c.stdout, mainUsage)
		return nil
	}
	fmt.Fprint(c.stderr, mainUsage)
	return usageError{fmt.Errorf("unknown command %q", cmd)}
}

// versionString returns the version given at build time, or the module
// version and VCS revision that the Go toolchain recorded.
func versionString() string {
	v, rev, goVersion := version, "", ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				if s.Value == "true" && rev != "" {
					rev += "+dirty"
				}
			}
		}
	}
	if v == "" {
		v = "devel"
	}
	s := "trail " + v
	if rev != "" {
		s += " (" + rev + ")"
	}
	if goVersion != "" {
		s += " " + goVersion
	}
	return s
}
