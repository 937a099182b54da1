package oauthpage

import (
	"strconv"

	g "maragu.dev/gomponents"
	h "maragu.dev/gomponents/html"
)

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

const style = `<style>
body{font-family:system-ui,sans-serif;margin:2rem;color:#1b1f24;background:#fafafa}
h1{font-size:1.4rem}table{border-collapse:collapse;min-width:48rem;background:#fff}
th,td{border:1px solid #d0d7de;padding:.45rem .7rem;text-align:left;vertical-align:middle}
th{background:#f0f3f6}.state{font-weight:600}.flash{background:#dafbe1;border:1px solid #4ac26b;padding:.5rem .8rem;margin:1rem 0}
.error{background:#ffebe9;border:1px solid #ff8182;padding:.5rem .8rem;margin:1rem 0}
form.inline{display:inline}button{padding:.25rem .8rem;margin-right:.3rem}.muted{color:#57606a;font-size:.9rem}#whoami{margin:.5rem 0 1rem}
</style>`

// The pages are built with gomponents, which escapes every text and
// attribute value (html/template's escaping), rather than with html/template:
// executing a text/template reaches reflect's MethodByName, which makes the
// linker keep every exported method of every type in the binary, about 2.8 MB
// of the data plane's 19 (measured with size(1) on the binary), all of it
// resident in each data plane.

// nl is the line break the pages had between blocks: between inline forms it
// is the space a browser shows between their buttons.
var nl = g.Text("\n")

// document is a whole page: title, the shared style, then body.
func document(title string, body ...g.Node) g.Node {
	return g.Group{
		h.Doctype(h.HTML(h.Lang("en"),
			h.Head(h.Meta(h.Charset("utf-8")), h.TitleEl(g.Text(title)), g.Raw(style)),
			h.Body(append([]g.Node{nl}, body...)...),
		)),
		nl,
	}
}

// hidden is a form's hidden input.
func hidden(name, value string) g.Node {
	return h.Input(h.Type("hidden"), h.Name(name), h.Value(value))
}

func pageDoc(v pageView) g.Node {
	whoami := h.Div(h.Class("muted"), h.ID("whoami"),
		g.Text("Signed in as "), h.B(g.Text(v.Caller)), g.Text(" ("+v.Role+")"),
		g.If(!v.Admin, g.Text(": read-only, Authorize and Revoke need an admin credential")),
		g.Text("."), nl,
		g.If(v.Session, h.Form(h.Class("inline"), h.Method("post"), h.Action("/oauth/logout"),
			hidden("csrf", v.CSRF), h.Button(h.ID("sign-out"), h.Type("submit"), g.Text("Sign out")))),
	)
	rows := g.Map(v.Rows, func(r row) g.Node {
		button := func(action, label string) g.Node {
			return h.Form(h.Class("inline"), h.Method("post"), h.Action("/oauth/"+action),
				hidden("csrf", v.CSRF), hidden("server", r.Server),
				h.Button(h.Type("submit"), h.ID(action+"-"+r.Server), h.Name(action), g.If(!v.Admin, h.Disabled()), g.Text(label)))
		}
		return g.Group{h.Tr(h.ID("server-"+r.Server),
			h.Td(h.Class("server"), g.Text(r.Server)),
			h.Td(h.Class("state"), g.Text(r.State)),
			h.Td(h.Class("issuer"), g.Text(r.Issuer)),
			h.Td(h.Class("backend"), g.Text(r.Backend)),
			h.Td(h.Class("actions"), nl,
				g.If(r.OAuth, g.Group{button("authorize", "Authorize"), nl, g.If(r.Grant, button("revoke", "Revoke")), nl}),
			),
		), nl}
	})
	return document("mcpmesh — OAuth",
		h.H1(g.Text("mcpmesh — OAuth authorizations of backends")), nl,
		whoami, nl,
		g.If(v.Flash != "", h.P(h.Class("flash"), h.ID("flash"), g.Text(v.Flash))), nl,
		g.If(v.Error != "", h.P(h.Class("error"), h.ID("error"), g.Text(v.Error))), nl,
		h.Table(h.ID("servers"),
			h.THead(h.Tr(h.Th(g.Text("Server")), h.Th(g.Text("Authorization")), h.Th(g.Text("Issuer")), h.Th(g.Text("Backend")), h.Th(g.Text("Actions")))),
			h.TBody(nl, rows,
				g.If(len(v.Rows) == 0 && v.Error == "", h.Tr(h.Td(h.ColSpan("5"), g.Text("No servers are registered.")))), nl,
			),
		), nl,
	)
}

// signInDoc is the sign-in form, with why the last attempt failed ("" for
// none).
func signInDoc(why string) g.Node {
	return document("mcpmesh — sign in",
		h.H1(g.Text("mcpmesh — sign in to manage OAuth authorizations")), nl,
		g.If(why != "", h.P(h.Class("error"), h.ID("error"), g.Text(why))), nl,
		h.Form(h.Method("post"), h.Action("/oauth/login"), h.ID("sign-in-form"), nl,
			h.P(h.Label(h.For("token"), g.Text("Admin or viewer token ("), h.Code(g.Text("mcpctl token create --role admin")), g.Text(", or the control plane's admin.token):"))), nl,
			h.P(h.Input(h.Type("password"), h.ID("token"), h.Name("token"), g.Attr("size", "60"), h.AutoComplete("off"), h.Required())), nl,
			h.P(h.Button(h.Type("submit"), h.ID("sign-in"), g.Text("Sign in"))), nl,
		), nl,
		h.P(h.Class("muted"), g.Text("The token is kept in an encrypted, HttpOnly cookie for at most 12 hours.")), nl,
	)
}

// errorDoc is an error page for status, saying msg.
func errorDoc(status int, msg string) g.Node {
	return document("mcpmesh — error",
		h.H1(g.Text("mcpmesh — "+strconv.Itoa(status))), nl,
		h.P(h.Class("error"), h.ID("error"), g.Text(msg)), nl,
		h.P(h.A(h.Href("/oauth"), g.Text("Back to /oauth"))), nl,
	)
}
