package grpcapi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"

	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/internal/testserver"
	"github.com/trail-audit/trail/tail"
	"golang.org/x/mod/sumdb/tlog"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// codeOf names a grpc-go error's code ("OK" for nil).
func codeOf(err error) string { return status.Code(err).String() }

// leaf is the RFC 6962 leaf hash of record bytes.
func leaf(b []byte) []byte {
	h := sha256.Sum256(append([]byte{0}, b...))
	return h[:]
}

// TestAppendGetByteIdentical writes over gRPC (grpc-go) and reads over
// REST, and the other way round: the record bytes are the same, and the
// receipt's leaf hash is their hash.
func TestAppendGetByteIdentical(t *testing.T) {
	for _, backend := range []string{"sqlite", "mongo"} {
		t.Run(backend, func(t *testing.T) { testAppendGetByteIdentical(t, backend) })
	}
}

func testAppendGetByteIdentical(t *testing.T, backend string) {
	s := MustOpenServer(t, testserver.Config{Backend: backend})
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	when := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	req := &trailv1.AppendRequest{Events: []*trailv1.EventInput{
		{Event: &trailv1.EventInput_Structured{Structured: &trailv1.Event{
			Id: "grpc-1", Time: timestamppb.New(when), Tenant: "A", Actor: &trailv1.Actor{Id: "u-1", Type: "user"},
			Action: "account.suspended", Target: &trailv1.Target{Id: "acct-9"}, Source: &trailv1.Source{Service: "billing"},
			Outcome: "success", DataJson: `{"n":12345678901234567890,"s":"<&>"}`,
		}}},
		jsonInput(`{"id":"grpc-2","user_id":"7","event_type":"Legacy.Event","src_service":"old"}`),
	}}
	resp, err := invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", req)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	if !resp.Created || len(resp.Receipts) != 2 || resp.Receipts[1].Seq != 1 {
		t.Fatalf("Append: got %v, want 2 created receipts, seqs 0 and 1", resp)
	}
	restOut := restPost(t, s, "/logs", `{"id":"rest-1","actor":{"id":"u-2"},"action":"a.b","source":{"service":"s"}}`)
	var restReceipt trail.Receipt
	if err := json.Unmarshal(restOut, &restReceipt); err != nil {
		t.Fatal(err)
	}

	for i, id := range []string{"grpc-1", "grpc-2", "rest-1"} {
		rest := restGet(t, s, "/logs/"+id, "")
		got, err := invoke[trailv1.GetResponse](ctx, conn, "/trail.v1.TrailService/Get", &trailv1.GetRequest{Id: id})
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		if !bytes.Equal(got.Record.Json, rest) {
			t.Errorf("Get(%s): got %s, want the bytes REST serves, %s", id, got.Record.Json, rest)
		}
		if lh := got.Record.Receipt.LeafHash; !bytes.Equal(lh, leaf(rest)) {
			t.Errorf("Get(%s): got leaf hash %x, want %x", id, lh, leaf(rest))
		}
		if i < 2 && !bytes.Equal(resp.Receipts[i].LeafHash, leaf(rest)) {
			t.Errorf("Append receipt %d: got leaf hash %x, want %x", i, resp.Receipts[i].LeafHash, leaf(rest))
		}
	}
	if !bytes.Contains(restGet(t, s, "/logs/grpc-1", ""), []byte(`"data":{"n":12345678901234567890,"s":"<&>"}`)) {
		t.Errorf("grpc-1: got %s, want data_json kept exactly", restGet(t, s, "/logs/grpc-1", ""))
	}
	if !bytes.Contains(restGet(t, s, "/logs/grpc-2", ""), []byte(`"action":"legacy.event"`)) {
		t.Errorf("grpc-2: the legacy JSON was not mapped as POST /logs maps it")
	}

	// Replaying an id with the same content gets the original receipt;
	// with other content, AlreadyExists.
	again, err := invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", &trailv1.AppendRequest{Events: req.Events[1:]})
	if err != nil || again.Created || again.Receipts[0].Seq != 1 {
		t.Errorf("replay: got %v, %v; want not created, seq 1", again, err)
	}
	_, err = invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", &trailv1.AppendRequest{Events: []*trailv1.EventInput{
		jsonInput(`{"id":"grpc-2","user_id":"8","event_type":"x.y","src_service":"old"}`)}})
	if got := codeOf(err); got != "AlreadyExists" {
		t.Errorf("conflicting replay: got %s (%v), want AlreadyExists", got, err)
	}
	if _, err := invoke[trailv1.GetResponse](ctx, conn, "/trail.v1.TrailService/Get", &trailv1.GetRequest{Id: "nope"}); codeOf(err) != "NotFound" {
		t.Errorf("Get(nope): got %v, want NotFound", err)
	}
}

// TestAppendBatchAtomic checks that a batch with a bad item stores
// nothing, and that the error names each bad item in a BadRequest.
func TestAppendBatchAtomic(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{Limits: trail.Limits{MaxBatchEvents: 3}})
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	good := jsonInput(`{"actor":{"id":"u"},"action":"a.b","source":{"service":"s"}}`)
	_, err := invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", &trailv1.AppendRequest{Events: []*trailv1.EventInput{
		good, jsonInput(`{"actor":{"id":"u"},"source":{"service":"s"}}`), {}, jsonInput(`{"a":1},{"b":2}`),
	}})
	if got := codeOf(err); got != "ResourceExhausted" {
		t.Errorf("4 events over a limit of 3: got %s (%v), want ResourceExhausted", got, err)
	}
	_, err = invoke[trailv1.AppendResponse](ctx, conn, "/trail.v1.TrailService/Append", &trailv1.AppendRequest{Events: []*trailv1.EventInput{
		good, jsonInput(`{"actor":{"id":"u"},"source":{"service":"s"}}`), jsonInput(`{"a":1},{"b":2}`),
	}})
	if got := codeOf(err); got != "InvalidArgument" {
		t.Fatalf("batch with bad items: got %s (%v), want InvalidArgument", got, err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.FieldViolations {
				fields = append(fields, v.Field)
			}
		}
	}
	if got := fmt.Sprint(fields); got != "[events[1] events[2]]" {
		t.Errorf("BadRequest fields: got %v, want [events[1] events[2]]", got)
	}
	if h := s.Ingester.Head(); h.Size != 0 {
		t.Errorf("after a refused batch: got size %d, want 0", h.Size)
	}
}

// TestConnectClient reads, lists and proves over the Connect protocol (and
// Get over gRPC-Web), and checks the proofs against the signed checkpoint.
func TestConnectClient(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{})
	c := connectClient(s, "")
	ctx := t.Context()
	var in []*trailv1.EventInput
	for i := range 5 {
		in = append(in, jsonInput(fmt.Sprintf(`{"id":"c-%d","actor":{"id":"u-%d"},"action":"doc.read","source":{"service":"s"},"time":"2026-01-01T00:00:0%dZ"}`, i, i%2, i)))
	}
	if _, err := c.Append(ctx, connect.NewRequest(&trailv1.AppendRequest{Events: in})); err != nil {
		t.Fatalf("Append: %v", err)
	}

	// Paging by cursor with a filter gives what REST gives, in order.
	var ids []string
	cursor := ""
	for {
		page, err := c.List(ctx, connect.NewRequest(&trailv1.ListRequest{
			Filter: &trailv1.Filter{Actor: "u-0", Action: "doc.*"}, Order: trailv1.Order_ORDER_ASC, Limit: 2, Cursor: cursor,
		}))
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		for _, r := range page.Msg.Records {
			ids = append(ids, r.Receipt.Id)
		}
		if cursor = page.Msg.NextCursor; cursor == "" {
			break
		}
	}
	if got := fmt.Sprint(ids); got != "[c-0 c-2 c-4]" {
		t.Errorf("List(actor u-0, asc, by 2): got %s, want [c-0 c-2 c-4]", got)
	}
	_, err := c.List(ctx, connect.NewRequest(&trailv1.ListRequest{Filter: &trailv1.Filter{Outcome: "maybe"}}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("List(outcome maybe): got %v, want invalid_argument", err)
	}

	_, note := testserver.WaitCheckpoint(t, s.URL, s.Verifier, 5)
	// Connect with JSON, as curl would speak it.
	cp, err := connectClient(s, "", connect.WithProtoJSON()).Checkpoint(ctx, connect.NewRequest(&trailv1.CheckpointRequest{}))
	if err != nil {
		t.Fatalf("Checkpoint: %v", err)
	}
	if cp.Msg.VerifierKey != s.Verifier || cp.Msg.Size < 5 {
		t.Fatalf("Checkpoint: got key %q size %d, want %q and size >= 5", cp.Msg.VerifierKey, cp.Msg.Size, s.Verifier)
	}
	if cp.Msg.Size == 5 && !bytes.Equal(cp.Msg.Note, note) {
		t.Errorf("Checkpoint: got note %q, want %q (GET /checkpoint)", cp.Msg.Note, note)
	}
	var root tlog.Hash
	copy(root[:], cp.Msg.RootHash)

	web := connectClient(s, "", connect.WithGRPCWeb())
	got, err := web.Get(ctx, connect.NewRequest(&trailv1.GetRequest{Id: "c-3"}))
	if err != nil {
		t.Fatalf("Get over gRPC-Web: %v", err)
	}
	ip, err := c.InclusionProof(ctx, connect.NewRequest(&trailv1.InclusionProofRequest{Id: "c-3", Size: cp.Msg.Size}))
	if err != nil {
		t.Fatalf("InclusionProof: %v", err)
	}
	var lh tlog.Hash
	copy(lh[:], leaf(got.Msg.Record.Json))
	if err := tlog.CheckRecord(toProof(ip.Msg.Proof), cp.Msg.Size, root, ip.Msg.Seq, lh); err != nil {
		t.Errorf("CheckRecord(c-3): %v", err)
	}
	cons, err := c.ConsistencyProof(ctx, connect.NewRequest(&trailv1.ConsistencyProofRequest{From: 2}))
	if err != nil {
		t.Fatalf("ConsistencyProof: %v", err)
	}
	if cons.Msg.To != cp.Msg.Size || len(cons.Msg.Proof) == 0 {
		t.Errorf("ConsistencyProof(from 2): got to %d with %d hashes, want to %d with a proof", cons.Msg.To, len(cons.Msg.Proof), cp.Msg.Size)
	}
	_, err = c.ConsistencyProof(ctx, connect.NewRequest(&trailv1.ConsistencyProofRequest{From: 3, To: 2}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("ConsistencyProof(from 3, to 2): got %v, want invalid_argument", err)
	}
}

func toProof(b [][]byte) []tlog.Hash {
	out := make([]tlog.Hash, len(b))
	for i := range b {
		copy(out[i][:], b[i])
	}
	return out
}

// TestTail follows new records with grpc-go and the Connect client, in
// commit order, and resumes after a cursor with nothing skipped or
// repeated.
func TestTail(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{})
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	post := func(i int, action string) {
		// Times run backwards: the tail goes by commit order, not time.
		restPost(t, s, "/logs", fmt.Sprintf(`{"id":"t-%d","actor":{"id":"u"},"action":%q,"source":{"service":"s"},"time":"2001-01-%02dT00:00:00Z"}`, i, action, 10-i))
	}
	post(0, "new.event") // before the tail: not sent

	stream, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/trail.v1.TrailService/Tail")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&trailv1.TailRequest{Filter: &trailv1.Filter{Action: "new.*"}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Header(); err != nil { // the tail has its start
		t.Fatal(err)
	}
	if m := restGet(t, s, "/metrics", ""); !bytes.Contains(m, []byte("\ntrail_tail_subscribers 1\n")) {
		t.Errorf("GET /metrics while one gRPC Tail is open: want trail_tail_subscribers 1 in\n%s", m)
	}
	for i := 1; i <= 4; i++ {
		action := "new.event"
		if i == 2 {
			action = "other.event"
		}
		post(i, action)
	}
	var got []string
	var cursors []string
	for len(got) < 3 {
		var m trailv1.TailResponse
		if err := stream.RecvMsg(&m); err != nil {
			t.Fatalf("Tail: after %v: %v", got, err)
		}
		got = append(got, m.Record.Receipt.Id)
		cursors = append(cursors, m.Record.Cursor)
	}
	if fmt.Sprint(got) != "[t-1 t-3 t-4]" {
		t.Errorf("Tail(new.*): got %v, want [t-1 t-3 t-4]", got)
	}

	// Resuming after t-1's cursor gives t-3 and t-4 again, then t-5.
	c := connectClient(s, "")
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rs, err := c.Tail(cctx, connect.NewRequest(&trailv1.TailRequest{Filter: &trailv1.Filter{Action: "new.*"}, Cursor: cursors[0]}))
	if err != nil {
		t.Fatal(err)
	}
	post(5, "new.event")
	var resumed []string
	for len(resumed) < 3 && rs.Receive() {
		resumed = append(resumed, rs.Msg().Record.Receipt.Id)
	}
	if fmt.Sprint(resumed) != "[t-3 t-4 t-5]" {
		t.Errorf("Tail after t-1's cursor: got %v (%v), want [t-3 t-4 t-5]", resumed, rs.Err())
	}
	cancel()
	rs.Close()
}

// TestTailMemoryBudget: a Tail that does not fit the tail's memory budget
// ends at once with Unavailable, which the client retries, as REST's 503.
func TestTailMemoryBudget(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{Tail: tail.Config{QueueBytes: 1 << 20, PageBytes: 1 << 20, Memory: 3 << 20}})
	c := connectClient(s, "")
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	first, err := c.Tail(ctx, connect.NewRequest(&trailv1.TailRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	for i := 0; s.Tail.Subscribers() == 0; i++ { // the first has its share
		if i == 10000 {
			t.Fatal("first Tail: got no subscriber after 10 s, want one")
		}
		time.Sleep(time.Millisecond)
	}
	second, err := c.Tail(ctx, connect.NewRequest(&trailv1.TailRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if second.Receive() || connect.CodeOf(second.Err()) != connect.CodeUnavailable {
		t.Errorf("second Tail: got %v, want Unavailable", second.Err())
	}
}

// TestUnavailableCarriesRetryInfo checks that a store outage is
// Unavailable with a RetryInfo, as REST's 503 has Retry-After.
func TestUnavailableCarriesRetryInfo(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{WrapReader: func(r trail.Reader) trail.Reader { return downReader{r} }})
	conn := MustDialGRPC(t, s)
	_, err := invoke[trailv1.ListResponse](t.Context(), conn, "/trail.v1.TrailService/List", &trailv1.ListRequest{})
	if got := codeOf(err); got != "Unavailable" {
		t.Fatalf("List with the store down: got %s (%v), want Unavailable", got, err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Errorf("List with the store down: got RetryInfo %v, want a positive delay", retry)
	}
}

// downReader is a store whose List fails as an unreachable store does.
type downReader struct{ trail.Reader }

func (downReader) List(context.Context, *trail.Filter) ([]*trail.Entry, error) {
	return nil, fmt.Errorf("list: %w", trail.ErrUnavailable)
}
