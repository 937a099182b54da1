package registry

import (
	"fmt"
	"net/url"
	"strings"

	mcpmeshv1 "github.com/mcpmesh/mcpmesh/gen/mcpmesh/v1"
	"github.com/mcpmesh/mcpmesh/internal/egress"
)

// Policy is what the operator lets registrations name (issue 11 point 7),
// beyond what makes a registration well-formed (validate.go).
type Policy struct {
	// AllowPrivateEgress lets URL backends be link-local or cloud metadata
	// addresses (controlplane --allow-private-egress); refused otherwise.
	AllowPrivateEgress bool
	// AllowCommands, when not empty, are the only executables a stdio
	// registration may name (controlplane --allow-command), each matched
	// exactly: "npx" allows the command npx (found on the data plane's
	// PATH), not /tmp/npx.
	AllowCommands []string
}

// SetPolicy sets the policy every later Create and Update is checked
// against. Call it before serving.
func (s *Service) SetPolicy(p Policy) { s.policy = p }

// check refuses what the policy does not allow.
func (p Policy) check(srv *mcpmeshv1.Server) *fieldError {
	switch srv.GetTransport() {
	case mcpmeshv1.Transport_TRANSPORT_STDIO:
		if len(p.AllowCommands) == 0 {
			return nil
		}
		cmd := srv.GetStdio().GetCommand()
		for _, c := range p.AllowCommands {
			if cmd == c {
				return nil
			}
		}
		return invalid("server.stdio.command", "%q is not an allowed command: this control plane allows only %s (--allow-command)",
			cmd, strings.Join(p.AllowCommands, ", "))
	default:
		if p.AllowPrivateEgress {
			return nil
		}
		if err := checkEgress(srv.GetHttp().GetUrl()); err != nil {
			return invalid("server.http.url", "%v", err)
		}
		for i, ep := range srv.GetEndpoints() {
			if err := checkEgress(ep); err != nil {
				return invalid(fmt.Sprintf("server.endpoints[%d]", i), "%v", err)
			}
		}
	}
	return nil
}

func checkEgress(raw string) error {
	u, err := url.Parse(raw)
	if err != nil {
		return nil // validateServer already refused it
	}
	return egress.CheckHost(u.Hostname())
}
