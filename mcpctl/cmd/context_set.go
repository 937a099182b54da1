package cmd

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/mcpmesh/mcpmesh/mcpctl/ctlconfig"
	"github.com/mcpmesh/mcpmesh/mcpctl/printer"
)

// contextFlags are the flags of `context set`. They shadow the global
// flags of the same names: here they say what to store, not how to connect.
type contextFlags struct {
	c   ctlconfig.Context
	use bool
}

func newContextSetCommand(o *options) *cobra.Command {
	var f contextFlags
	cmd := &cobra.Command{
		Use:   "set NAME [--addr HOST:PORT] [--ca FILE] [--client-cert FILE --client-key FILE] [--token-file FILE | --token-env VAR] [--insecure]",
		Short: "Create a context, or change the settings given of an existing one",
		Long: `Create a context, or change an existing one: only the flags given change,
the others keep their values; an empty value (--ca '') clears a setting.
File paths are stored absolute. The file is written with mode 0600.`,
		Example: `  mcpctl context set prod --addr cp.example.com:7070 --ca /etc/mcpmesh/ca.crt --token-env MCPMESH_PROD_TOKEN --use
  mcpctl context set local --addr 127.0.0.1:7070 --token-file ./data/admin.token`,
		Args:              exactArgs(1, "one context NAME"),
		ValidArgsFunction: completeOneContext(o),
		RunE: func(c *cobra.Command, args []string) error {
			name := args[0]
			if err := ctlconfig.ValidateName(name); err != nil {
				return err
			}
			path, cfg, err := o.loadConfig()
			if err != nil {
				return err
			}
			cur, existed := cfg.Get(name)
			cur.Name = name
			fl := c.Flags()
			for _, s := range []struct {
				flag      string
				dst       *string
				val       string
				path      bool
				exclusive *string // cleared when this one is set
			}{
				{"addr", &cur.Addr, f.c.Addr, false, nil},
				{"ca", &cur.CA, f.c.CA, true, nil},
				{"client-cert", &cur.ClientCert, f.c.ClientCert, true, nil},
				{"client-key", &cur.ClientKey, f.c.ClientKey, true, nil},
				{"tls-server-name", &cur.TLSServerName, f.c.TLSServerName, false, nil},
				{"token-file", &cur.TokenFile, f.c.TokenFile, true, &cur.TokenEnv},
				{"token-env", &cur.TokenEnv, f.c.TokenEnv, false, &cur.TokenFile},
			} {
				if !fl.Changed(s.flag) {
					continue
				}
				v := s.val
				if s.path && v != "" {
					if v, err = filepath.Abs(v); err != nil {
						return fmt.Errorf("--%s: %w", s.flag, err)
					}
				}
				*s.dst = v
				if s.exclusive != nil && v != "" {
					*s.exclusive = "" // --token-file replaces a token-env, and the reverse
				}
			}
			if fl.Changed("insecure") {
				cur.Insecure = f.c.Insecure
			}
			if fl.Changed("token-file") && fl.Changed("token-env") && f.c.TokenFile != "" && f.c.TokenEnv != "" {
				return fmt.Errorf("give --token-file or --token-env, not both")
			}
			if err := cur.Validate(); err != nil {
				return err
			}
			cfg.Put(cur)
			if f.use || cfg.CurrentContext == "" {
				cfg.CurrentContext = name // the first context is current
			}
			if err := ctlconfig.Save(path, cfg); err != nil {
				return err
			}
			action := "created"
			if existed {
				action = "updated"
			}
			v := contextView(cur, cfg.CurrentContext)
			return o.print(printer.ContextResult{Action: action, Name: name, File: path, Current: cfg.CurrentContext == name, Context: &v})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.c.Addr, "addr", "", "control plane gRPC address, host:port")
	fl.StringVar(&f.c.CA, "ca", "", "PEM CA bundle of the control plane's TLS certificate")
	fl.StringVar(&f.c.ClientCert, "client-cert", "", "PEM client certificate (mutual TLS)")
	fl.StringVar(&f.c.ClientKey, "client-key", "", "PEM private key of --client-cert")
	fl.StringVar(&f.c.TLSServerName, "tls-server-name", "", "name the control plane's certificate must carry")
	fl.StringVar(&f.c.TokenFile, "token-file", "", "file holding the token")
	fl.StringVar(&f.c.TokenEnv, "token-env", "", "name of an environment variable holding the token (instead of --token-file)")
	fl.BoolVar(&f.c.Insecure, "insecure", false, "allow plaintext to a non-loopback address")
	fl.BoolVar(&f.use, "use", false, "make it the current context")
	return cmd
}
