package oauthpage

import "html/template"

// pageView is what the dashboard shows.
type pageView struct {
	Caller, Role string
	Admin        bool
	Session      bool   // signed in with a cookie (Sign out is offered)
	CSRF         string // the forms' token; "" for a bearer-header caller
	Flash, Error string
	Rows         []row
}

// row is one backend.
type row struct {
	Server, State, Issuer, Backend string
	OAuth                          bool // the server uses OAuth: it gets buttons
	Grant                          bool // a grant is held: Revoke is offered
}

type signInView struct{ Error string }

type errorView struct {
	Status  int
	Message string
}

const style = `<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24;background:#fafafa}
h1{font-size:1.4rem}table{border-collapse:collapse;min-width:48rem;background:#fff}
th,td{border:1px solid #d0d7de;padding:.45rem .7rem;text-align:left;vertical-align:middle}
th{background:#f0f3f6}.state{font-weight:600}.flash{background:#dafbe1;border:1px solid #4ac26b;padding:.5rem .8rem;margin:1rem 0}
.error{background:#ffebe9;border:1px solid #ff8182;padding:.5rem .8rem;margin:1rem 0}
form.inline{display:inline}button{padding:.25rem .8rem;margin-right:.3rem}.muted{color:#57606a;font-size:.9rem}#whoami{margin:.5rem 0 1rem}
</style>`

var pageTmpl = template.Must(template.New("page").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcpmesh — OAuth</title>` + style + `</head><body>
<h1>mcpmesh — OAuth authorizations of backends</h1>
<div class="muted" id="whoami">Signed in as <b>{{.Caller}}</b> ({{.Role}}){{if not .Admin}}: read-only, Authorize and Revoke need an admin credential{{end}}.
{{if .Session}}<form class="inline" method="post" action="/oauth/logout"><input type="hidden" name="csrf" value="{{.CSRF}}"><button id="sign-out" type="submit">Sign out</button></form>{{end}}</div>
{{if .Flash}}<p class="flash" id="flash">{{.Flash}}</p>{{end}}
{{if .Error}}<p class="error" id="error">{{.Error}}</p>{{end}}
<table id="servers"><thead><tr><th>Server</th><th>Authorization</th><th>Issuer</th><th>Backend</th><th>Actions</th></tr></thead><tbody>
{{range .Rows}}<tr id="server-{{.Server}}"><td class="server">{{.Server}}</td><td class="state">{{.State}}</td><td class="issuer">{{.Issuer}}</td><td class="backend">{{.Backend}}</td><td class="actions">
{{if .OAuth}}<form class="inline" method="post" action="/oauth/authorize"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="server" value="{{.Server}}"><button type="submit" id="authorize-{{.Server}}" name="authorize"{{if not $.Admin}} disabled{{end}}>Authorize</button></form>
{{if .Grant}}<form class="inline" method="post" action="/oauth/revoke"><input type="hidden" name="csrf" value="{{$.CSRF}}"><input type="hidden" name="server" value="{{.Server}}"><button type="submit" id="revoke-{{.Server}}" name="revoke"{{if not $.Admin}} disabled{{end}}>Revoke</button></form>{{end}}
{{end}}</td></tr>
{{else}}{{if not .Error}}<tr><td colspan="5">No servers are registered.</td></tr>{{end}}{{end}}
</tbody></table>
</body></html>
`))

var signInTmpl = template.Must(template.New("signin").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcpmesh — sign in</title>` + style + `</head><body>
<h1>mcpmesh — sign in to manage OAuth authorizations</h1>
{{if .Error}}<p class="error" id="error">{{.Error}}</p>{{end}}
<form method="post" action="/oauth/login" id="sign-in-form">
<p><label for="token">Admin or viewer token (<code>mcpctl token create --role admin</code>, or the control plane's admin.token):</label></p>
<p><input type="password" id="token" name="token" size="60" autocomplete="off" required></p>
<p><button type="submit" id="sign-in">Sign in</button></p>
</form>
<p class="muted">The token is kept in an encrypted, HttpOnly cookie for at most 12 hours.</p>
</body></html>
`))

var errorTmpl = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>mcpmesh — error</title>` + style + `</head><body>
<h1>mcpmesh — {{.Status}}</h1>
<p class="error" id="error">{{.Message}}</p>
<p><a href="/oauth">Back to /oauth</a></p>
</body></html>
`))
