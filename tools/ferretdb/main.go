// Command ferretdb runs FerretDB v1.24.2 with its SQLite handler as a MongoDB
// wire-protocol server for trail's tests. It lives in its own module so that
// FerretDB's dependencies stay out of trail's go.mod.
//
// The module-zip CLI of v1.24.2 panics at start-up for lack of a version file,
// so this wrapper uses the embeddable package instead.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:27017", "TCP address to listen on; port 0 picks a free port")
	dir := flag.String("dir", "ferretdb-data", "directory for the SQLite files")
	uriFile := flag.String("uri-file", "", "once listening, write the server's mongodb:// URI to this file")
	verbose := flag.Bool("v", false, "log at debug level")
	flag.Parse()

	// FerretDB logs every error reply at warn level; tests provoke many
	// (duplicate keys, missing collections), so only errors are shown.
	level := slog.LevelError
	if *verbose {
		level = slog.LevelDebug
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: *addr},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + *dir + "/",
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
	// New has bound the listener, so the URI names the real port even when
	// -listen asked for port 0. The file is renamed into place so that a
	// script polling for it never reads half a URI.
	uri := f.MongoDBURI()
	if *uriFile != "" {
		if err := writeFileAtomic(*uriFile, uri+"\n"); err != nil {
			fmt.Fprintln(os.Stderr, "ferretdb:", err)
			os.Exit(1)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Fprintln(os.Stderr, "ferretdb: listening on", uri)
	if err := f.Run(ctx); err != nil && ctx.Err() == nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// to path.
func writeFileAtomic(path, data string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		return fmt.Errorf("write uri file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write uri file: %w", err)
	}
	return nil
}
