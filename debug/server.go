package debug

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Source is what the endpoint shows: a *leasehold.Runtime (a
// *leasehold.Runtime) or anything else with a cheap, non-blocking
// Snapshot.
type Source interface {
	Snapshot() leasehold.Snapshot
}

// SourceFunc adapts a function to a Source.
type SourceFunc func() leasehold.Snapshot

// Snapshot calls f.
func (f SourceFunc) Snapshot() leasehold.Snapshot { return f() }

// Options configure a Server. Zero fields take their documented defaults.
type Options struct {
	// Token, if not empty, is required on every path, as
	// "Authorization: Bearer <token>" or as the password of HTTP Basic
	// authentication (any user name), which lets a browser prompt for it.
	Token string
	// PublicHealth lets /livez and /readyz answer without the token, for
	// probes that cannot send one (a Kubernetes httpGet probe cannot read
	// a Secret). Such answers carry the status code and "ok" or "failed"
	// only; the checks' details (?verbose, reasons) still need the token.
	PublicHealth bool
	// Logger receives the endpoint's own logs. Default: slog.Default().
	Logger *slog.Logger
	// Gatherer is served at /metrics, typically the *prometheus.Registry
	// that NewMetrics registered on. When nil, /metrics is not served.
	Gatherer prometheus.Gatherer
	// Ready, if set, is a further readiness check: /readyz fails with its
	// error (for example, the node id is held by another process).
	Ready func() error
	// Interval is how often the live stream sends a snapshot when nothing
	// happens; events (see Observe) send one sooner. Default: 1s.
	Interval time.Duration
	// WriteTimeout bounds each write to a client: a client that has not
	// taken a write within it is disconnected. Default: 5s.
	WriteTimeout time.Duration
	// MaxStreams bounds the live streams served at once; more get 503 (the
	// page then polls tree.json). Default: 32.
	MaxStreams int
	// Cluster, if set, is served at /debug/cluster (page),
	// /debug/cluster.json and /debug/cluster/events.
	Cluster ClusterSource
}

// Server is the debug endpoint of one tree. Create it with New, serve its
// Handler, and call Close before shutting the HTTP server down so that
// live streams end.
type Server struct {
	src  Source
	opts Options
	log  *slog.Logger
	mux  *http.ServeMux
	// tokenSum is the SHA-256 of Options.Token; requests are checked by
	// comparing digests, so neither the token's bytes nor its length leak
	// through timing.
	tokenSum [sha256.Size]byte
	slots    chan struct{} // one per live stream

	done      chan struct{}
	closeOnce sync.Once

	mu struct {
		sync.Mutex
		changed chan struct{} // closed and replaced by Observe
	}

	// Counters for tests and logs.
	streamsOpen    atomic.Int64
	streamsDropped atomic.Int64
	eventsSent     atomic.Int64
}

//go:embed web
var webFS embed.FS

// New returns a Server showing src.
func New(src Source, opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = 5 * time.Second
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 32
	}
	s := &Server{
		src: src, opts: opts, log: opts.Logger,
		slots: make(chan struct{}, opts.MaxStreams),
		done:  make(chan struct{}),
	}
	s.tokenSum = sha256.Sum256([]byte(opts.Token))
	s.mu.changed = make(chan struct{})
	s.routes()
	return s
}

// Observe wakes the live streams so that they send a snapshot at once. It
// never blocks: plug it into leasehold.Options.OnEvent (with
// Metrics.Observe). A nil Server ignores events.
func (s *Server) Observe(leasehold.Event) {
	if s == nil {
		return
	}
	s.mu.Lock()
	close(s.mu.changed)
	s.mu.changed = make(chan struct{})
	s.mu.Unlock()
}

func (s *Server) changed() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.changed
}

// Close ends the live streams. Call it before http.Server.Shutdown, which
// otherwise waits for them (or register it with RegisterOnShutdown).
func (s *Server) Close() {
	s.closeOnce.Do(func() { close(s.done) })
}

// Handler returns the endpoint's handler: its own mux behind the token
// check. Unknown paths get 404 and methods other than GET and HEAD 405.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		authorized := s.authorized(r)
		if !authorized && s.opts.PublicHealth && (r.URL.Path == "/livez" || r.URL.Path == "/readyz") {
			s.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), briefKey{}, true)))
			return
		}
		if !authorized {
			h.Add("WWW-Authenticate", `Bearer realm="leasehold debug"`)
			// Browsers cannot send a bearer token but prompt for Basic.
			h.Add("WWW-Authenticate", `Basic realm="leasehold debug", charset="UTF-8"`)
			http.Error(w, "401 unauthorized: pass the debug token as \"Authorization: Bearer <token>\"", http.StatusUnauthorized)
			return
		}
		s.mux.ServeHTTP(w, r)
	})
}

func (s *Server) authorized(r *http.Request) bool {
	if s.opts.Token == "" {
		return true
	}
	var given string
	auth := r.Header.Get("Authorization")
	if scheme, rest, ok := strings.Cut(auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = strings.TrimSpace(rest)
	} else if _, password, ok := r.BasicAuth(); ok {
		given = password
	} else {
		return false
	}
	sum := sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(sum[:], s.tokenSum[:]) == 1
}

func (s *Server) routes() {
	m := http.NewServeMux()
	s.mux = m
	// GET patterns also match HEAD; any other method gets 405 with Allow.
	m.HandleFunc("GET /{$}", s.index)
	m.HandleFunc("GET /debug/{$}", s.index)
	m.HandleFunc("GET /debug/tree.json", s.treeJSON)
	m.HandleFunc("GET /debug/tree", s.page("web/index.html", "text/html; charset=utf-8"))
	m.HandleFunc("GET /debug/tree/live.js", s.page("web/live.js", "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /debug/tree/app.js", s.page("web/app.js", "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /debug/tree/style.css", s.page("web/style.css", "text/css; charset=utf-8"))
	m.HandleFunc("GET /debug/tree/events", s.events)
	m.HandleFunc("GET /livez", s.livez)
	m.HandleFunc("GET /readyz", s.readyz)
	s.clusterRoutes(m)
	if s.opts.Gatherer != nil {
		m.Handle("GET /metrics", s.deadline(promhttp.HandlerFor(s.opts.Gatherer, promhttp.HandlerOpts{
			ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelError), ErrorHandling: promhttp.ContinueOnError,
		})))
	}
	// pprof, mounted here explicitly: importing net/http/pprof also
	// registers it on http.DefaultServeMux, which this endpoint never
	// serves. Profiles and traces run for ?seconds=, so they get a longer
	// write deadline.
	m.HandleFunc("GET /debug/pprof/", s.pprofDeadline(pprof.Index))
	m.HandleFunc("GET /debug/pprof/cmdline", s.pprofDeadline(pprof.Cmdline))
	m.HandleFunc("GET /debug/pprof/profile", s.pprofDeadline(pprof.Profile))
	m.HandleFunc("GET /debug/pprof/symbol", s.pprofDeadline(pprof.Symbol))
	m.HandleFunc("GET /debug/pprof/trace", s.pprofDeadline(pprof.Trace))
}

// deadline bounds the writes of an ordinary response, so that a client
// that stops reading cannot hold its goroutine for long.
func (s *Server) deadline(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
		h.ServeHTTP(w, r)
	})
}

func (s *Server) pprofDeadline(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		secs, _ := strconv.Atoi(r.FormValue("seconds"))
		secs = min(max(secs, 30), 600)
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(time.Duration(secs)*time.Second + s.opts.WriteTimeout))
		h(w, r)
	}
}

func (s *Server) write(w http.ResponseWriter, contentType string, status int, body []byte) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout))
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (s *Server) index(w http.ResponseWriter, r *http.Request) {
	var b bytes.Buffer
	b.WriteString("<!doctype html><meta charset=utf-8><title>leasehold debug</title><h1>leasehold debug endpoint</h1><ul>\n")
	for _, l := range []struct{ path, what string }{
		{"/debug/tree", "the live supervision tree"},
		{"/debug/tree.json", "the tree as JSON"},
		{"/debug/tree/events", "the tree as server-sent events"},
		{"/debug/cluster", "every node of the cluster, live"},
		{"/debug/cluster.json", "the cluster as JSON"},
		{"/metrics", "Prometheus metrics"},
		{"/readyz?verbose", "readiness (the root lease is held)"},
		{"/livez?verbose", "liveness"},
		{"/debug/pprof/", "pprof"},
	} {
		if l.path == "/metrics" && s.opts.Gatherer == nil || strings.HasPrefix(l.path, "/debug/cluster") && s.opts.Cluster == nil {
			continue
		}
		fmt.Fprintf(&b, "<li><a href=%q>%s</a> — %s</li>\n", l.path, l.path, l.what)
	}
	b.WriteString("</ul>\n")
	s.write(w, "text/html; charset=utf-8", http.StatusOK, b.Bytes())
}

func (s *Server) treeJSON(w http.ResponseWriter, r *http.Request) {
	body, err := json.MarshalIndent(s.src.Snapshot(), "", "  ")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.write(w, "application/json", http.StatusOK, append(body, '\n'))
}

func (s *Server) page(name, contentType string) http.HandlerFunc {
	body, err := webFS.ReadFile(name)
	if err != nil {
		panic(err) // embedded at build time
	}
	return func(w http.ResponseWriter, r *http.Request) {
		// The page loads nothing but its own script and style.
		w.Header().Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		s.write(w, contentType, http.StatusOK, body)
	}
}

// events streams the tree as server-sent events: one "data:" line of JSON
// per snapshot, at once, then on every event (Observe) and at least every
// Interval. Each client has its own goroutine (the handler's), every write
// has a deadline, and nothing is queued: a snapshot is taken when it is
// about to be written, so a slow client gets fewer snapshots and a stalled
// one is disconnected after WriteTimeout. The tree is never touched
// beyond Snapshot.
func (s *Server) events(w http.ResponseWriter, r *http.Request) {
	send, end, ok := s.openStream(w, r, "/debug/tree.json")
	if !ok {
		return
	}
	defer end()
	// Events come in bursts (a lost lease stops a whole subtree): after
	// sending, wait a little before the next event-driven snapshot.
	const coalesce = 50 * time.Millisecond
	ticker := time.NewTicker(s.opts.Interval)
	defer ticker.Stop()
	var buf bytes.Buffer
	for {
		changed := s.changed()
		buf.Reset()
		buf.WriteString("data: ")
		if err := json.NewEncoder(&buf).Encode(s.src.Snapshot()); err != nil {
			s.log.Error("debug stream: cannot encode the snapshot", "err", err)
			return
		}
		buf.WriteString("\n") // Encode ended the line; an empty line ends the event
		if !send(buf.Bytes()) {
			return
		}
		s.eventsSent.Add(1)
		select {
		case <-changed:
			select {
			case <-time.After(coalesce):
			case <-r.Context().Done():
				return
			case <-s.done:
				return
			}
		case <-ticker.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}

func (s *Server) dropped(r *http.Request, err error) {
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		return // the client went away
	}
	s.streamsDropped.Add(1)
	s.log.Info("debug stream dropped: the client is not reading", "remote", r.RemoteAddr, "err", err)
}

// livez answers while the process serves.
func (s *Server) livez(w http.ResponseWriter, r *http.Request) {
	s.health(w, r, "livez", []check{{"ping", nil}})
}

// readyz answers ok while the root lease (or election) is held.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	root := s.src.Snapshot().Tree
	var err error
	if !rootHeld(root) {
		err = fmt.Errorf("%s %q is %s", root.Kind, root.Name, root.State)
		if root.LastError != "" {
			err = fmt.Errorf("%w (last error: %s)", err, firstLine(root.LastError))
		}
	}
	checks := []check{{"root-lease", err}}
	if s.opts.Ready != nil {
		checks = append(checks, check{"node", s.opts.Ready()})
	}
	s.health(w, r, "readyz", checks)
}

// rootHeld reports whether the tree's root holds its lease: a held lease,
// or a leading election. A candidate holds its lease but is not ready.
func rootHeld(root leasehold.NodeSnapshot) bool {
	switch root.Kind {
	case leasehold.KindLease:
		return root.Held || root.State == leasehold.StateHeld
	case leasehold.KindElection:
		return root.State == leasehold.StateLeading
	}
	return root.State == leasehold.StateRunning
}

// briefKey marks a health request answered without the token: status
// only, no details.
type briefKey struct{}

type check struct {
	name string
	err  error
}

// health answers like Kubernetes' /livez and /readyz: "ok", or with
// ?verbose one "[+]name ok" or "[-]name failed: reason" line per check and
// a verdict. A failure answers 503 and always lists the checks.
func (s *Server) health(w http.ResponseWriter, r *http.Request, what string, checks []check) {
	_, verbose := r.URL.Query()["verbose"]
	brief, _ := r.Context().Value(briefKey{}).(bool)
	failed := false
	var b bytes.Buffer
	for _, c := range checks {
		if c.err != nil {
			failed = true
			fmt.Fprintf(&b, "[-]%s failed: %v\n", c.name, c.err)
		} else {
			fmt.Fprintf(&b, "[+]%s ok\n", c.name)
		}
	}
	status := http.StatusOK
	switch {
	case failed && brief:
		status = http.StatusServiceUnavailable
		b.Reset()
		fmt.Fprintf(&b, "%s check failed\n", what)
	case failed:
		status = http.StatusServiceUnavailable
		fmt.Fprintf(&b, "%s check failed\n", what)
	case verbose && brief:
		b.Reset()
		b.WriteString("ok")
	case verbose:
		fmt.Fprintf(&b, "%s check passed\n", what)
	default:
		b.Reset()
		b.WriteString("ok")
	}
	s.write(w, "text/plain; charset=utf-8", status, b.Bytes())
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// openStream takes one of the live-stream slots and starts a server-sent
// event stream on w, telling the client to reconnect after 2 s. It returns
// send, which writes and flushes one chunk under the write deadline
// (reporting false once the client is gone), and end, to call when the
// stream is over. ok is false when the request got its whole answer already
// (503 with every slot taken, or a HEAD request). poll names the JSON a
// client turned away should poll instead.
func (s *Server) openStream(w http.ResponseWriter, r *http.Request, poll string) (send func([]byte) bool, end func(), ok bool) {
	select {
	case s.slots <- struct{}{}:
	default:
		w.Header().Set("Retry-After", "5")
		http.Error(w, "503 too many live streams: poll "+poll+" instead", http.StatusServiceUnavailable)
		return nil, nil, false
	}
	s.streamsOpen.Add(1)
	end = func() {
		s.streamsOpen.Add(-1)
		<-s.slots
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		end()
		return nil, nil, false
	}
	send = func(b []byte) bool {
		if err := rc.SetWriteDeadline(time.Now().Add(s.opts.WriteTimeout)); err != nil {
			return false
		}
		if _, err := w.Write(b); err != nil {
			s.dropped(r, err)
			return false
		}
		if err := rc.Flush(); err != nil {
			s.dropped(r, err)
			return false
		}
		return true
	}
	if !send([]byte("retry: 2000\n\n")) {
		end()
		return nil, nil, false
	}
	return send, end, true
}
