package api

import (
	"errors"
	"fmt"
	"net/http"
)

// Error is an error with an API code; the server maps codes to HTTP statuses and
// the client turns error bodies back into *Error, so callers on both sides use errors.As.
type Error struct {
	Code string
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

// Errorf makes an *Error with a code.
func Errorf(code, format string, args ...any) error {
	return &Error{Code: code, Msg: fmt.Sprintf(format, args...)}
}

// Coded is an error that carries its API code without being an *Error (a
// host's own error type, e.g. a broken VM).
type Coded interface {
	error
	APICode() string
}

// CodeOf returns the code of an *Error (or Coded) in err's chain, or "" if none.
func CodeOf(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c Coded
	if errors.As(err, &c) {
		return c.APICode()
	}
	return ""
}

// IsNotFound reports whether err is a not_found API error.
func IsNotFound(err error) bool { return CodeOf(err) == CodeNotFound }

// HTTPStatus maps an error code to its HTTP status; the one place that does so.
func HTTPStatus(code string) int {
	switch code {
	case CodeNotFound:
		return http.StatusNotFound
	case CodeConflict:
		return http.StatusConflict
	case CodeInvalid:
		return http.StatusBadRequest
	case CodeUnsupported:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}
