package server_test

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sandboxd/sandboxd/api"
	"github.com/sandboxd/sandboxd/api/server/servertest"
	"github.com/sandboxd/sandboxd/sandbox"
)

// testEnvs are an old version one session still runs on and the current
// one.
var testEnvs = []sandbox.Env{
	{ID: "20250601T110000Z-00000001", Created: time.Date(2025, 6, 1, 11, 0, 0, 0, time.UTC), Python: "3.11.2", Sessions: 1,
		Declared: []string{"numpy"}, Present: []sandbox.Package{{Name: "numpy", Version: "1.24.2"}}},
	{ID: "20250601T120000Z-00000002", Created: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), Python: "3.11.2", Current: true,
		Declared: []string{"numpy", "python-pptx"}, Present: []sandbox.Package{{Name: "numpy", Version: "1.24.2"}},
		Missing:  []sandbox.MissingPackage{{Requirement: "python-pptx", Reason: "not installed"}},
		Packages: []sandbox.Package{{Name: "numpy", Version: "1.24.2"}}},
}

func packagesFake() *servertest.Backend {
	fb := newFake()
	fb.SetAllowed("alpha", "beta")
	fb.SetEnvs(testEnvs...)
	return fb
}

func TestPackageRoutes(t *testing.T) {
	current := api.Env{ID: testEnvs[1].ID, Created: testEnvs[1].Created, Python: "3.11.2", Current: true,
		Declared: []string{"numpy", "python-pptx"}, Present: []api.Package{{Name: "numpy", Version: "1.24.2"}},
		Missing:  []api.MissingPackage{{Requirement: "python-pptx", Reason: "not installed"}},
		Packages: []api.Package{{Name: "numpy", Version: "1.24.2"}}}
	errorCode := func(want string) func(*testing.T, *httptest.ResponseRecorder) {
		return func(t *testing.T, rec *httptest.ResponseRecorder) {
			assert.Equal(t, want, decodeBody[api.Error](t, rec).Code, "error code")
		}
	}
	tests := []struct {
		name, method, target, body string
		wantStatus                 int
		check                      func(*testing.T, *httptest.ResponseRecorder)
	}{
		{
			name: "install", method: http.MethodPost, target: "/v1/sessions/s1/packages", body: `{"requirements":["alpha","beta==2.1"]}`,
			wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				res := decodeBody[api.InstallPackagesResult](t, rec)
				assert.Equal(t, current.ID, res.Env)
				assert.Equal(t, []api.InstalledPackage{{Name: "alpha", Version: "1.0"}, {Name: "beta", Version: "2.1"}}, res.Installed)
				assert.Equal(t, []api.SatisfiedPackage{}, res.Satisfied, "an empty list, not null")
				require.NotNil(t, res.Pip, "pip's run")
				assert.Equal(t, "Installing alpha-1.0\nInstalling beta-2.1\n", res.Pip.Stdout)
			},
		},
		{
			name: "install refused", method: http.MethodPost, target: "/v1/sessions/s1/packages", body: `{"requirements":["gamma"]}`,
			wantStatus: http.StatusForbidden,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				e := decodeBody[api.Error](t, rec)
				assert.Equal(t, api.CodePackageNotAllowed, e.Code)
				assert.Contains(t, e.Message, "gamma is not on the package allow-list", "names what was refused and who refused it")
			},
		},
		{
			name: "install malformed", method: http.MethodPost, target: "/v1/sessions/s1/packages", body: `{"requirements":["a b"]}`,
			wantStatus: http.StatusBadRequest, check: errorCode(api.CodeInvalidArgument),
		},
		{
			name: "install unknown field", method: http.MethodPost, target: "/v1/sessions/s1/packages", body: `{"requirement":["alpha"]}`,
			wantStatus: http.StatusBadRequest, check: errorCode(api.CodeInvalidArgument),
		},
		{
			name: "install in a missing session", method: http.MethodPost, target: "/v1/sessions/nope/packages", body: `{"requirements":["alpha"]}`,
			wantStatus: http.StatusNotFound, check: errorCode(api.CodeNotFound),
		},
		{
			name: "list a session's packages", method: http.MethodGet, target: "/v1/sessions/s1/packages", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				assert.Equal(t, api.SessionPackages{Env: current.ID, Packages: []api.Package{}}, decodeBody[api.SessionPackages](t, rec))
			},
		},
		{
			name: "list envs", method: http.MethodGet, target: "/v1/envs", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				list := decodeBody[api.EnvList](t, rec).Envs
				require.Len(t, list, 2)
				assert.Equal(t, current, list[1])
				assert.Equal(t, 1, list[0].Sessions)
				assert.Equal(t, []api.MissingPackage{}, list[0].Missing, "an empty list, not null")
			},
		},
		{
			name: "info names the current env", method: http.MethodGet, target: "/v1", wantStatus: http.StatusOK,
			check: func(t *testing.T, rec *httptest.ResponseRecorder) {
				info := decodeBody[api.Info](t, rec)
				require.NotNil(t, info.Env)
				assert.Equal(t, current, *info.Env)
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newServer(packagesFake(), 0)
			rec := serve(srv.Handler(), tt.method, tt.target, tt.body)
			require.Equal(t, tt.wantStatus, rec.Code, "status; body %s", rec.Body.String())
			tt.check(t, rec)
		})
	}
}

func TestInfoWithoutEnvOmitsIt(t *testing.T) {
	srv, _ := newServer(newFake(), 0)
	rec := serve(srv.Handler(), http.MethodGet, "/v1", "")
	require.Equal(t, http.StatusOK, rec.Code)
	assert.NotContains(t, rec.Body.String(), `"env"`, "no base env built yet: no env field")
}

// packageEvents decodes a streamed install.
func packageEvents(t *testing.T, rec *httptest.ResponseRecorder) []api.PackageEvent {
	t.Helper()
	var evs []api.PackageEvent
	sc := bufio.NewScanner(strings.NewReader(rec.Body.String()))
	for sc.Scan() {
		var ev api.PackageEvent
		require.NoError(t, json.Unmarshal(sc.Bytes(), &ev), "line %q is one JSON event", sc.Text())
		evs = append(evs, ev)
	}
	return evs
}

func TestInstallStreams(t *testing.T) {
	srv, _ := newServer(packagesFake(), 0)
	req := httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/packages", strings.NewReader(`{"requirements":["alpha","beta"]}`))
	req.Header.Set("Accept", api.NDJSON)
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, api.NDJSON, rec.Header().Get("Content-Type"))
	evs := packageEvents(t, rec)
	require.Len(t, evs, 3, "two output lines and the end")
	assert.Equal(t, api.ExecEvent{Type: api.EventStdout, Data: "Installing alpha-1.0\n"}, evs[0].ExecEvent)
	assert.Equal(t, api.ExecEvent{Type: api.EventStdout, Data: "Installing beta-1.0\n"}, evs[1].ExecEvent)
	assert.Equal(t, api.EventInstalled, evs[2].Type)
	require.NotNil(t, evs[2].Install, "the last event carries the result")
	assert.Len(t, evs[2].Install.Installed, 2)
	assert.Empty(t, evs[2].Install.Pip.Stdout, "the output went out as events")

	// A refusal comes before any output: the envelope and its status.
	req = httptest.NewRequest(http.MethodPost, "/v1/sessions/s1/packages", strings.NewReader(`{"requirements":["gamma"]}`))
	req.Header.Set("Accept", api.NDJSON)
	rec = httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, req)
	assert.Equal(t, http.StatusForbidden, rec.Code)
	assert.Equal(t, api.CodePackageNotAllowed, decodeBody[api.Error](t, rec).Code)
}
