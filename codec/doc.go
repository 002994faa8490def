// Package codec parses and writes HTTP/1.1 message heads and chunked bodies for SwitchFlow.
//
// # What codec owns
//
// Everything about HTTP/1.x bytes on the wire and nothing else: request and response heads
// (ParseRequest, ParseResponse), chunked body framing (ChunkedReader), and the heads the proxy
// forwards (AppendProxyRequest, AppendProxyResponse). It imports only the standard library — nothing
// of SwitchFlow's and never gnet — so it knows no connections, buffers, timeouts or configuration.
// The engine maps codec's errors to answers:
//
//	ErrNeedMore                     not an error: read more (431 once the head slab is full)
//	*SyntaxError                    400 from a request head, 502 from a response head; in a chunked
//	                                request body 400, in a response body: close the client connection
//	ErrTooManyHeaders               431 (request), 502 (response)
//	ErrBadContentLength             400 (request), 502 (response)
//	ErrConflictingFraming           400 (request), 502 (response)
//	ErrUnsupportedTransferEncoding  501 (requests only; responses read such a body until close)
//	ErrUnsupportedVersion           505 (request), 502 (response)
//	ErrMissingHost                  400
//
// Every rejection closes the connection: after a framing error nothing that follows can be trusted.
//
// # Strictness
//
// Framing is strict (SPEC 3.2) because a proxy that is more lenient than the server behind it is how
// request smuggling works: CRLF line endings only, no obs-fold, no whitespace before a colon, no
// control bytes, digits-only Content-Length, a Transfer-Encoding whose last coding is exactly "chunked",
// never both framings. The tests name the technique each rule stops. The one leniency is RFC 9112 2.2's:
// empty lines (CRLF or bare LF) before a request line are skipped, as nginx and HAProxy do; they belong
// to no message and cannot move a header or body boundary.
//
// # Resuming after a partial read
//
// The head parsers keep no state between calls: on ErrNeedMore the caller appends what it reads next
// to the same buffer and calls again with the whole head prefix, and the parser rescans it from the
// start. The rescan is bounded by the head buffer (server.header_buffer, 8 KiB by default), so a
// slow client costs at most a few rescans of a few KiB; in exchange there is no saved parser state
// to size, reset or get wrong, and a Request holds nothing but views. A head never reaching its final
// CRLFCRLF keeps returning ErrNeedMore until the caller's buffer is full, which is the caller's 431.
//
// The ChunkedReader is the other way round: a body is unbounded, so it is a true state machine that
// consumes each byte once and carries its position (even mid chunk-size line) in its own state.
//
// # Trailers
//
// A proxy forwards a chunked body with its framing (ChunkedReader.Forward), and drops the trailer
// fields that must never travel in trailers (RFC 9110 6.5.1: framing, routing, hop-by-hop,
// authentication, request modifiers, content format; the list is at forbiddenTrailer): a recipient
// that merged a trailing "Content-Length" or "Host" into the head would act on a field no framing or
// routing decision saw. Up to the trailer section Forward returns spans of the caller's buffer; the
// kept trailer bytes are copied into the caller's scratch, at most MaxTrailerBytes a body, the bound of
// the whole trailer section (a longer one is a SyntaxError). A trailer name split across reads is held
// in the reader until its fate is known.
//
// # Lifetimes
//
// Parsers never allocate (the error path included: a *SyntaxError points into the Request, Response or
// ChunkedReader) and never keep buf. What they return points into it:
//
//   - Request.Method, Target, Host, Headers[i].Name/Value, the results of Request.Get, and
//     Response.Reason, Headers[i], Response.Get, are views into the buffer passed to the parse call.
//     They are valid until that buffer is modified or reused, and until the next parse into the same
//     struct. A request that must outlive the read callback is copied into its connection's slab
//     first and parsed there; HeadIndex keeps that parse as offsets into the slab and gives the views
//     back (Restore) without parsing again.
//   - ChunkedReader.Next's data is a view into the buf passed to that call, same rule; so is the pass
//     part of Forward's buf. Forward's kept trailer bytes are copies in the caller's scratch.
//   - A returned *SyntaxError is valid until the next call on the same struct; copy it to keep it.
//   - AppendProxyRequest and AppendProxyResponse copy into dst; their result depends on nothing else.
//
// Nothing in codec is safe for concurrent use; each Request, Response and ChunkedReader belongs to
// one event loop.
package codec
