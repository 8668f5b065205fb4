package demo

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

//go:embed assets
var assets embed.FS

// maxStreams bounds the pages listening to the state stream at once.
const maxStreams = 64

// ErrNotLoopback is returned by Listen for an address that is not a
// loopback address: the demo's controls kill processes and cut links, so
// they are never exposed beyond this machine.
var ErrNotLoopback = errors.New("the demo dashboard listens on loopback only (127.0.0.1, ::1 or localhost)")

// Listen listens on addr, which must be a loopback address.
func Listen(addr string) (net.Listener, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return nil, fmt.Errorf("--listen %q: %w", addr, ErrNotLoopback)
	}
	return net.Listen("tcp", addr)
}

// Handler serves the dashboard and its API:
//
//	GET  /                  the dashboard
//	GET  /api/state         the State, as JSON
//	GET  /api/stream        the State as server-sent events ("state"), on every change, at most every 100ms
//	POST /api/do            run an Action (JSON); answers {"result": Result} or {"error": "..."}
//	POST /api/step          run an Action in its text form (one scenario line)
//	GET  /api/recording     the actions done so far, as a scenario
//	GET  /api/scenarios     the shipped scenarios' names
//	POST /api/scenario?name=NAME   run a shipped scenario in the background, narrated in the timeline
//	POST /api/scenario      the same for the scenario text in the body (a saved recording, say)
//	POST /api/report        run the checkers over the history; answers the summary
type Handler struct {
	d       *Demo
	mux     *http.ServeMux
	streams atomic.Int32

	runMu   sync.Mutex
	running string // the scenario running now ("" none)
	ctx     context.Context
}

// NewHandler returns the dashboard's handler. ctx bounds what it runs in
// the background (scenarios).
func NewHandler(ctx context.Context, d *Demo) *Handler {
	h := &Handler{d: d, mux: http.NewServeMux(), ctx: ctx}
	static, _ := fs.Sub(assets, "assets")
	h.mux.Handle("GET /", http.FileServerFS(static))
	h.mux.HandleFunc("GET /api/state", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, d.State()) })
	h.mux.HandleFunc("GET /api/stream", h.stream)
	h.mux.HandleFunc("POST /api/do", h.do)
	h.mux.HandleFunc("POST /api/step", h.step)
	h.mux.HandleFunc("GET /api/recording", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="recorded.scenario"`)
		io.WriteString(w, d.Recording())
	})
	h.mux.HandleFunc("GET /api/scenarios", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, http.StatusOK, ScenarioNames()) })
	h.mux.HandleFunc("POST /api/scenario", h.scenario)
	h.mux.HandleFunc("POST /api/report", h.report)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	h.mux.ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

type doAnswer struct {
	Result *Result `json:"result,omitempty"`
	Error  string  `json:"error,omitempty"`
}

func (h *Handler) run(w http.ResponseWriter, r *http.Request, a Action) {
	res, err := h.d.Do(r.Context(), a)
	if err != nil {
		writeJSON(w, http.StatusConflict, doAnswer{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, doAnswer{Result: res})
}

func (h *Handler) do(w http.ResponseWriter, r *http.Request) {
	var a Action
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&a); err != nil {
		writeJSON(w, http.StatusBadRequest, doAnswer{Error: "bad action: " + err.Error()})
		return
	}
	h.run(w, r, a)
}

func (h *Handler) step(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, doAnswer{Error: err.Error()})
		return
	}
	a, err := ParseAction(strings.TrimSpace(string(b)))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, doAnswer{Error: err.Error()})
		return
	}
	h.run(w, r, a)
}

// stream pushes the state on every change, at most every 100ms.
func (h *Handler) stream(w http.ResponseWriter, r *http.Request) {
	if h.streams.Add(1) > maxStreams {
		h.streams.Add(-1)
		http.Error(w, fmt.Sprintf("at most %d dashboards may listen at once", maxStreams), http.StatusServiceUnavailable)
		return
	}
	defer h.streams.Add(-1)
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	for {
		changed := h.d.poller.wait()
		b, err := json.Marshal(h.d.State())
		if err != nil {
			return
		}
		if _, err := fmt.Fprintf(w, "event: state\ndata: %s\n\n", b); err != nil {
			return
		}
		flusher.Flush()
		select {
		case <-r.Context().Done():
			return
		case <-h.ctx.Done():
			return
		case <-changed:
		}
		select {
		case <-r.Context().Done():
			return
		case <-time.After(100 * time.Millisecond): // coalesce bursts of changes
		}
	}
}

func (h *Handler) scenario(w http.ResponseWriter, r *http.Request) {
	var sc *Scenario
	var err error
	if name := r.URL.Query().Get("name"); name != "" {
		if !slices.Contains(ScenarioNames(), name) {
			writeJSON(w, http.StatusBadRequest, doAnswer{Error: fmt.Sprintf("no shipped scenario %q (there are %s); send a scenario's text as the body to replay it", name, strings.Join(ScenarioNames(), ", "))})
			return
		}
		sc, err = LoadScenario(name)
	} else {
		// A scenario's text (a recording saved from this page, say).
		var b []byte
		b, err = io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err == nil {
			sc, err = ParseScenario("uploaded", string(b))
		}
		if err == nil {
			err = sc.Check(h.d.Regions())
		}
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, doAnswer{Error: err.Error()})
		return
	}
	h.runMu.Lock()
	defer h.runMu.Unlock()
	if h.running != "" {
		writeJSON(w, http.StatusConflict, doAnswer{Error: "scenario " + h.running + " is running; wait until it ends"})
		return
	}
	h.running = sc.Name
	go func() {
		rep := RunScenario(h.ctx, h.d, sc, nil)
		text := fmt.Sprintf("scenario %s: every expectation held", sc.Name)
		if !rep.OK() {
			text = fmt.Sprintf("scenario %s: %d expectation(s) failed: %s", sc.Name, len(rep.Failures), strings.Join(rep.Failures, "; "))
		}
		h.d.event("say", "", text)
		h.runMu.Lock()
		h.running = ""
		h.runMu.Unlock()
	}()
	writeJSON(w, http.StatusAccepted, doAnswer{Result: &Result{OK: true, Text: "scenario " + sc.Name + " started; follow it in the timeline"}})
}

func (h *Handler) report(w http.ResponseWriter, r *http.Request) {
	dir, summary, err := h.d.Report("")
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, doAnswer{Error: err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, doAnswer{Result: &Result{OK: true, Text: "report in " + dir + "\n" + summary}})
}
