package oauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mcpmesh/mcpmesh/internal/egress"
	"github.com/mcpmesh/mcpmesh/internal/redact"
	"github.com/mcpmesh/mcpmesh/internal/textlimit"
)

// The protocol pieces (discovery, registration, token and revocation
// requests) are written here on net/http rather than taken from
// golang.org/x/oauth2 or mcp-go's OAuthHandler: x/oauth2 cannot send the
// RFC 8707 resource with a refresh and does no discovery or registration,
// and mcp-go's handler owns its token store and browser redirect, while
// here the grant lives in the control plane's store and the browser is the
// data plane's. Every body read is bounded and every call has a timeout.

const (
	// callTimeout bounds each outbound request.
	callTimeout = 10 * time.Second
	// maxMetadata bounds a metadata document; maxTokenBody a token,
	// registration or error response.
	maxMetadata  = 1 << 20
	maxTokenBody = 256 << 10
	// maxRemoteText bounds what an error quotes of a remote answer.
	maxRemoteText = 300
)

// newHTTPClient is the client of every outbound call: a timeout per call,
// at most 3 redirects, and unless allowPrivate the egress policy the data
// planes apply to backends (no link-local or metadata addresses).
func newHTTPClient(allowPrivate bool) *http.Client {
	d := &net.Dialer{Timeout: callTimeout}
	if !allowPrivate {
		d.Control = egress.Control
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           d.DialContext,
		TLSHandshakeTimeout:   callTimeout,
		ResponseHeaderTimeout: callTimeout,
		MaxIdleConnsPerHost:   2,
		IdleConnTimeout:       30 * time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   callTimeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return errors.New("more than 3 redirects")
			}
			return nil
		},
	}
}

// remoteText is a remote string safe to quote in an error: bounded, with
// anything that looks like a credential masked.
func remoteText(s string) string { return redact.Text(textlimit.Truncate(s, maxRemoteText)) }

// prm is RFC 9728 protected resource metadata.
type prm struct {
	Resource             string   `json:"resource"`
	AuthorizationServers []string `json:"authorization_servers"`
	ScopesSupported      []string `json:"scopes_supported"`
}

// asMetadata is RFC 8414 authorization server metadata.
type asMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	ClientIDMetadataDocumentSupported bool     `json:"client_id_metadata_document_supported"`
	ScopesSupported                   []string `json:"scopes_supported"`
}

// discovery is what Begin learns about a backend.
type discovery struct {
	resource string // canonical backend URL (RFC 8707)
	scopes   []string
	as       asMetadata
}

// canonicalResource is the backend URL as a resource indicator: lowercase
// scheme and host, no default port, no fragment.
func canonicalResource(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("backend URL %q is not an absolute http(s) URL", redact.URL(raw))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	u.Host = host
	if port != "" {
		u.Host += ":" + port
	}
	u.Fragment, u.RawFragment, u.User = "", "", nil
	return u.String(), nil
}

// getJSON fetches a JSON document into v; found is false on 404 (and other
// 4xx), so that callers try the next well-known location.
func getJSON(ctx context.Context, hc *http.Client, u string, v any) (found bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1))
	if err != nil {
		return false, fmt.Errorf("read %s: %w", u, err)
	}
	switch {
	case resp.StatusCode >= 400 && resp.StatusCode < 500:
		return false, nil
	case resp.StatusCode != http.StatusOK:
		return false, fmt.Errorf("GET %s answered %s", u, resp.Status)
	case len(body) > maxMetadata:
		return false, fmt.Errorf("GET %s: document is over %d bytes", u, maxMetadata)
	}
	if err := json.Unmarshal(body, v); err != nil {
		return false, fmt.Errorf("GET %s: not a JSON metadata document: %v", u, err)
	}
	return true, nil
}

// probe requests the backend without a token, as an MCP client's first
// request, and returns the resource_metadata URL and scope its 401 names
// (both empty if none), and whether it refused the request at all.
func probe(ctx context.Context, hc *http.Client, backend string, sse bool) (metadataURL, scope string, refused bool, err error) {
	var req *http.Request
	if sse {
		req, err = http.NewRequestWithContext(ctx, http.MethodGet, backend, nil)
		if req != nil {
			req.Header.Set("Accept", "text/event-stream")
		}
	} else {
		body := `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"mcpmesh","version":"oauth-discovery"}}}`
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, backend, strings.NewReader(body))
		if req != nil {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, text/event-stream")
		}
	}
	if err != nil {
		return "", "", false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", "", false, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		return "", "", false, nil
	}
	for _, h := range resp.Header.Values("WWW-Authenticate") {
		params, ok := bearerParams(h)
		if !ok {
			continue
		}
		return params["resource_metadata"], params["scope"], true, nil
	}
	return "", "", true, nil
}

// bearerParams parses a Bearer challenge's auth-params (RFC 6750 §3);
// ok is false for other schemes.
func bearerParams(h string) (map[string]string, bool) {
	scheme, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, false
	}
	out := map[string]string{}
	for rest = strings.TrimSpace(rest); rest != ""; rest = strings.TrimSpace(rest) {
		name, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		name = strings.ToLower(strings.TrimSpace(name))
		after = strings.TrimSpace(after)
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			val, rest = b.String(), after[min(i+1, len(after)):]
		} else {
			val, rest, _ = strings.Cut(after, ",")
			val = strings.TrimSpace(val)
		}
		out[name] = val
		rest = strings.TrimPrefix(strings.TrimSpace(rest), ",")
	}
	return out, true
}

// wellKnown returns the well-known URLs of suffix for an issuer or resource
// URL: path-aware first (RFC 8414 §3.1, RFC 9728 §3.1), then at the root.
func wellKnown(base, suffix string) []string {
	u, err := url.Parse(base)
	if err != nil {
		return nil
	}
	origin := u.Scheme + "://" + u.Host
	path := strings.TrimRight(u.EscapedPath(), "/")
	var out []string
	if path != "" {
		out = append(out, origin+"/.well-known/"+suffix+path)
	}
	return append(out, origin+"/.well-known/"+suffix)
}

// discover finds the authorization server of the backend at backendURL
// per the MCP authorization spec.
func discover(ctx context.Context, hc *http.Client, backendURL string, sse bool) (*discovery, error) {
	resource, err := canonicalResource(backendURL)
	if err != nil {
		return nil, err
	}
	shown := redact.URL(backendURL)
	metaURL, challengeScope, refused, err := probe(ctx, hc, backendURL, sse)
	if err != nil {
		return nil, fmt.Errorf("discovery of %s: request without a token: %w", shown, err)
	}
	var md prm
	found := false
	if metaURL != "" {
		if u, err := url.Parse(metaURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("discovery of %s: its 401 names resource_metadata %q, not an http(s) URL", shown, remoteText(metaURL))
		}
		if found, err = getJSON(ctx, hc, metaURL, &md); err != nil {
			return nil, fmt.Errorf("discovery of %s: protected resource metadata: %w", shown, err)
		}
		if !found {
			return nil, fmt.Errorf("discovery of %s: protected resource metadata at %s not found", shown, remoteText(metaURL))
		}
	} else {
		for _, u := range wellKnown(backendURL, "oauth-protected-resource") {
			if found, err = getJSON(ctx, hc, u, &md); err != nil {
				return nil, fmt.Errorf("discovery of %s: protected resource metadata: %w", shown, err)
			}
			if found {
				break
			}
		}
	}
	if !found {
		if !refused {
			return nil, fmt.Errorf("discovery of %s: the backend answered without asking for a token and publishes no protected resource metadata: it does not use OAuth (drop --oauth)", shown)
		}
		return nil, fmt.Errorf("discovery of %s: the backend refused the request but names no resource_metadata and serves no /.well-known/oauth-protected-resource", shown)
	}
	// RFC 9728 §3.3: the metadata must be about this resource.
	if md.Resource != "" {
		r, err := canonicalResource(md.Resource)
		if err != nil || !(r == resource || strings.HasPrefix(resource, strings.TrimRight(r, "/")+"/")) {
			return nil, fmt.Errorf("discovery of %s: its protected resource metadata is about %q, another resource", shown, remoteText(md.Resource))
		}
	}
	if len(md.AuthorizationServers) == 0 {
		return nil, fmt.Errorf("discovery of %s: its protected resource metadata names no authorization server", shown)
	}
	issuer := md.AuthorizationServers[0]
	as, err := asMeta(ctx, hc, issuer)
	if err != nil {
		return nil, err
	}
	d := &discovery{resource: resource, as: *as, scopes: md.ScopesSupported}
	if challengeScope != "" {
		d.scopes = strings.Fields(challengeScope)
	}
	return d, nil
}

// asMeta fetches an issuer's RFC 8414 metadata, else its OpenID Connect
// discovery document, and checks what the flow needs.
func asMeta(ctx context.Context, hc *http.Client, issuer string) (*asMetadata, error) {
	u, err := url.Parse(issuer)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("authorization server %q is not an http(s) issuer URL", remoteText(issuer))
	}
	candidates := wellKnown(issuer, "oauth-authorization-server")
	oidc := wellKnown(issuer, "openid-configuration")
	candidates = append(candidates, oidc[0])
	if p := strings.TrimRight(u.EscapedPath(), "/"); p != "" {
		candidates = append(candidates, u.Scheme+"://"+u.Host+p+"/.well-known/openid-configuration")
	}
	var md asMetadata
	found := false
	for _, c := range slices.Compact(candidates) {
		if found, err = getJSON(ctx, hc, c, &md); err != nil {
			return nil, fmt.Errorf("metadata of authorization server %s: %w", remoteText(issuer), err)
		}
		if found {
			break
		}
	}
	switch {
	case !found:
		return nil, fmt.Errorf("metadata of authorization server %s: none at /.well-known/oauth-authorization-server or /.well-known/openid-configuration", remoteText(issuer))
	case strings.TrimRight(md.Issuer, "/") != strings.TrimRight(issuer, "/"):
		// RFC 8414 §3.3: a mismatch may be an impersonation.
		return nil, fmt.Errorf("metadata of authorization server %s names issuer %q", remoteText(issuer), remoteText(md.Issuer))
	case md.AuthorizationEndpoint == "" || md.TokenEndpoint == "":
		return nil, fmt.Errorf("metadata of authorization server %s lacks authorization_endpoint or token_endpoint", remoteText(issuer))
	case !slices.Contains(md.CodeChallengeMethodsSupported, "S256"):
		return nil, fmt.Errorf("authorization server %s does not support PKCE with S256 (code_challenge_methods_supported: %q): mcpmesh cannot use it safely", remoteText(issuer), md.CodeChallengeMethodsSupported)
	}
	for _, e := range []string{md.AuthorizationEndpoint, md.TokenEndpoint, md.RegistrationEndpoint, md.RevocationEndpoint} {
		if e == "" {
			continue
		}
		if eu, err := url.Parse(e); err != nil || (eu.Scheme != "https" && eu.Scheme != "http") || eu.Host == "" {
			return nil, fmt.Errorf("metadata of authorization server %s: endpoint %q is not an http(s) URL", remoteText(issuer), remoteText(e))
		}
	}
	return &md, nil
}

// client is an OAuth client mcpmesh uses at one authorization server.
type client struct {
	id, secret string
	// authMethod: client_secret_basic, client_secret_post or none.
	authMethod string
}

// register is RFC 7591 dynamic client registration.
func register(ctx context.Context, hc *http.Client, as *asMetadata, redirectURI string) (client, error) {
	method := "none"
	for _, m := range []string{"client_secret_basic", "client_secret_post"} {
		if slices.Contains(as.TokenEndpointAuthMethodsSupported, m) {
			method = m
			break
		}
	}
	if len(as.TokenEndpointAuthMethodsSupported) == 0 {
		method = "client_secret_basic" // RFC 8414's default
	}
	body, _ := json.Marshal(map[string]any{
		"client_name":                "mcpmesh",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": method,
	})
	where := fmt.Sprintf("registration at %s", remoteText(as.RegistrationEndpoint))
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, as.RegistrationEndpoint, strings.NewReader(string(body)))
	if err != nil {
		return client{}, fmt.Errorf("%s: %w", where, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return client{}, fmt.Errorf("%s: %w", where, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody))
	if err != nil {
		return client{}, fmt.Errorf("%s: %w", where, err)
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return client{}, fmt.Errorf("%s: %s", where, oauthErrorText(resp, raw))
	}
	var out struct {
		ClientID                string `json:"client_id"`
		ClientSecret            string `json:"client_secret"`
		TokenEndpointAuthMethod string `json:"token_endpoint_auth_method"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || out.ClientID == "" {
		return client{}, fmt.Errorf("%s: the answer has no client_id", where)
	}
	if out.TokenEndpointAuthMethod != "" {
		method = out.TokenEndpointAuthMethod
	}
	if out.ClientSecret == "" {
		method = "none"
	}
	return client{id: out.ClientID, secret: out.ClientSecret, authMethod: method}, nil
}

// tokenResponse is RFC 6749 §5.1.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	RefreshToken string `json:"refresh_token"`
	Scope        string `json:"scope"`
}

// oauthError is an RFC 6749 §5.2 error answer.
type oauthError struct {
	endpoint, code, desc string
	status               int
}

func (e *oauthError) Error() string {
	msg := fmt.Sprintf("token endpoint %s said %s", remoteText(e.endpoint), remoteText(e.code))
	if e.desc != "" {
		msg += ": " + remoteText(e.desc)
	}
	return msg
}

// oauthErrorText describes a failed answer without quoting more than a
// bounded, redacted part of it.
func oauthErrorText(resp *http.Response, raw []byte) string {
	var e struct {
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		if e.Description != "" {
			return fmt.Sprintf("%s said %s: %s", resp.Status, remoteText(e.Error), remoteText(e.Description))
		}
		return fmt.Sprintf("%s said %s", resp.Status, remoteText(e.Error))
	}
	return "answered " + resp.Status
}

// postForm sends a form to an endpoint of the authorization server with
// the client's authentication (RFC 6749 §2.3.1).
func postForm(ctx context.Context, hc *http.Client, endpoint string, c client, form url.Values) (*http.Response, []byte, error) {
	switch c.authMethod {
	case "client_secret_post":
		form.Set("client_id", c.id)
		form.Set("client_secret", c.secret)
	case "client_secret_basic":
	default:
		form.Set("client_id", c.id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if c.authMethod == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(c.id), url.QueryEscape(c.secret))
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxTokenBody+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > maxTokenBody {
		return nil, nil, fmt.Errorf("the answer is over %d bytes", maxTokenBody)
	}
	return resp, raw, nil
}

// token calls the token endpoint with form (a code exchange or a refresh).
// An OAuth error answer is an *oauthError; anything else is a transport or
// protocol error.
func token(ctx context.Context, hc *http.Client, endpoint string, c client, form url.Values) (*tokenResponse, error) {
	tr, err := tokenOnce(ctx, hc, endpoint, c, form)
	var oe *oauthError
	if errors.As(err, &oe) && oe.code == "invalid_client" && c.authMethod == "client_secret_basic" {
		// A client registered for client_secret_post (the grant does not
		// record the method): the same secret in the form.
		c.authMethod = "client_secret_post"
		return tokenOnce(ctx, hc, endpoint, c, form)
	}
	return tr, err
}

func tokenOnce(ctx context.Context, hc *http.Client, endpoint string, c client, in url.Values) (*tokenResponse, error) {
	form := url.Values{}
	for k, v := range in {
		form[k] = v
	}
	resp, raw, err := postForm(ctx, hc, endpoint, c, form)
	if err != nil {
		return nil, fmt.Errorf("token endpoint %s: %w", remoteText(endpoint), err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, &oauthError{endpoint: endpoint, code: e.Error, desc: e.Description, status: resp.StatusCode}
		}
		return nil, fmt.Errorf("token endpoint %s answered %s", remoteText(endpoint), resp.Status)
	}
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "" && mt != "application/json" {
		return nil, fmt.Errorf("token endpoint %s answered %s, not JSON", remoteText(endpoint), remoteText(mt))
	}
	var tr tokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil {
		return nil, fmt.Errorf("token endpoint %s: unreadable answer", remoteText(endpoint))
	}
	if tr.AccessToken == "" {
		return nil, fmt.Errorf("token endpoint %s: the answer has no access_token", remoteText(endpoint))
	}
	if tr.TokenType != "" && !strings.EqualFold(tr.TokenType, "Bearer") {
		return nil, fmt.Errorf("token endpoint %s issued a %q token; mcpmesh sends only Bearer tokens", remoteText(endpoint), remoteText(tr.TokenType))
	}
	tr.TokenType = "Bearer"
	return &tr, nil
}

// revoke is RFC 7009; the hint names the kind of token.
func revoke(ctx context.Context, hc *http.Client, endpoint string, c client, tok, hint string) error {
	resp, raw, err := postForm(ctx, hc, endpoint, c, url.Values{"token": {tok}, "token_type_hint": {hint}})
	if err != nil {
		return fmt.Errorf("revocation at %s: %w", remoteText(endpoint), err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("revocation at %s: %s", remoteText(endpoint), oauthErrorText(resp, raw))
	}
	return nil
}
