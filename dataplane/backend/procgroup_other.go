//go:build !unix

package backend

import (
	"os"
	"os/exec"
	"syscall"
)

// Without process groups, closing reaches the child only.
func ownGroup(*exec.Cmd) {}

func signalGroup(p *os.Process, sig syscall.Signal) error {
	if sig == syscall.SIGKILL {
		return p.Kill()
	}
	return p.Signal(sig)
}

func groupAlive(*os.Process) bool { return false }
