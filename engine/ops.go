package engine

import (
	"sync/atomic"
	"time"

	"switchflow/admin"
)

// reloadStats count the reloads asked for (SIGHUP), for /metrics and /status.
type reloadStats struct {
	ok, refused atomic.Uint64
	lastOK      atomic.Int64 // wall time (Unix ns) of the last configuration applied; the start's until a reload
	lastFailed  atomic.Bool  // the last reload asked for was refused
}

// RefuseReload counts a reload refused: Reload refuses its own, the caller those whose file did not
// load. Safe from any goroutine.
func (s *Server) RefuseReload() {
	s.reloads.refused.Add(1)
	s.reloads.lastFailed.Store(true)
}

func (s *Server) reloadApplied() {
	s.reloads.ok.Add(1)
	s.reloads.lastOK.Store(time.Now().UnixNano())
	s.reloads.lastFailed.Store(false)
}

// reloadSnapshot is the reload figures, for Snapshot.
func (s *Server) reloadSnapshot() admin.Reloads {
	r := admin.Reloads{
		OK:         s.reloads.ok.Load(),
		Refused:    s.reloads.refused.Load(),
		LastFailed: s.reloads.lastFailed.Load(),
	}
	if ns := s.reloads.lastOK.Load(); ns != 0 {
		r.LastOK = time.Unix(0, ns).UTC()
	}
	return r
}
