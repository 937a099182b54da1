package cmd

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/mcpmesh/mcpmesh/internal/authtoken"
	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
)

// resolve settles where the control plane is and how to reach it. Each
// setting is taken from, in order: its flag, its environment variable, the
// context in use, the default. The transport settings (--ca, --client-cert,
// --client-key, --tls-server-name, --insecure and their variables) go as a
// group: if any is given by flag or environment, the context's are all
// ignored, so a context's TLS files never mix with a flag's. The same holds
// for the token: --token-file or MCPMESH_TOKEN_FILE replaces the context's
// token-file or token-env.
func (o *options) resolve() error {
	if o.resolved {
		return nil
	}
	ctx, err := o.activeContext()
	if err != nil {
		return err
	}
	given := o.flags.Changed
	env := o.getenv
	switch {
	case given("addr"):
	case env(EnvAddr) != "":
		o.addr = env(EnvAddr)
	case ctx.Addr != "":
		o.addr = ctx.Addr
	}
	switch {
	case given("token-file"):
	case env(authtoken.EnvTokenFile) != "":
		o.tokenFile = env(authtoken.EnvTokenFile)
	case ctx.TokenFile != "":
		o.tokenFile = ctx.TokenFile
	case ctx.TokenEnv != "":
		o.tokenFile, o.tokenEnv = "", ctx.TokenEnv
	}
	transportGiven := given("ca") || given("client-cert") || given("client-key") || given("tls-server-name") || given("insecure") ||
		env(EnvCA) != "" || env(EnvClientCert) != "" || env(EnvClientKey) != ""
	if transportGiven {
		for _, f := range []struct {
			flag, env string
			dst       *string
		}{{"ca", EnvCA, &o.tls.CA}, {"client-cert", EnvClientCert, &o.tls.Cert}, {"client-key", EnvClientKey, &o.tls.Key}} {
			if !given(f.flag) {
				*f.dst = env(f.env)
			}
		}
	} else {
		o.tls.CA, o.tls.Cert, o.tls.Key, o.tls.ServerName = ctx.CA, ctx.ClientCert, ctx.ClientKey, ctx.TLSServerName
		o.insecure = ctx.Insecure
	}
	o.resolved = true
	return nil
}

// activeContext is the context named by --context, else MCPMESH_CONTEXT,
// else the file's current-context, with its paths resolved against the
// file's directory; the zero Context when none is chosen.
func (o *options) activeContext() (ctlconfig.Context, error) {
	name, from := o.contextName, "--context"
	if name == "" {
		name, from = o.getenv(ctlconfig.EnvContext), ctlconfig.EnvContext
	}
	path := ctlconfig.Path(o.configPath, o.getenv)
	if path == "" {
		if name != "" {
			return ctlconfig.Context{}, fmt.Errorf("%s %q: no config file (set --config or %s, or HOME)", from, name, ctlconfig.EnvConfig)
		}
		return ctlconfig.Context{}, nil
	}
	cfg, err := ctlconfig.Load(path)
	if err != nil {
		return ctlconfig.Context{}, fmt.Errorf("%w (fix the file, or name another with --config)", err)
	}
	if name == "" {
		name, from = cfg.CurrentContext, "current-context"
	}
	if name == "" {
		return ctlconfig.Context{}, nil
	}
	ctx, ok := cfg.Get(name)
	if !ok {
		return ctlconfig.Context{}, fmt.Errorf("%s %q is not a context in %s (see 'mcpctl context list')", from, name, path)
	}
	o.context = name
	return ctx.Resolve(filepath.Dir(path)), nil
}

// readToken reads the token from its file, or from the environment
// variable a context names.
func (o *options) readToken() (string, error) {
	if o.tokenEnv != "" {
		tok := strings.TrimSpace(o.getenv(o.tokenEnv))
		if tok == "" {
			return "", fmt.Errorf("context %q takes the token from $%s, which is empty or unset (export it, or set --token-file)", o.context, o.tokenEnv)
		}
		return tok, nil
	}
	tok, err := authtoken.Read(o.tokenFile)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("read admin token %s: no such file (start the control plane first, or set --token-file or %s)", o.tokenFile, authtoken.EnvTokenFile)
		}
		return "", fmt.Errorf("%w (set --token-file or %s)", err, authtoken.EnvTokenFile)
	}
	return tok, nil
}

// tokenSource says where the token came from, for error messages.
func (o *options) tokenSource() string {
	if o.tokenEnv != "" {
		return fmt.Sprintf("$%s (context %q)", o.tokenEnv, o.context)
	}
	return o.tokenFile
}
