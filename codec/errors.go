package codec

import (
	"errors"
	"strconv"
)

// Sentinel errors. Each maps to one answer; see doc.go for the full table.
var (
	// ErrNeedMore: the head (or request line) is not complete yet. Read more and call again with the
	// whole head prefix.
	ErrNeedMore = errors.New("codec: need more data")
	// ErrTooManyHeaders: more header lines than the Request's or Response's header index takes (431 for
	// a request, 502 for a response).
	ErrTooManyHeaders = errors.New("codec: too many headers")
	// ErrBadContentLength: a Content-Length that is not plain digits, overflows int63, or differs
	// from another Content-Length in the same head (400).
	ErrBadContentLength = errors.New("codec: bad content-length")
	// ErrConflictingFraming: both Content-Length and Transfer-Encoding (400 for requests, 502 for
	// responses).
	ErrConflictingFraming = errors.New("codec: both content-length and transfer-encoding")
	// ErrUnsupportedTransferEncoding: a request Transfer-Encoding whose last coding is not chunked (501).
	ErrUnsupportedTransferEncoding = errors.New("codec: unsupported transfer-encoding")
	// ErrUnsupportedVersion: a well-formed "HTTP/x.y" other than 1.0 and 1.1 (505).
	ErrUnsupportedVersion = errors.New("codec: unsupported http version")
	// ErrMissingHost: an HTTP/1.1 request with no Host, or any request with more than one (400).
	ErrMissingHost = errors.New("codec: missing or repeated host")
)

// SyntaxError reports malformed input: where (Offset, counted from the start of the buffer given to
// ParseRequest/ParseResponse, or from the first body byte given to a ChunkedReader) and in which
// parser state. Its text never contains input bytes, so it is safe to log.
//
// Parsers return a pointer to a SyntaxError embedded in the Request, Response or ChunkedReader, so the
// error path does not allocate; the value is overwritten by the next call on the same struct. Copy it
// if it must outlive that.
type SyntaxError struct {
	Offset int
	State  State
}

func (e *SyntaxError) Error() string {
	return "codec: syntax error at offset " + strconv.Itoa(e.Offset) + " in " + e.State.String()
}

// fail fills the embedded SyntaxError and returns it as an error without allocating.
func fail(se *SyntaxError, off int, st State) error {
	se.Offset = off
	se.State = st
	return se
}

// State names where a parser was when it found an error. The head parsers (ParseRequest,
// ParseResponse) use the first group only to label errors; the ChunkedReader runs on the second group.
type State uint8

const (
	StateUnknown State = iota // zero value; never reported

	// Head states.
	StateMethod           // request method token
	StateTarget           // request target
	StateVersion          // "HTTP/1.x" of a request or response
	StateRequestLine      // request line as a whole (bad separators, missing version)
	StateStatusCode       // 3-digit status code
	StateReason           // reason phrase
	StateHeaderName       // header field name up to the colon
	StateHeaderValue      // header field value
	StateObsFold          // a header line starting with SP or HTAB (obsolete line folding)
	StateLineEnd          // CR LF at the end of a head line (bare LF, bare CR)
	StateTransferEncoding // Transfer-Encoding value (empty element, chunked twice, TE in HTTP/1.0)
	StateHost             // Host value (characters outside uri-host [":" port])

	// ChunkedReader states.
	StateChunkSize       // first hex digit of a chunk-size line
	StateChunkSizeDigits // further hex digits of the chunk size
	StateChunkSizeWS     // BWS after the size; only ";" may follow
	StateChunkExt        // chunk extensions up to CR
	StateChunkSizeLF     // LF ending the chunk-size line
	StateChunkData       // chunk data
	StateChunkDataCR     // CR after chunk data
	StateChunkDataLF     // LF after chunk data
	StateTrailerStart    // start of a trailer line, or CR of the final CRLF
	StateTrailerName     // trailer field name up to the colon
	StateTrailerValue    // trailer field value up to CR
	StateTrailerLF       // LF ending a trailer line
	StateFinalLF         // LF of the final CRLF
	StateBodyDone        // body complete; further bytes belong to the next message
)

var stateNames = [...]string{
	StateUnknown:          "unknown",
	StateMethod:           "method",
	StateTarget:           "request-target",
	StateVersion:          "http-version",
	StateRequestLine:      "request-line",
	StateStatusCode:       "status-code",
	StateReason:           "reason-phrase",
	StateHeaderName:       "header-name",
	StateHeaderValue:      "header-value",
	StateObsFold:          "obs-fold",
	StateLineEnd:          "line-end",
	StateTransferEncoding: "transfer-encoding",
	StateHost:             "host",
	StateChunkSize:        "chunk-size",
	StateChunkSizeDigits:  "chunk-size-digits",
	StateChunkSizeWS:      "chunk-size-ws",
	StateChunkExt:         "chunk-ext",
	StateChunkSizeLF:      "chunk-size-lf",
	StateChunkData:        "chunk-data",
	StateChunkDataCR:      "chunk-data-cr",
	StateChunkDataLF:      "chunk-data-lf",
	StateTrailerStart:     "trailer-start",
	StateTrailerName:      "trailer-name",
	StateTrailerValue:     "trailer-value",
	StateTrailerLF:        "trailer-lf",
	StateFinalLF:          "final-lf",
	StateBodyDone:         "body-done",
}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "state(" + strconv.Itoa(int(s)) + ")"
}
