package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/client"
	"github.com/trail-audit/trail/ingest"
	"github.com/trail-audit/trail/merkle"
)

const keysAbout = `Keys manages API keys: "create" makes one and prints it once, "list" shows
every key (never a secret), "revoke ID" revokes one. Each creation and
revocation is also appended to the log as a trail.key.created or
trail.key.revoked event.

Keys works directly on the store (--data, or --store for MongoDB), which is
how the first admin key is made, with the embedded store's server stopped;
or over HTTP with an admin key (--url and --token, or TRAIL_TOKEN).
`

// keyManager is what keys needs, over HTTP or on the store.
type keyManager interface {
	create(ctx context.Context, spec *trail.Key) (*trail.Key, string, error)
	list(ctx context.Context) ([]*trail.Key, error)
	revoke(ctx context.Context, id string) (*trail.Key, error)
}

// keysFlags are the flags of every keys subcommand.
type keysFlags struct {
	cf      clientFlags
	data    string
	store   string
	storeFn string // --store-file
	log     string
	origin  string
	keyFile string
	overNet bool // --url given: over HTTP
}

func (k *keysFlags) register(fs *flag.FlagSet) {
	k.cf.register(fs)
	fs.StringVar(&k.data, "data", "./data", "the embedded store's `directory`, to work on the store directly (the server must be stopped)")
	fs.StringVar(&k.store, "store", "embedded", "`store`: \"embedded\" (SQLite in --data) or a MongoDB URI, to work on the store directly")
	fs.StringVar(&k.storeFn, "store-file", "", "`file` holding the MongoDB URI, as trail serve --store-file")
	fs.StringVar(&k.log, "log", "main", "`name` of the embedded store's log, as trail serve --log")
	fs.StringVar(&k.origin, "origin", "trail.local", "checkpoint origin, as trail serve --origin")
	fs.StringVar(&k.keyFile, "key-file", "", "checkpoint signing key `file`, as trail serve --key-file (default <data>/trail.key)")
}

func (k *keysFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fs.Visit(func(f *flag.Flag) { k.overNet = k.overNet || f.Name == "url" })
	return nil
}

// open returns the manager the flags select, and a function that closes it.
func (k *keysFlags) open(ctx context.Context, stderr io.Writer) (keyManager, func() error, error) {
	if k.overNet {
		return httpKeys{k.cf.client()}, func() error { return nil }, nil
	}
	cfg := &serveConfig{data: k.data, store: k.store, storeFile: k.storeFn, log: k.log, origin: k.origin, keyFile: k.keyFile, leaseTTL: 10 * time.Second}
	if err := cfg.validateStore(); err != nil {
		return nil, nil, err
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	store, closeStore, err := openStore(ctx, cfg, logger)
	if err != nil {
		return nil, nil, err
	}
	signer, verifier, err := merkle.LoadOrCreateKey(cfg.keyFile, cfg.origin)
	if err != nil {
		closeStore()
		return nil, nil, fmt.Errorf("keys: signing key: %w (set --key-file as for trail serve)", err)
	}
	ing, err := ingest.New(ctx, store, ingest.Config{Signer: signer, Verifier: verifier, Origin: cfg.origin, Logger: logger})
	if err != nil {
		closeStore()
		return nil, nil, fmt.Errorf("keys: %w", err)
	}
	m := &auth.Manager{Keys: store.(trail.KeyStore), Ingester: ing}
	return storeKeys{m}, func() error {
		// Close commits the key event and signs a checkpoint over it.
		return errors.Join(ing.Close(context.WithoutCancel(ctx)), closeStore())
	}, nil
}

// storeKeys manages keys on the store, as the local operator.
type storeKeys struct{ m *auth.Manager }

func (s storeKeys) create(ctx context.Context, spec *trail.Key) (*trail.Key, string, error) {
	return s.m.CreateKey(ctx, spec, nil)
}
func (s storeKeys) list(ctx context.Context) ([]*trail.Key, error) { return s.m.ListKeys(ctx) }
func (s storeKeys) revoke(ctx context.Context, id string) (*trail.Key, error) {
	return s.m.RevokeKey(ctx, id, nil)
}

// httpKeys manages keys over HTTP with an admin key.
type httpKeys struct{ c *client.Client }

func (h httpKeys) create(ctx context.Context, spec *trail.Key) (*trail.Key, string, error) {
	k, secret, err := h.c.CreateKey(ctx, spec)
	if err != nil {
		return nil, "", err
	}
	return &k.Key, secret, nil
}

func (h httpKeys) list(ctx context.Context) ([]*trail.Key, error) {
	infos, err := h.c.ListKeys(ctx)
	keys := make([]*trail.Key, len(infos))
	for i := range infos {
		keys[i] = &infos[i].Key
	}
	return keys, err
}

func (h httpKeys) revoke(ctx context.Context, id string) (*trail.Key, error) {
	k, err := h.c.RevokeKey(ctx, id)
	if err != nil {
		return nil, err
	}
	return &k.Key, nil
}

func (c *cli) runKeys(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New(`keys: name a subcommand: create, list or revoke (run "trail keys create -h")`)}
	}
	switch args[0] {
	case "create":
		return c.runKeysCreate(ctx, args[1:])
	case "list":
		return c.runKeysList(ctx, args[1:])
	case "revoke":
		return c.runKeysRevoke(ctx, args[1:])
	}
	return usageError{fmt.Errorf("keys: unknown subcommand %q; want create, list or revoke", args[0])}
}

// parseExpiry reads --expires: a number of days ("90d"), a duration
// ("2160h") or an RFC 3339 time.
func parseExpiry(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(d); err == nil && n > 0 {
			return now.AddDate(0, 0, n), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(d), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageError{fmt.Errorf("--expires must be days (90d), a duration (2160h) or an RFC 3339 time, not %q", s)}
}

func (c *cli) runKeysCreate(ctx context.Context, args []string) error {
	var kf keysFlags
	fs := newFlagSet("keys create", "--name NAME --scopes SCOPES [flags]", keysAbout, c.stderr)
	kf.register(fs)
	name := fs.String("name", "", "the key's `name`, for people (required)")
	scopes := fs.String("scopes", "", "comma-separated `scopes`: write, read, audit, admin, metrics (required)")
	tenant := fs.String("tenant", "", "bind the key to this `tenant`")
	source := fs.String("source", "", "bind a writing key to this source.service `name`")
	expires := fs.String("expires", "", "expiry: `days` (90d), a duration (2160h) or an RFC 3339 time (default: never)")
	rate := fs.Float64("rate", 0, "limit the key to this many `events/s` (burst twice as many; 0: none)")
	if err := kf.parse(fs, args); err != nil {
		return err
	}
	sc, err := trail.ParseScopes(*scopes)
	if *name == "" || *scopes == "" {
		return usageError{errors.New("keys create: --name and --scopes are required")}
	} else if err != nil {
		return usageError{fmt.Errorf("keys create: --scopes: %s", trail.ErrorMessage(err))}
	}
	exp, err := parseExpiry(*expires, time.Now())
	if err != nil {
		return err
	}
	m, closeFn, err := kf.open(ctx, c.stderr)
	if err != nil {
		return err
	}
	k, secret, err := m.create(ctx, &trail.Key{Name: *name, Scopes: sc, Tenant: *tenant, Source: *source, Rate: *rate, Expires: exp})
	if cerr := closeFn(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys create: %w", err)
	}
	fmt.Fprintf(c.stderr, "created key %s (%s; scopes %s). It is shown only now; store it as a secret:\n", k.ID, k.Name, trail.FormatScopes(k.Scopes))
	fmt.Fprintln(c.stdout, secret)
	return nil
}

func (c *cli) runKeysList(ctx context.Context, args []string) error {
	var kf keysFlags
	fs := newFlagSet("keys list", "[flags]", keysAbout, c.stderr)
	kf.register(fs)
	if err := kf.parse(fs, args); err != nil {
		return err
	}
	m, closeFn, err := kf.open(ctx, c.stderr)
	if err != nil {
		return err
	}
	keys, err := m.list(ctx)
	if cerr := closeFn(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys list: %w", err)
	}
	now := time.Now()
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tTENANT\tSOURCE\tRATE\tCREATED\tEXPIRES\tLAST USED\tSTATE")
	for _, k := range keys {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Name, trail.FormatScopes(k.Scopes),
			dash(k.Tenant), dash(k.Source), rateText(k.Rate), day(k.Created), day(k.Expires), day(k.LastUsed), k.State(now))
	}
	return tw.Flush()
}

func (c *cli) runKeysRevoke(ctx context.Context, args []string) error {
	var kf keysFlags
	fs := newFlagSet("keys revoke", "ID [flags]", keysAbout, c.stderr)
	kf.register(fs)
	if err := kf.parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{errors.New("keys revoke: name one key id (see trail keys list)")}
	}
	m, closeFn, err := kf.open(ctx, c.stderr)
	if err != nil {
		return err
	}
	k, err := m.revoke(ctx, fs.Arg(0))
	if cerr := closeFn(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("keys revoke: %w", err)
	}
	fmt.Fprintf(c.stdout, "revoked key %s (%s) at %s\n", k.ID, k.Name, k.Revoked.Format(time.RFC3339))
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func rateText(r float64) string {
	if r == 0 {
		return "-"
	}
	return strconv.FormatFloat(r, 'g', -1, 64) + "/s"
}

func day(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04")
}
