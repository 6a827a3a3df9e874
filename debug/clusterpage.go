package debug

import (
	"bytes"
	"context"
	"net/http"
	"time"
)

// ClusterSource is what /debug/cluster shows: a *cluster.Cluster (package
// debug/cluster). ClusterJSON must be bounded in time and cheap when called
// often: the live stream calls it every Interval per viewer.
type ClusterSource interface {
	ClusterJSON(ctx context.Context) ([]byte, error)
}

func (s *Server) clusterRoutes(m *http.ServeMux) {
	if s.opts.Cluster == nil {
		return
	}
	m.HandleFunc("GET /debug/cluster.json", s.clusterJSON)
	m.HandleFunc("GET /debug/cluster", s.page("web/cluster.html", "text/html; charset=utf-8"))
	m.HandleFunc("GET /debug/cluster/live.js", s.page("web/live.js", "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /debug/cluster/app.js", s.page("web/cluster.js", "text/javascript; charset=utf-8"))
	m.HandleFunc("GET /debug/cluster/style.css", s.page("web/style.css", "text/css; charset=utf-8"))
	m.HandleFunc("GET /debug/cluster/cluster.css", s.page("web/cluster.css", "text/css; charset=utf-8"))
	m.HandleFunc("GET /debug/cluster/events", s.clusterEvents)
}

func (s *Server) clusterJSON(w http.ResponseWriter, r *http.Request) {
	body, err := s.opts.Cluster.ClusterJSON(r.Context())
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.write(w, "application/json", http.StatusOK, append(body, '\n'))
}

// clusterEvents streams the cluster view as server-sent events, one every
// Interval, under the same limits as the tree's stream. The view itself is
// shared by all viewers (see cluster.Options.Interval).
func (s *Server) clusterEvents(w http.ResponseWriter, r *http.Request) {
	send, end, ok := s.openStream(w, r, "/debug/cluster.json")
	if !ok {
		return
	}
	defer end()
	ticker := time.NewTicker(s.opts.Interval)
	defer ticker.Stop()
	var buf bytes.Buffer
	for {
		body, err := s.opts.Cluster.ClusterJSON(r.Context())
		if err != nil {
			s.log.Error("cluster stream: cannot build the view", "err", err)
			return
		}
		buf.Reset()
		buf.WriteString("data: ")
		buf.Write(body)
		buf.WriteString("\n\n")
		if !send(buf.Bytes()) {
			return
		}
		s.eventsSent.Add(1)
		select {
		case <-ticker.C:
		case <-r.Context().Done():
			return
		case <-s.done:
			return
		}
	}
}
