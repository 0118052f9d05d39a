package testserver

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// binDir holds the programs the tests build; Main makes and removes it.
var binDir string

// Main runs a test package that builds programs (TrailBinary, Program):
// it makes the directory they go to, runs the tests, removes it, and
// exits. Call it from TestMain.
func Main(m *testing.M) {
	dir, err := os.MkdirTemp("", "trail-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// A Program is a Go program a test runs, built on first use, so that a run
// whose tests all skip builds nothing.
type Program struct {
	Name  string   // the binary's file name
	Dir   string   // where go build runs; "" for the test's directory
	Pkg   string   // the package to build
	Flags []string // go build flags

	once sync.Once
	bin  string
	err  error
}

// Build builds the program on the first call and returns its path. The
// package's TestMain must call Main.
func (p *Program) Build() (string, error) {
	p.once.Do(func() {
		if binDir == "" {
			p.err = fmt.Errorf("build %s: TestMain does not call testserver.Main", p.Name)
			return
		}
		p.bin = filepath.Join(binDir, p.Name)
		// go test puts its own toolchain first in PATH.
		cmd := exec.Command("go", append(append([]string{"build"}, p.Flags...), "-o", p.bin, p.Pkg)...)
		cmd.Dir = p.Dir
		if out, err := cmd.CombinedOutput(); err != nil {
			p.err = fmt.Errorf("go build %s: %v\n%s", p.Pkg, err, out)
		}
	})
	return p.bin, p.err
}

var trailProgram = Program{Name: "trail", Pkg: "github.com/trail-audit/trail/cmd/trail"}

// TrailBinary returns the trail program built from this tree.
func TrailBinary(tb testing.TB) string {
	tb.Helper()
	bin, err := trailProgram.Build()
	if err != nil {
		tb.Fatal(err)
	}
	return bin
}

// Buffer keeps what a child process writes, for a test that reads it while
// the child still writes: a bytes.Buffer behind a mutex.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Find returns the rest of the first line that starts with prefix, with
// its surrounding space trimmed, for waiting on a line such as "listening
// on ".
func (b *Buffer) Find(prefix string) (string, bool) {
	for _, line := range strings.Split(b.String(), "\n") {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			return strings.TrimSpace(rest), true
		}
	}
	return "", false
}

// Await waits until a line that starts with prefix is written, and
// returns the rest of it, as Find. It gives up when exited is closed (the
// writing process ended) or after limit.
func (b *Buffer) Await(prefix string, exited <-chan struct{}, limit time.Duration) (string, error) {
	deadline := time.Now().Add(limit)
	for {
		if rest, ok := b.Find(prefix); ok {
			return rest, nil
		}
		select {
		case <-exited:
			return "", errors.New("exited before printing " + strconv.Quote(prefix))
		default:
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("did not print %q within %v", prefix, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ChildEnv returns the test's environment without TRAIL_* variables, which
// would set the flags of the programs a test runs.
func ChildEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TRAIL_") {
			env = append(env, kv)
		}
	}
	return env
}
