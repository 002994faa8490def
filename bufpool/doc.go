// Package bufpool owns the memory that SwitchFlow sets aside at start: one header slab per client
// connection, max_connections of them, carved out of a single allocation. Handing a slab out and taking it
// back never allocates, so a flood of connections meets a full pool (and a prebuilt 503) instead of the
// garbage collector.
//
// bufpool imports nothing of ours (only the standard library) and knows nothing of HTTP or gnet.
package bufpool
