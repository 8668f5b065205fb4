package process

import (
	"net/http"
	"strings"
)

// malformedUnary gives a unary gRPC or gRPC-Web request whose body is not
// one well-formed message envelope (empty, truncated, random bytes) the
// answer `invalid_argument` ("malformed request: ..."). Connect reads a
// unary request before any interceptor runs and answers `unimplemented`
// ("unary request has zero messages") or `internal` ("protocol error:
// ..."): both are the caller's mistake. Those answers are trailers-only
// (the status in the response headers), so the rewrite is of two headers,
// before they are sent; every other response passes untouched. Streams get
// the same answer from replica's interceptor (replica.MalformedRequest).
func malformedUnary(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			h.ServeHTTP(w, r)
			return
		}
		rw := &statusRewriter{ResponseWriter: w}
		h.ServeHTTP(rw, r)
		// Over gRPC (not gRPC-Web) the status is a trailer even in a
		// trailers-only answer; trailers may change until the handler
		// returns.
		rewriteStatus(w.Header(), http.TrailerPrefix)
	})
}

type statusRewriter struct {
	http.ResponseWriter
	wrote bool
}

func (s *statusRewriter) WriteHeader(code int) {
	s.rewrite()
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRewriter) Write(b []byte) (int, error) {
	s.rewrite()
	return s.ResponseWriter.Write(b)
}

func (s *statusRewriter) Flush() {
	s.rewrite()
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRewriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusRewriter) rewrite() {
	if s.wrote {
		return
	}
	s.wrote = true
	rewriteStatus(s.ResponseWriter.Header(), "")
}

// rewriteStatus rewrites a malformed request's status, found under
// prefix+"Grpc-Status" (prefix "" for headers, http.TrailerPrefix for
// trailers, whose keys net/http leaves as written).
func rewriteStatus(hdr http.Header, prefix string) {
	statusKey, msgKey := prefix+"Grpc-Status", prefix+"Grpc-Message"
	status, msg := first(hdr, statusKey), first(hdr, msgKey)
	malformed := (status == "12" && msg == "unary request has zero messages") ||
		(status == "13" && strings.HasPrefix(msg, "protocol error:"))
	if !malformed {
		return
	}
	del(hdr, statusKey)
	del(hdr, msgKey)
	hdr[statusKey] = []string{"3"} // invalid_argument
	hdr[msgKey] = []string{"malformed request: " + msg}
}

// first and del find keys case-insensitively: trailer keys are not
// canonicalised.
func first(hdr http.Header, key string) string {
	for k, v := range hdr {
		if strings.EqualFold(k, key) && len(v) > 0 {
			return v[0]
		}
	}
	return ""
}

func del(hdr http.Header, key string) {
	for k := range hdr {
		if strings.EqualFold(k, key) {
			delete(hdr, k)
		}
	}
}
