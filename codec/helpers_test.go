package codec

import (
	"errors"
	"strings"
)

// errKind names an error class so table rows stay short.
func errKind(err error) string {
	var se *SyntaxError
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &se):
		return "syntax"
	case err == ErrNeedMore:
		return "more"
	case err == ErrTooManyHeaders:
		return "toomany"
	case err == ErrBadContentLength:
		return "badcl"
	case err == ErrConflictingFraming:
		return "conflict"
	case err == ErrUnsupportedTransferEncoding:
		return "unsupportedte"
	case err == ErrUnsupportedVersion:
		return "version"
	case err == ErrMissingHost:
		return "host"
	}
	return "unexpected: " + err.Error()
}

// crlf turns "|" into CRLF so table rows stay readable; a literal "|" is never needed in them.
func crlf(s string) string { return strings.ReplaceAll(s, "|", "\r\n") }
