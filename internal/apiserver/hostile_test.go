package apiserver

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/tapswitch/tapswitch/api"
)

// Every request that fails validation gets a 4xx with an Error saying
// why, never a 500: these throw malformed and hostile bodies, paths and
// parameters at every endpoint.

// endpoints are the API's routes, with a well-formed path for each.
var endpoints = []struct{ method, path string }{
	{http.MethodGet, "/v1/version"},
	{http.MethodGet, "/v1/status"},
	{http.MethodGet, "/v1/ports"},
	{http.MethodPost, "/v1/ports"},
	{http.MethodDelete, "/v1/ports/web"},
	{http.MethodPatch, "/v1/ports/web"},
	{http.MethodGet, "/v1/fdb"},
	{http.MethodGet, "/v1/networks"},
	{http.MethodPost, "/v1/networks"},
	{http.MethodGet, "/v1/networks/front"},
	{http.MethodDelete, "/v1/networks/front"},
	{http.MethodPost, "/v1/networks/front/connect"},
}

// hostileBodies are bodies no endpoint takes, or takes only to refuse.
var hostileBodies = []string{
	"",
	"{",
	"}",
	"null",
	"[]",
	`"a string"`,
	"42",
	"{}",
	`{"netns":123}`,
	`{"name":{"a":1}}`,
	`{"netns":"web","unknown":1}`,
	`{"netns":"web"} {"netns":"web"}`,
	`{"netns":"web"}garbage`,
	`{"netns":"a\u0000b"}`,
	`{"netns":"../../etc/passwd"}`,
	`{"netns":"pid:-1"}`,
	`{"netns":"pid:99999999999"}`,
	`{"netns":"web","mtu":1e100}`,
	`{"netns":"web","mtu":-1}`,
	`{"netns":"web","mtu":9223372036854775808}`,
	`{"netns":"web","ifname":"eth%d"}`,
	`{"netns":"web","ifname":"all"}`,
	`{"netns":"web","ifname":"../x"}`,
	`{"netns":"web","ips":["127.0.0.2/8"]}`,
	`{"netns":"web","ips":["169.254.1.2/16"]}`,
	`{"netns":"web","ips":["0.1.2.3/8"]}`,
	`{"netns":"web","ips":["240.0.0.5/4"]}`,
	`{"netns":"web","ips":["fe80::5/64"]}`,
	`{"netns":"web","ips":["::5/120"]}`,
	`{"netns":"web","ips":["ff02::1/64"]}`,
	`{"netns":"web","ips":["10.0.0.1/33"]}`,
	`{"netns":"web","ips":"10.0.0.1/24"}`,
	`{"netns":"web","mac":"ff:ff:ff:ff:ff:ff"}`,
	`{"netns":"web","publish":["0:80"]}`,
	`{"netns":"web","publish":["224.0.0.1:80:80"]}`,
	`{"netns":"web","mac_limit":-5}`,
	`{"netns":"web","port_security":"yes"}`,
	`{"netns":"web","allow_host_netns":"yes"}`,
	`{"name":"-x"}`,
	`{"name":"a.b"}`,
	`{"name":"x","subnet":"127.0.0.0/8"}`,
	`{"name":"x","subnet":"0.0.0.0/0"}`,
	`{"name":"x","subnet":"126.0.0.0/7"}`,
	`{"name":"x","subnet":"169.254.0.0/24"}`,
	`{"name":"x","subnet":"224.1.0.0/24"}`,
	`{"name":"x","subnet":"255.255.255.0/24"}`,
	`{"name":"x","subnet":"fe80::/64"}`,
	`{"name":"x","subnet":"ff15::/64"}`,
	`{"name":"x","subnet":"::/0"}`,
	`{"name":"x","subnet":"::100/120"}`,
	`{"name":"x","subnet":"::ffff:10.0.0.0/120"}`,
	`{"name":"x","subnet":"10.0.0.1/24"}`,
	`{"name":"x","subnet":"10.0.0.0/32"}`,
	`{"name":"x","subnet":"10.0.0.0/24","gateway":"10.0.1.1"}`,
	`{"name":"x","subnet":"10.0.0.0/24","gateway":"10.0.0.255"}`,
	`{"name":"x","gateway":"10.0.0.1"}`,
	`{"name":"x","subnet":"10.0.0.0/24","gateway":"fd00::1%eth0"}`,
	`{"name":"x","internal":"yes"}`,
	`{"port":""}`,
	`{"port":"../x"}`,
	`{"port":"web","ips":["bad"]}`,
	`{"port":"web","ips":["127.0.0.1/8"]}`,
	`{"port_security":null,"mac_limit":null}`,
	`{"mac_limit":0}`,
	`{"mac_limit":2000000}`,
	strings.Repeat("[", 100000),
	`{"netns":"` + strings.Repeat("a", maxBody) + `"}`,
}

// hostilePaths are paths and parameters no endpoint takes.
var hostilePaths = []struct{ method, path string }{
	{http.MethodGet, "/v1/ports?all=maybe"},
	{http.MethodDelete, "/v1/ports/-x"},
	{http.MethodDelete, "/v1/ports/a%00b"},
	{http.MethodDelete, "/v1/ports/" + strings.Repeat("p", 300)},
	{http.MethodDelete, "/v1/ports/a%2Fb"},
	{http.MethodPatch, "/v1/ports/%20"},
	{http.MethodGet, "/v1/fdb?network=-bad"},
	{http.MethodGet, "/v1/fdb?network=" + strings.Repeat("n", 64)},
	{http.MethodGet, "/v1/networks/a.b"},
	{http.MethodDelete, "/v1/networks/front?force=maybe"},
	{http.MethodDelete, "/v1/networks/%2e%2e"},
	{http.MethodPost, "/v1/networks/-x/connect"},
	{http.MethodPut, "/v1/ports"},
	{http.MethodPost, "/v1/version"},
	{http.MethodGet, "/v1/nothing"},
	{http.MethodGet, "/v2/ports"},
	{"BREW", "/v1/ports"},
}

// serveRaw runs one request through the handler, in process.
func serveRaw(h http.Handler, method, target, body string) *httptest.ResponseRecorder {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil
	}
	r := httptest.NewRequest(http.MethodGet, "/", strings.NewReader(body))
	r.Method, r.URL, r.RequestURI = method, u, target
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// checkAnswer fails t unless w is a success, a redirect (the mux sends
// an unclean path such as /v1/./ports to its clean form), or a 4xx whose
// body is an Error with a message.
func checkAnswer(t *testing.T, w *httptest.ResponseRecorder, what string) {
	t.Helper()
	if w.Code >= 500 {
		t.Fatalf("%s = %d %s, want no 5xx for bad input", what, w.Code, w.Body.String())
	}
	if w.Code >= 400 {
		var e api.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Message == "" {
			t.Fatalf("%s = %d with body %q, want an Error with a message", what, w.Code, w.Body.String())
		}
	}
}

func TestHostileRequests(t *testing.T) {
	for _, ep := range endpoints {
		for i, body := range hostileBodies {
			what := ep.method + " " + ep.path + " body " + quote(body)
			t.Run(ep.method+ep.path+"/"+string(rune('a'+i%26))+strings.Repeat("_", i/26), func(t *testing.T) {
				w := serveRaw(NewHandler(&fakeBackend{}, discard()), ep.method, ep.path, body)
				checkAnswer(t, w, what)
				// A request with a body the endpoint cannot take is refused
				// as the client's fault, not served.
				if ep.method == http.MethodPost && w.Code < 300 && body != `{"netns":"web"}` {
					t.Errorf("%s = %d, want a refusal", what, w.Code)
				}
			})
		}
	}
	for _, p := range hostilePaths {
		t.Run(p.method+p.path[:min(len(p.path), 40)], func(t *testing.T) {
			w := serveRaw(NewHandler(&fakeBackend{}, discard()), p.method, p.path, "")
			checkAnswer(t, w, p.method+" "+p.path)
			if w.Code < 400 {
				t.Errorf("%s %s = %d, want a refusal", p.method, p.path, w.Code)
			}
		})
	}
}

// TestRefusalStatus checks the status each kind of refusal gets: the
// client's fault 400, no such endpoint 404, a method the path does not
// take 405 with Allow.
func TestRefusalStatus(t *testing.T) {
	tests := []struct {
		method, path, body string
		want               int
		reason             api.Reason
		allow              string
	}{
		{http.MethodPost, "/v1/networks", `{"name":"x","subnet":"127.0.0.0/8"}`, http.StatusBadRequest, api.ReasonUnsafeRange, ""},
		{http.MethodPost, "/v1/networks", `{"name":"x","subnet":"0.0.0.0/0"}`, http.StatusBadRequest, api.ReasonUnsafeRange, ""},
		{http.MethodPost, "/v1/ports", `{"netns":"web","ips":["169.254.1.2/16"]}`, http.StatusBadRequest, api.ReasonUnsafeRange, ""},
		{http.MethodPost, "/v1/networks/front/connect", `{"port":"web","ips":["fe80::2/64"]}`, http.StatusBadRequest, api.ReasonUnsafeRange, ""},
		{http.MethodPost, "/v1/ports", `{"netns":"web","ifname":"eth%d"}`, http.StatusBadRequest, "", ""},
		{http.MethodPut, "/v1/ports", "", http.StatusMethodNotAllowed, "", "GET, POST"},
		{http.MethodGet, "/v1/networks/front/connect", "", http.StatusMethodNotAllowed, "", "POST"},
		{http.MethodPost, "/v1/ports/web", "", http.StatusMethodNotAllowed, "", "PATCH, DELETE"},
		{http.MethodGet, "/v1/nothing", "", http.StatusNotFound, "", ""},
	}
	for _, tt := range tests {
		w := serveRaw(NewHandler(&fakeBackend{}, discard()), tt.method, tt.path, tt.body)
		var e api.Error
		json.Unmarshal(w.Body.Bytes(), &e)
		if w.Code != tt.want || e.Reason != tt.reason || w.Header().Get("Allow") != tt.allow {
			t.Errorf("%s %s %s = %d reason %q Allow %q (%s), want %d reason %q Allow %q",
				tt.method, tt.path, tt.body, w.Code, e.Reason, w.Header().Get("Allow"), e.Message, tt.want, tt.reason, tt.allow)
		}
	}
}

// FuzzHandler sends whatever the fuzzer makes of a method, a path with
// its query, and a body through the handler to a fake backend: no input
// may get a 5xx, and every refusal is an Error with a message.
func FuzzHandler(f *testing.F) {
	for _, ep := range endpoints {
		f.Add(ep.method, ep.path, `{"netns":"web"}`)
	}
	for _, p := range hostilePaths {
		f.Add(p.method, p.path, "")
	}
	for _, b := range hostileBodies[:len(hostileBodies)-2] {
		f.Add(http.MethodPost, "/v1/ports", b)
		f.Add(http.MethodPost, "/v1/networks", b)
		f.Add(http.MethodPatch, "/v1/ports/web", b)
		f.Add(http.MethodPost, "/v1/networks/front/connect", b)
	}
	f.Fuzz(func(t *testing.T, method, target, body string) {
		if !validMethod(method) || !strings.HasPrefix(target, "/") {
			return
		}
		w := serveRaw(NewHandler(&fakeBackend{}, discard()), method, target, body)
		if w == nil {
			return
		}
		checkAnswer(t, w, method+" "+quote(target)+" body "+quote(body))
	})
}

// validMethod reports whether m is a token, as net/http takes a method.
func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r <= ' ' || r >= 0x7f || strings.ContainsRune(`()<>@,;:\"/[]?={}`, r) {
			return false
		}
	}
	return true
}

// discard is a logger that writes nothing: a 500 logs at Error, and the
// tests look at the status.
func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
