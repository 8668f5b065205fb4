package clocks

import "errors"

// Sentinel errors. Every error returned by this package wraps exactly one of
// them with %w, so callers (the API layer that maps errors to Connect codes,
// the replica that decides whether to retry) branch with errors.Is and never
// on message text. Messages may reach clients, so they say what happened and
// what to do about it.
var (
	// ErrInvalidRegion: a region name does not follow the naming rules of
	// ValidateRegion.
	ErrInvalidRegion = errors.New("invalid region name")

	// ErrInvalidToken: a causal token sent by a client cannot be used: it is
	// too long, not base64url, truncated, altered, or of an unknown format
	// version. The client should resend the token exactly as it was returned,
	// or omit it to start a session without causal past.
	ErrInvalidToken = errors.New("invalid causal token")

	// ErrForeignToken: a well-formed causal token that another cluster issued.
	// Its sequence numbers mean nothing here, so honouring it could make a
	// region wait for writes that will never exist. It does not wrap
	// ErrInvalidToken: the token is intact, it was just sent to the wrong
	// place, and callers may want to say so.
	ErrForeignToken = errors.New("causal token belongs to another cluster")

	// ErrClockOffset: a remote timestamp is further ahead of local physical
	// time than the configured maximum offset, so one of the two clocks is
	// wrong. The timestamp was not observed; see Clock.Observe.
	ErrClockOffset = errors.New("clock offset exceeds the configured maximum")

	// ErrCorrupt: binary clock data (a storage record or replication message)
	// does not decode. Checksums live in the layers that own those records;
	// this error means the bytes passed them and are still wrong.
	ErrCorrupt = errors.New("corrupt clock encoding")
)
