// Package api holds the JSON types of the tapswitchd control API and a
// client of it, for the tapswitch CLI and other programs (a CNI plugin)
// to drive the daemon. It imports nothing but the standard library; the
// server side is tapswitchd's own.
//
// The API is HTTP/1.1 with JSON bodies on a Unix socket, with versioned
// paths, in the style of the Docker Engine API:
//
//	GET    /v1/version            Version
//	GET    /v1/status             Status
//	GET    /v1/ports              []Port
//	POST   /v1/ports              AttachRequest -> Port (201)
//	PATCH  /v1/ports/{port}       PortUpdateRequest -> Port
//	DELETE /v1/ports/{port}       204; {port} is a port name or id
//	GET    /v1/fdb?network=NET    []FDBEntry
//	GET    /v1/networks           []Network
//	POST   /v1/networks           NetworkCreateRequest -> Network (201)
//	GET    /v1/networks/{network} NetworkDetail
//	DELETE /v1/networks/{network}?force=true  204
//	POST   /v1/networks/{network}/connect     ConnectRequest -> Port (201)
//	GET    /v1/events?since=T&until=T&type=TYPE&port=P&network=N  stream of Event
//	GET    /v1/capture?port=PORT|network=NET[&filter=F][&count=N][&snaplen=N]  pcapng stream
//
// GET /v1/ports lists the ports of containers; ?all=true adds the
// gateway ports, the daemon's own side of each network.
//
// # Events
//
// GET /v1/events answers 200 with Content-Type application/x-ndjson and
// then one Event (JSON) a line, each flushed as it happens, the response
// chunked, as Docker's GET /events: what curl and jq read as it comes, and
// what `tapswitch events -o json` prints. Without since, only new events
// come; with since (RFC 3339, or Unix seconds with a fraction), the events
// the daemon keeps from then (its last 1,024, since it started) come first.
// The stream ends at until, when the client closes it, or when the daemon
// stops or hands over (after a daemon.stop or daemon.handover event).
// type, port and network filter (each may be given several times: any of
// them; different parameters: all of them); type takes an EventType or a
// family ("port"). A reader that falls behind by more than 256 events
// loses the newest and finds an "events.lost" notice where they were; at
// most 32 streams are served at once (409, too_many_streams, beyond).
// Client.Events reads the stream.
//
// # Capture
//
// GET /v1/capture streams the frames of a port, or of a network, as
// pcapng (CaptureRequest, CaptureContentType) until the client closes
// the connection or shuts its sending side, the count is reached, or the
// port or network goes; trailers give the counts (TrailerCapture...),
// lost frames included.
//
// # Errors
//
// A failed request gets a 4xx or 5xx status and an Error body:
//
//	{"message": "attach netns \"b\": conflict: port name \"web\" already exists (in netns \"a\")",
//	 "reason": "port_name_in_use"}
//
// The status is the error's class: 400 ErrInvalid, 403 ErrForbidden, 404
// ErrNotFound (also a path that is no endpoint), 405 a method the path
// does not take (with Allow), 409 ErrConflict, 503 a change not carried
// out because its client hung up while it waited its turn, 500 a failure
// of the daemon's own. A request the daemon cannot carry out because of
// what it asks is never a 500. The message says what
// failed and why, naming the thing; the reason, when there is one, says
// the same for a program (see Reason). What to do about it is the
// caller's to say: the CLI turns reasons into hints naming its flags.
//
// The Client returns such a failure as a *DaemonError, which errors.Is
// matches against its class.
package api
