package sdk

import (
	"context"
	"errors"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/switchboard-hub/switchboard/plugins/sdk/pluginv1"
)

var codeToGRPC = map[ErrorCode]codes.Code{
	CodeUnknown:      codes.Unknown,
	CodeRetryable:    codes.Unavailable,
	CodePermanent:    codes.FailedPrecondition,
	CodeNotFound:     codes.NotFound,
	CodeUnauthorized: codes.Unauthenticated,
	CodeRateLimited:  codes.ResourceExhausted,
	CodeInvalid:      codes.InvalidArgument,
	CodeConflict:     codes.Aborted,
}

// toStatus turns an error returned by a plugin implementation into a gRPC
// status that carries the typed ErrorDetail.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isTyped(err) {
		return err // already a status, e.g. from a nested gRPC call
	}
	d := &pb.ErrorDetail{Message: err.Error()}
	var e *Error
	switch {
	case errors.As(err, &e):
		d.Code = pb.ErrorCode(e.Code)
		d.Message = e.Message
		if d.Message == "" {
			d.Message = e.Error()
		}
		d.RetryAfterMs = e.RetryAfter.Milliseconds()
		d.Reason = e.Reason
		d.ProviderCode = e.ProviderCode
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	st := status.New(codeToGRPC[ErrorCode(d.Code)], d.Message)
	if withD, derr := st.WithDetails(d); derr == nil {
		st = withD
	}
	return st.Err()
}

func isTyped(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// fromStatus rebuilds the typed error on the host side. Transport failures
// (the plugin crashed or is restarting) become retryable errors with the
// reason "plugin_unavailable", so the hub retries through its queue.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	var detail *pb.ErrorDetail
	for _, det := range st.Details() {
		if d, ok := det.(*pb.ErrorDetail); ok {
			detail = d
			break
		}
	}
	return fromStatusParts(st.Code(), st.Message(), detail)
}

// fromStatusParts is fromStatus on a status taken apart: a unary call's,
// or one item's of a batch (CallError).
func fromStatusParts(code codes.Code, msg string, d *pb.ErrorDetail) error {
	if d != nil {
		return &Error{
			Code:         ErrorCode(d.Code),
			Message:      d.Message,
			RetryAfter:   time.Duration(d.RetryAfterMs) * time.Millisecond,
			Reason:       d.Reason,
			ProviderCode: d.ProviderCode,
		}
	}
	switch code {
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return &Error{Code: CodeRetryable, Message: "plugin call deadline exceeded: " + msg, Reason: "timeout", Err: context.DeadlineExceeded}
	case codes.Unavailable:
		return &Error{Code: CodeRetryable, Message: "plugin unavailable: " + msg, Reason: "plugin_unavailable"}
	case codes.Unimplemented:
		return &Error{Code: CodePermanent, Message: "plugin does not implement this call: " + msg, Reason: "unimplemented"}
	case codes.ResourceExhausted:
		return &Error{Code: CodePermanent, Message: "message too large for the plugin protocol: " + msg, Reason: "too_large"}
	}
	return &Error{Code: CodeUnknown, Message: msg}
}

// callErrorTo encodes an implementation's error for one item of a batch:
// the status a unary call would have answered, taken apart.
func callErrorTo(err error) *pb.CallError {
	st := status.Convert(toStatus(err))
	ce := &pb.CallError{GrpcCode: int32(st.Code()), Message: st.Message()}
	for _, det := range st.Details() {
		if d, ok := det.(*pb.ErrorDetail); ok {
			ce.Detail = d
			break
		}
	}
	return ce
}

// callErrorFrom rebuilds the typed error of one item of a batch, as
// fromStatus does for a unary call.
func callErrorFrom(ce *pb.CallError) error {
	return fromStatusParts(codes.Code(ce.GrpcCode), ce.Message, ce.Detail)
}

// DeadlineError is the error a call that ran out of time answers, the
// same whether the deadline passed on the wire or while the call waited
// for a batch to leave: retryable, reason "timeout".
func DeadlineError(msg string) error {
	return fromStatusParts(codes.DeadlineExceeded, msg, nil)
}
