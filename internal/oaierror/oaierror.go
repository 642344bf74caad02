// Package oaierror builds error replies in OpenAI's API error format,
//
//	{"error":{"message":"…","type":"…","param":null,"code":"…"}}
//
// which every OpenAI SDK decodes into its typed API error. The gateway answers
// in this shape for every refusal it makes itself, because Envoy never passes
// its own local replies back through the processor (Envoy ext_proc: local replies are not sent to the processor): whatever the
// processor sends is what the client sees.
package oaierror

import (
	"fmt"
	"strconv"
	"unicode/utf8"
)

// Error types used by OpenAI's API.
const (
	TypeInvalidRequest = "invalid_request_error"
	TypeAuthentication = "authentication_error"
	TypePermission     = "permission_error"
	TypeNotFound       = "not_found_error"
	TypeRateLimit      = "rate_limit_error"
	TypeServer         = "server_error"
)

// Error is a refusal the gateway sends instead of forwarding a request.
type Error struct {
	Status  int    // HTTP status
	Type    string // OpenAI error type
	Code    string // machine-readable code; empty encodes as null
	Param   string // offending parameter; empty encodes as null
	Message string // human-readable; never contains secrets or prompt text
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// Body returns the JSON body of the error.
func (e *Error) Body() []byte {
	b := make([]byte, 0, 96+len(e.Message))
	b = append(b, `{"error":{"message":`...)
	b = AppendString(b, e.Message)
	b = append(b, `,"type":`...)
	b = AppendString(b, e.Type)
	b = append(b, `,"param":`...)
	b = appendNullable(b, e.Param)
	b = append(b, `,"code":`...)
	b = appendNullable(b, e.Code)
	return append(b, "}}"...)
}

func appendNullable(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return AppendString(b, s)
}

const hex = "0123456789abcdef"

// AppendString appends s as a JSON string literal. Invalid UTF-8 becomes
// U+FFFD, so the result is always valid JSON whatever bytes a client sent.
func AppendString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, "\\ufffd"...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// InvalidRequest is a 400 with type invalid_request_error.
func InvalidRequest(code, param, msg string) *Error {
	return &Error{Status: 400, Type: TypeInvalidRequest, Code: code, Param: param, Message: msg}
}

// InvalidAPIKey is the 401 for a missing, unknown, expired or disabled key.
// It deliberately never says which.
func InvalidAPIKey() *Error {
	return &Error{
		Status:  401,
		Type:    TypeInvalidRequest,
		Code:    "invalid_api_key",
		Message: "Incorrect or missing API key. Send a Tollgate gateway key as 'Authorization: Bearer <key>'.",
	}
}

// ModelNotFound is the 404 for a model name the gateway cannot route.
func ModelNotFound(model string) *Error {
	return &Error{
		Status:  404,
		Type:    TypeInvalidRequest,
		Code:    "model_not_found",
		Param:   "model",
		Message: "The model " + strconv.Quote(model) + " does not exist or you do not have access to it.",
	}
}

// UnknownURL is the 404 for a path the gateway does not serve.
func UnknownURL(method, path string) *Error {
	return &Error{
		Status:  404,
		Type:    TypeInvalidRequest,
		Code:    "unknown_url",
		Message: "Unknown request URL: " + method + " " + path + ".",
	}
}

// Internal is a 5xx the gateway could not avoid; msg must be safe to show.
func Internal(status int, code, msg string) *Error {
	return &Error{Status: status, Type: TypeServer, Code: code, Message: msg}
}
