// Package config owns SwitchFlow's configuration file (SPEC.md section 2):
// its schema, its defaults, and every check a file must pass before the
// proxy starts on it or swaps it in on SIGHUP.
//
// Loading follows Caddy's Provision → Validate split:
//
//   - decode: the TOML is read into a generic tree and walked by hand, so
//     that an unknown key or a wrong type is reported with its full key path,
//     array indices included ("upstream[1].servers[0].weight"). Syntax errors
//     carry the line number instead.
//   - provision: absent keys take their defaults (the Default* functions).
//   - validate: ranges, enums, addresses, references between sections and
//     duplicates are checked on the typed Config ([Config.Validate]), which
//     also fills the derived fields (Route.UpstreamIndex,
//     UpstreamServer.TCPAddr, route hosts lower-cased and without a port).
//
// Every problem is collected and returned at once as *Errors, in the manner
// of `nginx -t`, never just the first one.
//
// A Config that has passed validation is treated as immutable: nothing may
// write to it, so a reload builds a new Config and swaps the pointer; readers
// on any goroutine may share one freely.
//
// Dependencies: config imports only the standard library,
// github.com/BurntSushi/toml and lookup (standard library only: the DNS
// client that [resolver] configures, shared with the engine's resolver). It
// must not import engine, codec, upstream or any other SwitchFlow package:
// they depend on config, never the reverse.
//
// Purity: loading does no I/O besides reading the file named to [Load] and
// resolving upstream server names (net lookups through [resolver] or the
// system's resolver, bounded by a timeout) so that a name that does not
// resolve fails the check rather than the first request; in an upstream with
// resolve set it is a warning instead (Warnings), as the name is looked up
// again while running. It opens no sockets, does not read TLS certificate files or
// create access log files (the engine does, at start), and keeps no global
// mutable state.
package config
