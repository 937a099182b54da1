// Package faultproxy is a loopback TCP proxy for tests that injects network
// faults on demand: added latency, a silently dead network (blackhole), cut
// connections and refused connections, switchable while traffic flows.
package faultproxy
