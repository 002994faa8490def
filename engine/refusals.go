package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"switchflow/codec"
)

// logRefusal says, at debug, why the proxy answered cc's request itself with status (SPEC 4: at debug,
// every request the proxy refuses itself says why, which rule of SPEC 3.2). recordPrebuilt calls it
// before the response is counted; parseErr is the codec's error where the caller has it (nil: the
// reason is found again from the head in cc's slab). Nothing is done, and nothing allocated, above
// debug. Loop only.
func (ls *loopState) logRefusal(cc *clientConn, status int, parseErr error) {
	log := ls.s.log
	if status < 400 || !log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	attrs := []any{"status", status, "client", cc.ip.String(), "reason", ls.refusalReason(cc, status, parseErr)}
	if parsed := cc.exchange != nil && cc.start != 0; parsed && cc.route != nil && cc.lt != nil {
		attrs = append(attrs, "route", cc.route.name, "upstream", cc.lt.tbl.groups[cc.route.group].Name)
	}
	log.Debug("request refused", attrs...)
}

// refusalReason names the rule behind status for cc's request.
func (ls *loopState) refusalReason(cc *clientConn, status int, parseErr error) string {
	parsed := cc.exchange != nil && cc.start != 0
	if !parsed {
		switch status {
		case 408:
			return "read_header_timeout: the request head was not complete in time"
		case 414:
			return "request line longer than " + ls.headLimit(cc)
		}
		if parseErr == nil && cc.state == csHead && cc.filled > 0 {
			_, parseErr = codec.ParseRequest(cc.buf()[:cc.filled], codec.NewRequest(ls.s.maxHeaders)) // at debug only
		}
		switch {
		case parseErr == nil, errors.Is(parseErr, codec.ErrNeedMore):
			if status == 431 {
				return "request head larger than " + ls.headLimit(cc)
			}
			return "request head refused"
		case errors.Is(parseErr, codec.ErrTooManyHeaders):
			return "more header lines than max_headers"
		}
		return "request head: " + parseErr.Error()
	}
	switch status {
	case 400:
		return "request-target not origin-form or absolute-form, or chunked framing refused"
	case 404:
		return "no route matches the host and path"
	case 408:
		return "the request body stopped for idle_timeout"
	case 413:
		return "request body larger than max_body_size"
	case 417:
		return "Expect other than 100-continue"
	case 500:
		return "internal error"
	case 502, 503, 504:
		if cc.cause != 0 {
			return failures[cc.cause].cause // failure.go
		}
	}
	switch status {
	case 502:
		return "no server could answer (connect or response failed)"
	case 503:
		return "no server up in the upstream"
	case 504:
		return "the server did not answer in time"
	}
	return fmt.Sprintf("status %d", status)
}

// headLimit names the bound a head outgrew: the large slab it had borrowed, its own slab with every
// large slab lent, or its own slab where there are no large slabs.
func (ls *loopState) headLimit(cc *clientConn) string {
	switch {
	case cc.large != nil:
		return "large_header_buffer"
	case ls.s.largeSlabs != nil:
		return "header_buffer, and every large header slab is lent (large_header_buffers)"
	}
	return "header_buffer"
}
