package grpcapi_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/trail-audit/trail"
	"github.com/trail-audit/trail/auth"
	"github.com/trail-audit/trail/gen/logger"
	trailv1 "github.com/trail-audit/trail/gen/trail/v1"
	"github.com/trail-audit/trail/grpcapi"
	"github.com/trail-audit/trail/internal/testserver"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// TestScopesCoverEveryMethod checks the scope table against the services'
// descriptors, so that a new method cannot go unguarded or untested.
func TestScopesCoverEveryMethod(t *testing.T) {
	scopes := grpcapi.Scopes()
	n := 0
	for _, name := range grpcapi.Services {
		d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Fatal(err)
		}
		methods := d.(protoreflect.ServiceDescriptor).Methods()
		for i := range methods.Len() {
			path := "/" + name + "/" + string(methods.Get(i).Name())
			if _, ok := scopes[path]; !ok {
				t.Errorf("%s: got no scope, want one", path)
			}
			n++
		}
	}
	if len(scopes) != n {
		t.Errorf("Scopes: got %d procedures, want %d (the services' methods)", len(scopes), n)
	}
}

// requests holds a valid request for every procedure, for the matrix.
var requests = map[string]proto.Message{
	"/logger.LoggerService/CreateLog":   &logger.CreateRequest{Logger: &logger.Logger{UserId: 1, EventType: "a.b", SrcService: "s"}},
	"/logger.LoggerService/ReadLog":     &logger.ReadRequest{},
	"/logger.LoggerService/ReadLogById": &logger.ReadRequestById{UserId: 1},
	"/trail.v1.TrailService/Append": &trailv1.AppendRequest{Events: []*trailv1.EventInput{
		jsonInput(`{"actor":{"id":"u"},"action":"a.b","source":{"service":"s"}}`)}},
	"/trail.v1.TrailService/Get":              &trailv1.GetRequest{Id: "rec-a"},
	"/trail.v1.TrailService/List":             &trailv1.ListRequest{},
	"/trail.v1.TrailService/Tail":             &trailv1.TailRequest{},
	"/trail.v1.TrailService/Checkpoint":       &trailv1.CheckpointRequest{},
	"/trail.v1.TrailService/InclusionProof":   &trailv1.InclusionProofRequest{Id: "rec-a"},
	"/trail.v1.TrailService/ConsistencyProof": &trailv1.ConsistencyProofRequest{From: 1},
}

// call makes one call of procedure with grpc-go and returns its code. A
// stream is read to its first message or error.
func call(ctx context.Context, conn *grpc.ClientConn, procedure string, req proto.Message) string {
	if procedure == "/trail.v1.TrailService/Tail" {
		// A tail that is let in waits for records until the deadline.
		ctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		defer cancel()
		st, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, procedure)
		if err == nil {
			err = st.SendMsg(req)
		}
		if err == nil {
			err = st.CloseSend()
		}
		if err == nil {
			err = st.RecvMsg(new(trailv1.TailResponse))
		}
		return codeOf(err)
	}
	return codeOf(conn.Invoke(ctx, procedure, req, new(emptyish)))
}

// emptyish decodes any answer: the matrix looks at codes, not bodies.
type emptyish = grpc_health_v1.HealthCheckResponse

// TestAuthMatrix calls every procedure with every kind of credential over
// gRPC metadata and checks the code: Unauthenticated without a valid key,
// PermissionDenied without the scope, and through the guard otherwise.
func TestAuthMatrix(t *testing.T) {
	s := MustOpenAuthServer(t)
	conn := MustDialGRPC(t, s)
	r, w, au, ad := trail.ScopeRead, trail.ScopeWrite, trail.ScopeAudit, trail.ScopeAdmin
	writer := mustKey(t, s, trail.Key{Scopes: []trail.Scope{w}})
	if _, err := invoke[trailv1.AppendResponse](withKey(t.Context(), writer), conn, "/trail.v1.TrailService/Append", &trailv1.AppendRequest{
		Events: []*trailv1.EventInput{jsonInput(`{"id":"rec-a","tenant":"A","actor":{"id":"u"},"action":"a.b","source":{"service":"s"}}`)},
	}); err != nil {
		t.Fatalf("Append rec-a: %v", err)
	}
	creds := []struct {
		name   string
		key    string
		scopes []trail.Scope // nil: not authenticated
	}{
		{"none", "", nil},
		{"bad", auth.FormatKey("nosuchkey", auth.NewSecret()), nil},
		{"write-only", writer, []trail.Scope{w}},
		{"read@A", mustKey(t, s, trail.Key{Scopes: []trail.Scope{r}, Tenant: "A"}), []trail.Scope{r}},
		{"read@B", mustKey(t, s, trail.Key{Scopes: []trail.Scope{r}, Tenant: "B"}), []trail.Scope{r}},
		{"audit", mustKey(t, s, trail.Key{Scopes: []trail.Scope{au}}), []trail.Scope{r, au}},
		{"admin", mustKey(t, s, trail.Key{Scopes: []trail.Scope{ad}}), []trail.Scope{ad}},
	}
	testserver.WaitCheckpoint(t, s.URL, s.Verifier, 2) // rec-a and the key events
	for procedure, scope := range grpcapi.Scopes() {
		req, ok := requests[procedure]
		if !ok {
			t.Errorf("%s: no request in this test", procedure)
			continue
		}
		for _, c := range creds {
			got := call(withKey(t.Context(), c.key), conn, procedure, req)
			var want []string
			switch {
			case scope == grpcapi.Public:
				want = []string{"OK"}
			case c.scopes == nil:
				want = []string{"Unauthenticated"}
			case !slices.Contains(c.scopes, scope):
				want = []string{"PermissionDenied"}
			case c.name == "read@B" && strings.Contains(procedure, "Proof") || c.name == "read@B" && strings.HasSuffix(procedure, "/Get"):
				want = []string{"NotFound"} // another tenant's record is a missing one
			default:
				want = []string{"OK", "DeadlineExceeded"} // Tail: let in, then waiting
			}
			if !slices.Contains(want, got) {
				t.Errorf("%s as %s: got %s, want %s", procedure, c.name, got, strings.Join(want, " or "))
			}
		}
	}
}

// TestTenantBindings checks the bindings of keys over gRPC: a tenant-bound
// reader sees only its tenant, and a tenant-bound writer writes only it.
func TestTenantBindings(t *testing.T) {
	s := MustOpenAuthServer(t)
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	writerA := withKey(ctx, mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Tenant: "A"}))
	readerA := withKey(ctx, mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeRead}, Tenant: "A"}))
	writer := withKey(ctx, mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}}))

	ev := func(tenant string, user int) *trailv1.AppendRequest {
		return &trailv1.AppendRequest{Events: []*trailv1.EventInput{jsonInput(fmt.Sprintf(
			`{"tenant":%q,"user_id":"%d","event_type":"a.b","src_service":"s"}`, tenant, user))}}
	}
	if _, err := invoke[trailv1.AppendResponse](writerA, conn, "/trail.v1.TrailService/Append", ev("B", 1)); codeOf(err) != "PermissionDenied" {
		t.Errorf("tenant-A writer appending tenant B: got %v, want PermissionDenied", err)
	}
	for _, c := range []struct {
		ctx    context.Context
		tenant string
		user   int
	}{{writerA, "", 5}, {writer, "B", 5}, {writer, "A", 6}} {
		if _, err := invoke[trailv1.AppendResponse](c.ctx, conn, "/trail.v1.TrailService/Append", ev(c.tenant, c.user)); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	list, err := invoke[trailv1.ListResponse](readerA, conn, "/trail.v1.TrailService/List", &trailv1.ListRequest{})
	if err != nil || len(list.Records) != 2 {
		t.Errorf("List as read@A: got %d records (%v), want tenant A's 2", len(list.GetRecords()), err)
	}
	_, err = invoke[trailv1.ListResponse](readerA, conn, "/trail.v1.TrailService/List", &trailv1.ListRequest{Filter: &trailv1.Filter{Tenant: "B"}})
	if codeOf(err) != "PermissionDenied" {
		t.Errorf("List tenant B as read@A: got %v, want PermissionDenied", err)
	}
	byID, err := invoke[logger.ReadResponseById](readerA, conn, "/logger.LoggerService/ReadLogById", &logger.ReadRequestById{UserId: 5})
	if err != nil || len(byID.Logger) != 1 {
		t.Errorf("ReadLogById(5) as read@A: got %d (%v), want 1: tenant B's is hidden", len(byID.GetLogger()), err)
	}
}

// TestHealthAndReflection checks the standard health service and server
// reflection with grpc-go's own clients, as grpcurl and load balancers use
// them. Both are open with authentication on.
func TestHealthAndReflection(t *testing.T) {
	s := MustOpenAuthServer(t)
	conn := MustDialGRPC(t, s)
	ctx := t.Context()
	hc := grpc_health_v1.NewHealthClient(conn)
	for _, svc := range []string{"", "trail.v1.TrailService", "logger.LoggerService"} {
		resp, err := hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: svc})
		if err != nil || resp.Status != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q): got %v, %v; want SERVING", svc, resp, err)
		}
	}
	if _, err := hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "nope"}); codeOf(err) != "NotFound" {
		t.Errorf("Check(nope): got %v, want NotFound", err)
	}

	rc, err := grpc_reflection_v1.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := rc.Send(&grpc_reflection_v1.ServerReflectionRequest{
		MessageRequest: &grpc_reflection_v1.ServerReflectionRequest_ListServices{},
	}); err != nil {
		t.Fatal(err)
	}
	resp, err := rc.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, svc := range resp.GetListServicesResponse().GetService() {
		names = append(names, svc.Name)
	}
	for _, want := range append([]string{"grpc.health.v1.Health"}, grpcapi.Services...) {
		if !slices.Contains(names, want) {
			t.Errorf("reflection ListServices: got %v, want %s among them", names, want)
		}
	}
	rc.CloseSend()
}

// TestRateLimited checks that a key over its rate gets ResourceExhausted
// with a RetryInfo, as REST's 429 has Retry-After.
func TestRateLimited(t *testing.T) {
	s := MustOpenAuthServer(t)
	conn := MustDialGRPC(t, s)
	ctx := withKey(t.Context(), mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Rate: 0.5}))
	req := &logger.CreateRequest{Logger: &logger.Logger{UserId: 1, EventType: "a.b", SrcService: "s"}}
	var err error
	for range 3 { // the burst is one event
		if _, err = invoke[logger.CreateResponse](ctx, conn, "/logger.LoggerService/CreateLog", req); err != nil {
			break
		}
	}
	if got := codeOf(err); got != "ResourceExhausted" {
		t.Fatalf("3 events at 0.5/s: got %s (%v), want ResourceExhausted", got, err)
	}
	var retry *errdetails.RetryInfo
	for _, d := range status.Convert(err).Details() {
		if r, ok := d.(*errdetails.RetryInfo); ok {
			retry = r
		}
	}
	if retry == nil || retry.RetryDelay.AsDuration() <= 0 {
		t.Errorf("rate limited: got RetryInfo %v, want a positive delay", retry)
	}
}

// TestSourceBinding checks that a source-bound key may leave src_service
// out of a Logger, and may not name another service.
func TestSourceBinding(t *testing.T) {
	s := MustOpenAuthServer(t)
	conn := MustDialGRPC(t, s)
	ctx := withKey(t.Context(), mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeWrite}, Source: "billing"}))
	create := func(src string) error {
		_, err := invoke[logger.CreateResponse](ctx, conn, "/logger.LoggerService/CreateLog",
			&logger.CreateRequest{Logger: &logger.Logger{UserId: 3, EventType: "a.b", SrcService: src}})
		return err
	}
	if err := create(""); err != nil {
		t.Fatalf("CreateLog without src_service: got %v, want success", err)
	}
	if err := create("other"); codeOf(err) != "PermissionDenied" {
		t.Errorf("CreateLog as billing for other: got %v, want PermissionDenied", err)
	}
	audit := mustKey(t, s, trail.Key{Scopes: []trail.Scope{trail.ScopeAudit}})
	if b := restGet(t, s, "/logs?actor=3", audit); !strings.Contains(string(b), `"source":{"service":"billing"}`) {
		t.Errorf("record: got %s, want source.service billing", b)
	}
}

// TestOpenOnlyForLoopbackHosts checks that a server open until its first
// key answers gRPC calls only when addressed to a loopback host, as REST
// does: a page that reaches 127.0.0.1 by DNS rebinding sends its own name
// as the authority, and gRPC-Web and Connect are reachable from browsers.
func TestOpenOnlyForLoopbackHosts(t *testing.T) {
	s := MustOpenServer(t, testserver.Config{Auth: &auth.Config{OpenWhileNoKeys: true}})
	target := strings.TrimPrefix(s.URL, "http://")
	for authority, want := range map[string]string{
		"rebind.example": "PermissionDenied",
		"10.0.0.1:8080":  "PermissionDenied",
		"localhost:8080": "OK",
		"127.0.0.1":      "OK",
		"[::1]:8080":     "OK",
	} {
		conn, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority(authority))
		if err != nil {
			t.Fatal(err)
		}
		got := call(t.Context(), conn, "/trail.v1.TrailService/List", &trailv1.ListRequest{})
		conn.Close()
		if got != want {
			t.Errorf("authority %s: got %s, want %s", authority, got, want)
		}
	}
}
