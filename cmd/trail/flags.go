package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// envName returns the environment variable that sets a flag.
func envName(flag string) string {
	return "TRAIL_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// newFlagSet returns a subcommand's flag set. Its usage text lists each
// flag with its environment variable.
func newFlagSet(name, synopsis, about string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("trail "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, "Usage: trail %s %s\n\n%s\nFlags (each can be set by the environment variable shown; the flag wins):\n\n", name, synopsis, about)
		fs.VisitAll(func(f *flag.Flag) {
			typ, usage := flag.UnquoteUsage(f)
			head := "  --" + f.Name
			if typ != "" {
				head += " " + typ
			}
			fmt.Fprintf(w, "%-34s %s\n", head, envName(f.Name))
			fmt.Fprintf(w, "        %s", usage)
			if f.DefValue != "" && f.DefValue != "0" && f.DefValue != "0s" && f.DefValue != "false" {
				fmt.Fprintf(w, " (default %s)", f.DefValue)
			}
			fmt.Fprintln(w)
		})
	}
	return fs
}

// parseFlags sets fs's flags from their TRAIL_* environment variables, then
// from args. A bad value in either is a usage error.
func parseFlags(fs *flag.FlagSet, args []string) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		v, ok := os.LookupEnv(envName(f.Name))
		if !ok || v == "" || err != nil {
			return
		}
		if e := fs.Set(f.Name, v); e != nil {
			err = usageError{fmt.Errorf("%s: environment variable %s=%q: %v", fs.Name(), envName(f.Name), v, e)}
		}
	})
	if err != nil {
		return err
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{fmt.Errorf("%s: %v (run \"%s -h\" for the flags)", fs.Name(), err, fs.Name())}
	}
	return nil
}

// byteSize is a flag value in bytes that also takes units: 64KiB, 10MiB,
// 1GiB (or KB, MB, GB as powers of 1000).
type byteSize int64

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		name string
		size int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Set(s string) error {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1},
	} {
		if rest, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return fmt.Errorf("want a size such as 65536, 64KiB or 10MiB")
	}
	*b = byteSize(n * mult)
	return nil
}

// positive checks that numeric settings are in range, naming the flag.
func positive(name string, v int64) error {
	if v <= 0 {
		return usageError{fmt.Errorf("--%s must be positive, not %d", name, v)}
	}
	return nil
}

func nonNegative(name string, d time.Duration) error {
	if d < 0 {
		return usageError{fmt.Errorf("--%s must not be negative, not %s", name, d)}
	}
	return nil
}
