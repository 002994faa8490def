// Backend failures: one table says, for each way a backend can fail a request, what the client is
// answered, whether the server is blamed (max_fails), whether the request may go to the next server,
// and the termination cause the access log and the debug log name (nginx's ngx_http_upstream_next,
// HAProxy's termination codes). Every backend failure ends in backendFailed.

package engine

import "switchflow/upstream"

// failure is how a backend failed a request; 0 is none.
type failure uint8

const (
	failConnect       failure = iota + 1 // refused, unreachable or connect_timeout: nothing was sent
	failTLSHandshake                     // [upstream.tls] handshake failed: blamed and retried as nginx's "error"
	failNoDescriptor                     // the proxy had no descriptor for the dial (SPEC 3.3)
	failDialQueued                       // the dial waited connect_timeout behind maxDials: the proxy's backlog
	failPooledClosed                     // a pooled connection the backend had closed while idle
	failClosed                           // closed or reset before a complete response head
	failTimeout                          // no response head within response_timeout
	failBodyTimeout                      // silent in the middle of a body for response_timeout
	failRefused                          // a response refused for its size or shape (SPEC 3.4)
	failUploadStalled                    // read nothing of the request body for idle_timeout
)

// failureRule is what a failure costs.
type failureRule struct {
	status int    // the answer when nothing of the response has gone out
	blame  bool   // counts toward the server's max_fails
	retry  bool   // the next server may take the request, as far as retries and replay allow
	free   bool   // a retry that does not use up retries
	cause  string // the termination cause
}

var failures = [...]failureRule{
	failConnect:       {502, true, true, false, "upstream-connect"},
	failTLSHandshake:  {502, true, true, false, "upstream-tls-handshake"},
	failNoDescriptor:  {503, false, false, false, "proxy-descriptors"},
	failDialQueued:    {502, false, true, false, "proxy-dial-queue"},
	failPooledClosed:  {502, false, true, true, "upstream-pooled-closed"},
	failClosed:        {502, true, true, false, "upstream-closed-before-head"},
	failTimeout:       {504, true, false, false, "upstream-response-timeout"},
	failBodyTimeout:   {504, true, false, false, "upstream-body-timeout"},
	failRefused:       {502, false, false, false, "upstream-response-refused"},
	failUploadStalled: {504, true, false, false, "upstream-upload-stalled"},
}

// backendFailed ends cc's attempt on srv as f says: the server blamed or not, the request on to the next
// server or answered. sent says whether the request was (partly) written to srv, which keeps a
// non-idempotent request from being replayed. cc may be nil (its client had gone). Loop only.
func (ls *loopState) backendFailed(cc *clientConn, srv *upstream.Server, f failure, sent bool) {
	rule := failures[f]
	if rule.blame {
		srv.Fail(ls.clock())
	}
	if cc == nil || cc.exchange == nil {
		return
	}
	cc.cause = f
	switch {
	case rule.retry && rule.free:
		cc.freeRetries++
		cc.attempts--
		cc.tried &^= 1 << uint(srv.Index)
		fallthrough
	case rule.retry:
		ls.retry(cc, rule.status, sent)
	default:
		ls.failRequest(cc, rule.status)
	}
}
