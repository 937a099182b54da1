package printer

import (
	"fmt"
	"io"
)

// Context is one context of the mcpctl config file.
type Context struct {
	Name          string `json:"name"`
	Current       bool   `json:"current"`
	Addr          string `json:"addr,omitempty"`
	CA            string `json:"ca,omitempty"`
	ClientCert    string `json:"client_cert,omitempty"`
	ClientKey     string `json:"client_key,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	TokenFile     string `json:"token_file,omitempty"`
	TokenEnv      string `json:"token_env,omitempty"`
	Insecure      bool   `json:"insecure"`
}

func (c Context) tlsCell() string {
	switch {
	case c.ClientCert != "":
		return "mtls"
	case c.CA != "":
		return "tls"
	case c.Insecure:
		return "plaintext (insecure)"
	}
	return "plaintext"
}

func (c Context) tokenCell() string {
	if c.TokenEnv != "" {
		return "$" + c.TokenEnv
	}
	return c.TokenFile
}

// ContextList is the output of `context list`.
type ContextList struct {
	File           string    `json:"file"`
	CurrentContext string    `json:"current_context"`
	Contexts       []Context `json:"contexts"`
}

// WriteTable prints one context per row, the current one marked with *.
func (l ContextList) WriteTable(w io.Writer) error {
	if len(l.Contexts) == 0 {
		_, err := fmt.Fprintf(w, "No contexts in %s (add one with 'mcpctl context set NAME --addr HOST:PORT').\n", l.File)
		return err
	}
	t := newTable(w, "CURRENT", "NAME", "ADDR", "TRANSPORT", "TOKEN")
	for _, c := range l.Contexts {
		mark := " "
		if c.Current {
			mark = "*"
		}
		t.row(mark, c.Name, c.Addr, c.tlsCell(), c.tokenCell())
	}
	return t.flush()
}

// ContextResult reports a change of the config file.
type ContextResult struct {
	// Action is what happened: created, updated, deleted, or "now current".
	Action  string   `json:"action"`
	Name    string   `json:"name"`
	File    string   `json:"file"`
	Current bool     `json:"current"`
	Context *Context `json:"context,omitempty"`
}

// WriteTable prints one sentence.
func (r ContextResult) WriteTable(w io.Writer) error {
	suffix := ""
	if r.Current && r.Action != "now current" {
		suffix = "; it is the current context"
	}
	_, err := fmt.Fprintf(w, "context %q %s in %s%s\n", r.Name, r.Action, r.File, suffix)
	return err
}

// Version is the output of `version`.
type Version struct {
	Client string `json:"client"`
	// Server is the control plane's version; empty with --client.
	Server string `json:"server,omitempty"`
	Addr   string `json:"addr,omitempty"`
}

// WriteTable prints one line per side.
func (v Version) WriteTable(w io.Writer) error {
	t := newTable(w)
	t.row("Client:", v.Client)
	if v.Server != "" {
		t.row("Server:", v.Server+" ("+v.Addr+")")
	}
	return t.flush()
}
