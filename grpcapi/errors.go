package grpcapi

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"
	"github.com/trail-audit/trail"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
)

// codeNotCovered is the error of an inclusion proof asked for before a
// signed checkpoint covers the record (httpapi answers it 404 with
// Retry-After; here NotFound with RetryInfo).
const codeNotCovered = "not_covered"

// codes maps every trail error code to its gRPC code, and says whether the
// answer carries RetryInfo. It is the only place that decides a gRPC code
// for an error (docs/API.md prints it). Too large is ResourceExhausted, as
// gRPC itself answers a message over its size limit.
var codes = map[string]struct {
	code  connect.Code
	retry bool
}{
	trail.EINVALID:      {connect.CodeInvalidArgument, false},
	trail.ETOOLARGE:     {connect.CodeResourceExhausted, false},
	trail.EUNSUPPORTED:  {connect.CodeInvalidArgument, false},
	trail.ENOTFOUND:     {connect.CodeNotFound, false},
	trail.ECONFLICT:     {connect.CodeAlreadyExists, false},
	trail.EUNAVAILABLE:  {connect.CodeUnavailable, true},
	trail.EINTERNAL:     {connect.CodeInternal, false},
	trail.EUNAUTHORIZED: {connect.CodeUnauthenticated, false},
	trail.EFORBIDDEN:    {connect.CodePermissionDenied, false},
	trail.ERATELIMITED:  {connect.CodeResourceExhausted, true},
	trail.EMETHOD:       {connect.CodeUnimplemented, false},
	codeNotCovered:      {connect.CodeNotFound, true},
}

// error turns err into a *connect.Error by the table. Internal errors are
// logged in full and leave as "internal error". A rejected batch carries a
// google.rpc.BadRequest naming each bad item as events[i]; answers to
// retry carry a google.rpc.RetryInfo.
func (s *server) error(ctx context.Context, procedure string, err error) error {
	code := trail.ErrorCode(err)
	c, ok := codes[code]
	if !ok {
		code, c = trail.EINTERNAL, codes[trail.EINTERNAL]
	}
	msg := trail.ErrorMessage(err)
	var rl *trail.RateLimitError
	switch {
	case code == trail.EUNAUTHORIZED:
		s.obs.AuthFailed()
	case code == trail.ERATELIMITED && errors.As(err, &rl) && rl.Policy != "":
		s.obs.RateLimited(rl.Policy)
	case code == trail.ERATELIMITED:
		s.obs.RateLimited("key")
	}
	switch {
	case code == trail.EINTERNAL && ctx.Err() != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)):
		return ctx.Err() // the caller went away or its deadline passed; connect maps both
	case code == trail.EINTERNAL:
		s.log.ErrorContext(ctx, "grpcapi: internal error", "procedure", procedure, "err", err)
		msg = "internal error"
	case code == trail.EUNAVAILABLE:
		s.log.WarnContext(ctx, "grpcapi: unavailable", "procedure", procedure, "err", err)
	}
	ce := connect.NewError(c.code, errors.New(msg))
	var te *trail.Error
	if errors.As(err, &te) && len(te.Items) > 0 {
		br := &errdetails.BadRequest{}
		for _, it := range te.Items {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: fmt.Sprintf("events[%d]", it.Index), Description: it.Reason,
			})
		}
		addDetail(ce, br)
	}
	if c.retry {
		addDetail(ce, &errdetails.RetryInfo{RetryDelay: durationpb.New(s.retryDelay(err))})
	}
	return ce
}

// retryDelay is when a retry of err may succeed: a rate limit knows; the
// rest get the configured delay, as httpapi's Retry-After.
func (s *server) retryDelay(err error) time.Duration {
	var rl *trail.RateLimitError
	if errors.As(err, &rl) && rl.RetryAfter > 0 {
		return rl.RetryAfter
	}
	return s.retryAfter
}

// addDetail attaches m to ce; a detail that does not marshal is left out,
// since the code and message already say what went wrong.
func addDetail(ce *connect.Error, m proto.Message) {
	if d, err := connect.NewErrorDetail(m); err == nil {
		ce.AddDetail(d)
	}
}
