package main

import (
	"crypto/tls"
	"strings"
	"testing"

	"github.com/trail-audit/trail/gen/logger"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
)

// TestServeGRPC checks that `trail serve` answers a grpc-go client on its
// REST port: over h2c in plaintext, and over HTTP/2 with TLS.
func TestServeGRPC(t *testing.T) {
	plain := MustStartServe(t, t.TempDir())
	secure := MustStartTLSServe(t)
	for _, c := range []struct {
		name  string
		addr  string
		creds credentials.TransportCredentials
	}{
		{"h2c", strings.TrimPrefix(plain.URL, "http://"), insecure.NewCredentials()},
		{"tls", secure.addr(t), credentials.NewTLS(&tls.Config{RootCAs: secure.CA.Pool(), ServerName: "127.0.0.1"})},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(c.creds))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			hc, err := grpc_health_v1.NewHealthClient(conn).Check(t.Context(), &grpc_health_v1.HealthCheckRequest{})
			if err != nil || hc.Status != grpc_health_v1.HealthCheckResponse_SERVING {
				t.Fatalf("Check: got %v, %v; want SERVING", hc, err)
			}
			req := &logger.CreateRequest{Logger: &logger.Logger{UserId: 9, EventType: "a.b", SrcService: "s"}}
			var resp logger.CreateResponse
			if err := conn.Invoke(t.Context(), "/logger.LoggerService/CreateLog", req, &resp); err != nil || !resp.Success {
				t.Fatalf("CreateLog: got %v, %v; want success", &resp, err)
			}
		})
	}
}
