package configclient

import (
	"fmt"
	"net"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Several control planes (issue 13): --control-plane is one address
// (host:port; a DNS name may have several records) or several host:port
// separated by commas. Either way the channel holds every address and
// gRPC's pick_first balancer connects to one, in an order shuffled per data
// plane so that data planes spread over the control planes; when the one it
// streams from goes (a killed process resets the connection; a vanished
// host is found by the keepalive), the stream fails, Run opens the next one
// after its first backoff step, and pick_first connects to another
// address. The new stream's Hello carries the revision the data plane
// holds, so it resumes from there, and the data plane serves its last good
// config all the while.

// serviceConfig shuffles the address list per channel.
const serviceConfig = `{"loadBalancingConfig":[{"pick_first":{"shuffleAddressList":true}}]}`

// resolverScheme names the manual resolver of an address list.
const resolverScheme = "mcpmesh-controlplanes"

// Targets splits a --control-plane value into its addresses, checking each;
// a single value may also be a gRPC target (dns:///name:port).
func Targets(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("control plane address is empty")
	}
	parts := strings.Split(s, ",")
	if len(parts) == 1 {
		return []string{strings.TrimSpace(s)}, nil
	}
	out := make([]string, 0, len(parts))
	seen := map[string]bool{}
	for _, p := range parts {
		p = strings.TrimSpace(p)
		if p == "" {
			return nil, fmt.Errorf("control plane addresses %q: an empty entry", s)
		}
		host, port, err := net.SplitHostPort(p)
		if err != nil || host == "" || port == "" {
			return nil, fmt.Errorf("control plane address %q (of %q): want host:port", p, s)
		}
		if seen[p] {
			return nil, fmt.Errorf("control plane address %q given twice", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	return out, nil
}

// dialTarget returns the target to dial for addrs and the options it needs:
// a list goes through a manual resolver, each address verified by TLS under
// its own host name (unless the credentials name one).
func dialTarget(addrs []string) (string, []grpc.DialOption) {
	opts := []grpc.DialOption{grpc.WithDefaultServiceConfig(serviceConfig)}
	if len(addrs) == 1 {
		return addrs[0], opts
	}
	r := manual.NewBuilderWithScheme(resolverScheme)
	st := resolver.State{}
	for _, a := range addrs {
		host, _, _ := net.SplitHostPort(a)
		st.Addresses = append(st.Addresses, resolver.Address{Addr: a, ServerName: host})
	}
	r.InitialState(st)
	return resolverScheme + ":///control-planes", append(opts, grpc.WithResolvers(r))
}
