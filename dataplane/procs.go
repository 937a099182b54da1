package main

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
)

// procsAuto is --procs's default: choose from the CPUs Go would use.
const procsAuto = -1

// chooseProcs returns how many OS threads may run the data plane's Go code at
// once (GOMAXPROCS), given --procs, whether $GOMAXPROCS is set, and the
// number Go chose (runtime.GOMAXPROCS(0): the CPUs the machine or its cgroup
// limit allows, or $GOMAXPROCS); 0 means "leave Go's choice".
//
// The default is half of Go's choice, at least one. A data plane shares its
// machine with the stdio backends it starts and, in the usual small
// deployment, with its clients and URL backends too; a proxy hop spends most
// of its time waiting on the network, and a second scheduler thread with
// nothing to run spins looking for work before it sleeps, on every call. On
// the 2-core bench machine (bench/README.md) one thread instead of two cut the
// data plane's CPU per tools/call by a quarter and raised throughput at 16
// sessions from 0.6x to 0.8x of a direct connection. An operator who set
// $GOMAXPROCS keeps it; --procs 0 gives Go's default.
func chooseProcs(flagVal int, envSet bool, goChoice int) (int, error) {
	switch {
	case flagVal < procsAuto:
		return 0, fmt.Errorf("--procs %d: must be 0 (Go's default: every CPU allowed), a positive count, or unset", flagVal)
	case flagVal == 0:
		return 0, nil
	case flagVal > 0:
		return flagVal, nil
	case envSet:
		return 0, nil
	}
	return max(1, (goChoice+1)/2), nil
}

// setProcs applies --procs and returns the GOMAXPROCS in effect.
func setProcs(flagVal int) (int, error) {
	_, envSet := os.LookupEnv("GOMAXPROCS")
	n, err := chooseProcs(flagVal, envSet, runtime.GOMAXPROCS(0))
	if err != nil {
		return 0, err
	}
	if n > 0 {
		runtime.GOMAXPROCS(n)
	}
	return runtime.GOMAXPROCS(0), nil
}

// gcPercentAuto is --gc-percent's default: 200 unless $GOGC is set.
const gcPercentAuto = -2

// defaultGCPercent is the collector's target with --gc-percent unset: heap
// growth of twice the live heap before a collection, where Go's default is
// once. A data plane's live heap is small (a few MB: catalogs, sessions,
// connections) while each relayed call allocates a few KB, so with Go's
// default it collects about twenty times a second under load, and each
// collection marks the whole live heap and the roots again. On the 2-core
// bench machine (bench/README.md) 200 cut the data plane's CPU per call at 16
// sessions by about 6 % (58 to 55 us) and left its RSS with 10 backends where
// it was (22.1-22.5 MB both ways): the cost is at most one more live heap of
// memory at the busiest, and none at rest.
const defaultGCPercent = 200

// chooseGCPercent returns the collector's target (debug.SetGCPercent) given
// --gc-percent and whether $GOGC is set; 0 means "leave Go's choice" (100,
// or $GOGC). -1 turns the collector off, as GOGC=off does.
func chooseGCPercent(flagVal int, envSet bool) (int, error) {
	switch {
	case flagVal == gcPercentAuto && envSet:
		return 0, nil
	case flagVal == gcPercentAuto:
		return defaultGCPercent, nil
	case flagVal < -1:
		return 0, fmt.Errorf("--gc-percent %d: must be a percentage (Go's GOGC: 100 is Go's default), or -1 for off", flagVal)
	case flagVal == 0:
		return 0, fmt.Errorf("--gc-percent 0: would collect all the time; use 100 for Go's default or -1 for off")
	}
	return flagVal, nil
}

// setGCPercent applies --gc-percent and returns the target in effect (-1:
// off).
func setGCPercent(flagVal int) (int, error) {
	_, envSet := os.LookupEnv("GOGC")
	n, err := chooseGCPercent(flagVal, envSet)
	if err != nil {
		return 0, err
	}
	if n == 0 {
		n = debug.SetGCPercent(-1) // read Go's choice...
		debug.SetGCPercent(n)      // ...and put it back
		return n, nil
	}
	debug.SetGCPercent(n)
	return n, nil
}
