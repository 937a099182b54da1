package main

import (
	"fmt"
	"os"
	"runtime"
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
