package debug

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"

	"github.com/leasehold/leasehold"

	"github.com/chromedp/chromedp"

	"github.com/leasehold/leasehold/internal/testcerts"
)

// serveTLS serves s over HTTPS with a certificate from a CA made for the
// test; it returns the server, a client that trusts that CA, and the
// base64 SHA-256 of the certificate's public key (what Chromium's
// --ignore-certificate-errors-spki-list takes).
func serveTLS(t *testing.T, s *Server) (*httptest.Server, *http.Client, string) {
	t.Helper()
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	pair := ca.Issue(t, dir, "debug", testcerts.Server, testcerts.Options{})
	cert, err := tls.LoadX509KeyPair(pair.Cert, pair.Key)
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ca.File)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	ts := httptest.NewUnstartedServer(s.Handler())
	ts.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	ts.StartTLS()
	t.Cleanup(func() {
		s.Close()
		ts.Close()
	})
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	spki := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	return ts, client, base64.StdEncoding.EncodeToString(spki[:])
}

// The page works over HTTPS in a real headless Chromium: it loads, opens
// its live stream, and follows a change of leader token without a reload.
// Chromium is told to accept this one certificate, by its public key.
func TestPageOverHTTPS(t *testing.T) {
	src := newFixed()
	s := New(src, Options{Logger: quiet, Interval: time.Hour})
	ts, _, spki := serveTLS(t, s)
	ctx := browser(t, chromedp.Flag("ignore-certificate-errors-spki-list", spki))

	const election = `document.querySelector('.node[data-role="leader"]')`
	waitFor := func(what, expr string) {
		t.Helper()
		if _, err := chromedp.Run(ctx, chromedp.Poll[bool](expr, chromedp.WithPollingTimeout(30*time.Second))); err != nil {
			t.Fatalf("the page never showed %s (%s): %v", what, expr, err)
		}
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(ts.URL+"/debug/tree")); err != nil {
		t.Fatalf("load the page over HTTPS: %v", err)
	}
	waitFor("the leader with token 15", election+`?.dataset.token === '15'`)
	waitFor("a live stream", `document.getElementById('conn').dataset.status === 'live'`)
	if proto, err := chromedp.Run(ctx, chromedp.Evaluate[string](`location.protocol`)); err != nil || proto != "https:" {
		t.Fatalf("page protocol %q (%v); want https:", proto, err)
	}
	loaded, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.leasehold.loadedAt)`))
	if err != nil {
		t.Fatal(err)
	}
	// Only the live stream can bring the new token: the poll interval is
	// an hour.
	src.set(func(snap *leasehold.Snapshot) {
		for i := range snap.Tree.Children {
			if snap.Tree.Children[i].Role == "leader" {
				snap.Tree.Children[i].Token = 16
			}
		}
	})
	s.Observe(leasehold.Event{})
	waitFor("the new token over the HTTPS live stream", election+`?.dataset.token === '16'`)
	if now, err := chromedp.Run(ctx, chromedp.Evaluate[string](`String(window.leasehold.loadedAt)`)); err != nil || now != loaded {
		t.Fatalf("the page reloaded (loadedAt %s, then %s, %v)", loaded, now, err)
	}
}

// Over HTTPS the token is still required; PublicHealth opens /livez and
// /readyz only, with status and no details.
func TestHTTPSTokenAndPublicHealth(t *testing.T) {
	const token = "s3cret-token-0123456789"
	src := newFixed()
	s := New(src, Options{Logger: quiet, Token: token, PublicHealth: true})
	ts, client, _ := serveTLS(t, s)
	get := func(path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, ts.URL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s over HTTPS with the test CA: %v", path, err)
		}
		defer resp.Body.Close()
		var b [512]byte
		n, _ := resp.Body.Read(b[:])
		return resp.StatusCode, string(b[:n])
	}
	for _, p := range []string{"/debug/tree.json", "/metrics", "/debug/pprof/", "/livez/x", "/readyzz"} {
		if code, _ := get(p, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d; want 401", p, code)
		}
	}
	if code, _ := get("/debug/tree.json", token); code != http.StatusOK {
		t.Errorf("tree.json with the token: %d", code)
	}
	for _, p := range []string{"/livez", "/readyz", "/readyz?verbose"} {
		if code, body := get(p, ""); code != http.StatusOK || body != "ok" {
			t.Errorf("GET %s without the token: %d %q; want 200 \"ok\"", p, code, body)
		}
	}
	if code, body := get("/readyz?verbose", token); code != http.StatusOK || body != "[+]root-lease ok\nreadyz check passed\n" {
		t.Errorf("verbose readyz with the token: %d %q", code, body)
	}
	src.set(func(snap *leasehold.Snapshot) {
		snap.Tree.State, snap.Tree.Held, snap.Tree.LastError = leasehold.StateAcquiring, false, "secret detail"
	})
	if code, body := get("/readyz?verbose", ""); code != http.StatusServiceUnavailable || body != "readyz check failed\n" {
		t.Errorf("failing readyz without the token: %d %q; want 503 without details", code, body)
	}
	if code, body := get("/readyz", token); code != http.StatusServiceUnavailable || body == "readyz check failed\n" {
		t.Errorf("failing readyz with the token: %d %q; want 503 with details", code, body)
	}
}
