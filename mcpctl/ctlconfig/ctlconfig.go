package ctlconfig

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/mcpmesh/mcpmesh/internal/atomicfile"
)

// Environment variables that choose the file and the context.
const (
	EnvConfig  = "MCPMESH_CONFIG"
	EnvContext = "MCPMESH_CONTEXT"
)

// MaxFileSize bounds the file Load reads.
const MaxFileSize = 1 << 20

// Context is one named control plane and how to reach it. File paths may
// be relative to the config file's directory.
type Context struct {
	Name string `json:"name"`
	// Addr is the control plane's gRPC address, host:port.
	Addr string `json:"addr,omitempty"`
	// CA, ClientCert, ClientKey and TLSServerName are what the --ca,
	// --client-cert, --client-key and --tls-server-name flags take.
	CA            string `json:"ca,omitempty"`
	ClientCert    string `json:"client-cert,omitempty"`
	ClientKey     string `json:"client-key,omitempty"`
	TLSServerName string `json:"tls-server-name,omitempty"`
	// TokenFile is a file holding the token; TokenEnv the name of an
	// environment variable holding it. At most one is set.
	TokenFile string `json:"token-file,omitempty"`
	TokenEnv  string `json:"token-env,omitempty"`
	// Insecure allows plaintext to a non-loopback Addr.
	Insecure bool `json:"insecure,omitempty"`
}

// Config is the whole file.
type Config struct {
	CurrentContext string    `json:"current-context,omitempty"`
	Contexts       []Context `json:"contexts"`
}

var (
	nameRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	envVarRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
)

// ValidateName checks a context name.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("context name %q is invalid: use 1-63 characters of letters, digits, '.', '_' and '-', starting with a letter or digit", name)
	}
	return nil
}

// Validate checks one context as Set and Load do.
func (c Context) Validate() error {
	if err := ValidateName(c.Name); err != nil {
		return err
	}
	if c.TokenFile != "" && c.TokenEnv != "" {
		return fmt.Errorf("context %q has both token-file and token-env: keep one", c.Name)
	}
	if c.TokenEnv != "" && !envVarRE.MatchString(c.TokenEnv) {
		return fmt.Errorf("context %q: token-env %q is not an environment variable name", c.Name, c.TokenEnv)
	}
	if c.Insecure && (c.CA != "" || c.ClientCert != "" || c.ClientKey != "") {
		return fmt.Errorf("context %q has both insecure and TLS files (ca, client-cert, client-key): keep one", c.Name)
	}
	if (c.ClientCert == "") != (c.ClientKey == "") {
		return fmt.Errorf("context %q: client-cert and client-key go together", c.Name)
	}
	if c.TLSServerName != "" && c.CA == "" && c.ClientCert == "" {
		return fmt.Errorf("context %q: tls-server-name needs ca", c.Name)
	}
	return nil
}

// Resolve returns c with its relative file paths made relative to dir (the
// config file's directory), as a kubeconfig's are.
func (c Context) Resolve(dir string) Context {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.HasPrefix(p, "~") {
			return p
		}
		return filepath.Join(dir, p)
	}
	c.CA, c.ClientCert, c.ClientKey, c.TokenFile = abs(c.CA), abs(c.ClientCert), abs(c.ClientKey), abs(c.TokenFile)
	return c
}

// Path is the config file: explicit (the --config flag) if set, else
// $MCPMESH_CONFIG, else $XDG_CONFIG_HOME/mcpmesh/config.yaml, else
// $HOME/.config/mcpmesh/config.yaml. It is "" when none of them is set.
func Path(explicit string, getenv func(string) string) string {
	switch {
	case explicit != "":
		return explicit
	case getenv(EnvConfig) != "":
		return getenv(EnvConfig)
	case getenv("XDG_CONFIG_HOME") != "":
		return filepath.Join(getenv("XDG_CONFIG_HOME"), "mcpmesh", "config.yaml")
	case getenv("HOME") != "":
		return filepath.Join(getenv("HOME"), ".config", "mcpmesh", "config.yaml")
	}
	return ""
}

// Load reads the file at path. A file that does not exist is an empty
// config; one that is not valid (unknown keys, a context twice, a bad
// context) is an error naming what is wrong.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Config{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read config %s: %w", path, err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("config %s is over %d bytes", path, MaxFileSize)
	}
	c := &Config{}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for _, ctx := range c.Contexts {
		if err := ctx.Validate(); err != nil {
			return nil, fmt.Errorf("config %s: %w", path, err)
		}
		if seen[ctx.Name] {
			return nil, fmt.Errorf("config %s: context %q is listed twice", path, ctx.Name)
		}
		seen[ctx.Name] = true
	}
	return c, nil
}

// Get returns the named context.
func (c *Config) Get(name string) (Context, bool) {
	i := slices.IndexFunc(c.Contexts, func(x Context) bool { return x.Name == name })
	if i < 0 {
		return Context{}, false
	}
	return c.Contexts[i], true
}

// Names lists the contexts' names, sorted.
func (c *Config) Names() []string {
	out := make([]string, 0, len(c.Contexts))
	for _, x := range c.Contexts {
		out = append(out, x.Name)
	}
	slices.Sort(out)
	return out
}

// Put adds ctx or replaces the context of its name, keeping them sorted.
func (c *Config) Put(ctx Context) {
	if i := slices.IndexFunc(c.Contexts, func(x Context) bool { return x.Name == ctx.Name }); i >= 0 {
		c.Contexts[i] = ctx
		return
	}
	c.Contexts = append(c.Contexts, ctx)
	slices.SortFunc(c.Contexts, func(a, b Context) int { return strings.Compare(a.Name, b.Name) })
}

// Delete removes the named context (and makes no context current if it
// was); it reports whether there was one.
func (c *Config) Delete(name string) bool {
	i := slices.IndexFunc(c.Contexts, func(x Context) bool { return x.Name == name })
	if i < 0 {
		return false
	}
	c.Contexts = slices.Delete(c.Contexts, i, i+1)
	if c.CurrentContext == name {
		c.CurrentContext = ""
	}
	return true
}

// Save writes c to path atomically (a temporary file in the same
// directory, synced, then renamed over it) with mode 0600, creating the
// directory (0700) if needed: a crash leaves the old file or the new one,
// never half of one.
func Save(path string, c *Config) error {
	if c.Contexts == nil {
		c.Contexts = []Context{}
	}
	b, err := yaml.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write config %s: %w", path, err)
	}
	return atomicfile.Write(path, b, 0o600)
}
